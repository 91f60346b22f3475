//! `glint-bench`: a load generator for a running image gateway — glint, Glance or any Image
//! API v2 endpoint, or plain file URLs (nginx) as the raw-streaming anchor.
//!
//! ```text
//! glint-bench boot-storm --url http://127.0.0.1:9292 --size 256M -c 64 --verify-md5 \
//!     --server-pid $(pidof glint) --json storm.json
//! ```
//!
//! Scenarios: `upload` (create an image, PUT its data), `download` (GET one image's data),
//! `list` (GET a page of the image list), `boot-storm` (N clients released together pull the
//! same image, as compute nodes do when a new image rolls out) and `mixed` (weighted mix of
//! the three). Every run is bounded by `--count` and `--duration` and stops by itself; only
//! loopback hosts are accepted unless `--allow-remote`.
//!
//! Output: a progress bar on a terminal, then a table of throughput, requests/s, latency
//! p50/p90/p99/max, errors and bytes verified (md5 of each download, with `--verify-md5`);
//! `--json FILE` writes the same with the command line and the machine; `--server-pid` adds
//! the server's CPU-seconds per GiB moved and peak RSS, read from /proc.
//!
//! Why blocking: the scenarios need at most a few hundred concurrent connections (a boot
//! storm is 64 compute nodes), which threads serve well; a blocking client (ureq, already the
//! test harness's client) keeps the crate small and the per-request code straight-line, with
//! no runtime of its own competing with the server for the same two cores. Histograms are
//! HdrHistogram's, progress bars indicatif's, the CLI clap's.

mod payload;
pub mod procfs;
mod report;
pub mod stats;
mod target;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

pub use report::Report;
use stats::OpStats;
use target::Target;

/// What to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Each request creates an image and uploads `--size` bytes to it.
    Upload,
    /// Each request downloads the same image (`--image`, else one uploaded first).
    Download,
    /// Each request gets one page (`--limit`) of the image list.
    List,
    /// Each request shows one image's record (`GET /v2/images/ID`: `--image`, else an image
    /// created first, metadata only).
    Show,
    /// `-c` clients (default 64) released together each pull the same image once.
    BootStorm,
    /// A weighted mix of downloads, list pages and uploads (`--mix`).
    Mixed,
}

/// How the server is spoken to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Api {
    /// Glance Image API v2: POST /v2/images, PUT/GET /v2/images/ID/file, GET /v2/images.
    Images,
    /// Plain files: PUT/GET URL/NAME (nginx with the dav module, or any static server).
    Files,
}

/// One kind of request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    Upload,
    Download,
    List,
    Show,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Upload => "upload",
            Op::Download => "download",
            Op::List => "list",
            Op::Show => "show",
        }
    }
}

