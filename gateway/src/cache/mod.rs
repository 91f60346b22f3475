//! The image cache: whole images from any store, kept on this gateway's disk
//! (`image_cache_dir`, at most `image_cache_max_size` bytes), so that a boot storm costs the
//! store one read per image per gateway.
//!
//! - **Single flight with streaming joiners** (`fill`): the first cold GET of an image starts
//!   one fill; GETs arriving meanwhile read the bytes already written and wait for the rest.
//!   Nobody bypasses to the store while a fill runs, nobody waits for the whole image.
//! - **Verified before published:** a fill hashes what it writes; only when size and digest
//!   match the image's (`os_hash_value`, else `checksum`) is `<id>.fill` renamed to `<id>`,
//!   with the digest in `<id>.digest` beside it. A joiner of a failed fill gets an error.
//! - **Hard capacity:** a fill reserves the image's size first, evicting least recently used
//!   entries that nobody is reading; when that cannot make room the image is served from its
//!   store uncached. The cache counts only its own files.
//! - **Survives a restart:** at start the folder is read back: `.fill` files (a fill cut
//!   short) are removed, published files become entries again, each one re-hashed on a
//!   background thread against its `.digest` before it is served; a file that fails is
//!   removed and refetched on the next miss. `POST /v2/cache/clean` re-hashes every entry.
//! - A fill that failed (the store broke off, the data did not match, the disk is full) is
//!   not retried for 30 s: downloads of that image are served from the store meanwhile.
//! - Every hit is also checked against the image as the request just read it (size, digest):
//!   status and policy were checked by the handler, so a deleted or deactivated image is never
//!   served from here. Deleting an image drops its entry on this gateway, and on the others
//!   through the database's change feed (`serve`).
//!
//! It knows no HTTP and no metadata engine: handlers decide, with the image in hand, whether to
//! ask it; a fill copies any [`fill::Source`] stream (today the file store's file stream; any
//! store's stream once stores share one trait).

pub mod fill;

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use meta::ImageId;

use crate::body::ByteStream;
pub use fill::{FillJob, Joiner, Progress, Source};

const PART_SUFFIX: &str = ".fill";
const DIGEST_SUFFIX: &str = ".digest";

/// Incremental digest of a fill, by Glance's algorithm name.
pub(crate) struct Hasher(openssl::hash::Hasher);

impl Hasher {
    pub(crate) fn new(algo: &str) -> Result<Hasher, String> {
        let digest = openssl::hash::MessageDigest::from_name(algo)
            .ok_or_else(|| format!("unknown hash algorithm {algo}"))?;
        openssl::hash::Hasher::new(digest)
            .map(Hasher)
            .map_err(|e| e.to_string())
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.0.update(bytes).map_err(|e| e.to_string())
    }

    pub(crate) fn finish(&mut self) -> Result<String, String> {
        let bytes = self.0.finish().map_err(|e| e.to_string())?;
        Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }
}

/// What the image says its data is: what a cached copy must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    /// Bytes.
    pub size: u64,
    /// Digest algorithm (`sha512`, or `md5` for an image with only a `checksum`).
    pub algo: String,
    /// Lowercase hex digest.
    pub digest: String,
}

impl Expect {
    /// From an image's fields: `os_hash_algo`/`os_hash_value`, else the MD5 `checksum`; `None`
    /// when the image carries neither (its data cannot be verified, so it is never cached).
    pub fn of(image: &meta::Image) -> Option<Expect> {
        let size = image.size?;
        let (algo, digest) = match (&image.os_hash_algo, &image.os_hash_value, &image.checksum) {
            (Some(algo), Some(value), _) => (algo.clone(), value.clone()),
            (_, _, Some(md5)) => ("md5".to_owned(), md5.clone()),
            _ => return None,
        };
        Some(Expect {
            size,
            algo,
            digest: digest.to_ascii_lowercase(),
        })
    }
}

