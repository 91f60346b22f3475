//! The scrape: sums every shard and renders the sums, with the facts only the running server
//! knows (image counts, store space), in the Prometheus text format. The `prometheus` crate
//! is used only to describe and encode the sums (its `Collector` and text encoder): its own
//! counters are one shared atomic per series, which every core would write.
//!
//! Every metric's name and help text is here.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::PoisonError;

use prometheus::core::{Collector, Desc};
use prometheus::proto;

use super::shard::{Hist, BUCKETS, SHARDS, SIZE_BOUNDS, TIME_BOUNDS_NS};
use super::{
    route_labels, LingerEnd, UploadEnd, IMAGES_MISSING_DATA, METHODS, PROCESS, STATUS_CLASSES,
};

/// What a scrape needs from the running server besides the shards.
pub struct Sources<'a> {
    /// Image counts by status, when the metadata store could be read.
    pub images_by_status: Option<Vec<(meta::ImageStatus, u64)>>,
    /// Each store that knows its room (file stores): `(id, capacity, free)` bytes.
    pub store_space: &'a [(String, u64, u64)],
}

/// Sums of all shards, taken at one scrape.
struct Totals {
    requests: Vec<u64>,
    durations: Vec<(Vec<u64>, u64)>,
    per_worker: Vec<(usize, i64, u64)>,
    scalars: [u64; 10],
    gauges: [i64; 2],
    uploads: [u64; UploadEnd::ALL.len()],
    lingering_closes: [u64; LingerEnd::ALL.len()],
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

fn totals(routes: usize) -> Totals {
    let cells = routes * METHODS.len();
    let mut t = Totals {
        requests: vec![0; cells * STATUS_CLASSES.len()],
        durations: vec![(Vec::new(), 0); cells],
        per_worker: Vec::new(),
        scalars: [0; 10],
        gauges: [0; 2],
        uploads: [0; UploadEnd::ALL.len()],
        lingering_closes: [0; LingerEnd::ALL.len()],
        upload_sizes: (Vec::new(), 0),
        first_byte: (Vec::new(), 0),
        commits: (Vec::new(), 0),
    };
    let shards = SHARDS.lock().unwrap_or_else(PoisonError::into_inner);
    for s in shards.iter() {
        if let Some(requests) = s.requests.get() {
            for (total, count) in t.requests.iter_mut().zip(requests.counts.iter()) {
                *total += count.load(Relaxed);
            }
            for (total, hist) in t.durations.iter_mut().zip(requests.durations.iter()) {
                hist_snapshot(hist, total);
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
            &s.direct_io_bytes,
            &s.direct_io_refused,
            &s.lingering_discarded_bytes,
        ];
        for (total, counter) in t.scalars.iter_mut().zip(scalars) {
            *total += counter.load(Relaxed);
        }
        t.gauges[0] += s.uploads_in_flight.load(Relaxed);
        t.gauges[1] += s.downloads_in_flight.load(Relaxed);
        for (total, counter) in t.uploads.iter_mut().zip(&s.uploads) {
            *total += counter.load(Relaxed);
        }
        for (total, counter) in t.lingering_closes.iter_mut().zip(&s.lingering_closes) {
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

/// All metric families of one scrape.
fn gather(sources: &Sources<'_>) -> Vec<proto::MetricFamily> {
    use proto::MetricType::{COUNTER, GAUGE, HISTOGRAM};
    let routes = route_labels();
    let t = totals(routes.len());
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
    for (route, route_name) in routes.iter().enumerate() {
        for (method, method_name) in METHODS.iter().enumerate() {
            let cell = route * METHODS.len() + method;
            for (status, class) in STATUS_CLASSES.iter().enumerate() {
                let n = t.requests[cell * STATUS_CLASSES.len() + status];
                if n > 0 {
                    requests.mut_metric().push(counter(
                        labels(&[
                            ("route", route_name),
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
                    labels(&[("route", route_name), ("method", method_name)]),
                    hist,
                    &TIME_BOUNDS_NS,
                    1e-9,
                ));
            }
        }
    }
    out.push(requests);
    out.push(durations);

    let scalar_counters: [(&str, &str, f64); 10] = [
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
        (
            "glint_direct_io_bytes_total",
            "Upload bytes written with O_DIRECT (direct_io_upload), past the page cache.",
            t.scalars[7] as f64,
        ),
        (
            "glint_direct_io_refused_total",
            "Uploads that asked for O_DIRECT (direct_io_upload) and were written through the \
             page cache because the file system refused it.",
            t.scalars[8] as f64,
        ),
        (
            "glint_lingering_discarded_bytes_total",
            "Request-body bytes a client still sent after its answer, discarded unread by a \
             lingering close (never hashed, inspected or written).",
            t.scalars[9] as f64,
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

    let mut lingering = family(
        "glint_lingering_closes_total",
        "Connections closed after an answer sent before the request body ended, by why the \
         lingering (discarding what the client still sent) stopped.",
        COUNTER,
    );
    for (end, n) in LingerEnd::ALL.iter().zip(t.lingering_closes) {
        lingering
            .mut_metric()
            .push(counter(labels(&[("end", end.label())]), n as f64));
    }
    out.push(lingering);

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
    let families = [
        (
            "glint_store_capacity_bytes",
            "Size of the filesystem holding the store.",
        ),
        (
            "glint_store_free_bytes",
            "Bytes of the store's filesystem still available to glint.",
        ),
        (
            "glint_store_used_bytes",
            "Bytes of the store's filesystem in use (by anything).",
        ),
    ];
    if !sources.store_space.is_empty() {
        for (index, (name, help)) in families.into_iter().enumerate() {
            let mut f = family(name, help, GAUGE);
            for (store, capacity, free) in sources.store_space {
                let value = match index {
                    0 => *capacity,
                    1 => *free,
                    _ => capacity.saturating_sub(*free),
                };
                f.mut_metric()
                    .push(gauge(labels(&[("store", store)]), value as f64));
            }
            out.push(f);
        }
    }

    out.extend(cache_families());

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

/// The image cache's and the stores' families (`metrics::cache`).
fn cache_families() -> Vec<proto::MetricFamily> {
    use super::cache::{CacheResult, CACHE, STORES};
    use proto::MetricType::{COUNTER, GAUGE};
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Relaxed) as f64;
    let mut out = Vec::new();
    if let Some(stores) = STORES.get() {
        let mut f = family(
            "glint_store_read_bytes_total",
            "Bytes read from each store: downloads served from it and image cache fills.",
            COUNTER,
        );
        for (store, bytes) in stores {
            f.mut_metric()
                .push(counter(labels(&[("store", store)]), load(bytes)));
        }
        out.push(f);
    }
    // The cache's families are exported without a cache too (zeros), so that dashboards
    // and alerts find the same series on every gateway.
    let mut requests = family(
        "glint_cache_requests_total",
        "Image downloads by how the image cache met them: hit (served from it), miss (from \
         the store; a fill may start), join (streamed from a fill in progress).",
        COUNTER,
    );
    for result in CacheResult::ALL {
        requests.mut_metric().push(counter(
            labels(&[("result", result.label())]),
            load(&CACHE.requests[result as usize]),
        ));
    }
    out.push(requests);
    let mut fills = family(
        "glint_cache_fills_total",
        "Image cache fills by result: ok (verified and published) or failed.",
        COUNTER,
    );
    for (i, result) in ["ok", "failed"].into_iter().enumerate() {
        fills.mut_metric().push(counter(
            labels(&[("result", result)]),
            load(&CACHE.fills[i]),
        ));
    }
    out.push(fills);
    let mut evictions = family(
        "glint_cache_evictions_total",
        "Image cache entries evicted (least recently used) to make room for a fill.",
        COUNTER,
    );
    evictions
        .mut_metric()
        .push(counter(Vec::new(), load(&CACHE.evictions)));
    out.push(evictions);
    let mut bytes = family(
        "glint_cache_bytes",
        "Bytes the image cache holds, with the room reserved by fills in progress.",
        GAUGE,
    );
    bytes
        .mut_metric()
        .push(gauge(Vec::new(), load(&CACHE.bytes)));
    out.push(bytes);
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