/// Load generator for an Image API v2 gateway (glint, Glance) or plain file URLs (nginx).
#[derive(Parser, Debug)]
#[command(name = "glint-bench", version, about, long_about = None)]
pub struct Args {
    /// Scenario to run.
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// Base URL of the server (for --api files: the folder files are PUT into).
    #[arg(long, default_value = "http://127.0.0.1:9292")]
    pub url: String,
    /// How to speak to the server.
    #[arg(long, value_enum, default_value_t = Api::Images)]
    pub api: Api,
    /// Concurrent clients (threads, one keep-alive connection each) [default: 64 for
    /// boot-storm, else 1].
    #[arg(short, long)]
    pub concurrency: Option<usize>,
    /// Requests in all [default: one per client for upload/download/boot-storm, 1000 for
    /// list, 200 for mixed].
    #[arg(short = 'n', long)]
    pub count: Option<u64>,
    /// Stop issuing requests after this many seconds, whatever the count.
    #[arg(short, long, default_value_t = 60.0)]
    pub duration: f64,
    /// Timeout of one request, in seconds.
    #[arg(long, default_value_t = 300.0)]
    pub timeout: f64,
    /// Image size for uploads (and for the image a download scenario uploads first):
    /// bytes, or with a K/M/G suffix (powers of 1024).
    #[arg(short, long, default_value = "64M", value_parser = parse_size)]
    pub size: u64,
    /// Download this existing image (Image API id, or file name for --api files) instead of
    /// uploading one first.
    #[arg(long)]
    pub image: Option<String>,
    /// Check the md5 of every download (against --expect-md5, else the md5 of what this run
    /// uploaded, else the image's recorded `checksum`).
    #[arg(long)]
    pub verify_md5: bool,
    /// The md5 (hex) downloads must have, for --verify-md5 with --image.
    #[arg(long)]
    pub expect_md5: Option<String>,
    /// Page size of the list scenario.
    #[arg(long, default_value_t = 25)]
    pub limit: u32,
    /// Before a list or mixed run, create this many images (metadata only, not measured).
    #[arg(long, default_value_t = 0)]
    pub populate: u64,
    /// Weights of the mixed scenario.
    #[arg(long, default_value = "download=6,list=3,upload=1", value_parser = parse_mix)]
    pub mix: Mix,
    /// Measure this server process (and its children) from /proc: CPU-seconds per GiB
    /// moved and peak RSS.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Extra request header, `Name: value` (e.g. an X-Auth-Token); repeatable.
    #[arg(short = 'H', long = "header", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// Accept a non-loopback URL.
    #[arg(long)]
    pub allow_remote: bool,
    /// Another gateway of the same deployment (same database and store); repeatable.
    /// Downloads and list pages go round-robin over `--url` and these (request `i` to
    /// gateway `i mod N`: a boot storm through several gateways); setup and uploads use
    /// `--url`.
    #[arg(long = "also-url")]
    pub also_urls: Vec<String>,
    /// Keep the images the run created (default: delete them at the end).
    #[arg(long)]
    pub keep: bool,
    /// No progress bar (it is only drawn on a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
    /// Do not print the table (the JSON file is still written).
    #[arg(long, short)]
    pub quiet: bool,
    /// Exit with status 1 when any request failed.
    #[arg(long)]
    pub fail_on_error: bool,
}

/// Weights of the mixed scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Mix(pub Vec<(Op, u32)>);

impl Mix {
    /// The operation for request number `i`: a fixed interleaving that honours the weights
    /// over every window of `sum(weights)` requests.
    pub fn pick(&self, i: u64) -> Op {
        let total: u64 = self.0.iter().map(|(_, w)| u64::from(*w)).sum();
        // Spread the slots with a multiplicative hash so equal weights interleave.
        let mut slot = (i % total).wrapping_mul(0x9e37_79b9) % total;
        for (op, w) in &self.0 {
            if slot < u64::from(*w) {
                return *op;
            }
            slot -= u64::from(*w);
        }
        self.0[0].0
    }
}

/// `123`, `64K`, `256M`, `4G`, `1.5G` (powers of 1024; a trailing `B`/`iB` is accepted).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, mult) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        Some('T') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 4096, 64K, 256M, 4G)"))?;
    if !v.is_finite() || v < 0.0 || v * mult as f64 > 16.0 * (1u64 << 40) as f64 {
        return Err(format!("{s:?}: size out of range (0 .. 16T)"));
    }
    Ok((v * mult as f64).round() as u64)
}

/// `download=6,list=3,upload=1`.
pub fn parse_mix(s: &str) -> Result<Mix, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, w) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?}: expected OP=WEIGHT"))?;
        let op = match name.trim() {
            "upload" => Op::Upload,
            "download" => Op::Download,
            "list" => Op::List,
            "show" => Op::Show,
            other => {
                return Err(format!(
                    "{other:?}: not one of upload, download, list, show"
                ))
            }
        };
        let w: u32 = w
            .trim()
            .parse()
            .map_err(|_| format!("{part:?}: weight is not a whole number"))?;
        if out.iter().any(|(o, _)| *o == op) {
            return Err(format!("{name:?} given twice"));
        }
        if w > 0 {
            out.push((op, w));
        }
    }
    if out.is_empty() {
        return Err("the mix has no operation with a weight above 0".into());
    }
    Ok(Mix(out))
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?}: expected `Name: value`"))?;
    let k = k.trim();
    if k.is_empty()
        || !k
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!("{s:?}: bad header name"));
    }
    Ok((k.to_owned(), v.trim().to_owned()))
}

