//! The server's cost, read from /proc: CPU-seconds (utime + stime of the process and of its
//! child processes, e.g. nginx or uWSGI workers) and peak RSS (sum over the same processes,
//! sampled every 20 ms by a thread).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context as _};

/// The process and its direct children (all threads' children).
fn pids_of(pid: u32) -> Vec<u32> {
    let mut pids = vec![pid];
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let path = task.path().join("children");
            if let Ok(children) = std::fs::read_to_string(path) {
                pids.extend(
                    children
                        .split_whitespace()
                        .filter_map(|c| c.parse::<u32>().ok()),
                );
            }
        }
    }
    pids
}

/// Clock ticks per second of /proc/PID/stat (USER_HZ): 100 on every Linux port that matters.
const USER_HZ: f64 = 100.0;

/// utime + stime of one process, in seconds (fields 14 and 15 of /proc/PID/stat).
fn cpu_of(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14 → index 11.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// VmRSS of one process, in KiB.
fn rss_kib_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub fn cpu_seconds(pid: u32) -> f64 {
    pids_of(pid).into_iter().filter_map(cpu_of).sum()
}

pub fn rss_kib(pid: u32) -> u64 {
    pids_of(pid).into_iter().filter_map(rss_kib_of).sum()
}

/// Watches a server process for the measured phase.
pub struct ServerWatch {
    pid: u32,
    cpu_start: f64,
    peak_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    sampler: Option<JoinHandle<()>>,
}

/// What the server spent during the measured phase.
#[derive(Clone, Copy, Debug)]
pub struct ServerCost {
    pub pid: u32,
    pub cpu_seconds: f64,
    pub peak_rss_kib: u64,
}

impl ServerWatch {
    pub fn start(pid: u32) -> anyhow::Result<ServerWatch> {
        if !std::path::Path::new(&format!("/proc/{pid}/stat")).exists() {
            bail!("--server-pid {pid}: no such process in /proc");
        }
        let peak_kib = Arc::new(AtomicU64::new(rss_kib(pid)));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (peak_kib, stop) = (peak_kib.clone(), stop.clone());
            std::thread::Builder::new()
                .name("rss-sampler".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        peak_kib.fetch_max(rss_kib(pid), Ordering::Relaxed);
                        std::thread::sleep(Duration::from_millis(20));
                    }
                })
                .context("spawn the RSS sampler thread")?
        };
        Ok(ServerWatch {
            pid,
            cpu_start: cpu_seconds(pid),
            peak_kib,
            stop,
            sampler: Some(sampler),
        })
    }

    /// Stop sampling and read the CPU time spent since [`ServerWatch::start`].
    pub fn finish(mut self) -> ServerCost {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.sampler.take() {
            let _ = t.join();
        }
        self.peak_kib
            .fetch_max(rss_kib(self.pid), Ordering::Relaxed);
        ServerCost {
            pid: self.pid,
            cpu_seconds: (cpu_seconds(self.pid) - self.cpu_start).max(0.0),
            peak_rss_kib: self.peak_kib.load(Ordering::Relaxed),
        }
    }
}

impl Drop for ServerWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_cpu_and_rss() {
        let me = std::process::id();
        let watch = ServerWatch::start(me).expect("watch self");
        // Burn CPU until /proc shows at least 0.1 s of it (a loaded machine may take longer).
        let t0 = std::time::Instant::now();
        let before = cpu_seconds(me);
        let mut x = 0u64;
        while cpu_seconds(me) - before < 0.1 && t0.elapsed() < Duration::from_secs(20) {
            for _ in 0..1_000_000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
        }
        std::hint::black_box(x);
        let cost = watch.finish();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        assert!(cost.cpu_seconds >= 0.1, "{cost:?}");
        assert!(
            cost.cpu_seconds <= t0.elapsed().as_secs_f64() * cpus + 0.2,
            "{cost:?}"
        );
        assert!(cost.peak_rss_kib > 100, "{cost:?}");
    }

    #[test]
    fn a_missing_pid_is_refused() {
        // PIDs are below 2^22 on Linux.
        assert!(ServerWatch::start(u32::MAX - 1).is_err());
    }
}
