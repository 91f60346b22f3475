//! The writer thread: where blocking work that must not stall a core's event loop runs —
//! metadata commits (each one an fsync in redb), renames and directory fsyncs, file removal.
//!
//! Jobs run one at a time, in order, on one thread; redb serialises write transactions anyway,
//! and one thread keeps commit order equal to submission order. Cores submit a closure and
//! await its result through a oneshot channel, which wakes the submitting core's runtime.

use std::sync::mpsc;
use std::thread;

type Job = Box<dyn FnOnce() + Send>;

/// A handle to the writer thread; clone one per core.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

/// The writer thread has stopped (it panicked); nothing more can be committed.
#[derive(Debug, thiserror::Error)]
#[error("the metadata writer thread has stopped")]
pub struct WriterGone;

impl Writer {
    /// Starts the writer thread. It ends when every `Writer` handle is dropped.
    pub fn start() -> std::io::Result<Writer> {
        let (jobs, queue) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("glint-writer".into())
            .spawn(move || {
                for job in queue {
                    crate::metrics::commit(job);
                }
            })?;
        Ok(Writer { jobs })
    }

    /// Runs `f` on the writer thread and returns its result.
    pub async fn run<T, F>(&self, f: F) -> Result<T, WriterGone>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = futures_channel::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                // The receiver may be gone (the request was cancelled): the work is done anyway.
                let _ = tx.send(f());
            }))
            .map_err(|_| WriterGone)?;
        rx.await.map_err(|_| WriterGone)
    }

    /// Runs `f` on the writer thread without waiting for it (clean-up from `Drop`).
    pub fn spawn(&self, f: impl FnOnce() + Send + 'static) {
        if self.jobs.send(Box::new(f)).is_err() {
            tracing::error!("writer thread gone; a clean-up job was dropped");
        }
    }
}
