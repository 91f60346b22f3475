//! Download: what a store streams, as a response body — and the `Range` headers a download
//! may carry.
//!
//! [`StoreBody`] hands a store's [`DataStream`](crate::store::DataStream) to hyper frame by frame (an S3 object or an
//! http origin's body as it arrives, a file in bounded reads); a stream over a local file also
//! offers its file and range, which the zero-copy path (`splice`) sends instead. A stream that
//! fails midway fails the body, and hyper closes the connection before the announced
//! `Content-Length`: a download is never a short `200`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;

use meta::Location;

use crate::body::ByteStream;
use crate::store::{BoxStream, StoreError, Stores};

/// A store's stream as a response body.
pub struct StoreBody(BoxStream);

impl StoreBody {
    /// The body of `stream`.
    pub fn new(stream: BoxStream) -> StoreBody {
        StoreBody(stream)
    }
}

impl ByteStream for StoreBody {
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        self.get_mut().0.as_mut().poll_next(cx)
    }

    fn remaining(&self) -> u64 {
        self.0.remaining()
    }

    fn splice_source(&self) -> Option<super::splice::SpliceSource> {
        self.0
            .file_range()
            .map(|range| super::splice::SpliceSource {
                file: range.file,
                start: range.start,
                end: range.end,
                hold: None,
            })
    }
}

/// A stream that counts what it reads into `glint_store_read_bytes_total{store}` (whether it
/// goes to a client or into the image cache). Bytes sent with `splice` are counted when the
/// stream hands its file over.
pub struct Counted<S> {
    inner: S,
    store: Arc<str>,
}

impl<S: ByteStream> Counted<S> {
    /// Counts `inner`'s bytes as read from store `store`.
    pub fn new(inner: S, store: Arc<str>) -> Counted<S> {
        Counted { inner, store }
    }
}

impl<S: ByteStream + Unpin> ByteStream for Counted<S> {
    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Bytes>>> {
        let next = Pin::new(&mut self.inner).poll_next(cx);
        if let Poll::Ready(Some(Ok(bytes))) = &next {
            crate::metrics::store_read(&self.store, bytes.len() as u64);
        }
        next
    }

    fn remaining(&self) -> u64 {
        self.inner.remaining()
    }

    fn splice_source(&self) -> Option<super::splice::SpliceSource> {
        let source = self.inner.splice_source()?;
        crate::metrics::store_read(&self.store, source.end - source.start);
        Some(source)
    }
}

/// [`open_first`]'s stream as a [`ByteStream`], counted as read from the store that answered:
/// what a download sends from a store, and what an image cache fill copies (any store: file,
/// S3, http — each through its ranged read).
pub async fn open_counted(
    stores: &Stores,
    locations: &[Location],
    range: std::ops::Range<u64>,
) -> Result<Counted<StoreBody>, StoreError> {
    let (stream, store) = open_first(stores, locations, range).await?;
    Ok(Counted::new(StoreBody::new(stream), store))
}

/// Opens `range` of an image's data from the first of its `locations` that answers, trying
/// them in order of their store's `weight` (highest first; equal weights in location order),
/// as Glance does: an image whose data is in two stores survives the loss of one. Locations
/// of stores this gateway does not have are skipped. Returns the stream and the id of the
/// store that answered. The error is the last store's (or `NotFound` when no location belongs
/// to a configured store).
pub async fn open_first(
    stores: &Stores,
    locations: &[Location],
    range: std::ops::Range<u64>,
) -> Result<(BoxStream, Arc<str>), StoreError> {
    let mut candidates: Vec<_> = locations
        .iter()
        .filter_map(|location| stores.for_location(location).map(|store| (store, location)))
        .collect();
    candidates.sort_by_key(|(store, _)| std::cmp::Reverse(store.weight()));
    let mut last = None;
    for (store, location) in candidates {
        match store.read(location, range.clone()).await {
            Ok(stream) => return Ok((stream, Arc::from(store.id()))),
            Err(e) => {
                tracing::warn!(store = %store.id(), error = %e, "image data not readable here; trying the next location");
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| StoreError::NotFound {
        store: "(none)".into(),
        what: "a location in a configured store".into(),
    }))
}

/// A byte range asked for by a `Range` (or legacy `Content-Range`) request header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub first: u64,
    /// Last byte, inclusive.
    pub last: u64,
}

