//! Every metric glint exports, and the calls that count them. This module is a leaf: it
//! knows counters, names and labels, not the types being counted — a response body meters
//! itself (`body`), an upload error maps itself to an [`UploadEnd`] (`datapath::upload`), and
//! the route labels are given at start-up from the router's table ([`set_route_labels`]).
//!
//! - here: the API (what can be counted) and the label sets;
//! - `shard`: the per-thread counters the API writes;
//! - `scrape`: summing the shards and rendering them, with every metric's name and help.
//!
//! **Labels** are bounded: route templates, method, status class, upload outcome and reason,
//! worker index, image status, store — never image ids, users or projects.
//!
//! **Off switch.** With `metrics_enabled = false` nothing is counted (each call below returns
//! after one relaxed load) and `/metrics` answers 404; it exists to measure what counting
//! costs.

mod cache;
mod scrape;
mod shard;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use http::{Method, StatusCode};

pub use cache::{
    cache_bytes, cache_evicted, cache_fill, cache_request, set_store_labels, store_read,
    CacheResult,
};
pub use scrape::{render, Sources};
use shard::{add, add_signed, nanos, on_shard, with_shard, Requests, SIZE_BOUNDS, TIME_BOUNDS_NS};

static ENABLED: AtomicBool = AtomicBool::new(true);
static PROCESS: OnceLock<ProcessInfo> = OnceLock::new();
static ROUTE_LABELS: OnceLock<&'static [&'static str]> = OnceLock::new();
/// `active`/`deactivated` images whose data file start-up found missing or damaged.
static IMAGES_MISSING_DATA: AtomicU64 = AtomicU64::new(0);

/// `method` label values; any other method counts as `other`.
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "other"];
/// `status` label values.
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Why a lingering close ended (`server::linger`): the `end` label of
/// `glint_lingering_closes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum LingerEnd {
    /// The client closed its side (or reset): it had what it needed.
    Closed,
    /// The client sent nothing for `lingering_close_idle_ms`.
    Idle,
    /// `lingering_close_time_ms` was reached.
    Time,
    /// `lingering_close_max_bytes` were discarded.
    Bytes,
    /// The server is shutting down and the client was silent.
    Shutdown,
}

impl LingerEnd {
    pub(crate) const ALL: [LingerEnd; 5] = [
        LingerEnd::Closed,
        LingerEnd::Idle,
        LingerEnd::Time,
        LingerEnd::Bytes,
        LingerEnd::Shutdown,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            LingerEnd::Closed => "closed",
            LingerEnd::Idle => "idle",
            LingerEnd::Time => "time",
            LingerEnd::Bytes => "bytes",
            LingerEnd::Shutdown => "shutdown",
        }
    }
}

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
    pub(crate) const ALL: [UploadEnd; 11] = [
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

#[inline]
fn enabled() -> bool {
    ENABLED.load(Relaxed)
}

/// Turns counting on or off (the `metrics_enabled` setting), once at start-up.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Relaxed);
}

/// Whether counting is on.
pub fn is_enabled() -> bool {
    enabled()
}

/// Declares the `route` label values of `glint_requests_total` and
/// `glint_request_duration_seconds`, once at start-up, before any request is counted: the
/// router's templates (its table is their one source). Route slot `i` is `labels[i]`. Later
/// calls are ignored.
pub fn set_route_labels(labels: &'static [&'static str]) {
    let _ = ROUTE_LABELS.set(labels);
}