/// The bounds of a run once defaults are applied.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Plan {
    pub concurrency: usize,
    pub count: u64,
    pub duration: Duration,
}

/// Most clients one run may start.
pub const MAX_CONCURRENCY: usize = 1024;

impl Args {
    /// Apply the defaults and refuse what cannot run.
    pub fn plan(&self) -> anyhow::Result<Plan> {
        let concurrency = self
            .concurrency
            .unwrap_or(if self.scenario == Scenario::BootStorm {
                64
            } else {
                1
            });
        if concurrency == 0 || concurrency > MAX_CONCURRENCY {
            bail!("--concurrency must be 1..={MAX_CONCURRENCY}, not {concurrency}");
        }
        let count = self.count.unwrap_or(match self.scenario {
            Scenario::Upload | Scenario::Download | Scenario::BootStorm => concurrency as u64,
            Scenario::List | Scenario::Show => 1000,
            Scenario::Mixed => 200,
        });
        if count == 0 {
            bail!("--count must be at least 1");
        }
        if !(self.duration > 0.0 && self.duration <= 86_400.0) {
            bail!("--duration must be above 0 and at most 86400 seconds");
        }
        if !(self.timeout > 0.0 && self.timeout <= 86_400.0) {
            bail!("--timeout must be above 0 and at most 86400 seconds");
        }
        let uploads = match self.scenario {
            Scenario::Upload => true,
            Scenario::Mixed => self.mix.0.iter().any(|(op, _)| *op == Op::Upload),
            Scenario::List | Scenario::Show => false,
            _ => self.image.is_none(),
        };
        if uploads && self.size == 0 {
            bail!("--size must be above 0");
        }
        if self.limit == 0 {
            bail!("--limit must be at least 1");
        }
        let lists = matches!(self.scenario, Scenario::List | Scenario::Show)
            || (self.scenario == Scenario::Mixed
                && self
                    .mix
                    .0
                    .iter()
                    .any(|(op, _)| matches!(op, Op::List | Op::Show)));
        if lists && self.api == Api::Files {
            bail!("the list scenario needs the Image API (--api images)");
        }
        if self
            .expect_md5
            .as_ref()
            .is_some_and(|m| m.len() != 32 || !m.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            bail!("--expect-md5 must be 32 hex digits");
        }
        Ok(Plan {
            concurrency,
            count,
            duration: Duration::from_secs_f64(self.duration),
        })
    }
}

