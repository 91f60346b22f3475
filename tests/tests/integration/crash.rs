//! The crash campaign: concurrent uploads, patches, member changes and deletes against the
//! real binary, killed with SIGKILL at a random point and restarted, cycle after cycle.
//!
//! After each restart: the server starts (meta opens); every image the model holds as
//! acknowledged is exactly as acknowledged (status, properties, members; for `active`, size,
//! `checksum` and `os_hash_value`, and the downloaded bytes hash to them); nothing is stuck in
//! `saving`/`uploading`/`importing`; no image exists that was never created; and the images
//! folder holds exactly one file per image with data: no orphan data file, no `.part`.
//!
//! Each worker thread owns its images and runs one request at a time, so at the kill at most
//! one operation per image is unacknowledged; its effect may or may not have landed, and the
//! check accepts either state (then takes the one it saw as acknowledged). The kill comes
//! after a random number of acknowledged operations, while the other workers are mid-request.
//!
//! `GLINT_CRASH_CYCLES` (default 100), `GLINT_CRASH_SECS` (time cap, default 150) and
//! `GLINT_CRASH_SEED` (default: from the clock) change the run. The seed fixes every choice:
//! operations, ids, sizes, bytes and the kill points; the interleaving of the workers is the
//! scheduler's, so a replay repeats the workload, not the exact timing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use glint_tests::{digest_hex, md5_hex, random_bytes, TestServer};
use serde_json::{json, Value};

const WORKERS: usize = 4;
/// Live images per worker.
const SLOTS: usize = 3;
const MAX_MEMBERS: usize = 3;
const PROPERTIES: u64 = 3;
const MAX_UPLOAD_BYTES: u64 = 3 << 20;
/// The kill comes after 1..=KILL_AFTER_MAX acknowledged operations.
const KILL_AFTER_MAX: u64 = 30;

/// splitmix64: small, seedable, good enough to pick operations.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// A stream for `(cycle, worker)` derived from the run's seed.
    fn derive(seed: u64, cycle: u64, worker: u64) -> Rng {
        let mut r = Rng(seed ^ cycle.wrapping_mul(0x1000_0001) ^ worker.wrapping_mul(0x9E37));
        r.next();
        r
    }

    fn uuid(&mut self) -> String {
        let bytes: Vec<u8> = [self.next(), self.next()]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        let bytes: [u8; 16] = bytes.try_into().unwrap();
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }
}

/// Image data, regenerated from its seed when checked.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Data {
    seed: u64,
    len: usize,
}

/// What the server acknowledged about one image.
#[derive(Clone, Debug, Default, PartialEq)]
struct State {
    exists: bool,
    /// `Some` when the image is `active`.
    data: Option<Data>,
    properties: BTreeMap<String, String>,
    members: BTreeSet<String>,
}

#[derive(Clone, Debug)]
enum Op {
    Create,
    Upload(Data),
    SetProperty(String, String),
    AddMember(String),
    RemoveMember(String),
    Delete,
}

impl Op {
    fn apply(&self, before: &State) -> State {
        let mut after = before.clone();
        match self {
            Op::Create => after.exists = true,
            Op::Upload(data) => after.data = Some(*data),
            Op::SetProperty(k, v) => {
                after.properties.insert(k.clone(), v.clone());
            }
            Op::AddMember(m) => {
                after.members.insert(m.clone());
            }
            Op::RemoveMember(m) => {
                after.members.remove(m);
            }
            Op::Delete => after = State::default(),
        }
        after
    }
}

struct Tracked {
    id: String,
    acked: State,
    /// The operation in flight when the server died, if any.
    pending: Option<Op>,
}

#[derive(Default)]
struct Totals {
    acknowledged: usize,
    uploads_acknowledged: usize,
    in_flight_at_kill: usize,
    in_flight_landed: usize,
}

/// Why a worker stopped.
enum Stop {
    /// The server went away (the kill): the operation in flight stays pending.
    Killed,
    /// The server answered something it must not have.
    Violation(String),
}