fn route_labels() -> &'static [&'static str] {
    ROUTE_LABELS.get().copied().unwrap_or_default()
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

/// One request's entry in `glint_requests_total` and `glint_request_duration_seconds`, made
/// when its response is ready and counted when dropped — with the response, or, for a
/// streamed body, when the body ends or is dropped. Also counts the body's bytes
/// (`glint_sent_bytes_total`) and, when streamed, the download in flight and its time to
/// first byte.
pub struct RequestMeter {
    route: usize,
    method: usize,
    status: usize,
    started: Instant,
    counted: bool,
    streaming: bool,
    first_byte: bool,
}

/// Starts metering the response of a request that arrived at `started`, routed to route
/// slot `route` (see [`set_route_labels`]).
pub fn request_meter(
    route: usize,
    method: &Method,
    status: StatusCode,
    started: Instant,
) -> RequestMeter {
    RequestMeter {
        route,
        method: method_slot(method),
        status: status_slot(status),
        started,
        counted: enabled(),
        streaming: false,
        first_byte: true,
    }
}

impl RequestMeter {
    /// Whether this meter counts anything (metrics are on).
    pub fn is_counting(&self) -> bool {
        self.counted
    }

    /// A body held in memory went out whole.
    pub fn sent(&mut self, bytes: u64) {
        if self.counted {
            on_shard(|s| add(&s.bytes_sent, bytes));
        }
    }

    /// The body is streamed: a download in flight until this meter is dropped.
    pub fn streaming(&mut self) {
        if self.counted && !self.streaming {
            self.streaming = true;
            on_shard(|s| add_signed(&s.downloads_in_flight, 1));
        }
    }

    /// A piece of a streamed body went out; the first one records the time to first byte.
    pub fn streamed(&mut self, bytes: u64) {
        if !self.counted {
            return;
        }
        let first = std::mem::replace(&mut self.first_byte, false);
        let started = self.started;
        on_shard(|s| {
            add(&s.bytes_sent, bytes);
            if first {
                s.download_first_byte
                    .observe(&TIME_BOUNDS_NS, nanos(started));
            }
        });
    }
}

impl Drop for RequestMeter {
    fn drop(&mut self) {
        if !self.counted {
            return;
        }
        let (route, method, status) = (self.route, self.method, self.status);
        let (spent, streaming) = (nanos(self.started), self.streaming);
        on_shard(|s| {
            if streaming {
                add_signed(&s.downloads_in_flight, -1);
            }
            s.requests
                .get_or_init(|| Requests::new(route_labels().len()))
                .count(route, method, status, spent);
        });
    }
}

/// Counts one lingering close and the request-body bytes it discarded.
pub fn lingered(end: LingerEnd, discarded_bytes: u64) {
    with_shard(|s| {
        add(&s.lingering_closes[end as usize], 1);
        add(&s.lingering_discarded_bytes, discarded_bytes);
    });
}

/// Counts image bytes handed to the zero-copy (splice) path.
#[inline]
pub fn spliced(bytes: u64) {
    with_shard(|s| add(&s.spliced_bytes, bytes));
}

/// Counts upload bytes written with O_DIRECT.
#[inline]
pub fn direct_io_written(bytes: u64) {
    with_shard(|s| add(&s.direct_io_bytes, bytes));
}

/// Counts an upload that asked for O_DIRECT and was written buffered instead.
pub fn direct_io_refused() {
    with_shard(|s| add(&s.direct_io_refused, 1));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape() -> String {
        render(Sources {
            images_by_status: None,
            store_space: &[("file".to_owned(), 100, 40)],
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
    fn requests_are_counted_under_the_declared_labels() {
        // The unit tests' process declares its own labels (the server declares the router's).
        set_route_labels(&["/a", "/b", "unmatched"]);
        let labels = route_labels();
        let slot = labels.len() - 1;
        let series = format!(
            "glint_requests_total{{route=\"{}\",method=\"PUT\",status=\"4xx\"}}",
            labels[slot]
        );
        let before = scrape()
            .lines()
            .find_map(|l| l.strip_prefix(&series)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        let started = Instant::now();
        std::thread::spawn(move || {
            let mut meter = request_meter(slot, &Method::PUT, StatusCode::NOT_FOUND, started);
            meter.sent(10);
        })
        .join()
        .unwrap();
        assert_eq!(value(&scrape(), &series), before + 1.0);
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
}