/// Run the scenario, print the table (unless `--quiet`), write the JSON (with `--json`).
pub fn run(args: &Args) -> anyhow::Result<Report> {
    let plan = args.plan()?;
    target::check_url(&args.url, args.allow_remote)?;
    let target = Target::new(
        &args.url,
        args.api,
        Duration::from_secs_f64(args.timeout),
        args.headers.clone(),
        plan.concurrency,
    );
    let mut gateways = Vec::with_capacity(args.also_urls.len());
    for url in &args.also_urls {
        target::check_url(url, args.allow_remote)?;
        gateways.push(Target::new(
            url,
            args.api,
            Duration::from_secs_f64(args.timeout),
            args.headers.clone(),
            plan.concurrency,
        ));
    }
    let payload = payload::Payload::new(0x9e37_79b9_7f4a_7c15);
    let run_tag = format!("glint-bench-{}", std::process::id());
    let created = Mutex::new(Vec::<String>::new());

    // Setup (not measured): the image downloads read, the images a list pages through.
    let needs_image = match args.scenario {
        Scenario::Download | Scenario::BootStorm => true,
        Scenario::Mixed => args.mix.0.iter().any(|(op, _)| *op == Op::Download),
        _ => false,
    };
    let shows = args.scenario == Scenario::Show
        || (args.scenario == Scenario::Mixed && args.mix.0.iter().any(|(op, _)| *op == Op::Show));
    let mut image = None;
    let mut expect_md5 = args.expect_md5.clone();
    if needs_image {
        match &args.image {
            Some(id) => image = Some(id.clone()),
            None => {
                let id = target.create(&format!("{run_tag}-source"))?;
                created.lock().expect("not poisoned").push(id.clone());
                let (_, md5) = target
                    .upload(&id, &payload, args.size, args.verify_md5)
                    .context("uploading the image to download")?;
                if expect_md5.is_none() {
                    expect_md5 = md5;
                }
                image = Some(id);
            }
        }
        if args.verify_md5 && expect_md5.is_none() {
            let id = image.as_deref().unwrap_or_default();
            expect_md5 = target.recorded_md5(id)?;
            if expect_md5.is_none() {
                bail!("--verify-md5: image {id} has no recorded checksum; give --expect-md5");
            }
        }
    }
    if shows && image.is_none() {
        image = match &args.image {
            Some(id) => Some(id.clone()),
            None => {
                let id = target.create(&format!("{run_tag}-shown"))?;
                created.lock().expect("not poisoned").push(id.clone());
                Some(id)
            }
        };
    }
    if args.populate > 0 {
        populate(args, &plan, &target, &run_tag, &created)?;
    }

    let job = Job {
        args,
        target: &target,
        others: &gateways,
        payload: &payload,
        image: image.as_deref(),
        expect_md5: expect_md5.as_deref(),
        tag: &run_tag,
        created: &created,
    };
    let result = measure(&job, &plan);

    if !args.keep {
        let ids = std::mem::take(&mut *created.lock().expect("not poisoned"));
        cleanup(&target, &ids, plan.concurrency);
    }
    let report = result?;
    if !args.quiet {
        print!("{}", report.table());
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report.json())?;
        std::fs::write(path, text + "\n").with_context(|| format!("write {}", path.display()))?;
    }
    Ok(report)
}

fn progress(args: &Args, len: Option<u64>, what: &str) -> ProgressBar {
    if args.no_progress || args.quiet {
        return ProgressBar::hidden();
    }
    // indicatif draws only when stderr is a terminal.
    let bar = match len {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    let style = ProgressStyle::with_template(
        "{spinner} {prefix} {elapsed_precise} [{bar:30}] {pos}/{len} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(what.to_owned());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Create `--populate` metadata-only images with all clients.
fn populate(
    args: &Args,
    plan: &Plan,
    target: &Target,
    tag: &str,
    created: &Mutex<Vec<String>>,
) -> anyhow::Result<()> {
    let bar = progress(args, Some(args.populate), "populate");
    let next = AtomicU64::new(0);
    let failed = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..plan.concurrency {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= args.populate || failed.lock().map(|f| f.is_some()).unwrap_or(true) {
                    break;
                }
                match target.create(&format!("{tag}-p{i}")) {
                    Ok(id) => created.lock().expect("not poisoned").push(id),
                    Err(e) => {
                        if let Ok(mut f) = failed.lock() {
                            f.get_or_insert(e);
                        }
                    }
                }
                bar.inc(1);
            });
        }
    });
    bar.finish_and_clear();
    match failed.into_inner().ok().flatten() {
        Some(e) => Err(e.context("--populate")),
        None => Ok(()),
    }
}

fn cleanup(target: &Target, ids: &[String], concurrency: usize) {
    let next = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..concurrency.min(8) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(id) = ids.get(i) else { break };
                target.delete(id);
            });
        }
    });
}

/// What every request of a measured run needs.
struct Job<'a> {
    args: &'a Args,
    target: &'a Target,
    /// The `--also-url` gateways: reads go round-robin over `target` and these.
    others: &'a [Target],
    payload: &'a payload::Payload,
    /// The image downloads read.
    image: Option<&'a str>,
    /// Its md5, for `--verify-md5`.
    expect_md5: Option<&'a str>,
    /// Prefix of the names of the images this run creates.
    tag: &'a str,
    /// Ids of the images this run created (removed at the end unless `--keep`).
    created: &'a Mutex<Vec<String>>,
}

