//! Every metric glint exports, its name and labels, and how it is counted.
//!
//! **Counting.** Each thread that counts (the workers, the writer, the hashing threads) owns a
//! `Shard`: a cache-line-aligned block of atomics that only that thread writes, so counting
//! on the hot path never touches a line another core writes (no false sharing, no contended
//! read-modify-write). A scrape walks the shards and sums them. The `prometheus` crate's own
//! counters are one shared atomic per series, which every core would write: we use that crate
//! only to describe and encode the sums (its `Collector` and text encoder).
//!
//! **Labels** are bounded: route templates, method, status class, upload outcome and reason,
//! worker index, image status, store — never image ids, users or projects.
//!
//! **Off switch.** With `metrics_enabled = false` nothing is counted (each call below returns
//! after one relaxed load) and `/metrics` answers 404; it exists to measure what counting
//! costs.

use std::cell::Cell;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode};
use prometheus::core::{Collector, Desc};
use prometheus::proto;

use crate::body::{Body, ByteStream};

static ENABLED: AtomicBool = AtomicBool::new(true);
static SHARDS: Mutex<Vec<Arc<Shard>>> = Mutex::new(Vec::new());
static PROCESS: OnceLock<ProcessInfo> = OnceLock::new();
/// `active`/`deactivated` images whose data file start-up found missing or damaged.
static IMAGES_MISSING_DATA: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static SHARD: Arc<Shard> = register_shard();
}

/// Route templates with their own series; anything else counts as `other`.
pub const ROUTES: [&str; 13] = [
    "/",
    "/versions",
    "/healthcheck",
    "/metrics",
    "/v2/schemas/image",
    "/v2/schemas/images",
    "/v2/images",
    "/v2/images/{id}",
    "/v2/images/{id}/actions/deactivate",
    "/v2/images/{id}/actions/reactivate",
    "/v2/images/{id}/file",
    "/v2/images/{id}/tags/{tag}",
    "unmatched",
];
const ROUTE_SLOTS: usize = ROUTES.len() + 1;
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "other"];
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// How an upload ended: `(outcome, reason)`, the labels of `glint_uploads_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum UploadEnd {
    /// The image became `active`.
    Active,
    /// Refused before the body: wrong `Content-Type`.
    RefusedContentType,
    /// Refused: larger than `image_size_cap` (announced or sent).
    RefusedTooLarge,
    /// Refused before the body: no such image, not allowed, or not `queued`.
    RefusedPrecondition,
    /// Refused: the body's length differs from the announced size.
    RefusedSizeMismatch,
    /// Refused: the content is not the declared disk format, or unsafe.
    RefusedFormat,
    /// Refused: the store is full (ENOSPC, EFBIG).
    RefusedStorageFull,
    /// Failed: the client's body broke off or was malformed.
    FailedClient,
    /// Failed: a store write or sync failed.
    FailedIo,
    /// Failed: the metadata commit failed.
    FailedCommit,
    /// Failed: the connection went away and the request was dropped mid-body.
    FailedAbandoned,
}

impl UploadEnd {
    const ALL: [UploadEnd; 11] = [
        UploadEnd::Active,
        UploadEnd::RefusedContentType,
        UploadEnd::RefusedTooLarge,
        UploadEnd::RefusedPrecondition,
        UploadEnd::RefusedSizeMismatch,
        UploadEnd::RefusedFormat,
        UploadEnd::RefusedStorageFull,
        UploadEnd::FailedClient,
        UploadEnd::FailedIo,
        UploadEnd::FailedCommit,
        UploadEnd::FailedAbandoned,
    ];

    /// `(outcome, reason)` label values.
    pub fn labels(self) -> (&'static str, &'static str) {
        match self {
            UploadEnd::Active => ("active", "none"),
            UploadEnd::RefusedContentType => ("refused", "content_type"),
            UploadEnd::RefusedTooLarge => ("refused", "too_large"),
            UploadEnd::RefusedPrecondition => ("refused", "precondition"),
            UploadEnd::RefusedSizeMismatch => ("refused", "size_mismatch"),
            UploadEnd::RefusedFormat => ("refused", "format"),
            UploadEnd::RefusedStorageFull => ("refused", "storage_full"),
            UploadEnd::FailedClient => ("failed", "client"),
            UploadEnd::FailedIo => ("failed", "io"),
            UploadEnd::FailedCommit => ("failed", "commit"),
            UploadEnd::FailedAbandoned => ("failed", "abandoned"),
        }
    }
}