/// One cached or filling image.
struct Entry {
    size: u64,
    algo: String,
    digest: String,
    kind: Kind,
    /// Requests streaming it now: never evicted while above 0.
    readers: usize,
    /// Logical clock of the last use (least recently used goes first).
    last_used: u64,
    hits: u64,
    last_accessed: f64,
    last_modified: f64,
    /// Invalidated while filling: the fill runs to its end (its file name must not be reused
    /// meanwhile), then the entry goes. Never served.
    doomed: bool,
}

enum Kind {
    Filling(Arc<Progress>),
    /// Published; `verified` once this process has checked its bytes.
    Ready {
        verified: bool,
    },
}

/// What a download gets from [`Cache::lookup`].
pub enum Lookup {
    /// A published, verified copy: stream `path` (the lease keeps it from eviction).
    Hit { path: PathBuf, lease: Lease },
    /// A fill is running: stream this joiner.
    Join(Joiner),
    /// A miss that starts a fill: spawn the job on a source stream of the whole image, then
    /// stream the joiner (`None` for a range request, which is served from the store).
    Fill(FillJob, Option<Joiner>),
    /// Not from the cache: serve from the store (no room, not cacheable, being verified).
    Bypass,
}

/// Keeps one entry from eviction while a response streams it.
pub struct Lease {
    cache: Arc<Cache>,
    id: ImageId,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut state = self.cache.lock();
        let Some(entry) = state.entries.get_mut(&self.id) else {
            return;
        };
        entry.readers = entry.readers.saturating_sub(1);
        // The last reader of an entry invalidated while it filled takes it away.
        let gone = entry.doomed && entry.readers == 0 && matches!(entry.kind, Kind::Ready { .. });
        if gone {
            if let Some(entry) = state.entries.remove(&self.id) {
                state.used_bytes -= entry.size;
            }
            self.cache.remove_files(self.id);
            crate::metrics::cache_bytes(state.used_bytes);
        }
    }
}

/// A row of `GET /v2/cache`'s `cached_images`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CachedImage {
    /// The image.
    pub image_id: String,
    /// Requests served from the entry.
    pub hits: u64,
    /// Last served, seconds since the epoch.
    pub last_accessed: f64,
    /// When it was cached, seconds since the epoch.
    pub last_modified: f64,
    /// Bytes.
    pub size: u64,
}

/// A prefetch waiting for a free slot.
pub struct Queued {
    /// The image.
    pub id: ImageId,
    /// Starts its fill once a slot is free: opens the source and runs the job on the
    /// current core.
    pub start: Box<dyn FnOnce(FillJob) + Send>,
    expect: Expect,
}

/// The cache of one gateway; shared by every core.
pub struct Cache {
    dir: PathBuf,
    max_bytes: u64,
    prefetch_slots: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: HashMap<ImageId, Entry>,
    /// Bytes of published entries and of fills' reservations.
    used_bytes: u64,
    clock: u64,
    queue: VecDeque<Queued>,
    prefetching: usize,
    /// Images whose last fill failed, and until when they are served from the store without
    /// a new fill (a failing store or a full disk must not make every download fail).
    failed: HashMap<ImageId, std::time::Instant>,
}

/// How long an image whose fill failed is served from the store before another fill.
const FAILED_FILL_BACKOFF: std::time::Duration = std::time::Duration::from_secs(30);

fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Cache {
    /// Opens the cache in `dir` (created), holding at most `max_bytes`, with at most
    /// `prefetch_slots` prefetches at once: removes the fills a crash cut short and reads the
    /// published entries back, unverified (see [`Cache::verify_all`]).
    pub fn open(dir: &Path, max_bytes: u64, prefetch_slots: usize) -> std::io::Result<Arc<Cache>> {
        std::fs::create_dir_all(dir)?;
        let cache = Arc::new(Cache {
            dir: dir.to_owned(),
            max_bytes,
            prefetch_slots: prefetch_slots.max(1),
            state: Mutex::new(State::default()),
        });
        let mut removed = 0;
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(PART_SUFFIX) {
                let _ = std::fs::remove_file(entry.path());
                removed += 1;
                continue;
            }
            let Ok(id) = name.parse::<ImageId>() else {
                continue;
            };
            let digest = std::fs::read_to_string(cache.digest_path(id)).ok();
            let parsed = digest.as_deref().and_then(|d| d.trim().split_once(' '));
            let meta = entry.metadata()?;
            match parsed {
                Some((algo, digest)) => found.push((id, meta, algo.to_owned(), digest.to_owned())),
                None => cache.remove_files(id),
            }
        }
        {
            let mut state = cache.lock();
            for (id, meta, algo, digest) in found {
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0.0, |d| d.as_secs_f64());
                if state.used_bytes + meta.len() > max_bytes {
                    // Smaller limit than last time: what does not fit goes.
                    cache.remove_files(id);
                    continue;
                }
                state.used_bytes += meta.len();
                state.clock += 1;
                let clock = state.clock;
                state.entries.insert(
                    id,
                    Entry {
                        size: meta.len(),
                        algo,
                        digest,
                        kind: Kind::Ready { verified: false },
                        readers: 0,
                        last_used: clock,
                        hits: 0,
                        last_accessed: modified,
                        last_modified: modified,
                        doomed: false,
                    },
                );
            }
            crate::metrics::cache_bytes(state.used_bytes);
        }
        if removed > 0 {
            tracing::warn!(
                partial_fills = removed,
                "image cache: removed fills cut short by a restart"
            );
        }
        Ok(cache)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn path(&self, id: ImageId) -> PathBuf {
        self.dir.join(id.to_string())
    }

    fn part_path(&self, id: ImageId) -> PathBuf {
        self.dir.join(format!("{id}{PART_SUFFIX}"))
    }

    fn digest_path(&self, id: ImageId) -> PathBuf {
        self.dir.join(format!("{id}{DIGEST_SUFFIX}"))
    }

    fn remove_files(&self, id: ImageId) {
        for path in [self.path(id), self.digest_path(id), self.part_path(id)] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "image cache: cannot remove")
                }
            }
        }
    }

    /// The cache's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes held and reserved.
    pub fn used_bytes(&self) -> u64 {
        self.lock().used_bytes
    }

    /// Frees `needed` bytes by evicting least recently used published entries that nobody
    /// reads; `false` (nothing evicted) when that cannot make room.
    fn make_room(&self, state: &mut State, needed: u64) -> bool {
        if needed > self.max_bytes {
            return false;
        }
        let free = |state: &State| self.max_bytes - state.used_bytes.min(self.max_bytes);
        if free(state) >= needed {
            return true;
        }
        let mut candidates: Vec<(u64, ImageId, u64)> = state
            .entries
            .iter()
            .filter(|(_, e)| e.readers == 0 && matches!(e.kind, Kind::Ready { .. }))
            .map(|(id, e)| (e.last_used, *id, e.size))
            .collect();
        candidates.sort_unstable();
        let evictable: u64 = candidates.iter().map(|(_, _, size)| size).sum();
        if free(state) + evictable < needed {
            return false;
        }
        for (_, id, size) in candidates {
            if free(state) >= needed {
                break;
            }
            state.entries.remove(&id);
            state.used_bytes -= size;
            self.remove_files(id);
            crate::metrics::cache_evicted();
            tracing::debug!(image_id = %id, size_bytes = size, "image cache: evicted");
        }
        true
    }

    /// What a download of `id` (the image's data described by `expect`) gets, for bytes
    /// `range` (`None`: the whole image).
    pub fn lookup(
        self: &Arc<Self>,
        id: ImageId,
        expect: &Expect,
        range: Option<(u64, u64)>,
    ) -> Lookup {
        let mut state = self.lock();
        state.clock += 1;
        let clock = state.clock;
        let (start, end) = range.unwrap_or((0, expect.size));
        let mut stale = false;
        if let Some(entry) = state.entries.get_mut(&id) {
            if entry.doomed {
                crate::metrics::cache_request(crate::metrics::CacheResult::Miss);
                return Lookup::Bypass;
            }
            if entry.size != expect.size
                || entry.digest != expect.digest
                || entry.algo != expect.algo
            {
                // Another image's data under this id (it cannot change while active): stale.
                stale = matches!(entry.kind, Kind::Ready { .. }) && entry.readers == 0;
            } else {
                entry.last_used = clock;
                match &entry.kind {
                    Kind::Ready { verified: true } => {
                        entry.readers += 1;
                        entry.hits += 1;
                        entry.last_accessed = now_epoch();
                        crate::metrics::cache_request(crate::metrics::CacheResult::Hit);
                        return Lookup::Hit {
                            path: self.path(id),
                            lease: Lease {
                                cache: Arc::clone(self),
                                id,
                            },
                        };
                    }
                    Kind::Ready { verified: false } => {
                        crate::metrics::cache_request(crate::metrics::CacheResult::Miss);
                        return Lookup::Bypass;
                    }
                    Kind::Filling(progress) => {
                        let progress = Arc::clone(progress);
                        if range.is_some() && start > progress.written() {
                            // Far ahead of the fill: the store answers sooner.
                            crate::metrics::cache_request(crate::metrics::CacheResult::Miss);
                            return Lookup::Bypass;
                        }
                        entry.readers += 1;
                        entry.hits += 1;
                        entry.last_accessed = now_epoch();
                        crate::metrics::cache_request(crate::metrics::CacheResult::Join);
                        return Lookup::Join(self.joiner(id, progress, start, end));
                    }
                }
            }
        }
        if stale {
            if let Some(old) = state.entries.remove(&id) {
                state.used_bytes -= old.size;
                self.remove_files(id);
            }
        }
        crate::metrics::cache_request(crate::metrics::CacheResult::Miss);
        if state.entries.contains_key(&id) {
            return Lookup::Bypass;
        }
        let now = std::time::Instant::now();
        state.failed.retain(|_, until| *until > now);
        if state.failed.contains_key(&id) {
            return Lookup::Bypass;
        }
        let Some(job) = self.reserve(&mut state, id, expect, false) else {
            return Lookup::Bypass;
        };
        let joiner = range.is_none().then(|| {
            if let Some(entry) = state.entries.get_mut(&id) {
                entry.readers += 1;
            }
            self.joiner(id, Arc::clone(&job.progress), start, end)
        });
        Lookup::Fill(job, joiner)
    }

    fn joiner(
        self: &Arc<Self>,
        id: ImageId,
        progress: Arc<Progress>,
        start: u64,
        end: u64,
    ) -> Joiner {
        Joiner::new(
            progress,
            self.part_path(id),
            self.path(id),
            start,
            end,
            Lease {
                cache: Arc::clone(self),
                id,
            },
        )
    }

    /// Reserves room for `id` and records its fill; `None` when it cannot be cached.
    fn reserve(
        self: &Arc<Self>,
        state: &mut State,
        id: ImageId,
        expect: &Expect,
        prefetch: bool,
    ) -> Option<FillJob> {
        if Hasher::new(&expect.algo).is_err() || !self.make_room(state, expect.size) {
            return None;
        }
        let part = self.part_path(id);
        if let Err(e) = std::fs::File::create(&part) {
            tracing::error!(path = %part.display(), error = %e, "image cache: cannot create a fill");
            return None;
        }
        let progress = Progress::new();
        state.used_bytes += expect.size;
        state.clock += 1;
        let clock = state.clock;
        let now = now_epoch();
        state.entries.insert(
            id,
            Entry {
                size: expect.size,
                algo: expect.algo.clone(),
                digest: expect.digest.clone(),
                kind: Kind::Filling(Arc::clone(&progress)),
                readers: 0,
                last_used: clock,
                hits: 0,
                last_accessed: now,
                last_modified: now,
                doomed: false,
            },
        );
        crate::metrics::cache_bytes(state.used_bytes);
        Some(FillJob {
            cache: Arc::clone(self),
            id,
            size: expect.size,
            algo: expect.algo.clone(),
            digest: expect.digest.clone(),
            progress,
            part,
            prefetch,
        })
    }

    /// Whether `id`'s entry is the fill that `progress` reports (not a later one).
    fn is_fill(state: &State, id: ImageId, progress: &Arc<Progress>) -> bool {
        matches!(
            state.entries.get(&id).map(|e| &e.kind),
            Some(Kind::Filling(current)) if Arc::ptr_eq(current, progress)
        )
    }

    /// A fill succeeded: its digest is written beside it and the file renamed into place.
    /// An entry invalidated meanwhile is renamed too (its joiners may still have to open it)
    /// but never served, and goes with its last reader.
    fn published(&self, id: ImageId, algo: &str, digest: &str, progress: &Arc<Progress>) {
        let mut state = self.lock();
        if !Self::is_fill(&state, id, progress) {
            return;
        }
        let (doomed, readers) = state
            .entries
            .get(&id)
            .map_or((true, 0), |e| (e.doomed, e.readers));
        let written = if doomed {
            std::fs::rename(self.part_path(id), self.path(id))
        } else {
            std::fs::write(self.digest_path(id), format!("{algo} {digest}\n"))
                .and_then(|()| std::fs::rename(self.part_path(id), self.path(id)))
        };
        match written {
            Ok(()) if !doomed || readers > 0 => {
                if let Some(entry) = state.entries.get_mut(&id) {
                    entry.kind = Kind::Ready { verified: true };
                    entry.last_modified = now_epoch();
                }
            }
            outcome => {
                if let Err(e) = outcome {
                    tracing::error!(image_id = %id, error = %e, "image cache: cannot publish a fill");
                }
                if let Some(entry) = state.entries.remove(&id) {
                    state.used_bytes -= entry.size;
                }
                self.remove_files(id);
            }
        }
        crate::metrics::cache_bytes(state.used_bytes);
    }

    fn fill_failed(&self, id: ImageId, part: &Path, progress: &Arc<Progress>) {
        let mut state = self.lock();
        if !Self::is_fill(&state, id, progress) {
            return;
        }
        let _ = std::fs::remove_file(part);
        state
            .failed
            .insert(id, std::time::Instant::now() + FAILED_FILL_BACKOFF);
        if let Some(entry) = state.entries.remove(&id) {
            state.used_bytes -= entry.size;
        }
        crate::metrics::cache_bytes(state.used_bytes);
    }

    /// Drops `id`'s entry (an image deleted here or on another gateway) and its queued
    /// prefetch; `true` when there was either. A running fill finishes but is not kept.
    pub fn invalidate(&self, id: ImageId) -> bool {
        let mut state = self.lock();
        state.failed.remove(&id);
        let queued = state.queue.len();
        state.queue.retain(|q| q.id != id);
        let mut found = state.queue.len() != queued;
        let filling = matches!(
            state.entries.get(&id).map(|e| &e.kind),
            Some(Kind::Filling(_))
        );
        if filling {
            // The fill keeps its name until it ends; then the entry goes (`published`).
            if let Some(entry) = state.entries.get_mut(&id) {
                found |= !entry.doomed;
                entry.doomed = true;
            }
        } else if let Some(entry) = state.entries.remove(&id) {
            found = true;
            state.used_bytes -= entry.size;
            // Readers still streaming keep their open file; the name goes now.
            self.remove_files(id);
        }
        crate::metrics::cache_bytes(state.used_bytes);
        found
    }

    /// Whether `id` is cached or being filled (and not invalidated).
    pub fn contains(&self, id: ImageId) -> bool {
        self.lock().entries.get(&id).is_some_and(|e| !e.doomed)
    }

    /// `GET /v2/cache`: the published entries and the queued prefetches.
    pub fn list(&self) -> (Vec<CachedImage>, Vec<String>) {
        let state = self.lock();
        let mut cached: Vec<CachedImage> = state
            .entries
            .iter()
            .filter(|(_, e)| matches!(e.kind, Kind::Ready { .. }) && !e.doomed)
            .map(|(id, e)| CachedImage {
                image_id: id.to_string(),
                hits: e.hits,
                last_accessed: e.last_accessed,
                last_modified: e.last_modified,
                size: e.size,
            })
            .collect();
        cached.sort_by(|a, b| a.image_id.cmp(&b.image_id));
        let queued = state.queue.iter().map(|q| q.id.to_string()).collect();
        (cached, queued)
    }

    /// Queues a prefetch of `id` (no-op when cached, filling or queued); `start` begins its
    /// fill. Returns the prefetches to start now on the calling core (at most the free slots).
    pub fn queue(
        self: &Arc<Self>,
        id: ImageId,
        expect: Expect,
        start: Box<dyn FnOnce(FillJob) + Send>,
    ) {
        {
            let mut state = self.lock();
            if state.entries.contains_key(&id) || state.queue.iter().any(|q| q.id == id) {
                return;
            }
            state.queue.push_back(Queued { id, start, expect });
        }
        self.start_prefetches();
    }

    /// Starts queued prefetches while slots are free (on the calling core).
    fn start_prefetches(self: &Arc<Self>) {
        loop {
            let (queued, job) = {
                let mut state = self.lock();
                if state.prefetching >= self.prefetch_slots {
                    return;
                }
                let Some(queued) = state.queue.pop_front() else {
                    return;
                };
                if state.entries.contains_key(&queued.id) {
                    continue;
                }
                let Some(job) = self.reserve(&mut state, queued.id, &queued.expect, true) else {
                    tracing::warn!(image_id = %queued.id, "image cache: no room to prefetch");
                    continue;
                };
                state.prefetching += 1;
                (queued, job)
            };
            (queued.start)(job);
        }
    }

    fn prefetch_done(self: &Arc<Self>) {
        {
            let mut state = self.lock();
            state.prefetching = state.prefetching.saturating_sub(1);
        }
        self.start_prefetches();
    }

    /// `DELETE /v2/cache` with `x-image-cache-clear-target`: empties the published entries
    /// nobody reads (`cache`), the prefetch queue (`queue`), or both. Returns entries removed.
    pub fn clear(&self, cache: bool, queue: bool) -> usize {
        let mut state = self.lock();
        let mut removed = 0;
        if queue {
            removed += state.queue.len();
            state.queue.clear();
        }
        if cache {
            let ids: Vec<ImageId> = state
                .entries
                .iter()
                .filter(|(_, e)| matches!(e.kind, Kind::Ready { .. }))
                .map(|(id, _)| *id)
                .collect();
            for id in ids {
                if let Some(entry) = state.entries.remove(&id) {
                    state.used_bytes -= entry.size;
                    self.remove_files(id);
                    removed += 1;
                }
            }
        }
        crate::metrics::cache_bytes(state.used_bytes);
        removed
    }

    /// `POST /v2/cache/prune`: evicts least recently used entries until the cache is within
    /// its size (it always is: the limit is enforced on every fill), returning `(files,
    /// bytes)` removed.
    pub fn prune(&self) -> (u64, u64) {
        let mut state = self.lock();
        let (mut files, mut bytes) = (0, 0);
        while state.used_bytes > self.max_bytes {
            let oldest = state
                .entries
                .iter()
                .filter(|(_, e)| e.readers == 0 && matches!(e.kind, Kind::Ready { .. }))
                .min_by_key(|(_, e)| e.last_used)
                .map(|(id, _)| *id);
            let Some(id) = oldest else {
                break;
            };
            if let Some(entry) = state.entries.remove(&id) {
                state.used_bytes -= entry.size;
                self.remove_files(id);
                crate::metrics::cache_evicted();
                files += 1;
                bytes += entry.size;
            }
        }
        crate::metrics::cache_bytes(state.used_bytes);
        (files, bytes)
    }

    /// Re-hashes published entries (those loaded at start-up, or every one when `all`)
    /// against their recorded digests, on the calling thread: a file that fails is removed.
    /// Also removes stray files. Blocking: run it off the cores. Returns `(checked, removed)`.
    pub fn verify_all(&self, all: bool) -> (usize, usize) {
        let ids: Vec<(ImageId, u64, String, String)> = {
            let state = self.lock();
            state
                .entries
                .iter()
                .filter(|(_, e)| match e.kind {
                    Kind::Ready { verified } => all || !verified,
                    Kind::Filling(_) => false,
                })
                .map(|(id, e)| (*id, e.size, e.algo.clone(), e.digest.clone()))
                .collect()
        };
        let mut removed = 0;
        for (id, size, algo, digest) in &ids {
            let good = self.hash_file(*id, *size, algo).is_ok_and(|d| d == *digest);
            let mut state = self.lock();
            let Some(entry) = state.entries.get_mut(id) else {
                continue;
            };
            if good {
                entry.kind = Kind::Ready { verified: true };
            } else if entry.readers == 0 {
                tracing::warn!(image_id = %id, "image cache: a cached file does not match its digest; removed");
                let size = entry.size;
                state.entries.remove(id);
                state.used_bytes -= size;
                self.remove_files(*id);
                removed += 1;
            }
            crate::metrics::cache_bytes(state.used_bytes);
        }
        self.remove_strays();
        (ids.len(), removed)
    }

    fn hash_file(&self, id: ImageId, size: u64, algo: &str) -> Result<String, String> {
        let mut file = std::fs::File::open(self.path(id)).map_err(|e| e.to_string())?;
        if file.metadata().map_err(|e| e.to_string())?.len() != size {
            return Err("size differs".into());
        }
        let mut hasher = Hasher::new(algo)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n])?;
        }
        hasher.finish()
    }

    /// Removes files that belong to no entry (`.fill` files of fills not running, digests
    /// without data).
    fn remove_strays(&self) {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let state = self.lock();
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let id_text = name
                .strip_suffix(PART_SUFFIX)
                .or_else(|| name.strip_suffix(DIGEST_SUFFIX))
                .unwrap_or(&name);
            let Ok(id) = id_text.parse::<ImageId>() else {
                continue;
            };
            let keep = match state.entries.get(&id).map(|e| &e.kind) {
                Some(Kind::Filling(_)) => true,
                Some(Kind::Ready { .. }) => !name.ends_with(PART_SUFFIX),
                None => false,
            };
            if !keep {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Whether a published entry's file still has its size (a cheap check on every hit; the
    /// digest is checked at start-up and by `clean`). Drops the entry when it does not.
    pub fn check_size(&self, id: ImageId, file_len: u64) -> bool {
        let mut state = self.lock();
        let Some(entry) = state.entries.get(&id) else {
            return false;
        };
        if entry.size == file_len {
            return true;
        }
        tracing::warn!(image_id = %id, "image cache: a cached file changed size; removed");
        let size = entry.size;
        state.entries.remove(&id);
        state.used_bytes -= size;
        self.remove_files(id);
        crate::metrics::cache_bytes(state.used_bytes);
        false
    }
}

/// A published entry's bytes, streamed while a [`Lease`] keeps the entry from eviction (also
/// when the download is sent with `splice`: the lease rides along as the source's hold).
pub struct Leased<S> {
    inner: S,
    lease: Rc<dyn std::any::Any>,
}

impl<S> Leased<S> {
    /// `inner`, holding `lease` until it is dropped.
    pub fn new(inner: S, lease: Lease) -> Leased<S> {
        Leased {
            inner,
            lease: Rc::new(lease),
        }
    }
}

impl<S: ByteStream + Unpin> ByteStream for Leased<S> {
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<std::io::Result<bytes::Bytes>>> {
        std::pin::Pin::new(&mut self.inner).poll_next(cx)
    }

    fn remaining(&self) -> u64 {
        self.inner.remaining()
    }

    fn splice_source(&self) -> Option<crate::body::SpliceSource> {
        let mut source = self.inner.splice_source()?;
        source.hold = Some(Rc::clone(&self.lease));
        Some(source)
    }
}

#[cfg(test)]
mod tests;