fn measure(job: &Job<'_>, plan: &Plan) -> anyhow::Result<Report> {
    let args = job.args;
    let mix = match args.scenario {
        Scenario::Upload => Mix(vec![(Op::Upload, 1)]),
        Scenario::Download | Scenario::BootStorm => Mix(vec![(Op::Download, 1)]),
        Scenario::List => Mix(vec![(Op::List, 1)]),
        Scenario::Show => Mix(vec![(Op::Show, 1)]),
        Scenario::Mixed => args.mix.clone(),
    };
    let bar = progress(args, Some(plan.count), args.scenario_name());
    let next = AtomicU64::new(0);
    let moved = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let barrier = Barrier::new(plan.concurrency + 1);
    let errors = Mutex::new(BTreeMap::<String, u64>::new());
    let totals = Mutex::new(BTreeMap::<Op, OpStats>::new());
    let mut watch = None;
    let mut started = Instant::now();
    // Set once every client is ready, just before they are released.
    let deadline = std::sync::OnceLock::<Instant>::new();

    std::thread::scope(|s| -> anyhow::Result<()> {
        let mut handles = Vec::new();
        for _ in 0..plan.concurrency {
            handles.push(s.spawn(|| {
                let mut local = BTreeMap::<Op, OpStats>::new();
                barrier.wait();
                barrier.wait();
                loop {
                    let past = deadline.get().is_none_or(|d| Instant::now() >= *d);
                    if stop.load(Ordering::Relaxed) || past {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= plan.count {
                        break;
                    }
                    let op = mix.pick(i);
                    let stats = local.entry(op).or_default();
                    let t0 = Instant::now();
                    let outcome = job.request(op, i);
                    match outcome {
                        Ok(done) => {
                            stats.record_ok(t0.elapsed(), done.bytes);
                            if done.verified {
                                stats.bytes_verified += done.bytes;
                            }
                            moved.fetch_add(done.bytes, Ordering::Relaxed);
                        }
                        Err(e) => {
                            stats.record_error(0);
                            let msg = format!("{e:#}");
                            if let Ok(mut m) = errors.lock() {
                                *m.entry(msg).or_default() += 1;
                            }
                        }
                    }
                    bar.inc(1);
                }
                if let Ok(mut t) = totals.lock() {
                    for (op, st) in local {
                        t.entry(op).or_default().merge(&st);
                    }
                }
            }));
        }
        // Every client is connected-ready: start the clock and release them together.
        barrier.wait();
        if let Some(pid) = args.server_pid {
            match procfs::ServerWatch::start(pid) {
                Ok(w) => watch = Some(w),
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    barrier.wait();
                    return Err(e);
                }
            }
        }
        started = Instant::now();
        let _ = deadline.set(started + plan.duration);
        barrier.wait();
        // Progress message: aggregate MB/s so far.
        while !handles.iter().all(|h| h.is_finished()) {
            std::thread::sleep(Duration::from_millis(100));
            let mb = moved.load(Ordering::Relaxed) as f64 / 1e6;
            bar.set_message(format!(
                "{:.0} MB, {:.0} MB/s",
                mb,
                mb / started.elapsed().as_secs_f64().max(1e-3)
            ));
        }
        Ok(())
    })?;
    let wall = started.elapsed();
    bar.finish_and_clear();
    let server = watch.map(|w| {
        // Let the server finish its bookkeeping (commit, close) before reading its CPU.
        std::thread::sleep(Duration::from_millis(300));
        w.finish()
    });
    Ok(Report {
        args: report::RunParams::of(args, plan, job.image),
        wall,
        ops: totals.into_inner().unwrap_or_default(),
        errors: errors.into_inner().unwrap_or_default(),
        server,
    })
}

struct Done {
    bytes: u64,
    verified: bool,
}