fn perform(srv: &TestServer, id: &str, op: &Op) -> Result<(), Stop> {
    let (resp, want) = match op {
        Op::Create => (
            srv.request("POST", "/v2/images").json(&json!({
                "id": id, "name": id, "disk_format": "raw", "container_format": "bare",
                "visibility": "shared",
            })),
            201,
        ),
        Op::Upload(data) => (
            srv.request("PUT", &format!("/v2/images/{id}/file"))
                .header("content-type", "application/octet-stream")
                .body(random_bytes(data.len, data.seed)),
            204,
        ),
        Op::SetProperty(k, v) => (
            srv.request("PATCH", &format!("/v2/images/{id}"))
                .header("content-type", glint_tests::PATCH_V21)
                .body(
                    serde_json::to_vec(
                        &json!([{"op": "add", "path": format!("/{k}"), "value": v}]),
                    )
                    .unwrap(),
                ),
            200,
        ),
        Op::AddMember(m) => (
            srv.request("POST", &format!("/v2/images/{id}/members"))
                .json(&json!({"member": m})),
            200,
        ),
        Op::RemoveMember(m) => (
            srv.request("DELETE", &format!("/v2/images/{id}/members/{m}")),
            204,
        ),
        Op::Delete => (srv.request("DELETE", &format!("/v2/images/{id}")), 204),
    };
    match resp.try_send() {
        Err(_) => Err(Stop::Killed),
        Ok(r) if r.status == want => Ok(()),
        Ok(r) => Err(Stop::Violation(format!("{op:?} on {id}: {r:?}"))),
    }
}

/// Picks the next operation: create while the worker has free slots, else one on a live image.
fn choose(images: &mut Vec<Tracked>, rng: &mut Rng) -> (usize, Op) {
    let live: Vec<usize> = (0..images.len())
        .filter(|&i| images[i].acked.exists)
        .collect();
    if live.len() < SLOTS {
        images.push(Tracked {
            id: rng.uuid(),
            acked: State::default(),
            pending: None,
        });
        return (images.len() - 1, Op::Create);
    }
    let i = live[rng.below(live.len() as u64) as usize];
    let state = &images[i].acked;
    let roll = rng.below(100);
    let op = if state.data.is_none() && roll < 60 {
        // Log-uniform sizes from 1 byte to MAX_UPLOAD_BYTES.
        let bits = 1 + rng.below(u64::from(MAX_UPLOAD_BYTES.ilog2()));
        let len = (1 + rng.below(1 << bits)).min(MAX_UPLOAD_BYTES) as usize;
        Op::Upload(Data {
            seed: rng.next(),
            len,
        })
    } else if roll < 75 {
        let key = format!("p{}", rng.below(PROPERTIES));
        Op::SetProperty(key, format!("v{}", rng.below(1_000_000)))
    } else if roll < 85 && state.members.len() < MAX_MEMBERS {
        // A project that is not a member yet (adding one twice is a 409).
        let first = rng.below(1000);
        let member = (first..first + 1000)
            .map(|n| format!("project-{}", n % 1000))
            .find(|m| !state.members.contains(m))
            .unwrap();
        Op::AddMember(member)
    } else if roll < 92 && !state.members.is_empty() {
        let k = rng.below(state.members.len() as u64) as usize;
        Op::RemoveMember(state.members.iter().nth(k).unwrap().clone())
    } else {
        Op::Delete
    };
    (i, op)
}

fn run_worker(
    srv: &TestServer,
    images: &mut Vec<Tracked>,
    mut rng: Rng,
    acknowledged: &AtomicUsize,
    uploads: &AtomicUsize,
) -> Option<String> {
    loop {
        let (i, op) = choose(images, &mut rng);
        images[i].pending = Some(op.clone());
        match perform(srv, &images[i].id, &op) {
            Ok(()) => {
                let tracked = &mut images[i];
                tracked.acked = op.apply(&tracked.acked);
                tracked.pending = None;
                if matches!(op, Op::Upload(_)) {
                    uploads.fetch_add(1, Ordering::SeqCst);
                }
                acknowledged.fetch_add(1, Ordering::SeqCst);
            }
            Err(Stop::Killed) => return None,
            Err(Stop::Violation(v)) => {
                images[i].pending = None;
                return Some(v);
            }
        }
    }
}

/// What the server says about one image now.
#[derive(Debug)]
struct Observed {
    exists: bool,
    status: String,
    size: Value,
    checksum: Value,
    os_hash_value: Value,
    /// md5 and sha512 of the downloaded bytes, for an active image.
    downloaded: Option<(usize, String, String)>,
    properties: BTreeMap<String, String>,
    members: BTreeSet<String>,
}

