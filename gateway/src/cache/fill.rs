//! One fill: an image copied from its store into the cache, and the readers that stream it
//! while it is being written.
//!
//! The fill writes `<id>.fill`, hashing every byte; its [`Progress`] says how many bytes are
//! on disk and, at the end, whether the fill succeeded. A [`Joiner`] reads the same file up to
//! the bytes written so far and parks (its waker in `Progress`) when it has caught up; the
//! fill wakes every parked joiner after each write, whichever core they run on. So N cold GETs
//! of one image cost the store one read, and none of them waits for the whole image before its
//! first byte.
//!
//! Only a fill whose size and digest match the image's is published (renamed to `<id>`); a
//! failed one (store error, short or wrong data, disk full) is removed and every joiner gets
//! an error instead of its next bytes — never a short or wrong body.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use monoio::fs::File;

use super::{Cache, Lease};
use crate::body::ByteStream;
use crate::store::CHUNK_BYTES;
use meta::ImageId;

/// How far a fill has come.
pub struct Progress {
    state: Mutex<State>,
}

struct State {
    written: u64,
    /// `Some` once the fill ended: `Ok` published, `Err` the reason it failed.
    outcome: Option<Result<(), String>>,
    wakers: Vec<Waker>,
}

impl Progress {
    pub(super) fn new() -> Arc<Progress> {
        Arc::new(Progress {
            state: Mutex::new(State {
                written: 0,
                outcome: None,
                wakers: Vec::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.lock().written
    }

    fn advance(&self, written: u64) {
        let wakers = {
            let mut state = self.lock();
            state.written = written;
            std::mem::take(&mut state.wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    fn end(&self, outcome: Result<(), String>) {
        let wakers = {
            let mut state = self.lock();
            state.outcome = Some(outcome);
            std::mem::take(&mut state.wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
    }
}

/// What a joiner may read now.
enum Ready {
    /// Up to this offset.
    Upto(u64),
    /// Nothing yet: parked.
    Wait,
    /// The fill failed.
    Failed(String),
}

impl Progress {
    fn poll_ready(&self, offset: u64, cx: &mut Context<'_>) -> Ready {
        let mut state = self.lock();
        match &state.outcome {
            Some(Err(why)) => return Ready::Failed(why.clone()),
            Some(Ok(())) => return Ready::Upto(state.written),
            None => {}
        }
        if state.written > offset {
            return Ready::Upto(state.written);
        }
        state.wakers.push(cx.waker().clone());
        Ready::Wait
    }
}

/// The duty to fill one image: made by [`Cache::lookup`] for the request that missed, run on
/// that request's core by [`FillJob::run`] (spawned, so that it finishes even if that client
/// goes away).
pub struct FillJob {
    pub(super) cache: Arc<Cache>,
    pub(super) id: ImageId,
    pub(super) size: u64,
    pub(super) algo: String,
    pub(super) digest: String,
    pub(super) progress: Arc<Progress>,
    pub(super) part: PathBuf,
    pub(super) prefetch: bool,
}

/// The source a fill copies: the image's bytes from its store.
pub type Source = Pin<Box<dyn ByteStream>>;

impl FillJob {
    /// The image being filled.
    pub fn id(&self) -> ImageId {
        self.id
    }

    /// Gives up before copying anything (the store could not be opened).
    pub fn fail(self, why: impl std::fmt::Display) {
        tracing::warn!(image_id = %self.id, error = %why, "cache fill failed");
        self.cache.fill_failed(self.id, &self.part, &self.progress);
        crate::metrics::cache_fill(false);
        self.progress.end(Err(why.to_string()));
        if self.prefetch {
            self.cache.prefetch_done();
        }
    }

    /// Copies `source` into the cache, verifies it, and publishes it or gives up.
    pub async fn run(self, source: Source) {
        let outcome = self.copy(source).await;
        let cache = Arc::clone(&self.cache);
        match outcome {
            Ok(()) => {
                cache.published(self.id, &self.algo, &self.digest, &self.progress);
                crate::metrics::cache_fill(true);
                tracing::info!(image_id = %self.id, size_bytes = self.size, "image cached");
                self.progress.end(Ok(()));
            }
            Err(why) => {
                tracing::warn!(image_id = %self.id, error = %why, "cache fill failed");
                cache.fill_failed(self.id, &self.part, &self.progress);
                crate::metrics::cache_fill(false);
                self.progress.end(Err(why));
            }
        }
        if self.prefetch {
            cache.prefetch_done();
        }
    }

    async fn copy(&self, mut source: Source) -> Result<(), String> {
        let file = monoio::fs::OpenOptions::new()
            .write(true)
            .open(&self.part)
            .await
            .map_err(|e| format!("opening {}: {e}", self.part.display()))?;
        let mut hasher = super::Hasher::new(&self.algo)?;
        let mut written: u64 = 0;
        loop {
            let next = std::future::poll_fn(|cx| source.as_mut().poll_next(cx)).await;
            let chunk = match next {
                None => break,
                Some(Ok(chunk)) => chunk,
                Some(Err(e)) => return Err(format!("reading the store: {e}")),
            };
            if written + chunk.len() as u64 > self.size {
                return Err(format!(
                    "the store sent more than the image's {} bytes",
                    self.size
                ));
            }
            hasher.update(&chunk)?;
            let len = chunk.len() as u64;
            let (result, _) = file.write_all_at(chunk, written).await;
            result.map_err(|e| {
                if e.raw_os_error() == Some(libc::ENOSPC) {
                    "the cache's disk is full".to_owned()
                } else {
                    format!("writing the cache: {e}")
                }
            })?;
            written += len;
            self.progress.advance(written);
        }
        if written != self.size {
            return Err(format!(
                "the store sent {written} bytes, the image has {}",
                self.size
            ));
        }
        let digest = hasher.finish()?;
        if !digest.eq_ignore_ascii_case(&self.digest) {
            return Err(format!(
                "the data's {} differs from the image's: not cached",
                self.algo
            ));
        }
        let _ = file.close().await;
        Ok(())
    }
}

/// A read of the cache file in flight: its result and buffer.
type Read = Pin<Box<dyn Future<Output = (io::Result<()>, Vec<u8>)>>>;

/// A stream of `[start, end)` of an image being filled: reads what is written, waits for the
/// rest, fails with the fill.
pub struct Joiner {
    progress: Arc<Progress>,
    part: PathBuf,
    published: PathBuf,
    file: Option<Rc<File>>,
    opening: Option<Pin<Box<dyn Future<Output = io::Result<File>>>>>,
    offset: u64,
    end: u64,
    reading: Option<Read>,
    _lease: Lease,
}

impl Joiner {
    pub(super) fn new(
        progress: Arc<Progress>,
        part: PathBuf,
        published: PathBuf,
        start: u64,
        end: u64,
        lease: Lease,
    ) -> Joiner {
        Joiner {
            progress,
            part,
            published,
            file: None,
            opening: None,
            offset: start,
            end,
            reading: None,
            _lease: lease,
        }
    }

    fn fail(&mut self, why: impl Into<String>) -> Poll<Option<io::Result<Bytes>>> {
        self.offset = self.end;
        Poll::Ready(Some(Err(io::Error::other(why.into()))))
    }
}

/// Opens the fill's file, or the published one if the fill was renamed meanwhile.
async fn open_either(part: PathBuf, published: PathBuf) -> io::Result<File> {
    match File::open(&part).await {
        Ok(file) => Ok(file),
        Err(e) if e.kind() == io::ErrorKind::NotFound => File::open(&published).await,
        Err(e) => Err(e),
    }
}

impl ByteStream for Joiner {
    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Bytes>>> {
        let this = &mut *self;
        loop {
            if let Some(read) = this.reading.as_mut() {
                let (result, buf) = std::task::ready!(read.as_mut().poll(cx));
                this.reading = None;
                if let Err(e) = result {
                    return this.fail(format!("reading the cache: {e}"));
                }
                this.offset += buf.len() as u64;
                return Poll::Ready(Some(Ok(Bytes::from(buf))));
            }
            if this.offset >= this.end {
                return Poll::Ready(None);
            }
            let upto = match this.progress.poll_ready(this.offset, cx) {
                Ready::Failed(why) => {
                    return this.fail(format!("the image's cache fill failed: {why}"))
                }
                Ready::Wait => return Poll::Pending,
                Ready::Upto(upto) => upto,
            };
            if upto <= this.offset {
                // The fill ended without reaching us: it wrote less than the image (a failed
                // fill reports itself above), so this cannot be served.
                return this.fail("the image's cache fill ended early");
            }
            let Some(file) = this.file.clone() else {
                let opening = this.opening.get_or_insert_with(|| {
                    Box::pin(open_either(this.part.clone(), this.published.clone()))
                });
                let opened = std::task::ready!(opening.as_mut().poll(cx));
                this.opening = None;
                match opened {
                    Ok(file) => this.file = Some(Rc::new(file)),
                    Err(e) => return this.fail(format!("opening the cache: {e}")),
                }
                continue;
            };
            let len = (upto.min(this.end) - this.offset).min(CHUNK_BYTES) as usize;
            let offset = this.offset;
            this.reading = Some(Box::pin(async move {
                let (result, buf) = file.read_exact_at(Vec::with_capacity(len), offset).await;
                (result, buf)
            }));
        }
    }

    fn remaining(&self) -> u64 {
        self.end - self.offset
    }
}
