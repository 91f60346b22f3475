//! Egress control: caps on this gateway's image downloads, changeable while it runs (SIGHUP
//! reloads the configuration file and applies the new caps; see `serve`).
//!
//! - `max_concurrent_downloads`: a download takes a [`Slot`] before its first byte; when none
//!   is free it waits up to `download_queue_timeout_ms`, polling, then is refused (503).
//! - `download_bandwidth_limit`: every download's bytes draw on one token bucket (bytes per
//!   second, a second's worth of burst); a stream that finds the bucket empty sleeps until its
//!   chunk is covered. A throttled download is not sent with `splice` (whose bytes bypass the
//!   stream); with no limit nothing changes.
//!
//! Process-wide atomics and one small mutex: the limits are per gateway, shared by the cores.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::body::{ByteStream, SpliceSource};

/// The caps, and what is in use.
pub struct Egress {
    max_downloads: AtomicUsize,
    bandwidth: AtomicU64,
    queue_timeout_ms: AtomicU64,
    in_flight: AtomicUsize,
    bucket: Mutex<Bucket>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A download's place among the concurrent ones; freed on drop.
pub struct Slot<'a>(&'a Egress);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

/// Every slot stayed taken for the whole queue timeout.
#[derive(Debug)]
pub struct Busy;

const POLL: Duration = Duration::from_millis(5);

impl Egress {
    /// Caps: `max_downloads` (0: none), `bandwidth` bytes/s (0: none), `queue_timeout_ms`.
    pub fn new(max_downloads: usize, bandwidth: u64, queue_timeout_ms: u64) -> Egress {
        let egress = Egress {
            max_downloads: AtomicUsize::new(0),
            bandwidth: AtomicU64::new(0),
            queue_timeout_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            // Full: the first refill clamps it to one second's worth.
            bucket: Mutex::new(Bucket {
                tokens: f64::MAX,
                at: Instant::now(),
            }),
        };
        egress.set(max_downloads, bandwidth, queue_timeout_ms);
        egress
    }

    /// Applies new caps (a configuration reload); downloads under way keep their slots.
    pub fn set(&self, max_downloads: usize, bandwidth: u64, queue_timeout_ms: u64) {
        self.max_downloads.store(max_downloads, Relaxed);
        self.bandwidth.store(bandwidth, Relaxed);
        self.queue_timeout_ms.store(queue_timeout_ms, Relaxed);
    }

    /// Downloads holding a slot now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Relaxed)
    }

    fn try_take(&self) -> bool {
        let max = self.max_downloads.load(Relaxed);
        self.in_flight
            .fetch_update(Relaxed, Relaxed, |n| (max == 0 || n < max).then_some(n + 1))
            .is_ok()
    }

    /// A slot for one download, waiting for one up to the queue timeout.
    pub async fn acquire(&self) -> Result<Slot<'_>, Busy> {
        let deadline = Instant::now() + Duration::from_millis(self.queue_timeout_ms.load(Relaxed));
        loop {
            if self.try_take() {
                return Ok(Slot(self));
            }
            if Instant::now() >= deadline {
                return Err(Busy);
            }
            monoio::time::sleep(POLL).await;
        }
    }

    /// How long a chunk of `bytes` must wait for the bucket (zero: send now; the tokens are
    /// taken either way).
    fn take_tokens(&self, bytes: u64) -> Duration {
        let rate = self.bandwidth.load(Relaxed);
        if rate == 0 {
            return Duration::ZERO;
        }
        let rate = rate as f64;
        let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(bucket.at).as_secs_f64() * rate;
        bucket.tokens = (bucket.tokens + refill).min(rate);
        bucket.at = now;
        bucket.tokens -= bytes as f64;
        if bucket.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-bucket.tokens / rate)
        }
    }

    /// Whether a bandwidth cap is set.
    pub fn throttles(&self) -> bool {
        self.bandwidth.load(Relaxed) > 0
    }
}

/// A download's stream under the bandwidth cap (and holding its slot until it ends).
pub struct Throttled<S> {
    inner: S,
    egress: &'static Egress,
    pending: Option<Bytes>,
    sleep: Option<Pin<Box<monoio::time::Sleep>>>,
    slot: Option<Rc<Slot<'static>>>,
}

impl<S> Throttled<S> {
    /// `inner` under `egress`'s bandwidth cap, holding `slot`.
    pub fn new(inner: S, egress: &'static Egress, slot: Option<Slot<'static>>) -> Throttled<S> {
        Throttled {
            inner,
            egress,
            pending: None,
            sleep: None,
            slot: slot.map(Rc::new),
        }
    }
}

impl<S: ByteStream + Unpin> ByteStream for Throttled<S> {
    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Bytes>>> {
        let this = &mut *self;
        if let Some(sleep) = this.sleep.as_mut() {
            std::task::ready!(sleep.as_mut().poll(cx));
            this.sleep = None;
            return Poll::Ready(this.pending.take().map(Ok));
        }
        let next = std::task::ready!(Pin::new(&mut this.inner).poll_next(cx));
        let Some(Ok(chunk)) = next else {
            return Poll::Ready(next);
        };
        let wait = this.egress.take_tokens(chunk.len() as u64);
        if wait.is_zero() {
            return Poll::Ready(Some(Ok(chunk)));
        }
        this.pending = Some(chunk);
        let mut sleep = Box::pin(monoio::time::sleep(wait));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(this.pending.take().map(Ok)),
            Poll::Pending => {
                this.sleep = Some(sleep);
                Poll::Pending
            }
        }
    }

    fn remaining(&self) -> u64 {
        self.inner.remaining() + self.pending.as_ref().map_or(0, |c| c.len() as u64)
    }

    fn splice_source(&self) -> Option<SpliceSource> {
        // Spliced bytes would bypass the bucket.
        if self.egress.throttles() {
            return None;
        }
        let mut source = self.inner.splice_source()?;
        // The splice replaces this stream: it holds the slot (and whatever it held) instead.
        if let Some(slot) = &self.slot {
            let held: Rc<dyn std::any::Any> = Rc::new((source.hold.take(), Rc::clone(slot)));
            source.hold = Some(held);
        }
        Some(source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_and_freed() {
        let egress = Egress::new(2, 0, 0);
        let a = crate::test_util::block_on(egress.acquire()).unwrap();
        let _b = crate::test_util::block_on(egress.acquire()).unwrap();
        assert!(!egress.try_take());
        drop(a);
        assert!(egress.try_take());
        egress.set(0, 0, 0);
        assert!(egress.try_take(), "0 is no cap");
    }

    #[test]
    fn the_bucket_spreads_bytes_over_time() {
        let egress = Egress::new(0, 1000, 0);
        // A second's burst is free, then the rate rules.
        assert_eq!(egress.take_tokens(500), Duration::ZERO);
        let wait = egress.take_tokens(1500);
        assert!(
            wait > Duration::from_millis(900) && wait < Duration::from_millis(1100),
            "{wait:?}"
        );
        egress.set(0, 0, 0);
        assert_eq!(egress.take_tokens(1 << 30), Duration::ZERO);
    }
}
