//! Per-operation counters and the latency histogram (HdrHistogram, microseconds, 3 significant
//! digits: exact enough for p99 of a 1 ms request and still fine for a 60 s upload).

use std::time::Duration;

use hdrhistogram::Histogram;

/// What one kind of operation (upload, download, list) did during the measured phase.
#[derive(Clone)]
pub struct OpStats {
    pub requests: u64,
    pub errors: u64,
    /// Body bytes moved (sent for uploads, received for downloads and lists).
    pub bytes: u64,
    /// Bytes of downloads whose md5 was checked and matched.
    pub bytes_verified: u64,
    /// Latency of successful requests, in microseconds.
    pub latency_us: Histogram<u64>,
}

impl Default for OpStats {
    fn default() -> Self {
        OpStats {
            requests: 0,
            errors: 0,
            bytes: 0,
            bytes_verified: 0,
            // 1 µs .. 1 hour, auto-resizing past that.
            latency_us: new_histogram(),
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    let mut h = Histogram::new_with_bounds(1, 3_600_000_000, 3)
        .expect("1 µs .. 1 h with 3 significant digits is a valid histogram");
    h.auto(true);
    h
}

impl OpStats {
    pub fn record_ok(&mut self, took: Duration, bytes: u64) {
        self.requests += 1;
        self.bytes += bytes;
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        self.latency_us.saturating_record(us);
    }

    pub fn record_error(&mut self, bytes: u64) {
        self.requests += 1;
        self.errors += 1;
        self.bytes += bytes;
    }

    pub fn merge(&mut self, other: &OpStats) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.bytes += other.bytes;
        self.bytes_verified += other.bytes_verified;
        self.latency_us
            .add(&other.latency_us)
            .expect("auto-resizing histograms always merge");
    }

    /// Latency summary in milliseconds (zeros when nothing succeeded).
    pub fn latency(&self) -> Latency {
        let h = &self.latency_us;
        if h.is_empty() {
            return Latency::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within(got: f64, want: f64) -> bool {
        // 3 significant digits: relative error below 0.1 %.
        (got - want).abs() <= want * 0.001 + 0.001
    }

    #[test]
    fn percentiles_of_one_to_a_thousand_ms() {
        let mut s = OpStats::default();
        for ms in 1..=1000u64 {
            s.record_ok(Duration::from_millis(ms), 10);
        }
        let l = s.latency();
        assert!(within(l.p50, 500.0), "{l:?}");
        assert!(within(l.p90, 900.0), "{l:?}");
        assert!(within(l.p99, 990.0), "{l:?}");
        assert!(within(l.max, 1000.0), "{l:?}");
        assert!(within(l.mean, 500.5), "{l:?}");
        assert_eq!((s.requests, s.errors, s.bytes), (1000, 0, 10_000));
    }

    #[test]
    fn a_slow_tail_shows_in_p99_not_p50() {
        let mut s = OpStats::default();
        for _ in 0..980 {
            s.record_ok(Duration::from_micros(200), 0);
        }
        for _ in 0..20 {
            s.record_ok(Duration::from_secs(2), 0);
        }
        let l = s.latency();
        assert!(within(l.p50, 0.2), "{l:?}");
        assert!(within(l.p90, 0.2), "{l:?}");
        assert!(within(l.p99, 2000.0), "{l:?}");
    }

    #[test]
    fn errors_count_but_have_no_latency() {
        let mut s = OpStats::default();
        s.record_error(5);
        assert_eq!(s.latency(), Latency::default());
        let mut t = OpStats::default();
        t.record_ok(Duration::from_millis(3), 7);
        t.merge(&s);
        assert_eq!((t.requests, t.errors, t.bytes), (2, 1, 12));
        assert!(within(t.latency().max, 3.0));
    }
}
