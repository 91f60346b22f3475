//! Zero-copy downloads: image bytes go file → pipe → socket with `splice(2)`, never through
//! user space, while hyper still writes the status line and headers and keeps the connection's
//! HTTP/1.1 state (keep-alive, Content-Length accounting).
//!
//! How the two meet: a [`SpliceStream`] body hands hyper *marker frames* — `Bytes` pointing
//! into one static, never-read region (`MARK`) — and, for each, queues on the connection's
//! [`SpliceQueue`] which file bytes the frame stands for. hyper queues frames as they are (its
//! vectored write strategy never copies them) and passes them to the connection's I/O in
//! order; [`Splicer`] (inside `HyperIo`) recognises a marker slice by its address and sends
//! the queued file bytes in its place, reporting the same byte count, so hyper's accounting
//! matches the bytes on the wire. A marker byte is never written: a slice that does not match
//! the queue exactly is an error that closes the connection.
//!
//! When the socket is full, a splice into it returns `EAGAIN`, and there is no way to ask the
//! runtime for write readiness without writing: one byte is taken out of the pipe and written
//! through the runtime's ordinary `poll_write`, which registers the wake-up (and sends that
//! byte when the socket drains).
//!
//! Reading the file with `splice` blocks this core if the pages are not cached (as nginx's
//! `sendfile` does); images being downloaded are usually in the page cache (boot storms read
//! one image many times). Range requests with one range use the same path; everything else
//! (and `zero_copy_download = false`) keeps the read + write path of [`super::download`].

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use monoio::fs::File;

pub use crate::body::SpliceSource;
use crate::body::{Body, ByteStream};

/// Size of the marker region, and so of the largest marker frame.
const MARK_LEN: usize = 1 << 20;
/// The marker region: its bytes are never read or written (zero-initialised, in .bss).
static MARK: [u8; MARK_LEN] = [0; MARK_LEN];
/// Pipe capacity asked for (the default is 64 KiB); also the most moved per splice.
const PIPE_BYTES: usize = 1 << 20;

/// Whether `slice` lies within the marker region.
pub fn is_mark(slice: &[u8]) -> bool {
    let start = MARK.as_ptr() as usize;
    let p = slice.as_ptr() as usize;
    !slice.is_empty() && p >= start && p + slice.len() <= start + MARK_LEN
}

/// File bytes standing behind marker frames, in the order hyper will write them.
struct Pending {
    file: Rc<File>,
    /// Next file offset to move into the pipe.
    offset: u64,
    /// Bytes not yet moved into the pipe.
    to_fill: u64,
    /// Bytes not yet on the socket (the frame's remaining length in hyper's eyes).
    unsent: u64,
}

/// One connection's queue of marker frames (shared by its bodies and its I/O).
#[derive(Clone, Default)]
pub struct SpliceQueue(Rc<RefCell<VecDeque<Pending>>>);

/// A response body of marker frames for `source`.
pub struct SpliceStream {
    source: SpliceSource,
    queue: SpliceQueue,
}

impl ByteStream for SpliceStream {
    fn poll_next(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Bytes>>> {
        let this = &mut *self;
        let left = this.source.end - this.source.start;
        if left == 0 {
            return Poll::Ready(None);
        }
        let len = left.min(MARK_LEN as u64);
        // Queued when hyper takes the frame: a body hyper never polls (HEAD) queues nothing.
        this.queue.0.borrow_mut().push_back(Pending {
            file: Rc::clone(&this.source.file),
            offset: this.source.start,
            to_fill: len,
            unsent: len,
        });
        this.source.start += len;
        crate::metrics::spliced(len);
        Poll::Ready(Some(Ok(Bytes::from_static(&MARK[..len as usize]))))
    }

    fn remaining(&self) -> u64 {
        self.source.end - self.source.start
    }
}

/// Swap a file-streaming response body for its zero-copy form, when it has one.
pub fn convert(response: &mut http::Response<Body>, queue: &SpliceQueue) {
    let source = match response.body() {
        Body::Stream(stream) => stream.splice_source(),
        _ => None,
    };
    if let Some(source) = source {
        *response.body_mut() = Body::Stream(Box::pin(SpliceStream {
            source,
            queue: queue.clone(),
        }));
    }
}

/// The connection side: sends queued file bytes in place of marker slices.
pub struct Splicer {
    queue: SpliceQueue,
    socket: RawFd,
    /// `[read end, write end]`, made at the first marker.
    pipe: Option<[OwnedFd; 2]>,
    /// Bytes of the front entry sitting in the pipe.
    in_pipe: u64,
    /// A byte taken out of the pipe to wait for write readiness (see the module docs).
    carry: Option<u8>,
}

impl Splicer {
    /// For the connection whose socket is `socket` (a non-blocking TCP socket), or `None` when
    /// the socket is blocking (splicing into it could stall the core).
    pub fn new(socket: RawFd, queue: SpliceQueue) -> Option<Splicer> {
        // SAFETY: F_GETFL on a descriptor we borrow; no memory is passed.
        let flags = unsafe { libc::fcntl(socket, libc::F_GETFL) };
        (flags >= 0 && flags & libc::O_NONBLOCK != 0).then_some(Splicer {
            queue,
            socket,
            pipe: None,
            in_pipe: 0,
            carry: None,
        })
    }

