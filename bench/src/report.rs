//! The end of a run: the table on stdout and the same figures as JSON (with the command line
//! and the machine, so a saved run can be read later).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Value};

use crate::procfs::ServerCost;
use crate::stats::OpStats;
use crate::{Args, Op, Plan};

const GIB: f64 = (1u64 << 30) as f64;

/// What the run was asked to do.
#[derive(Clone, Debug)]
pub struct RunParams {
    pub scenario: &'static str,
    pub url: String,
    pub api: &'static str,
    pub concurrency: usize,
    pub count: u64,
    pub duration_s: f64,
    pub size: u64,
    pub image: Option<String>,
    pub verify_md5: bool,
    pub limit: u32,
    pub populate: u64,
}

impl RunParams {
    pub fn of(args: &Args, plan: &Plan, image: Option<&str>) -> RunParams {
        RunParams {
            scenario: args.scenario_name(),
            url: args.url.clone(),
            api: match args.api {
                crate::Api::Images => "images",
                crate::Api::Files => "files",
            },
            concurrency: plan.concurrency,
            count: plan.count,
            duration_s: plan.duration.as_secs_f64(),
            size: args.size,
            image: image.map(str::to_owned),
            verify_md5: args.verify_md5,
            limit: args.limit,
            populate: args.populate,
        }
    }
}

/// The results of one run.
pub struct Report {
    pub args: RunParams,
    /// From the release of the clients to the end of the last request.
    pub wall: Duration,
    pub ops: BTreeMap<Op, OpStats>,
    /// Distinct error messages and how often each happened.
    pub errors: BTreeMap<String, u64>,
    pub server: Option<ServerCost>,
}

impl Report {
    pub fn errors(&self) -> u64 {
        self.ops.values().map(|s| s.errors).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.ops.values().map(|s| s.bytes).sum()
    }

    fn secs(&self) -> f64 {
        self.wall.as_secs_f64().max(1e-9)
    }

    /// Server CPU-seconds per GiB of body bytes moved (both directions).
    pub fn cpu_s_per_gib(&self) -> Option<f64> {
        let s = self.server?;
        let b = self.bytes();
        (b > 0).then(|| s.cpu_seconds / (b as f64 / GIB))
    }

    pub fn table(&self) -> String {
        let a = &self.args;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "glint-bench {} -> {} ({} API): {} clients, {} requests max, {:.0} s max, size {} B",
            a.scenario, a.url, a.api, a.concurrency, a.count, a.duration_s, a.size
        );
        let _ = writeln!(
            out,
            "{:9} {:>7} {:>6} {:>8} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>14}",
            "op",
            "reqs",
            "errors",
            "wall s",
            "MB/s",
            "req/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "bytes verified"
        );
        for (op, s) in &self.ops {
            let l = s.latency();
            let _ = writeln!(
                out,
                "{:9} {:>7} {:>6} {:>8.2} {:>10.1} {:>9.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>14}",
                op.name(),
                s.requests,
                s.errors,
                self.secs(),
                s.bytes as f64 / 1e6 / self.secs(),
                s.requests as f64 / self.secs(),
                l.p50,
                l.p90,
                l.p99,
                l.max,
                s.bytes_verified
            );
        }
        if let Some(s) = self.server {
            let per_gib = self
                .cpu_s_per_gib()
                .map(|v| format!("{v:.3} CPU-s/GiB moved"))
                .unwrap_or_else(|| "no bytes moved".into());
            let _ = writeln!(
                out,
                "server pid {}: {:.2} CPU-s ({per_gib}), peak RSS {:.1} MiB",
                s.pid,
                s.cpu_seconds,
                s.peak_rss_kib as f64 / 1024.0
            );
        }
        for (msg, n) in self.errors.iter().take(5) {
            let _ = writeln!(out, "error x{n}: {msg}");
        }
        out
    }

    pub fn json(&self) -> Value {
        let a = &self.args;
        let ops: Vec<Value> = self
            .ops
            .iter()
            .map(|(op, s)| {
                let l = s.latency();
                json!({
                    "op": op.name(),
                    "requests": s.requests,
                    "errors": s.errors,
                    "bytes": s.bytes,
                    "bytes_verified": s.bytes_verified,
                    "throughput_MBps": s.bytes as f64 / 1e6 / self.secs(),
                    "requests_per_s": s.requests as f64 / self.secs(),
                    "latency_ms": {
                        "p50": l.p50, "p90": l.p90, "p99": l.p99, "max": l.max, "mean": l.mean,
                    },
                })
            })
            .collect();
        let server = self.server.map(|s| {
            json!({
                "pid": s.pid,
                "cpu_seconds": s.cpu_seconds,
                "cpu_s_per_GiB": self.cpu_s_per_gib(),
                "peak_rss_MiB": s.peak_rss_kib as f64 / 1024.0,
            })
        });
        json!({
            "tool": "glint-bench",
            "version": env!("CARGO_PKG_VERSION"),
            "command": std::env::args().collect::<Vec<_>>(),
            "machine": machine(),
            "scenario": a.scenario,
            "params": {
                "url": a.url, "api": a.api, "concurrency": a.concurrency, "count": a.count,
                "duration_s": a.duration_s, "size": a.size, "image": a.image,
                "verify_md5": a.verify_md5, "limit": a.limit, "populate": a.populate,
            },
            "wall_s": self.wall.as_secs_f64(),
            "totals": {
                "requests": self.ops.values().map(|s| s.requests).sum::<u64>(),
                "errors": self.errors(),
                "bytes": self.bytes(),
                "throughput_MBps": self.bytes() as f64 / 1e6 / self.secs(),
            },
            "ops": ops,
            "errors": self.errors.iter().map(|(m, n)| json!({"message": m, "count": n})).collect::<Vec<_>>(),
            "server": server,
        })
    }
}

/// What the run ran on: CPUs, model, memory, kernel, load.
fn machine() -> Value {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned());
    let mem_kib = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok());
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": model,
        "mem_MiB": mem_kib.map(|k| k / 1024),
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "loadavg": read("/proc/loadavg").split_whitespace().take(3).collect::<Vec<_>>(),
    })
}