impl From<&crate::datapath::upload::UploadError> for UploadEnd {
    fn from(err: &crate::datapath::upload::UploadError) -> UploadEnd {
        use crate::datapath::upload::UploadError as E;
        match err {
            E::TooLarge { .. } => UploadEnd::RefusedTooLarge,
            E::SizeMismatch { .. } => UploadEnd::RefusedSizeMismatch,
            E::Refused(_) => UploadEnd::RefusedFormat,
            E::Client(_) | E::IdleTimeout(_) => UploadEnd::FailedClient,
            e if e.is_storage_full() => UploadEnd::RefusedStorageFull,
            E::Io(_) => UploadEnd::FailedIo,
        }
    }
}

/// Upper bounds of latency buckets, seconds (as nanoseconds).
const TIME_BOUNDS_NS: [u64; 17] = [
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
const SIZE_BOUNDS: [u64; 17] = {
    let mut bounds = [0u64; 17];
    let mut i = 0;
    while i < 17 {
        bounds[i] = 1024u64 << (2 * i);
        i += 1;
    }
    bounds
};
const BUCKETS: usize = 18;

/// A histogram's non-cumulative bucket counts (the last is `+Inf`) and its sum.
#[derive(Default)]
struct Hist {
    counts: [AtomicU64; BUCKETS],
    sum: AtomicU64,
}

impl Hist {
    fn observe(&self, bounds: &[u64; BUCKETS - 1], value: u64) {
        let slot = bounds.partition_point(|&b| b < value);
        add(&self.counts[slot], 1);
        add(&self.sum, value);
    }
}

/// Adds to a counter only the current thread writes: a plain load and store, no locked
/// instruction. Scrapes read it with relaxed loads.
#[inline]
fn add(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
}

#[inline]
fn add_signed(gauge: &AtomicI64, n: i64) {
    gauge.store(gauge.load(Relaxed).wrapping_add(n), Relaxed);
}

/// One thread's counts. Aligned to 128 bytes (two lines, for the adjacent-line prefetcher)
/// so that no two shards share a cache line.
#[repr(C, align(128))]
#[derive(Default)]
struct Shard {
    /// `Some(n)` on worker thread `glint-worker-n`.
    worker: Option<usize>,
    requests: [[[AtomicU64; STATUS_CLASSES.len()]; METHODS.len()]; ROUTE_SLOTS],
    durations: [[Hist; METHODS.len()]; ROUTE_SLOTS],
    bytes_received: AtomicU64,
    bytes_sent: AtomicU64,
    spliced_bytes: AtomicU64,
    uploads_in_flight: AtomicI64,
    downloads_in_flight: AtomicI64,
    uploads: [AtomicU64; UploadEnd::ALL.len()],
    upload_sizes: Hist,
    download_first_byte: Hist,
    hashed_bytes: AtomicU64,
    hashing_ns: AtomicU64,
    inspected_bytes: AtomicU64,
    inspection_ns: AtomicU64,
    commits: Hist,
    connections_open: AtomicI64,
    connections: AtomicU64,
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

#[inline]
fn enabled() -> bool {
    ENABLED.load(Relaxed)
}

#[inline]
fn with_shard(f: impl FnOnce(&Shard)) {
    if enabled() {
        on_shard(f);
    }
}

/// Runs `f` on this thread's shard; does nothing while the thread is being torn down.
#[inline]
fn on_shard(f: impl FnOnce(&Shard)) {
    let _ = SHARD.try_with(|shard| f(shard));
}

/// Turns counting on or off (the `metrics_enabled` setting), once at start-up.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Relaxed);
}

/// Whether counting is on.
pub fn is_enabled() -> bool {
    enabled()
}

/// Facts about the process, for the info gauges.
struct ProcessInfo {
    driver: String,
    workers: usize,
    started: f64,
}

/// Records the io driver and worker count once the server has chosen them.
pub fn set_process_info(driver: impl std::fmt::Display, workers: usize) {
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let _ = PROCESS.set(ProcessInfo {
        driver: driver.to_string(),
        workers,
        started,
    });
}

/// Records how many images start-up found without their data (`glint_images_missing_data`).
pub fn set_images_missing_data(count: usize) {
    IMAGES_MISSING_DATA.store(count as u64, Relaxed);
}

fn route_slot(template: &str) -> usize {
    ROUTES
        .iter()
        .position(|r| *r == template)
        .unwrap_or(ROUTES.len())
}

fn method_slot(method: &Method) -> usize {
    METHODS
        .iter()
        .position(|m| *m == method.as_str())
        .unwrap_or(METHODS.len() - 1)
}

fn status_slot(status: StatusCode) -> usize {
    usize::from(status.as_u16() / 100)
        .clamp(1, STATUS_CLASSES.len())
        .saturating_sub(1)
}

fn nanos(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Counts a finished request: `glint_requests_total` and `glint_request_duration_seconds`.
fn count_request(route: usize, method: usize, status: usize, started: Instant) {
    with_shard(|s| {
        add(&s.requests[route][method][status], 1);
        s.durations[route][method].observe(&TIME_BOUNDS_NS, nanos(started));
    });
}

/// Meters a response on its way out: bytes sent, and the request's count and duration —
/// at once for in-memory bodies, when the body ends (or is dropped) for streamed ones, which
/// also count as downloads in flight and record their time to first byte.
pub fn meter_response(
    response: Response<Body>,
    template: &str,
    method: &Method,
    started: Instant,
) -> Response<Body> {
    if !enabled() {
        return response;
    }
    let (route, method) = (route_slot(template), method_slot(method));
    let status = status_slot(response.status());
    let (parts, body) = response.into_parts();
    let body = match body {
        Body::Stream(inner) => {
            with_shard(|s| add_signed(&s.downloads_in_flight, 1));
            Body::Stream(Box::pin(Metered {
                inner,
                route,
                method,
                status,
                started,
                first_byte: Cell::new(true),
            }))
        }
        other => {
            if let Body::Full(Some(bytes)) = &other {
                with_shard(|s| add(&s.bytes_sent, bytes.len() as u64));
            }
            count_request(route, method, status, started);
            other
        }
    };
    Response::from_parts(parts, body)
}

/// A streamed body that counts what passes.
struct Metered {
    inner: Pin<Box<dyn ByteStream>>,
    route: usize,
    method: usize,
    status: usize,
    started: Instant,
    first_byte: Cell<bool>,
}

impl ByteStream for Metered {
    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::io::Result<Bytes>>> {
        let polled = self.inner.as_mut().poll_next(cx);
        if let Poll::Ready(Some(Ok(bytes))) = &polled {
            let first = self.first_byte.replace(false);
            let started = self.started;
            with_shard(|s| {
                add(&s.bytes_sent, bytes.len() as u64);
                if first {
                    s.download_first_byte
                        .observe(&TIME_BOUNDS_NS, nanos(started));
                }
            });
        }
        polled
    }

    fn remaining(&self) -> u64 {
        self.inner.remaining()
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        with_shard(|s| add_signed(&s.downloads_in_flight, -1));
        count_request(self.route, self.method, self.status, self.started);
    }
}

/// Counts image bytes handed to the zero-copy (splice) path.
#[inline]
pub fn spliced(bytes: u64) {
    with_shard(|s| add(&s.spliced_bytes, bytes));
}

/// Counts request-body bytes read (uploads, JSON documents).
#[inline]
pub fn received(bytes: usize) {
    with_shard(|s| add(&s.bytes_received, bytes as u64));
}

/// Runs one hashing step over `bytes` bytes and counts it (`glint_hashed_bytes_total`,
/// `glint_hashing_seconds_total`).
#[inline]
pub fn hashing<T>(bytes: usize, hash: impl FnOnce() -> T) -> T {
    if !enabled() {
        return hash();
    }
    let started = Instant::now();
    let out = hash();
    let spent = nanos(started);
    with_shard(|s| {
        add(&s.hashed_bytes, bytes as u64);
        add(&s.hashing_ns, spent);
    });
    out
}

/// Runs one inspection step over `bytes` bytes and counts it (`glint_inspected_bytes_total`,
/// `glint_inspection_seconds_total`).
#[inline]
pub fn inspecting<T>(bytes: usize, inspect: impl FnOnce() -> T) -> T {
    if !enabled() {
        return inspect();
    }
    let started = Instant::now();
    let out = inspect();
    let spent = nanos(started);
    with_shard(|s| {
        add(&s.inspected_bytes, bytes as u64);
        add(&s.inspection_ns, spent);
    });
    out
}

/// Runs one writer job (a metadata transaction and the file operations that go with it) and
/// records its duration (`glint_meta_commit_duration_seconds`).
#[inline]
pub fn commit<T>(job: impl FnOnce() -> T) -> T {
    if !enabled() {
        return job();
    }
    let started = Instant::now();
    let out = job();
    let spent = nanos(started);
    with_shard(|s| s.commits.observe(&TIME_BOUNDS_NS, spent));
    out
}

/// A connection was accepted on this worker; the guard counts it closed when dropped.
pub fn connection_opened() -> ConnectionGuard {
    let counted = enabled();
    if counted {
        with_shard(|s| {
            add(&s.connections, 1);
            add_signed(&s.connections_open, 1);
        });
    }
    ConnectionGuard { counted }
}

/// Counts a connection closed when dropped.
pub struct ConnectionGuard {
    counted: bool,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if self.counted {
            on_shard(|s| add_signed(&s.connections_open, -1));
        }
    }
}

/// Tracks one upload request from its first line: counted in flight once the body starts,
/// and counted in `glint_uploads_total` exactly once, however it ends. Dropped unfinished
/// before the body it counts as refused (`precondition`: the image could not take data),
/// after it as failed (`abandoned`).
pub struct UploadTracker {
    counted: bool,
    in_body: bool,
    finished: bool,
}

/// Starts tracking an upload request.
pub fn upload_started() -> UploadTracker {
    UploadTracker {
        counted: enabled(),
        in_body: false,
        finished: false,
    }
}

impl UploadTracker {
    /// The image is `saving`: the body is being received.
    pub fn body_started(&mut self) {
        if self.counted && !self.in_body {
            self.in_body = true;
            on_shard(|s| add_signed(&s.uploads_in_flight, 1));
        }
    }

    /// The upload ended as `end`; `size` is the image size when it became active.
    pub fn finish(mut self, end: UploadEnd, size: Option<u64>) {
        self.end(end, size);
    }

    fn end(&mut self, end: UploadEnd, size: Option<u64>) {
        if !self.counted || self.finished {
            return;
        }
        self.finished = true;
        on_shard(|s| {
            add(&s.uploads[end as usize], 1);
            if let Some(size) = size {
                s.upload_sizes.observe(&SIZE_BOUNDS, size);
            }
            if self.in_body {
                add_signed(&s.uploads_in_flight, -1);
            }
        });
    }
}

impl Drop for UploadTracker {
    fn drop(&mut self) {
        let end = if self.in_body {
            UploadEnd::FailedAbandoned
        } else {
            UploadEnd::RefusedPrecondition
        };
        self.end(end, None);
    }
}

// ---- the scrape ----

/// What a scrape needs from the running server besides the shards.
pub struct Sources<'a> {
    /// Image counts by status, when the metadata store could be read.
    pub images_by_status: Option<Vec<(meta::ImageStatus, u64)>>,
    /// The file store's folder (for capacity and free space).
    pub store_dir: &'a std::path::Path,
}

