//! Per-thread counting. Each thread that counts (the workers, the writer, the hashing
//! threads) owns a [`Shard`]: a cache-line-aligned block of atomics that only that thread
//! writes, so counting on the hot path never touches a line another core writes (no false
//! sharing, no contended read-modify-write). The scrape (`super::scrape`) walks the shards
//! and sums them.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use super::{LingerEnd, UploadEnd, METHODS, STATUS_CLASSES};

/// Every shard ever registered (threads come and go rarely; a shard outlives its thread so
/// that its counts stay in the sums).
pub(super) static SHARDS: Mutex<Vec<Arc<Shard>>> = Mutex::new(Vec::new());

thread_local! {
    static SHARD: Arc<Shard> = register_shard();
}

/// Upper bounds of latency buckets, seconds (as nanoseconds).
pub(super) const TIME_BOUNDS_NS: [u64; 17] = [
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    30_000_000_000,
    60_000_000_000,
    300_000_000_000,
];
/// Upper bounds of size buckets, bytes: 1 KiB to 4 TiB in powers of 4.
pub(super) const SIZE_BOUNDS: [u64; 17] = {
    let mut bounds = [0u64; 17];
    let mut i = 0;
    while i < 17 {
        bounds[i] = 1024u64 << (2 * i);
        i += 1;
    }
    bounds
};
pub(super) const BUCKETS: usize = 18;

/// A histogram's non-cumulative bucket counts (the last is `+Inf`) and its sum.
#[derive(Default)]
pub(super) struct Hist {
    pub counts: [AtomicU64; BUCKETS],
    pub sum: AtomicU64,
}

impl Hist {
    pub fn observe(&self, bounds: &[u64; BUCKETS - 1], value: u64) {
        let slot = bounds.partition_point(|&b| b < value);
        add(&self.counts[slot], 1);
        add(&self.sum, value);
    }
}

/// Adds to a counter only the current thread writes: a plain load and store, no locked
/// instruction. Scrapes read it with relaxed loads.
#[inline]
pub(super) fn add(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
}

#[inline]
pub(super) fn add_signed(gauge: &AtomicI64, n: i64) {
    gauge.store(gauge.load(Relaxed).wrapping_add(n), Relaxed);
}

/// One thread's counts. Aligned to 128 bytes (two lines, for the adjacent-line prefetcher)
/// so that no two shards share a cache line.
#[repr(C, align(128))]
#[derive(Default)]
pub(super) struct Shard {
    /// `Some(n)` on worker thread `glint-worker-n`.
    pub worker: Option<usize>,
    /// Requests by route label, method and status class; allocated by the first request this
    /// thread counts (most threads never answer one), sized by the route labels.
    pub requests: OnceLock<Requests>,
    pub bytes_received: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub spliced_bytes: AtomicU64,
    pub direct_io_bytes: AtomicU64,
    pub direct_io_refused: AtomicU64,
    pub uploads_in_flight: AtomicI64,
    pub downloads_in_flight: AtomicI64,
    pub uploads: [AtomicU64; UploadEnd::ALL.len()],
    pub upload_sizes: Hist,
    pub download_first_byte: Hist,
    pub hashed_bytes: AtomicU64,
    pub hashing_ns: AtomicU64,
    pub inspected_bytes: AtomicU64,
    pub inspection_ns: AtomicU64,
    pub commits: Hist,
    pub connections_open: AtomicI64,
    pub connections: AtomicU64,
    pub lingering_closes: [AtomicU64; LingerEnd::ALL.len()],
    pub lingering_discarded_bytes: AtomicU64,
}

/// One thread's request counts: cell `(route * METHODS + method)`, then status class.
pub(super) struct Requests {
    pub counts: Box<[AtomicU64]>,
    pub durations: Box<[Hist]>,
}

impl Requests {
    pub fn new(routes: usize) -> Requests {
        let cells = routes * METHODS.len();
        Requests {
            counts: (0..cells * STATUS_CLASSES.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            durations: (0..cells).map(|_| Hist::default()).collect(),
        }
    }

    /// Counts one request; a slot outside the labels is ignored.
    pub fn count(&self, route: usize, method: usize, status: usize, nanos: u64) {
        let cell = route * METHODS.len() + method;
        if let (Some(count), Some(hist)) = (
            self.counts.get(cell * STATUS_CLASSES.len() + status),
            self.durations.get(cell),
        ) {
            add(count, 1);
            hist.observe(&TIME_BOUNDS_NS, nanos);
        }
    }
}

fn register_shard() -> Arc<Shard> {
    let worker = std::thread::current()
        .name()
        .and_then(|name| name.strip_prefix("glint-worker-"))
        .and_then(|index| index.parse().ok());
    let shard = Arc::new(Shard {
        worker,
        ..Shard::default()
    });
    SHARDS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Arc::clone(&shard));
    shard
}

/// Runs `f` on this thread's shard when counting is on.
#[inline]
pub(super) fn with_shard(f: impl FnOnce(&Shard)) {
    if super::enabled() {
        on_shard(f);
    }
}

/// Runs `f` on this thread's shard; does nothing while the thread is being torn down.
#[inline]
pub(super) fn on_shard(f: impl FnOnce(&Shard)) {
    let _ = SHARD.try_with(|shard| f(shard));
}

pub(super) fn nanos(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_do_not_share_cache_lines() {
        assert_eq!(std::mem::align_of::<Shard>(), 128);
        assert_eq!(std::mem::size_of::<Shard>() % 128, 0);
    }

    #[test]
    fn size_bounds_are_powers_of_four() {
        assert_eq!(SIZE_BOUNDS[0], 1024);
        assert_eq!(SIZE_BOUNDS[5], 1 << 20);
        assert_eq!(SIZE_BOUNDS[16], 1 << 42);
    }

    #[test]
    fn requests_outside_the_labels_are_ignored() {
        let requests = Requests::new(2);
        requests.count(1, 0, 1, 5);
        requests.count(2, 0, 1, 5);
        let counted: u64 = requests.counts.iter().map(|c| c.load(Relaxed)).sum();
        assert_eq!(counted, 1);
    }
}
