//! Download: a byte range of an image file streamed as response frames.
//!
//! Reads go into fresh buffers of at most [`CHUNK_BYTES`] that are handed to hyper as-is
//! (`Vec` → `Bytes` moves the allocation; hyper writes it with `writev`), with one read in
//! flight ahead of the frame being sent. So a download holds at most two chunks in memory,
//! whatever the image size.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use monoio::fs::File;

use crate::body::ByteStream;

/// Largest frame read from disk at once.
pub const CHUNK_BYTES: u64 = 256 * 1024;

type Read = Pin<Box<dyn Future<Output = (io::Result<usize>, Vec<u8>)>>>;

/// `[start, end)` of a file as a stream of frames.
pub struct FileStream {
    file: Rc<File>,
    /// Where the next read starts.
    read_offset: u64,
    end: u64,
    /// Bytes not yet handed to hyper.
    remaining: u64,
    in_flight: Option<Read>,
}

impl FileStream {
    /// Streams bytes `start..end` of `file`.
    pub fn new(file: File, start: u64, end: u64) -> FileStream {
        FileStream {
            file: Rc::new(file),
            read_offset: start,
            end,
            remaining: end.saturating_sub(start),
            in_flight: None,
        }
    }

    fn start_read(&mut self) {
        if self.in_flight.is_some() || self.read_offset >= self.end {
            return;
        }
        let len = (self.end - self.read_offset).min(CHUNK_BYTES) as usize;
        let file = Rc::clone(&self.file);
        let offset = self.read_offset;
        self.read_offset += len as u64;
        self.in_flight = Some(Box::pin(async move {
            let buf = Vec::with_capacity(len);
            // read_exact_at: a short read in the middle of the file is retried, EOF is an error.
            let (result, buf) = file.read_exact_at(buf, offset).await;
            (result.map(|()| len), buf)
        }));
    }
}

impl ByteStream for FileStream {
    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Bytes>>> {
        let this = &mut *self;
        this.start_read();
        let Some(read) = this.in_flight.as_mut() else {
            return Poll::Ready(None);
        };
        let (result, buf) = std::task::ready!(read.as_mut().poll(cx));
        this.in_flight = None;
        match result {
            Ok(n) => {
                this.remaining -= n as u64;
                // Read ahead: the next read runs while hyper writes this frame. Polling it once
                // submits it; its completion wakes this task.
                this.start_read();
                if let Some(next) = this.in_flight.as_mut() {
                    if let Poll::Ready(done) = next.as_mut().poll(cx) {
                        this.in_flight = Some(Box::pin(std::future::ready(done)));
                    }
                }
                Poll::Ready(Some(Ok(Bytes::from(buf))))
            }
            Err(e) => {
                this.remaining = 0;
                this.read_offset = this.end;
                Poll::Ready(Some(Err(e)))
            }
        }
    }

    fn remaining(&self) -> u64 {
        self.remaining
    }

    fn splice_source(&self) -> Option<super::splice::SpliceSource> {
        let fresh = self.in_flight.is_none() && self.read_offset + self.remaining == self.end;
        fresh.then(|| super::splice::SpliceSource {
            file: Rc::clone(&self.file),
            start: self.read_offset,
            end: self.end,
            hold: None,
        })
    }
}

/// A store's stream that counts what it reads into `glint_store_read_bytes_total{store}`
/// (whether it goes to a client or into the image cache). Bytes sent with `splice` are counted
/// when the stream hands its file over.
pub struct Counted<S> {
    inner: S,
    store: &'static str,
}

impl<S: ByteStream> Counted<S> {
    /// Counts `inner`'s bytes as read from `store`.
    pub fn new(inner: S, store: &'static str) -> Counted<S> {
        Counted { inner, store }
    }
}

impl<S: ByteStream + Unpin> ByteStream for Counted<S> {
    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Bytes>>> {
        let store = self.store;
        let next = Pin::new(&mut self.inner).poll_next(cx);
        if let Poll::Ready(Some(Ok(bytes))) = &next {
            crate::metrics::store_read(store, bytes.len() as u64);
        }
        next
    }

    fn remaining(&self) -> u64 {
        self.inner.remaining()
    }

    fn splice_source(&self) -> Option<super::splice::SpliceSource> {
        let source = self.inner.splice_source()?;
        crate::metrics::store_read(self.store, source.end - source.start);
        Some(source)
    }
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
