//! A timer for hyper's connection timeouts, shared by every core.
//!
//! hyper needs a `Timer` whose sleeps are `Send + Sync` to enforce `header_read_timeout`, which
//! closes connections that are slow to send a request's headers (slowloris) or sit idle between
//! keep-alive requests. monoio's own sleeps belong to one thread, so this timer keeps deadlines
//! in one ordered map served by a small thread that wakes each sleep when it is due. A sleep that
//! is dropped early (the usual case: the headers arrived) removes its deadline, so the map only
//! ever holds the connections currently waiting.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Instant;

/// The shared timer; clone it freely.
#[derive(Clone)]
pub struct ThreadTimer {
    shared: Arc<Shared>,
}

struct Shared {
    deadlines: Mutex<Deadlines>,
    changed: Condvar,
}

#[derive(Default)]
struct Deadlines {
    /// `(deadline, id)` → the sleep waiting for it.
    due: BTreeMap<(Instant, u64), Weak<SleepState>>,
    next_id: u64,
    /// When the timer thread will wake by itself; `None` while it waits for a notification.
    /// A new deadline at or after this needs no notification, which spares the thread a
    /// wake-up per request: connections register a 900 s deadline for every request and drop
    /// it as soon as the headers arrive.
    wakes_at: Option<Instant>,
}

#[derive(Default)]
struct SleepState {
    fired: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl SleepState {
    fn fire(&self) {
        self.fired.store(true, Ordering::Release);
        let waker = self
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl ThreadTimer {
    /// Starts the timer thread. It lives as long as the process.
    pub fn start() -> std::io::Result<ThreadTimer> {
        let shared = Arc::new(Shared {
            deadlines: Mutex::new(Deadlines::default()),
            changed: Condvar::new(),
        });
        let worker = Arc::clone(&shared);
        thread::Builder::new()
            .name("glint-timer".into())
            .spawn(move || run(&worker))?;
        Ok(ThreadTimer { shared })
    }
}

fn run(shared: &Shared) {
    let mut deadlines = shared
        .deadlines
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    loop {
        let now = Instant::now();
        let mut due = Vec::new();
        while let Some(entry) = deadlines.due.first_entry() {
            if entry.key().0 > now {
                break;
            }
            due.push(entry.remove());
        }
        if !due.is_empty() {
            // Wake outside the lock: a woken task may register a new deadline at once.
            drop(deadlines);
            for sleep in due.iter().filter_map(Weak::upgrade) {
                sleep.fire();
            }
            deadlines = shared
                .deadlines
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            continue;
        }
        let next = deadlines.due.keys().next().map(|(deadline, _)| *deadline);
        // Keep an earlier wake-up already planned: waking early is harmless (the loop looks
        // again), sleeping past a deadline is not.
        let wake = match (deadlines.wakes_at, next) {
            (Some(planned), Some(next)) if planned > now => Some(planned.min(next)),
            (_, next) => next,
        };
        deadlines.wakes_at = wake;
        deadlines = match wake {
            Some(next) => {
                let wait = next.saturating_duration_since(now);
                shared
                    .changed
                    .wait_timeout(deadlines, wait)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
            None => shared
                .changed
                .wait(deadlines)
                .unwrap_or_else(PoisonError::into_inner),
        };
    }
}

/// One deadline.
pub struct ThreadSleep {
    state: Arc<SleepState>,
    key: (Instant, u64),
    shared: Arc<Shared>,
}

impl Future for ThreadSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.state.fired.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        *self
            .state
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
        // It may have fired between the check and storing the waker.
        if self.state.fired.load(Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for ThreadSleep {
    fn drop(&mut self) {
        let mut deadlines = self
            .shared
            .deadlines
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        deadlines.due.remove(&self.key);
    }
}

impl hyper::rt::Sleep for ThreadSleep {}

impl hyper::rt::Timer for ThreadTimer {
    fn sleep(&self, duration: std::time::Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        let state = Arc::new(SleepState::default());
        let mut deadlines = self
            .shared
            .deadlines
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let key = (deadline, deadlines.next_id);
        deadlines.next_id += 1;
        deadlines.due.insert(key, Arc::downgrade(&state));
        let wake = deadlines.wakes_at.is_none_or(|planned| deadline < planned);
        if wake {
            deadlines.wakes_at = Some(deadline);
        }
        drop(deadlines);
        if wake {
            self.shared.changed.notify_one();
        }
        Box::pin(ThreadSleep {
            state,
            key,
            shared: Arc::clone(&self.shared),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::block_on;
    use hyper::rt::Timer;
    use std::time::Duration;

    #[test]
    fn sleeps_fire_in_order_and_not_early() {
        let timer = ThreadTimer::start().unwrap();
        let start = Instant::now();
        let long = timer.sleep(Duration::from_millis(60));
        block_on(timer.sleep(Duration::from_millis(20)));
        let short_done = start.elapsed();
        block_on(long);
        assert!(short_done >= Duration::from_millis(20), "{short_done:?}");
        assert!(start.elapsed() >= Duration::from_millis(60));
    }

    #[test]
    fn an_earlier_sleep_after_a_dropped_one_still_fires_on_time() {
        let timer = ThreadTimer::start().unwrap();
        // The thread plans to wake at the first deadline; the sleep goes away, then sleeps
        // due later (no wake-up needed) and sooner (one needed) come.
        drop(timer.sleep(Duration::from_millis(200)));
        std::thread::sleep(Duration::from_millis(20));
        let later = timer.sleep(Duration::from_millis(400));
        let start = Instant::now();
        block_on(timer.sleep(Duration::from_millis(30)));
        assert!(
            start.elapsed() < Duration::from_millis(190),
            "{:?}",
            start.elapsed()
        );
        block_on(later);
    }

    #[test]
    fn dropped_sleeps_leave_no_deadline() {
        let timer = ThreadTimer::start().unwrap();
        let sleeps: Vec<_> = (0..100)
            .map(|_| timer.sleep(Duration::from_secs(3600)))
            .collect();
        assert_eq!(timer.shared.deadlines.lock().unwrap().due.len(), 100);
        drop(sleeps);
        assert!(timer.shared.deadlines.lock().unwrap().due.is_empty());
    }
}