/// Sums of all shards, taken at one scrape.
struct Totals {
    requests: Vec<u64>,
    durations: Vec<(Vec<u64>, u64)>,
    per_worker: Vec<(usize, i64, u64)>,
    scalars: [u64; 7],
    gauges: [i64; 2],
    uploads: [u64; UploadEnd::ALL.len()],
    upload_sizes: (Vec<u64>, u64),
    first_byte: (Vec<u64>, u64),
    commits: (Vec<u64>, u64),
}

fn hist_snapshot(h: &Hist, into: &mut (Vec<u64>, u64)) {
    if into.0.is_empty() {
        into.0 = vec![0; BUCKETS];
    }
    for (total, count) in into.0.iter_mut().zip(&h.counts) {
        *total += count.load(Relaxed);
    }
    into.1 += h.sum.load(Relaxed);
}

fn totals() -> Totals {
    let cells = ROUTE_SLOTS * METHODS.len();
    let mut t = Totals {
        requests: vec![0; cells * STATUS_CLASSES.len()],
        durations: vec![(Vec::new(), 0); cells],
        per_worker: Vec::new(),
        scalars: [0; 7],
        gauges: [0; 2],
        uploads: [0; UploadEnd::ALL.len()],
        upload_sizes: (Vec::new(), 0),
        first_byte: (Vec::new(), 0),
        commits: (Vec::new(), 0),
    };
    let shards = SHARDS.lock().unwrap_or_else(PoisonError::into_inner);
    for s in shards.iter() {
        for route in 0..ROUTE_SLOTS {
            for method in 0..METHODS.len() {
                let cell = route * METHODS.len() + method;
                for status in 0..STATUS_CLASSES.len() {
                    t.requests[cell * STATUS_CLASSES.len() + status] +=
                        s.requests[route][method][status].load(Relaxed);
                }
                hist_snapshot(&s.durations[route][method], &mut t.durations[cell]);
            }
        }
        let scalars = [
            &s.bytes_received,
            &s.bytes_sent,
            &s.hashed_bytes,
            &s.hashing_ns,
            &s.inspected_bytes,
            &s.inspection_ns,
            &s.spliced_bytes,
        ];
        for (total, counter) in t.scalars.iter_mut().zip(scalars) {
            *total += counter.load(Relaxed);
        }
        t.gauges[0] += s.uploads_in_flight.load(Relaxed);
        t.gauges[1] += s.downloads_in_flight.load(Relaxed);
        for (total, counter) in t.uploads.iter_mut().zip(&s.uploads) {
            *total += counter.load(Relaxed);
        }
        hist_snapshot(&s.upload_sizes, &mut t.upload_sizes);
        hist_snapshot(&s.download_first_byte, &mut t.first_byte);
        hist_snapshot(&s.commits, &mut t.commits);
        if let Some(worker) = s.worker {
            t.per_worker.push((
                worker,
                s.connections_open.load(Relaxed),
                s.connections.load(Relaxed),
            ));
        }
    }
    t.per_worker.sort_unstable();
    t
}