    fn pipe(&mut self) -> io::Result<(RawFd, RawFd)> {
        if self.pipe.is_none() {
            let mut fds = [0 as RawFd; 2];
            // SAFETY: pipe2 fills the two-element array on success.
            if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: both descriptors were just created and are owned by nobody else.
            let fds = unsafe { [OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])] };
            // A bigger pipe means fewer splices; the default size works too.
            // SAFETY: F_SETPIPE_SZ on our own pipe.
            let _ =
                unsafe { libc::fcntl(fds[1].as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_BYTES as i32) };
            self.pipe = Some(fds);
        }
        let [r, w] = self
            .pipe
            .as_ref()
            .map(|p| [p[0].as_raw_fd(), p[1].as_raw_fd()])
            .unwrap_or([-1, -1]);
        Ok((r, w))
    }

    /// `n` bytes of the front entry reached the socket.
    fn sent(&mut self, n: u64) {
        let mut q = self.queue.0.borrow_mut();
        if let Some(front) = q.front_mut() {
            front.unsent -= n;
            if front.unsent == 0 {
                q.pop_front();
            }
        }
    }

    /// Write (part of) the marker slice of `len` bytes at the head of hyper's buffers.
    pub fn poll_send<W>(
        &mut self,
        io: Pin<&mut W>,
        cx: &mut Context<'_>,
        len: usize,
    ) -> Poll<io::Result<usize>>
    where
        W: monoio::io::poll_io::AsyncWrite,
    {
        let mut io = io;
        loop {
            if let Some(byte) = self.carry {
                return match io.as_mut().poll_write(cx, &[byte]) {
                    Poll::Ready(Ok(0)) => Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(_)) => {
                        self.carry = None;
                        self.sent(1);
                        Poll::Ready(Ok(1))
                    }
                    other => other,
                };
            }
            let (pipe_r, pipe_w) = self.pipe()?;
            let (file_fd, offset, to_fill) = {
                let q = self.queue.0.borrow();
                let Some(front) = q.front() else {
                    return Poll::Ready(Err(out_of_step("a marker frame with nothing queued")));
                };
                if front.unsent != len as u64 {
                    return Poll::Ready(Err(out_of_step("a marker frame of the wrong length")));
                }
                (front.file.as_raw_fd(), front.offset, front.to_fill)
            };
            if self.in_pipe == 0 {
                let want = to_fill.min(PIPE_BYTES as u64) as usize;
                let mut off = offset as libc::loff_t;
                // SAFETY: splice between descriptors we hold; `off` outlives the call.
                let n = unsafe {
                    libc::splice(
                        file_fd,
                        &mut off,
                        pipe_w,
                        std::ptr::null_mut(),
                        want,
                        libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
                    )
                };
                if n < 0 {
                    let e = io::Error::last_os_error();
                    if e.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    return Poll::Ready(Err(e));
                }
                if n == 0 {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "image file shorter than its size",
                    )));
                }
                let n = n as u64;
                if let Some(front) = self.queue.0.borrow_mut().front_mut() {
                    front.offset += n;
                    front.to_fill -= n;
                }
                self.in_pipe = n;
            }
            // SAFETY: splice between descriptors we hold, no offsets.
            let m = unsafe {
                libc::splice(
                    pipe_r,
                    std::ptr::null_mut(),
                    self.socket,
                    std::ptr::null_mut(),
                    self.in_pipe as usize,
                    libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
                )
            };
            if m > 0 {
                let m = m as u64;
                self.in_pipe -= m;
                self.sent(m);
                return Poll::Ready(Ok(m as usize));
            }
            let e = if m == 0 {
                io::Error::from(io::ErrorKind::WriteZero)
            } else {
                io::Error::last_os_error()
            };
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => {
                    let mut byte = 0u8;
                    // SAFETY: reads one byte into a local.
                    let r = unsafe { libc::read(pipe_r, (&mut byte as *mut u8).cast(), 1) };
                    if r != 1 {
                        return Poll::Ready(Err(io::Error::last_os_error()));
                    }
                    self.in_pipe -= 1;
                    self.carry = Some(byte);
                }
                _ => return Poll::Ready(Err(e)),
            }
        }
    }
}

fn out_of_step(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("zero-copy download out of step: {what}"),
    )
}
