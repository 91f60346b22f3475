//! The image cache's and the stores' counters: `glint_cache_requests_total{result}`,
//! `glint_cache_fills_total{result}`, `glint_cache_evictions_total`, `glint_cache_bytes` and
//! `glint_store_read_bytes_total{store}`. Few events (one per request or fill, one per
//! 256 KiB read from a store), so plain process-wide atomics rather than per-core shards.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;

use super::enabled;

/// How a download met the image cache: the `result` label of `glint_cache_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum CacheResult {
    /// Served from a published entry.
    Hit,
    /// Not in the cache (served from the store; a fill may start).
    Miss,
    /// Joined a fill in progress.
    Join,
}

impl CacheResult {
    pub(super) const ALL: [CacheResult; 3] =
        [CacheResult::Hit, CacheResult::Miss, CacheResult::Join];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            CacheResult::Hit => "hit",
            CacheResult::Miss => "miss",
            CacheResult::Join => "join",
        }
    }
}

pub(super) struct CacheCounters {
    pub requests: [AtomicU64; 3],
    /// `[ok, failed]`.
    pub fills: [AtomicU64; 2],
    pub evictions: AtomicU64,
    pub bytes: AtomicU64,
}

pub(super) static CACHE: CacheCounters = CacheCounters {
    requests: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
    fills: [AtomicU64::new(0), AtomicU64::new(0)],
    evictions: AtomicU64::new(0),
    bytes: AtomicU64::new(0),
};

/// `(store id, bytes read)`, one per configured store.
pub(super) static STORES: OnceLock<Vec<(String, AtomicU64)>> = OnceLock::new();

/// Counts a download's meeting with the cache.
pub fn cache_request(result: CacheResult) {
    if enabled() {
        CACHE.requests[result as usize].fetch_add(1, Relaxed);
    }
}

/// Counts a fill that ended (published or not).
pub fn cache_fill(ok: bool) {
    if enabled() {
        CACHE.fills[usize::from(!ok)].fetch_add(1, Relaxed);
    }
}

/// Counts an entry evicted to make room.
pub fn cache_evicted() {
    if enabled() {
        CACHE.evictions.fetch_add(1, Relaxed);
    }
}

/// Sets the bytes the cache holds and reserves.
pub fn cache_bytes(bytes: u64) {
    CACHE.bytes.store(bytes, Relaxed);
}

/// Declares the `store` label values of `glint_store_read_bytes_total`, once at start-up.
pub fn set_store_labels(stores: &[&str]) {
    let _ = STORES.set(
        stores
            .iter()
            .map(|s| ((*s).to_owned(), AtomicU64::new(0)))
            .collect(),
    );
}

/// Counts bytes read from store `store` (downloads and cache fills alike).
pub fn store_read(store: &str, bytes: u64) {
    if !enabled() {
        return;
    }
    if let Some(stores) = STORES.get() {
        if let Some((_, counter)) = stores.iter().find(|(id, _)| id == store) {
            counter.fetch_add(bytes, Relaxed);
        }
    }
}
