//! The janitor: one background thread that removes what failed or abandoned uploads left in a
//! store, retrying until it succeeds.
//!
//! A store writer dropped mid-upload (the client vanished, hyper dropped the request) cannot
//! await its clean-up, and a clean-up that fails because the service is down (an S3 endpoint
//! stopped mid-upload, so AbortMultipartUpload fails too) must be tried again later rather than
//! forgotten, or the parts stay in the bucket. Both hand a [`Job`] to this thread. It runs
//! jobs on its own monoio runtime (so S3 jobs use their own connections, never a core's) and
//! retries a failed job with backoff (1 s doubling to 1 min) for as long as the process lives;
//! what is still pending at exit is found again by the store's start-up recovery.
//!
//! Blocking file removal (unlinking a large file can take a while) also runs here, off the
//! cores.

use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

use futures_channel::oneshot;

use super::{LocalBoxFuture, StoreError};

/// A clean-up: called (again, after a failure) on the janitor's runtime.
pub trait Job: Send + 'static {
    /// What the job does, for logs (no secrets).
    fn describe(&self) -> String;
    /// Runs the clean-up once.
    fn run(&self) -> LocalBoxFuture<'_, Result<(), StoreError>>;
}

/// First retry delay.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Longest retry delay.
const MAX_RETRY: Duration = Duration::from_secs(60);

/// A job and who waits for its first attempt.
struct Queued {
    job: Box<dyn Job>,
    first_attempt: Option<oneshot::Sender<Result<(), StoreError>>>,
}

fn sender() -> &'static Option<mpsc::Sender<Queued>> {
    static SENDER: OnceLock<Option<mpsc::Sender<Queued>>> = OnceLock::new();
    SENDER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Queued>();
        let started = std::thread::Builder::new()
            .name("glint-janitor".into())
            .spawn(move || run(rx));
        match started {
            Ok(_) => Some(tx),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the store janitor thread");
                None
            }
        }
    })
}

fn enqueue(queued: Queued) {
    match sender() {
        Some(tx) => {
            if let Err(mpsc::SendError(queued)) = tx.send(queued) {
                tracing::error!(job = %queued.job.describe(), "store janitor gone; clean-up dropped");
            }
        }
        None => tracing::error!(job = %queued.job.describe(), "no store janitor; clean-up dropped"),
    }
}

/// Hands `job` to the janitor thread (started on first use) and returns at once.
pub fn submit(job: Box<dyn Job>) {
    enqueue(Queued {
        job,
        first_attempt: None,
    });
}

/// Hands `job` to the janitor thread and waits for its first attempt: its result is the
/// first attempt's (a failed job is still retried in the background).
pub async fn run_once(job: Box<dyn Job>) -> Result<(), StoreError> {
    let (tx, rx) = oneshot::channel();
    let store_of = job.describe();
    enqueue(Queued {
        job,
        first_attempt: Some(tx),
    });
    rx.await.unwrap_or_else(|_| {
        Err(StoreError::Io {
            store: store_of,
            source: std::io::Error::other("the store janitor stopped"),
        })
    })
}

fn run(rx: mpsc::Receiver<Queued>) {
    let body = async move {
        let (ready_tx, mut ready_rx) = futures_channel::mpsc::unbounded::<Queued>();
        // Bridge the std channel (filled from any thread) into the runtime.
        std::thread::Builder::new()
            .name("glint-janitor-in".into())
            .spawn(move || {
                for job in rx {
                    if ready_tx.unbounded_send(job).is_err() {
                        break;
                    }
                }
            })
            .expect("spawning the janitor's intake thread");
        while let Some(queued) = next_job(&mut ready_rx).await {
            monoio::spawn(attempt(queued));
        }
    };
    let built = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build();
    match built {
        Ok(mut runtime) => runtime.block_on(body),
        Err(e) => tracing::error!(error = %e, "store janitor: cannot build its runtime"),
    }
}

async fn next_job<T>(rx: &mut futures_channel::mpsc::UnboundedReceiver<T>) -> Option<T> {
    std::future::poll_fn(|cx| futures_core::Stream::poll_next(std::pin::Pin::new(&mut *rx), cx))
        .await
}

async fn attempt(queued: Queued) {
    let Queued {
        job,
        mut first_attempt,
    } = queued;
    let mut delay = FIRST_RETRY;
    let mut tries = 0u32;
    loop {
        tries += 1;
        let result = job.run().await;
        if let Some(waiting) = first_attempt.take() {
            let copy = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(StoreError::Io {
                    store: e.store().to_owned(),
                    source: std::io::Error::other(e.to_string()),
                }),
            };
            let _ = waiting.send(copy);
        }
        match result {
            Ok(()) => {
                if tries > 1 {
                    tracing::info!(job = %job.describe(), tries, "store clean-up done");
                } else {
                    tracing::debug!(job = %job.describe(), "store clean-up done");
                }
                return;
            }
            Err(e) => {
                // Logged at the first failure and then every few tries, not every second.
                if tries == 1 || tries.is_power_of_two() {
                    tracing::warn!(
                        job = %job.describe(), error = %e, tries,
                        retry_in_s = delay.as_secs(),
                        "store clean-up failed; will retry"
                    );
                }
                monoio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RETRY);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    struct Flaky {
        calls: Arc<AtomicU32>,
        done: mpsc::Sender<()>,
    }

    impl Job for Flaky {
        fn describe(&self) -> String {
            "flaky test job".into()
        }

        fn run(&self) -> LocalBoxFuture<'_, Result<(), StoreError>> {
            Box::pin(async move {
                if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Err(StoreError::Unavailable {
                        store: "t".into(),
                        message: "down".into(),
                    });
                }
                let _ = self.done.send(());
                Ok(())
            })
        }
    }

    #[test]
    fn a_failed_job_is_retried_until_it_succeeds() {
        let calls = Arc::new(AtomicU32::new(0));
        let (done, finished) = mpsc::channel();
        submit(Box::new(Flaky {
            calls: Arc::clone(&calls),
            done,
        }));
        finished
            .recv_timeout(Duration::from_secs(30))
            .expect("job retried and finished");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn run_once_returns_the_first_attempt() {
        let calls = Arc::new(AtomicU32::new(0));
        let (done, finished) = mpsc::channel();
        let first = crate::test_util::block_on(run_once(Box::new(Flaky {
            calls: Arc::clone(&calls),
            done,
        })));
        assert!(first.is_err(), "the first attempt fails");
        finished
            .recv_timeout(Duration::from_secs(30))
            .expect("retried in the background");
    }
}