fn label(name: &str, value: &str) -> proto::LabelPair {
    let mut pair = proto::LabelPair::default();
    pair.set_name(name.to_owned());
    pair.set_value(value.to_owned());
    pair
}

fn labels(pairs: &[(&str, &str)]) -> Vec<proto::LabelPair> {
    pairs.iter().map(|(n, v)| label(n, v)).collect()
}

fn family(name: &str, help: &str, kind: proto::MetricType) -> proto::MetricFamily {
    let mut f = proto::MetricFamily::default();
    f.set_name(name.to_owned());
    f.set_help(help.to_owned());
    f.set_field_type(kind);
    f
}

fn counter(labels: Vec<proto::LabelPair>, value: f64) -> proto::Metric {
    let mut c = proto::Counter::default();
    c.set_value(value);
    let mut m = proto::Metric::from_label(labels);
    m.set_counter(c);
    m
}

fn gauge(labels: Vec<proto::LabelPair>, value: f64) -> proto::Metric {
    let mut g = proto::Gauge::default();
    g.set_value(value);
    let mut m = proto::Metric::from_label(labels);
    m.set_gauge(g);
    m
}

/// A histogram metric from non-cumulative counts; `scale` turns bounds and sum into base
/// units (1e-9 for nanoseconds).
fn histogram(
    labels: Vec<proto::LabelPair>,
    (counts, sum): &(Vec<u64>, u64),
    bounds: &[u64; BUCKETS - 1],
    scale: f64,
) -> proto::Metric {
    let mut cumulative = 0;
    let mut buckets = Vec::with_capacity(BUCKETS - 1);
    for (bound, count) in bounds.iter().zip(counts) {
        cumulative += count;
        let mut b = proto::Bucket::default();
        b.set_upper_bound(*bound as f64 * scale);
        b.set_cumulative_count(cumulative);
        buckets.push(b);
    }
    let total: u64 = counts.iter().sum();
    let mut h = proto::Histogram::default();
    h.set_sample_count(total);
    h.set_sample_sum(*sum as f64 * scale);
    h.set_bucket(buckets);
    let mut m = proto::Metric::from_label(labels);
    m.set_histogram(h);
    m
}

