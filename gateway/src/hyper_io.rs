//! Glue between monoio's poll-mode TCP stream and hyper's I/O traits.
//!
//! monoio's native streams take ownership of buffers (the io_uring model); hyper wants
//! readiness-style `poll_read`/`poll_write`. monoio's "poll-io" mode gives a stream with tokio's
//! poll traits, backed by the same driver (io_uring poll requests or epoll). This adapter
//! forwards hyper's calls to it without buffering of its own: hyper reads straight into its
//! read buffer, and writes its queued frames with `writev`, so image bytes are not copied here.
//! With a [`Splicer`], marker frames of zero-copy downloads are sent from their file with
//! `splice` instead (see `datapath::splice`).

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};

use monoio::io::poll_io::{AsyncRead, AsyncWrite, ReadBuf};
use monoio::net::tcp::stream_poll::TcpStreamPoll;

use crate::datapath::splice::{is_mark, Splicer};

/// A monoio TCP stream as hyper I/O.
pub struct HyperIo(pub TcpStreamPoll, pub Option<Splicer>);

impl hyper::rt::Read for HyperIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // SAFETY: `ReadBuf` only ever writes initialised bytes into the uninitialised tail it
        // is given and reports how many it filled; we advance the cursor by exactly that many.
        let filled = unsafe {
            let tail: &mut [MaybeUninit<u8>] = buf.as_mut();
            let mut read_buf = ReadBuf::uninit(tail);
            match Pin::new(&mut self.get_mut().0).poll_read(cx, &mut read_buf) {
                Poll::Ready(Ok(())) => read_buf.filled().len(),
                other => return other,
            }
        };
        // SAFETY: `filled` bytes at the start of the tail were initialised by the read above.
        unsafe { buf.advance(filled) };
        Poll::Ready(Ok(()))
    }
}

impl hyper::rt::Write for HyperIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let (Some(splicer), true) = (this.1.as_mut(), is_mark(buf)) {
            return splicer.poll_send(Pin::new(&mut this.0), cx, buf.len());
        }
        Pin::new(&mut this.0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        // Must be true: otherwise hyper flattens body frames into its own buffer (a copy).
        true
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let Some(splicer) = this.1.as_mut() else {
            return Pin::new(&mut this.0).poll_write_vectored(cx, bufs);
        };
        // Ordinary slices up to the first marker go out with writev; a marker at the head is
        // spliced from its file. Either way bytes leave in hyper's order.
        let bufs = match bufs.iter().position(|b| !b.is_empty()) {
            Some(first) => &bufs[first..],
            None => return Poll::Ready(Ok(0)),
        };
        if is_mark(&bufs[0]) {
            return splicer.poll_send(Pin::new(&mut this.0), cx, bufs[0].len());
        }
        let plain = bufs.iter().position(|b| is_mark(b)).unwrap_or(bufs.len());
        Pin::new(&mut this.0).poll_write_vectored(cx, &bufs[..plain])
    }
}