fn observe(srv: &TestServer, id: &str) -> Observed {
    let resp = srv.get(&format!("/v2/images/{id}"));
    if resp.status == 404 {
        return Observed {
            exists: false,
            status: String::new(),
            size: Value::Null,
            checksum: Value::Null,
            os_hash_value: Value::Null,
            downloaded: None,
            properties: BTreeMap::new(),
            members: BTreeSet::new(),
        };
    }
    let image = resp.expect_status(200).json();
    let status = image["status"].as_str().unwrap_or_default().to_owned();
    let properties = (0..PROPERTIES)
        .filter_map(|k| {
            let key = format!("p{k}");
            image[&key].as_str().map(|v| (key, v.to_owned()))
        })
        .collect();
    let members = srv.get_json(&format!("/v2/images/{id}/members"))["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["member_id"].as_str().unwrap().to_owned())
        .collect();
    let downloaded = (status == "active").then(|| {
        let body = srv.download(id).body;
        (body.len(), md5_hex(&body), digest_hex("sha512", &body))
    });
    Observed {
        exists: true,
        status,
        size: image["size"].clone(),
        checksum: image["checksum"].clone(),
        os_hash_value: image["os_hash_value"].clone(),
        downloaded,
        properties,
        members,
    }
}

/// md5 and sha512 of a `Data`, computed once.
struct Digests(HashMap<(u64, usize), (String, String)>);

impl Digests {
    fn of(&mut self, data: Data) -> (String, String) {
        self.0
            .entry((data.seed, data.len))
            .or_insert_with(|| {
                let bytes = random_bytes(data.len, data.seed);
                (md5_hex(&bytes), digest_hex("sha512", &bytes))
            })
            .clone()
    }
}

fn matches(state: &State, seen: &Observed, digests: &mut Digests) -> bool {
    if state.exists != seen.exists {
        return false;
    }
    if !state.exists {
        return true;
    }
    let data_ok = match state.data {
        None => seen.status == "queued",
        Some(data) => {
            let (md5, sha512) = digests.of(data);
            seen.status == "active"
                && seen.size == json!(data.len)
                && seen.checksum == json!(md5)
                && seen.os_hash_value == json!(sha512)
                && seen.downloaded == Some((data.len, md5, sha512))
        }
    };
    data_ok && state.properties == seen.properties && state.members == seen.members
}

/// Checks the restarted server against the model; returns the violations found.
fn verify(srv: &TestServer, workers: &mut [Vec<Tracked>], totals: &mut Totals) -> Vec<String> {
    let mut violations = Vec::new();
    let mut digests = Digests(HashMap::new());
    let health = srv.get("/healthcheck");
    if health.status != 200 {
        violations.push(format!("healthcheck after restart: {health:?}"));
    }
    for images in workers.iter_mut() {
        for tracked in images.iter_mut() {
            let seen = observe(srv, &tracked.id);
            if ["saving", "uploading", "importing"].contains(&seen.status.as_str()) {
                violations.push(format!("{} stuck in {}", tracked.id, seen.status));
            }
            let after = tracked.pending.as_ref().map(|op| op.apply(&tracked.acked));
            if tracked.pending.is_some() {
                totals.in_flight_at_kill += 1;
            }
            if matches(&tracked.acked, &seen, &mut digests) {
            } else if after
                .as_ref()
                .is_some_and(|a| matches(a, &seen, &mut digests))
            {
                totals.in_flight_landed += 1;
                tracked.acked = after.unwrap_or_default();
            } else {
                violations.push(format!(
                    "{}: acknowledged {:?}, in flight {:?}, found {seen:?}",
                    tracked.id, tracked.acked, tracked.pending
                ));
                // Carry on from what is there, so one violation is reported once.
                tracked.acked.exists = seen.exists;
            }
            tracked.pending = None;
        }
        // Deleted images are checked once after their delete was acknowledged, then dropped;
        // the list check below still catches any that reappear.
        images.retain(|t| t.acked.exists);
    }
    let live: BTreeMap<&str, &State> = workers
        .iter()
        .flatten()
        .map(|t| (t.id.as_str(), &t.acked))
        .collect();
    for image in srv.list("limit=1000")["images"].as_array().unwrap() {
        let id = image["id"].as_str().unwrap_or_default();
        if !live.contains_key(id) {
            violations.push(format!("image {id} exists but was never kept: {image}"));
        }
    }
    let folder = srv.data_dir().join("images");
    let mut files = BTreeSet::new();
    for entry in std::fs::read_dir(&folder).unwrap() {
        files.insert(entry.unwrap().file_name().to_string_lossy().into_owned());
    }
    for name in &files {
        match live.get(name.as_str()) {
            Some(state) if state.data.is_some() => {}
            Some(_) => violations.push(format!("orphan data file {name}: its image has no data")),
            None => violations.push(format!("orphan file {name}: no live image owns it")),
        }
    }
    for (id, state) in &live {
        if state.data.is_some() && !files.contains(*id) {
            violations.push(format!("active image {id} has no data file"));
        }
    }
    violations
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|e| panic!("{name}={value}: {e}")),
    )
}

