//! Body types. Responses: nothing, one buffer, or an image file streamed from a store — and
//! how a body meters itself on its way out ([`Body::metered`]). Requests: hyper's body,
//! watched so that the connection knows whether it was read to the end ([`RequestBody`]).
//!
//! Streaming bodies are [`http_body::Body`]s polled by hyper on the connection's core; they
//! never hold more than a couple of frames of the image in memory (see `datapath::download`).

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use monoio::fs::File;

use crate::metrics::RequestMeter;

/// A byte range of an open file that a stream would send: what `datapath::splice` sends
/// without a copy instead.
pub struct SpliceSource {
    /// The open file.
    pub file: Rc<File>,
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// Kept alive until the bytes are sent (an image cache's reader lease, which keeps the
    /// entry from being evicted meanwhile).
    pub hold: Option<Rc<dyn std::any::Any>>,
}

/// A stream of image bytes for a response body.
pub trait ByteStream {
    /// The next piece, `None` at the end.
    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::io::Result<Bytes>>>;
    /// Bytes still to come.
    fn remaining(&self) -> u64;
    /// The open file and range this stream would read, if it can be sent with `splice`
    /// instead (only before it has started).
    fn splice_source(&self) -> Option<SpliceSource> {
        None
    }
}

/// A boxed stream is a stream (so that wrappers can take any).
impl ByteStream for Pin<Box<dyn ByteStream>> {
    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::io::Result<Bytes>>> {
        self.get_mut().as_mut().poll_next(cx)
    }

    fn remaining(&self) -> u64 {
        ByteStream::remaining(&**self)
    }

    fn splice_source(&self) -> Option<SpliceSource> {
        ByteStream::splice_source(&**self)
    }
}

/// A response body.
pub enum Body {
    /// No body.
    Empty,
    /// A body already in memory (JSON documents, errors).
    Full(Option<Bytes>),
    /// Image bytes streamed from a store.
    Stream(Pin<Box<dyn ByteStream>>),
}

impl Body {
    /// A body of `bytes`.
    pub fn full(bytes: impl Into<Bytes>) -> Body {
        Body::Full(Some(bytes.into()))
    }
}

impl Body {
    /// This body, counted by `meter` as it goes out: at once when in memory; piece by piece
    /// when streamed, the request being counted when the stream ends or is dropped.
    pub fn metered(self, mut meter: RequestMeter) -> Body {
        if !meter.is_counting() {
            return self;
        }
        match self {
            Body::Stream(inner) => {
                meter.streaming();
                Body::Stream(Box::pin(Metered { inner, meter }))
            }
            Body::Full(Some(bytes)) => {
                meter.sent(bytes.len() as u64);
                Body::Full(Some(bytes))
            }
            empty => empty,
        }
    }
}

/// A streamed body that counts what passes.
struct Metered {
    inner: Pin<Box<dyn ByteStream>>,
    meter: RequestMeter,
}

impl ByteStream for Metered {
    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::io::Result<Bytes>>> {
        let polled = self.inner.as_mut().poll_next(cx);
        if let Poll::Ready(Some(Ok(bytes))) = &polled {
            self.meter.streamed(bytes.len() as u64);
        }
        polled
    }

    fn remaining(&self) -> u64 {
        self.inner.remaining()
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            Body::Empty => Poll::Ready(None),
            Body::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream(stream) => stream
                .as_mut()
                .poll_next(cx)
                .map(|next| next.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Empty => true,
            Body::Full(bytes) => bytes.is_none(),
            Body::Stream(stream) => stream.remaining() == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Empty => SizeHint::with_exact(0),
            Body::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Body::Stream(stream) => SizeHint::with_exact(stream.remaining()),
        }
    }
}

/// Whether the current request on a connection still has body bytes nobody read: the server
/// reads it when the connection ends, to decide on a lingering close (`crate::linger`).
/// One per connection, shared with the request body it watches (single-threaded: a
/// connection never leaves its core).
#[derive(Clone, Default)]
pub struct UnreadBody(Rc<Cell<bool>>);

impl UnreadBody {
    /// Wraps the body of a new request; from now on the flag follows it.
    pub fn watch(&self, body: hyper::body::Incoming) -> RequestBody {
        self.0.set(!http_body::Body::is_end_stream(&body));
        RequestBody {
            inner: body,
            unread: self.clone(),
        }
    }

    /// True when the last request's body was not read to its end (the handler answered
    /// first, or the body broke off).
    pub fn get(&self) -> bool {
        self.0.get()
    }
}

/// A request body: hyper's, which clears its connection's [`UnreadBody`] once read to the end.
/// Everything else is hyper's: frames are the same `Bytes`, errors the same `hyper::Error`.
pub struct RequestBody {
    inner: hyper::body::Incoming,
    unread: UnreadBody,
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        // The end: `None`, or the last byte of a `Content-Length` body already handed over.
        if matches!(polled, Poll::Ready(None)) || this.inner.is_end_stream() {
            this.unread.0.set(false);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