fn empty_hist() -> (Vec<u64>, u64) {
    (vec![0; BUCKETS], 0)
}

fn or_empty(h: &(Vec<u64>, u64)) -> (Vec<u64>, u64) {
    if h.0.is_empty() {
        empty_hist()
    } else {
        h.clone()
    }
}

/// Capacity and free bytes of the filesystem holding `dir`.
fn filesystem_space(dir: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: `path` is a valid NUL-terminated string and `stat` a writable statvfs.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut stat) };
    if rc != 0 {
        return None;
    }
    let block = stat.f_frsize as u64;
    Some((
        (stat.f_blocks as u64).saturating_mul(block),
        (stat.f_bavail as u64).saturating_mul(block),
    ))
}

/// All metric families of one scrape.
fn gather(sources: &Sources<'_>) -> Vec<proto::MetricFamily> {
    use proto::MetricType::{COUNTER, GAUGE, HISTOGRAM};
    let t = totals();
    let mut out = Vec::new();

    let mut requests = family(
        "glint_requests_total",
        "HTTP requests answered, by route template, method and status class.",
        COUNTER,
    );
    let mut durations = family(
        "glint_request_duration_seconds",
        "Time from a request's arrival to the end of its response body, by route and method.",
        HISTOGRAM,
    );
    let route_name = |route: usize| ROUTES.get(route).copied().unwrap_or("other");
    for route in 0..ROUTE_SLOTS {
        for (method, method_name) in METHODS.iter().enumerate() {
            let cell = route * METHODS.len() + method;
            for (status, class) in STATUS_CLASSES.iter().enumerate() {
                let n = t.requests[cell * STATUS_CLASSES.len() + status];
                if n > 0 {
                    requests.mut_metric().push(counter(
                        labels(&[
                            ("route", route_name(route)),
                            ("method", method_name),
                            ("status", class),
                        ]),
                        n as f64,
                    ));
                }
            }
            let hist = &t.durations[cell];
            if hist.0.iter().any(|&n| n > 0) {
                durations.mut_metric().push(histogram(
                    labels(&[("route", route_name(route)), ("method", method_name)]),
                    hist,
                    &TIME_BOUNDS_NS,
                    1e-9,
                ));
            }
        }
    }
    out.push(requests);
    out.push(durations);

    let scalar_counters: [(&str, &str, f64); 7] = [
        (
            "glint_received_bytes_total",
            "Request body bytes read (image data and JSON documents).",
            t.scalars[0] as f64,
        ),
        (
            "glint_sent_bytes_total",
            "Response body bytes sent (image data and documents).",
            t.scalars[1] as f64,
        ),
        (
            "glint_hashed_bytes_total",
            "Bytes fed to a digest (each upload byte is hashed twice: md5 and os_hash_algo).",
            t.scalars[2] as f64,
        ),
        (
            "glint_hashing_seconds_total",
            "Time the hashing threads spent hashing.",
            t.scalars[3] as f64 * 1e-9,
        ),
        (
            "glint_inspected_bytes_total",
            "Upload bytes shown to the disk-format inspector.",
            t.scalars[4] as f64,
        ),
        (
            "glint_inspection_seconds_total",
            "Time spent inspecting upload bytes.",
            t.scalars[5] as f64 * 1e-9,
        ),
        (
            "glint_spliced_bytes_total",
            "Image bytes sent with splice (file to socket, no copy through user space); \
             also counted in glint_sent_bytes_total.",
            t.scalars[6] as f64,
        ),
    ];
    for (name, help, value) in scalar_counters {
        let mut f = family(name, help, COUNTER);
        f.mut_metric().push(counter(Vec::new(), value));
        out.push(f);
    }

    for (name, help, value) in [
        (
            "glint_uploads_in_flight",
            "Uploads receiving their body now.",
            t.gauges[0],
        ),
        (
            "glint_downloads_in_flight",
            "Downloads sending their body now.",
            t.gauges[1],
        ),
    ] {
        let mut f = family(name, help, GAUGE);
        f.mut_metric().push(gauge(Vec::new(), value as f64));
        out.push(f);
    }

    let mut uploads = family(
        "glint_uploads_total",
        "Upload requests by outcome (active, refused, failed) and reason.",
        COUNTER,
    );
    for (end, n) in UploadEnd::ALL.iter().zip(t.uploads) {
        let (outcome, reason) = end.labels();
        uploads.mut_metric().push(counter(
            labels(&[("outcome", outcome), ("reason", reason)]),
            n as f64,
        ));
    }
    out.push(uploads);

    for (name, help, hist, bounds, scale) in [
        (
            "glint_upload_size_bytes",
            "Size of images that became active.",
            or_empty(&t.upload_sizes),
            &SIZE_BOUNDS,
            1.0,
        ),
        (
            "glint_download_first_byte_seconds",
            "Time from a download request's arrival to its first body byte.",
            or_empty(&t.first_byte),
            &TIME_BOUNDS_NS,
            1e-9,
        ),
        (
            "glint_meta_commit_duration_seconds",
            "Time of one writer job: a metadata transaction (with its fsync) and the file \
             operations committed with it.",
            or_empty(&t.commits),
            &TIME_BOUNDS_NS,
            1e-9,
        ),
    ] {
        let mut f = family(name, help, HISTOGRAM);
        f.mut_metric()
            .push(histogram(Vec::new(), &hist, bounds, scale));
        out.push(f);
    }

    let mut open = family(
        "glint_open_connections",
        "Connections open on each worker (core).",
        GAUGE,
    );
    let mut accepted = family(
        "glint_connections_total",
        "Connections accepted by each worker (core).",
        COUNTER,
    );
    for (worker, now, total) in &t.per_worker {
        let worker = worker.to_string();
        open.mut_metric()
            .push(gauge(labels(&[("worker", &worker)]), *now as f64));
        accepted
            .mut_metric()
            .push(counter(labels(&[("worker", &worker)]), *total as f64));
    }
    out.push(open);
    out.push(accepted);

    if let Some(counts) = &sources.images_by_status {
        let mut f = family("glint_images", "Images by status.", GAUGE);
        for (status, n) in counts {
            f.mut_metric()
                .push(gauge(labels(&[("status", &status.to_string())]), *n as f64));
        }
        out.push(f);
    }
    let mut missing = family(
        "glint_images_missing_data",
        "Active or deactivated images whose data file start-up found missing or damaged.",
        GAUGE,
    );
    missing
        .mut_metric()
        .push(gauge(Vec::new(), IMAGES_MISSING_DATA.load(Relaxed) as f64));
    out.push(missing);
    if let Some((capacity, free)) = filesystem_space(sources.store_dir) {
        let store = [("store", "file")];
        for (name, help, value) in [
            (
                "glint_store_capacity_bytes",
                "Size of the filesystem holding the store.",
                capacity,
            ),
            (
                "glint_store_free_bytes",
                "Bytes of the store's filesystem still available to glint.",
                free,
            ),
            (
                "glint_store_used_bytes",
                "Bytes of the store's filesystem in use (by anything).",
                capacity.saturating_sub(free),
            ),
        ] {
            let mut f = family(name, help, GAUGE);
            f.mut_metric().push(gauge(labels(&store), value as f64));
            out.push(f);
        }
    }

    let mut build = family(
        "glint_build_info",
        "Always 1; the labels say which glint this is.",
        GAUGE,
    );
    build.mut_metric().push(gauge(
        labels(&[("version", env!("CARGO_PKG_VERSION"))]),
        1.0,
    ));
    out.push(build);
    if let Some(info) = PROCESS.get() {
        let mut driver = family(
            "glint_io_driver_info",
            "Always 1; the label is the io driver the workers run on (io_uring or epoll).",
            GAUGE,
        );
        driver
            .mut_metric()
            .push(gauge(labels(&[("driver", &info.driver)]), 1.0));
        out.push(driver);
        let mut workers = family("glint_workers", "Worker threads (one per core).", GAUGE);
        workers
            .mut_metric()
            .push(gauge(Vec::new(), info.workers as f64));
        out.push(workers);
        let mut started = family(
            "glint_process_start_time_seconds",
            "When this glint process started, in seconds since the Unix epoch.",
            GAUGE,
        );
        started.mut_metric().push(gauge(Vec::new(), info.started));
        out.push(started);
    }
    out
}

