//! Hostile clients: slow headers, slow bodies, a thousand idle connections, oversized request
//! lines, heads and JSON bodies, deep JSON, huge patch documents, and Glance's per-image limits.
//!
//! Each attack runs against its own server while bystander clients show and download an image
//! throughout. Every attack must get Glance's answer (or, where the HTTP layer answers, the
//! documented one), no bystander request may fail, and the server's memory must stay bounded.
//! Each test prints one line: the attack's size, the bystanders' p50/p99 latency beside their
//! baseline, and the server's peak RSS (docs/RELIABILITY.md collects them). Latency is reported,
//! never asserted: speed is for benchmarks.
//!
//! `GLINT_HOSTILE_SCALE=N` multiplies every attack's connection count (default 1).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use glint_tests::{random_bytes, TestServer, PATCH_V21};
use serde_json::{json, Value};

fn scale() -> usize {
    std::env::var("GLINT_HOSTILE_SCALE")
        .ok()
        .map_or(1, |v| v.parse().expect("GLINT_HOSTILE_SCALE is a number"))
}

/// Peak resident set size of process `pid` so far (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kib * 1024
}

/// Latencies of bystander requests and how many failed.
#[derive(Default)]
struct Served {
    latencies: Vec<Duration>,
    failures: Vec<String>,
}

impl Served {
    fn percentile(&self, p: f64) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len().max(1)) - 1;
        sorted.get(i).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    }
}

/// Two bystanders alternate `GET /v2/images/{id}` and a download of it until `stop`.
fn bystanders(srv: &TestServer, id: &str, data: &[u8], stop: &AtomicBool) -> Served {
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    let mut served = Served::default();
                    let mut n = 0u64;
                    while !stop.load(Ordering::SeqCst) || served.latencies.len() < 10 {
                        n += 1;
                        let download = n.is_multiple_of(2);
                        let path = if download {
                            format!("/v2/images/{id}/file")
                        } else {
                            format!("/v2/images/{id}")
                        };
                        let started = Instant::now();
                        match srv.request("GET", &path).try_send() {
                            Ok(r) if r.status == 200 && (!download || r.body == data) => {
                                served.latencies.push(started.elapsed());
                            }
                            Ok(r) => served.failures.push(format!("{r:?}")),
                            Err(e) => served.failures.push(format!("GET {path}: {e}")),
                        }
                    }
                    served
                })
            })
            .collect();
        let mut all = Served::default();
        for w in workers {
            let s = w.join().unwrap();
            all.latencies.extend(s.latencies);
            all.failures.extend(s.failures);
        }
        all
    })
}

/// A server with `config`, an active 1 MiB image for the bystanders, and their baseline.
struct Arena {
    srv: TestServer,
    id: String,
    data: Vec<u8>,
    baseline: Served,
}

impl Arena {
    fn start(config: &str) -> Arena {
        let srv = TestServer::start_with_config(config);
        let data = random_bytes(1 << 20, 7);
        let id = srv.create_active_image(json!({"name": "bystanders' image"}), &data);
        let stop = AtomicBool::new(true);
        let baseline = bystanders(&srv, &id, &data, &stop);
        Arena {
            srv,
            id,
            data,
            baseline,
        }
    }

    /// Runs `attack` while the bystanders work; checks they were all served and reports.
    fn under_attack<T>(&self, what: &str, attack: impl FnOnce() -> T) -> T {
        let rss_before = peak_rss(self.srv.pid());
        let stop = AtomicBool::new(false);
        let (result, served) = std::thread::scope(|scope| {
            let served = scope.spawn(|| bystanders(&self.srv, &self.id, &self.data, &stop));
            let result = attack();
            stop.store(true, Ordering::SeqCst);
            (result, served.join().unwrap())
        });
        let rss = peak_rss(self.srv.pid());
        println!(
            "hostile: {what}: bystanders {} requests, p50 {:.1} ms, p99 {:.1} ms (baseline p50 \
             {:.1} ms, p99 {:.1} ms), {} failed; server peak RSS {:.1} MiB (before the attack \
             {:.1} MiB)",
            served.latencies.len(),
            served.percentile(0.50),
            served.percentile(0.99),
            self.baseline.percentile(0.50),
            self.baseline.percentile(0.99),
            served.failures.len(),
            rss as f64 / (1 << 20) as f64,
            rss_before as f64 / (1 << 20) as f64,
        );
        assert!(
            served.failures.is_empty(),
            "{what}: bystanders failed: {:?}",
            &served.failures[..served.failures.len().min(5)]
        );
        result
    }