#[test]
fn sigkill_at_random_points_loses_nothing_acknowledged() {
    let cycles = env_u64("GLINT_CRASH_CYCLES").unwrap_or(100);
    let budget = Duration::from_secs(env_u64("GLINT_CRASH_SECS").unwrap_or(150));
    let seed = env_u64("GLINT_CRASH_SEED").unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        now.map_or(1, |d| d.as_nanos() as u64)
    });
    println!("crash campaign: seed {seed} (replay with GLINT_CRASH_SEED={seed})");
    let started = Instant::now();
    let mut srv = TestServer::start();
    let mut workers: Vec<Vec<Tracked>> = (0..WORKERS).map(|_| Vec::new()).collect();
    let mut totals = Totals::default();
    let mut violations: Vec<String> = Vec::new();
    let mut run = 0;
    while run < cycles && started.elapsed() < budget {
        let mut kill_rng = Rng::derive(seed, run, u64::MAX);
        let kill_after = 1 + kill_rng.below(KILL_AFTER_MAX) as usize;
        let acknowledged = AtomicUsize::new(0);
        let uploads = AtomicUsize::new(0);
        let running = AtomicUsize::new(WORKERS);
        let pid = libc::pid_t::try_from(srv.pid()).unwrap();
        let found: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = workers
                .iter_mut()
                .enumerate()
                .map(|(w, images)| {
                    let (srv, acknowledged, uploads, running) =
                        (&srv, &acknowledged, &uploads, &running);
                    let rng = Rng::derive(seed, run, w as u64);
                    scope.spawn(move || {
                        let v = run_worker(srv, images, rng, acknowledged, uploads);
                        running.fetch_sub(1, Ordering::SeqCst);
                        v
                    })
                })
                .collect();
            // Kill once enough operations were acknowledged (or a worker stopped on a
            // violation); the other workers are mid-request.
            let deadline = Instant::now() + Duration::from_secs(60);
            while acknowledged.load(Ordering::SeqCst) < kill_after
                && running.load(Ordering::SeqCst) == WORKERS
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            // SAFETY: kill(2) on our own unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            handles
                .into_iter()
                .filter_map(|h| h.join().unwrap())
                .collect()
        });
        totals.acknowledged += acknowledged.load(Ordering::SeqCst);
        totals.uploads_acknowledged += uploads.load(Ordering::SeqCst);
        srv.kill9();
        srv.start_again();
        let mut all = found;
        all.extend(verify(&srv, &mut workers, &mut totals));
        for v in all {
            violations.push(format!("cycle {run}: {v}"));
        }
        run += 1;
    }
    println!(
        "crash campaign: seed {seed}, {run} cycles in {:.1} s, {} operations acknowledged \
         ({} uploads), {} in flight at the kill ({} of them landed), {} violations",
        started.elapsed().as_secs_f64(),
        totals.acknowledged,
        totals.uploads_acknowledged,
        totals.in_flight_at_kill,
        totals.in_flight_landed,
        violations.len()
    );
    assert!(
        violations.is_empty(),
        "{} violations (seed {seed}, replay with GLINT_CRASH_SEED={seed}):\n{}",
        violations.len(),
        violations.join("\n")
    );
    assert!(run > 0, "no cycle ran within {budget:?}");
}

/// Issue 12: a gateway killed between the file store's commit of an import's data and the
/// metadata transaction that records it: at start-up it reverts its import and that data goes
/// (the import's revert removes it, and the file store's recovery removes data no location
/// names), keeping every other image's data. Another gateway's revert: `scale.rs`.
#[test]
fn an_import_killed_before_it_was_recorded_leaves_no_data_after_a_restart() {
    let mut srv = TestServer::builder()
        .env("GLINT_CRASH_AT", "import-before-end")
        .start();
    let kept = srv.create_active_image(json!({}), b"another image's data");
    let id = srv.create_raw_image(json!({}));
    srv.request("PUT", &format!("/v2/images/{id}/stage"))
        .header("content-type", "application/octet-stream")
        .body(b"committed, never recorded".to_vec())
        .send()
        .expect_status(204);
    srv.post_json(
        &format!("/v2/images/{id}/import"),
        &json!({"method": {"name": "glance-direct"}}),
    )
    .expect_status(202);
    glint_tests::poll_until(Duration::from_secs(20), "the crash point", || {
        srv.request("GET", "/versions").try_send().err()
    });
    srv.kill9();
    assert!(
        srv.image_file(&id).exists(),
        "the store had committed the data"
    );
    srv.start_again();
    let image = srv.image(&id);
    assert_eq!(image["status"], "queued", "{image}");
    let tasks = srv.get_json(&format!("/v2/images/{id}/tasks"));
    assert_eq!(tasks["tasks"][0]["status"], "failure", "{tasks}");
    assert!(tasks["tasks"][0]["message"]
        .as_str()
        .unwrap()
        .contains("glint restarted while it ran"));
    assert!(!srv.image_file(&id).exists(), "the unrecorded data is gone");
    assert_eq!(
        srv.download(&kept).expect_status(200).body,
        b"another image's data"
    );
}
