//! A byte range of a local file as a store stream: what the file store's reads return.
//!
//! Reads go into fresh buffers of at most [`CHUNK_BYTES`] that are handed on as-is
//! (`Vec` → `Bytes` moves the allocation; hyper writes it with `writev`), with one read in
//! flight ahead of the frame being sent. So a download holds at most two chunks in memory,
//! whatever the image size. Before the first read the stream also offers its file and range
//! ([`DataStream::file_range`]), for the zero-copy download path.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use monoio::fs::File;

use super::{DataStream, FileRange};

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

impl DataStream for FileStream {
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

    fn file_range(&self) -> Option<FileRange> {
        let fresh = self.in_flight.is_none() && self.read_offset + self.remaining == self.end;
        fresh.then(|| FileRange {
            file: Rc::clone(&self.file),
            start: self.read_offset,
            end: self.end,
        })
    }
}