    fn peak_rss_mib(&self) -> f64 {
        peak_rss(self.srv.pid()) as f64 / (1 << 20) as f64
    }
}

/// Writes what the socket takes now; `false` once the server has closed it.
fn nudge(stream: &mut TcpStream, byte: &[u8]) -> bool {
    match stream.write(byte) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Err(_) => return false,
    }
    let mut buf = [0u8; 4096];
    match stream.read(&mut buf) {
        Ok(0) => false,
        Ok(_) => true, // an answer; the close follows
        Err(e) if e.kind() == ErrorKind::WouldBlock => true,
        Err(_) => false,
    }
}

/// Connections that send `head` and then one more byte every 100 ms, until the server closes
/// each of them; returns how long the last one took to be closed.
fn trickle(srv: &TestServer, count: usize, head: &[u8], deadline: Duration) -> Duration {
    let started = Instant::now();
    let mut open: Vec<TcpStream> = (0..count)
        .map(|_| {
            let mut s = TcpStream::connect(srv.addr()).unwrap();
            s.write_all(head).unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    while !open.is_empty() {
        assert!(
            started.elapsed() < deadline,
            "{} trickling connections still open after {deadline:?}",
            open.len()
        );
        open.retain_mut(|s| nudge(s, b"a"));
        std::thread::sleep(Duration::from_millis(100));
    }
    started.elapsed()
}

const SHORT_TIMEOUT: &str = "client_socket_timeout = 2\n";

#[test]
fn slow_headers_are_cut_off_at_client_socket_timeout() {
    let arena = Arena::start(SHORT_TIMEOUT);
    let count = 200 * scale();
    let took = arena.under_attack(&format!("{count} slow-header connections"), || {
        // One header byte every 100 ms: the head never completes.
        trickle(
            &arena.srv,
            count,
            b"GET /v2/images HTTP/1.1\r\nHost: x\r\nX-Slow: ",
            Duration::from_secs(30),
        )
    });
    println!("hostile: slow headers: all {count} closed by the server after {took:?}");
    // The same with 60 KiB of head sent at once: each connection holds a big buffer.
    let head: String = (0..60)
        .map(|i| format!("X-H{i}: {}\r\n", "a".repeat(1000)))
        .collect();
    let head = format!("GET /v2/images HTTP/1.1\r\nHost: x\r\n{head}X-Slow: ");
    let took = arena.under_attack(
        &format!("{count} slow-header connections with 60 KiB heads"),
        || trickle(&arena.srv, count, head.as_bytes(), Duration::from_secs(30)),
    );
    println!("hostile: slow 60 KiB headers: all {count} closed by the server after {took:?}");
}

/// Sends `head` and `sent` body bytes, then nothing; returns the answer once the server closes.
fn stall(srv: &TestServer, head: String, sent: &[u8]) -> String {
    let mut s = TcpStream::connect(srv.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(sent).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn stalled_bodies_get_408_and_release_the_upload() {
    let arena = Arena::start(SHORT_TIMEOUT);
    let count = 20 * scale();
    let ids: Vec<String> = (0..count)
        .map(|_| arena.srv.create_raw_image(json!({})))
        .collect();
    let answers = arena.under_attack(
        &format!("{count} stalled uploads + {count} stalled JSON bodies"),
        || {
            std::thread::scope(|scope| {
                let uploads: Vec<_> = ids
                    .iter()
                    .map(|id| {
                        let head = format!(
                            "PUT /v2/images/{id}/file HTTP/1.1\r\nHost: x\r\nContent-Type: \
                         application/octet-stream\r\nContent-Length: 1048576\r\n\r\n"
                        );
                        let srv = &arena.srv;
                        scope.spawn(move || stall(srv, head, &[7u8; 1000]))
                    })
                    .collect();
                let creates: Vec<_> = (0..count)
                    .map(|_| {
                        let head = "POST /v2/images HTTP/1.1\r\nHost: x\r\nContent-Type: \
                                application/json\r\nContent-Length: 100\r\n\r\n"
                            .to_owned();
                        let srv = &arena.srv;
                        scope.spawn(move || stall(srv, head, b"{\"name\": "))
                    })
                    .collect();
                uploads
                    .into_iter()
                    .chain(creates)
                    .map(|h| h.join().unwrap())
                    .collect::<Vec<_>>()
            })
        },
    );
    for answer in &answers {
        assert!(
            answer.starts_with("HTTP/1.1 408 "),
            "a stalled body gets 408: {answer:?}"
        );
    }
    for id in &ids {
        let image = arena.srv.image(id);
        assert_eq!(image["status"], "queued", "{image}");
    }
    assert!(arena.srv.part_files().is_empty(), "no partial file left");
    // 1 + the images created here: the stalled creates made nothing.
    assert_eq!(
        arena.srv.list("limit=1000")["images"]
            .as_array()
            .unwrap()
            .len(),
        1 + count
    );
}

#[test]
fn a_thousand_idle_connections_while_downloads_run() {
    let arena = Arena::start("");
    let count = 1000 * scale();
    let idle = arena.under_attack(&format!("{count} idle connections"), || {
        let idle: Vec<TcpStream> = (0..count)
            .map(|_| TcpStream::connect(arena.srv.addr()).unwrap())
            .collect();
        // Let the bystanders run with all of them open.
        let stop_after = Instant::now() + Duration::from_secs(3);
        while Instant::now() < stop_after {
            std::thread::sleep(Duration::from_millis(50));
        }
        idle
    });
    // They are still open and still work.
    let mut first = idle.into_iter().next().unwrap();
    first
        .write_all(b"GET /healthcheck HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    first.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
}

/// Sends `request` on a new connection and returns the status the server answered, if any.
fn status_of(srv: &TestServer, request: &[u8]) -> Option<u16> {
    let mut s = TcpStream::connect(srv.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut writer = s.try_clone().unwrap();
    let request = request.to_vec();
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(&request);
    });
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let _ = sender.join();
    String::from_utf8_lossy(&answer)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn post_json_bytes(path: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \
         {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

#[test]
fn oversized_requests_get_their_statuses() {
    let arena = Arena::start("");
    let srv = &arena.srv;
    let get = |line_extra: &str, headers: &str| {
        format!(
            "GET /v2/images{line_extra} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n"
        )
        .into_bytes()
    };
    let checks: Vec<(&str, Vec<u8>, u16)> = vec![
        // Beyond the 64 KiB head limit; shorter request lines are served, as uWSGI with
        // Glance's `buffer-size = 65535` serves them.
        (
            "request line of 70 KiB",
            get(&format!("?name={}", "a".repeat(70 << 10)), ""),
            431,
        ),
        (
            "request line of 8 KiB",
            get(&format!("?name={}", "a".repeat(8 << 10)), ""),
            200,
        ),
        (
            "head of 80 KiB",
            get(
                "",
                &(0..80)
                    .map(|i| format!("X-H{i}: {}\r\n", "a".repeat(1000)))
                    .collect::<String>(),
            ),
            431,
        ),
        (
            "head of 2 MiB",
            get(
                "",
                &(0..99)
                    .map(|i| format!("X-H{i}: {}\r\n", "a".repeat(20_000)))
                    .collect::<String>(),
            ),
            431,
        ),
        (
            "header line of 20 KiB",
            get("", &format!("X-Big: {}\r\n", "a".repeat(20 << 10))),
            200,
        ),
        (
            "101 header fields",
            get(
                "",
                &(0..101)
                    .map(|i| format!("X-H{i}: a\r\n"))
                    .collect::<String>(),
            ),
            431,
        ),
        (
            "JSON body of 2 MiB",
            post_json_bytes(
                "/v2/images",
                format!("{{\"name\": \"{}\"}}", "a".repeat(2 << 20)).as_bytes(),
            ),
            413,
        ),
        (
            "JSON nested 100000 deep",
            post_json_bytes(
                "/v2/images",
                format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).as_bytes(),
            ),
            400,
        ),
        (
            "JSON object nested 50000 deep",
            post_json_bytes(
                "/v2/images",
                format!("{}1{}", "{\"a\":".repeat(50_000), "}".repeat(50_000)).as_bytes(),
            ),
            400,
        ),
    ];
    arena.under_attack("oversized request lines, heads and bodies", || {
        for (what, request, want) in &checks {
            assert_eq!(status_of(srv, request), Some(*want), "{what}");
        }
    });

    // Many large JSON bodies held at once (all but the last byte sent, then the rest): memory
    // is bounded by the 1 MiB body limit per request.
    let count = 50 * scale();
    let big = post_json_bytes(
        "/v2/images",
        format!("{{\"name\": \"{}\"}}", "a".repeat((1 << 20) - 100)).as_bytes(),
    );
    arena.under_attack(
        &format!("{count} JSON bodies of 1 MiB held open at once"),
        || {
            let mut held: Vec<TcpStream> = (0..count)
                .map(|_| {
                    let mut s = TcpStream::connect(srv.addr()).unwrap();
                    s.write_all(&big[..big.len() - 1]).unwrap();
                    s
                })
                .collect();
            for s in &mut held {
                s.write_all(&big[big.len() - 1..]).unwrap();
            }
            for mut s in held {
                s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                let mut answer = String::new();
                let _ = s.read_to_string(&mut answer);
                // Valid JSON, and a name longer than 255: Glance's schema answer.
                assert!(answer.starts_with("HTTP/1.1 400 "), "{answer:.200}");
            }
        },
    );
    println!(
        "hostile: after {count} concurrent 1 MiB JSON bodies: peak RSS {:.1} MiB",
        arena.peak_rss_mib()
    );
}

fn patch(srv: &TestServer, id: &str, ops: &Value) -> glint_tests::Resp {
    srv.request("PATCH", &format!("/v2/images/{id}"))
        .header("content-type", PATCH_V21)
        .body(serde_json::to_vec(ops).unwrap())
        .send()
}

#[test]
fn huge_patches_and_glances_per_image_limits() {
    let arena = Arena::start("");
    let srv = &arena.srv;
    let id = srv.create_raw_image(json!({"visibility": "shared"}));
    arena.under_attack("huge patch documents and per-image limits", || {
        // 20 000 operations in one document (within the 1 MiB body): applied in order.
        let ops: Vec<Value> = (0..20_000)
            .map(|i| json!({"op": "replace", "path": "/name", "value": format!("n{i}")}))
            .collect();
        patch(srv, &id, &Value::Array(ops)).expect_status(200);
        assert_eq!(srv.image(&id)["name"], "n19999");
        // A patch over the body limit.
        let ops: Vec<Value> = (0..40_000)
            .map(|i| json!({"op": "replace", "path": "/name", "value": format!("n{i}")}))
            .collect();
        assert_eq!(patch(srv, &id, &Value::Array(ops)).status, 413);

        // image_property_quota (128): the 129th property is refused, on create and on patch.
        let props: serde_json::Map<String, Value> =
            (0..129).map(|i| (format!("p{i}"), json!("v"))).collect();
        let mut body = json!({"name": "many"});
        body.as_object_mut().unwrap().extend(props);
        assert_eq!(srv.post_json("/v2/images", &body).status, 413);
        let ops: Vec<Value> = (0..129)
            .map(|i| json!({"op": "add", "path": format!("/p{i}"), "value": "v"}))
            .collect();
        assert_eq!(patch(srv, &id, &Value::Array(ops)).status, 413);
        let ops: Vec<Value> = (0..128)
            .map(|i| json!({"op": "add", "path": format!("/p{i}"), "value": "v"}))
            .collect();
        patch(srv, &id, &Value::Array(ops)).expect_status(200);

        // image_tag_quota (128).
        let tags: Vec<String> = (0..129).map(|i| format!("t{i}")).collect();
        assert_eq!(
            srv.post_json("/v2/images", &json!({"tags": tags})).status,
            413
        );
        for tag in &tags[..128] {
            srv.request("PUT", &format!("/v2/images/{id}/tags/{tag}"))
                .send()
                .expect_status(204);
        }
        assert_eq!(
            srv.request("PUT", &format!("/v2/images/{id}/tags/t128"))
                .send()
                .status,
            413
        );

        // image_member_quota (128).
        for i in 0..128 {
            srv.post_json(
                &format!("/v2/images/{id}/members"),
                &json!({"member": format!("m{i}")}),
            )
            .expect_status(200);
        }
        assert_eq!(
            srv.post_json(
                &format!("/v2/images/{id}/members"),
                &json!({"member": "m128"})
            )
            .status,
            413
        );

        // Locations are not shown (Glance's default show_multiple_locations = False), so any
        // location change is refused before image_location_quota is reached.
        let ops: Vec<Value> = (0..11)
            .map(|i| {
                json!({"op": "add", "path": "/locations/-",
                       "value": {"url": format!("http://example.com/{i}"), "metadata": {}}})
            })
            .collect();
        assert_eq!(patch(srv, &id, &Value::Array(ops)).status, 403);
    });
}