impl Job<'_> {
    /// Request `i` of the run, an `op`.
    fn request(&self, op: Op, i: u64) -> anyhow::Result<Done> {
        let Job {
            args,
            target,
            others,
            payload,
            image,
            expect_md5,
            tag,
            created,
        } = *self;
        // Reads spread over every gateway; request i goes to gateway i mod N.
        let reader = match (i % (others.len() as u64 + 1)) as usize {
            0 => target,
            n => &others[n - 1],
        };
        match op {
            Op::Upload => {
                let id = target.create(&format!("{tag}-u{i}"))?;
                if let Ok(mut c) = created.lock() {
                    c.push(id.clone());
                }
                target.upload(&id, payload, args.size, false)?;
                Ok(Done {
                    bytes: args.size,
                    verified: false,
                })
            }
            Op::Download => {
                let id = image.unwrap_or_default();
                let got = reader.download(id, args.verify_md5)?;
                if got.status != 200 {
                    bail!("GET {id}: HTTP {}", got.status);
                }
                let verified = match (args.verify_md5, expect_md5, &got.md5) {
                    (true, Some(want), Some(have)) => {
                        if !want.eq_ignore_ascii_case(have) {
                            bail!(
                                "md5 mismatch: got {have}, want {want} ({} bytes)",
                                got.bytes
                            );
                        }
                        true
                    }
                    _ => false,
                };
                Ok(Done {
                    bytes: got.bytes,
                    verified,
                })
            }
            Op::Show => {
                let bytes = reader.show(image.unwrap_or_default())?;
                Ok(Done {
                    bytes,
                    verified: false,
                })
            }
            Op::List => {
                let (_, bytes, n) = reader.list(args.limit)?;
                if n > args.limit as usize {
                    bail!("list page of {n} images for limit={}", args.limit);
                }
                Ok(Done {
                    bytes,
                    verified: false,
                })
            }
        }
    }
}

impl Args {
    pub fn scenario_name(&self) -> &'static str {
        match self.scenario {
            Scenario::Upload => "upload",
            Scenario::Download => "download",
            Scenario::List => "list",
            Scenario::Show => "show",
            Scenario::BootStorm => "boot-storm",
            Scenario::Mixed => "mixed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("glint-bench").chain(line.split_whitespace()))
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("4g"), Ok(4 << 30));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        for bad in ["", "M", "-1", "12Q", "1e30", "nan"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mixes() {
        let m = parse_mix("download=6,list=3,upload=1").expect("valid");
        let mut counts = BTreeMap::new();
        for i in 0..1000 {
            *counts.entry(m.pick(i)).or_insert(0) += 1;
        }
        assert_eq!(counts[&Op::Download], 600);
        assert_eq!(counts[&Op::List], 300);
        assert_eq!(counts[&Op::Upload], 100);
        // Interleaved, not 6 downloads then 3 lists.
        let first: Vec<Op> = (0..10).map(|i| m.pick(i)).collect();
        assert_ne!(first[..6], [Op::Download; 6]);
        assert_eq!(parse_mix("list=1,upload=0"), Ok(Mix(vec![(Op::List, 1)])));
        for bad in ["", "upload=0", "fly=1", "list=x", "list", "list=1,list=2"] {
            assert!(parse_mix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_per_scenario() {
        let p = args("boot-storm").expect("parse").plan().expect("plan");
        assert_eq!((p.concurrency, p.count), (64, 64));
        let p = args("upload -c 4").expect("parse").plan().expect("plan");
        assert_eq!((p.concurrency, p.count), (4, 4));
        let p = args("list").expect("parse").plan().expect("plan");
        assert_eq!(
            (p.concurrency, p.count, p.duration),
            (1, 1000, Duration::from_secs(60))
        );
        let p = args("mixed -n 7 -d 2.5")
            .expect("parse")
            .plan()
            .expect("plan");
        assert_eq!((p.count, p.duration), (7, Duration::from_millis(2500)));
    }

    #[test]
    fn bad_arguments_are_refused() {
        for line in [
            "",
            "fly",
            "upload --size lots",
            "upload --api ftp",
            "upload -c x",
        ] {
            assert!(args(line).is_err(), "{line}");
        }
        for line in [
            "upload -c 0",
            "upload -c 5000",
            "upload -n 0",
            "upload -d 0",
            "upload --duration=-1",
            "upload --size 0",
            "list --limit 0",
            "list --api files",
            "download --expect-md5 xyz",
        ] {
            let a = args(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert!(a.plan().is_err(), "{line}");
        }
    }

    #[test]
    fn headers() {
        assert_eq!(
            parse_header("X-Auth-Token: abc"),
            Ok(("X-Auth-Token".into(), "abc".into()))
        );
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("bad name: x").is_err());
    }
}