/// A scrape as a `prometheus` collector, so the crate's encoder renders it.
struct Scrape<'a>(Sources<'a>);

impl Collector for Scrape<'_> {
    fn desc(&self) -> Vec<&Desc> {
        Vec::new()
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        gather(&self.0)
    }
}

/// Renders every metric in the Prometheus text format.
pub fn render(sources: Sources<'_>) -> Result<String, prometheus::Error> {
    use prometheus::Encoder;
    let mut families = Scrape(sources).collect();
    // The encoder refuses a family without series (e.g. no worker has counted yet).
    families.retain(|f| !f.get_metric().is_empty());
    let mut text = Vec::new();
    prometheus::TextEncoder::new().encode(&families, &mut text)?;
    String::from_utf8(text).map_err(|e| prometheus::Error::Msg(e.to_string()))
}

/// The `GET /metrics` response.
pub fn response(sources: Sources<'_>) -> Response<Body> {
    let (status, text) = match render(sources) {
        Ok(text) => (StatusCode::OK, text),
        Err(e) => {
            tracing::error!(error = %e, "cannot render metrics");
            (StatusCode::INTERNAL_SERVER_ERROR, String::new())
        }
    };
    let mut response = Response::new(Body::full(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape() -> String {
        render(Sources {
            images_by_status: None,
            store_dir: std::path::Path::new("."),
        })
        .unwrap()
    }

    fn value(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{series} not in\n{text}"))
            .parse()
            .unwrap()
    }

    #[test]
    fn shards_do_not_share_cache_lines() {
        assert_eq!(std::mem::align_of::<Shard>(), 128);
        assert_eq!(std::mem::size_of::<Shard>() % 128, 0);
    }

    #[test]
    fn counts_from_several_threads_are_summed() {
        let before = value(&scrape(), "glint_received_bytes_total");
        let threads: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| (0..1000).for_each(|_| received(3))))
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        // Other tests may count too; ours are all there.
        assert!(value(&scrape(), "glint_received_bytes_total") - before >= 12_000.0);
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_bounded() {
        let h = Hist::default();
        for ns in [1, 600_000, 2_000_000_000, 400_000_000_000] {
            h.observe(&TIME_BOUNDS_NS, ns);
        }
        let mut snapshot = (Vec::new(), 0);
        hist_snapshot(&h, &mut snapshot);
        let m = histogram(Vec::new(), &snapshot, &TIME_BOUNDS_NS, 1e-9);
        let h = m.get_histogram();
        assert_eq!(h.get_sample_count(), 4);
        let buckets = h.get_bucket();
        assert_eq!(buckets[0].cumulative_count(), 1); // ≤ 0.5 ms
        assert_eq!(buckets[1].cumulative_count(), 2); // ≤ 1 ms
        assert_eq!(buckets[11].cumulative_count(), 3); // ≤ 2.5 s
        assert_eq!(buckets[16].cumulative_count(), 3); // ≤ 300 s; one is above
        assert!((buckets[16].upper_bound() - 300.0).abs() < 1e-9);
    }

    #[test]
    fn upload_tracker_counts_each_upload_once() {
        let series = |reason: &str, outcome: &str| {
            format!("glint_uploads_total{{outcome=\"{outcome}\",reason=\"{reason}\"}}")
        };
        let text = scrape();
        let abandoned = value(&text, &series("abandoned", "failed"));
        let precondition = value(&text, &series("precondition", "refused"));
        let format = value(&text, &series("format", "refused"));
        drop(upload_started());
        let mut t = upload_started();
        t.body_started();
        drop(t);
        let mut t = upload_started();
        t.body_started();
        t.finish(UploadEnd::RefusedFormat, None);
        let text = scrape();
        assert!(value(&text, &series("precondition", "refused")) > precondition);
        assert!(value(&text, &series("abandoned", "failed")) > abandoned);
        assert!(value(&text, &series("format", "refused")) > format);
    }

    /// What counting costs per call, for docs/PERFORMANCE.md (run with `--release --ignored
    /// --nocapture`). A 1 GiB upload makes a few calls per frame (frames are ≤ 1 MiB, usually
    /// 16-64 KiB); a download one per 256 KiB frame.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn counting_cost() {
        const CALLS: u32 = 10_000_000;
        let time = |what: &str, f: &dyn Fn()| {
            let started = Instant::now();
            for _ in 0..CALLS {
                f();
            }
            let ns = started.elapsed().as_nanos() as f64 / f64::from(CALLS);
            println!("{what:<36} {ns:6.1} ns/call");
        };
        time("received (bytes counter)", &|| {
            received(std::hint::black_box(65536))
        });
        time("hashing (counter + 2 clock reads)", &|| {
            hashing(65536, || std::hint::black_box(()))
        });
        time("commit histogram (2 clock reads)", &|| {
            commit(|| std::hint::black_box(()))
        });
        set_enabled(false);
        time("received, metrics off", &|| {
            received(std::hint::black_box(65536))
        });
        set_enabled(true);
    }

    #[test]
    fn size_bounds_are_powers_of_four() {
        assert_eq!(SIZE_BOUNDS[0], 1024);
        assert_eq!(SIZE_BOUNDS[5], 1 << 20);
        assert_eq!(SIZE_BOUNDS[16], 1 << 42);
    }
}
