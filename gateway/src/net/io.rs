//! hyper's I/O traits for the client's streams: monoio's poll-mode TCP stream, and rustls over
//! it (both have tokio's I/O traits).
//!
//! The server's adapter (`hyper_io`) does the same for accepted connections, plus splicing;
//! the client keeps its own so that `net` sits below the data path in the module order. It
//! forwards hyper's calls with no buffering of its own, and keeps vectored writes (so hyper
//! sends an S3 part's frames with `writev` instead of copying them together).

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};

use monoio::io::poll_io::{AsyncRead, AsyncWrite, ReadBuf};

/// A stream with tokio's I/O traits, as hyper I/O.
pub(crate) struct PollIo<S>(pub S);

impl<S: AsyncRead + Unpin> hyper::rt::Read for PollIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // SAFETY: `ReadBuf` only writes initialised bytes into the uninitialised tail it is
        // given and reports how many it filled; the cursor advances by exactly that many.
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

impl<S: AsyncWrite + Unpin> hyper::rt::Write for PollIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }
}