/// Why a range cannot be served.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeError {
    /// More than one range (Glance: 400).
    Multiple,
    /// Not understood, or outside the image (416).
    Unsatisfiable,
}

/// Parses `Range: bytes=a-b | a- | -n` against an image of `size` bytes.
pub fn parse_range(value: &str, size: u64) -> Result<ByteRange, RangeError> {
    let spec = value
        .trim()
        .strip_prefix("bytes=")
        .ok_or(RangeError::Unsatisfiable)?;
    if spec.contains(',') {
        return Err(RangeError::Multiple);
    }
    let (first, last) = spec.split_once('-').ok_or(RangeError::Unsatisfiable)?;
    let number = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|_| RangeError::Unsatisfiable)
    };
    let range = match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, true) => return Err(RangeError::Unsatisfiable),
        (true, false) => {
            let suffix = number(last)?;
            if suffix == 0 || size == 0 {
                return Err(RangeError::Unsatisfiable);
            }
            ByteRange {
                first: size.saturating_sub(suffix),
                last: size - 1,
            }
        }
        (false, true) => ByteRange {
            first: number(first)?,
            last: size.saturating_sub(1),
        },
        (false, false) => {
            let (first, last) = (number(first)?, number(last)?);
            if last < first {
                return Err(RangeError::Unsatisfiable);
            }
            ByteRange {
                first,
                last: last.min(size.saturating_sub(1)),
            }
        }
    };
    if range.first >= size {
        return Err(RangeError::Unsatisfiable);
    }
    Ok(range)
}

/// Parses the legacy request header `Content-Range: bytes a-b/*` that Glance still honours.
pub fn parse_legacy_content_range(value: &str, size: u64) -> Result<ByteRange, RangeError> {
    let spec = value
        .trim()
        .strip_prefix("bytes")
        .ok_or(RangeError::Unsatisfiable)?
        .trim();
    let (range, _total) = spec.split_once('/').ok_or(RangeError::Unsatisfiable)?;
    let (first, last) = range.split_once('-').ok_or(RangeError::Unsatisfiable)?;
    let first: u64 = first
        .trim()
        .parse()
        .map_err(|_| RangeError::Unsatisfiable)?;
    let last: u64 = last.trim().parse().map_err(|_| RangeError::Unsatisfiable)?;
    if last < first || first >= size {
        return Err(RangeError::Unsatisfiable);
    }
    Ok(ByteRange {
        first,
        last: last.min(size - 1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_forms() {
        assert_eq!(
            parse_range("bytes=0-9", 100),
            Ok(ByteRange { first: 0, last: 9 })
        );
        assert_eq!(
            parse_range("bytes=90-", 100),
            Ok(ByteRange {
                first: 90,
                last: 99
            })
        );
        assert_eq!(
            parse_range("bytes=-10", 100),
            Ok(ByteRange {
                first: 90,
                last: 99
            })
        );
        assert_eq!(
            parse_range("bytes=-1000", 100),
            Ok(ByteRange { first: 0, last: 99 })
        );
        assert_eq!(
            parse_range("bytes=50-1000", 100),
            Ok(ByteRange {
                first: 50,
                last: 99
            })
        );
    }

    #[test]
    fn range_errors() {
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Err(RangeError::Multiple));
        assert_eq!(
            parse_range("bytes=100-", 100),
            Err(RangeError::Unsatisfiable)
        );
        assert_eq!(
            parse_range("bytes=5-1", 100),
            Err(RangeError::Unsatisfiable)
        );
        assert_eq!(
            parse_range("items=0-1", 100),
            Err(RangeError::Unsatisfiable)
        );
        assert_eq!(parse_range("bytes=-0", 100), Err(RangeError::Unsatisfiable));
        assert_eq!(
            parse_range("bytes=x-1", 100),
            Err(RangeError::Unsatisfiable)
        );
    }

    #[test]
    fn legacy_content_range() {
        assert_eq!(
            parse_legacy_content_range("bytes 2-5/*", 10),
            Ok(ByteRange { first: 2, last: 5 })
        );
        assert!(parse_legacy_content_range("bytes 20-25/*", 10).is_err());
    }
}
