//! Answers sent before the request body ends (issue 18). A refused upload (413 size cap or
//! quota, 415 format, 409 state, 401/403) is answered while the client is still sending; the
//! answer must reach every client, also one that writes its whole body before it reads (Python's
//! http.client) or that gives up on a failed write (curl). So glint answers, then lingers:
//! it reads and discards what the client still sends until the client closes, and only then
//! closes; a client that keeps sending is cut off at `lingering_close_*`.
//!
//! Each client here writes its whole body as fast as the socket takes it (a writer thread)
//! while it reads the answer, under CPU load (busy threads on every core, bounded in time),
//! and must see no write fail and the whole answer; the image is checked after each round.

use std::io::Write as _;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use glint_tests::fake_keystone::FakeKeystone;
use glint_tests::{id_of, poll_until, random_bytes, raw, Resp, TestServer};
use serde_json::json;

/// Larger than what the socket buffers of both ends hold, so that a server that closes
/// early always has unread bytes queued and more on the way.
const BODY_BYTES: usize = 24 << 20;
/// Rounds per refusal.
const ROUNDS: usize = 16;
/// The pieces the client writes.
const WRITE_BYTES: usize = 256 << 10;
/// Longest a busy thread spins, whatever happens to the test.
const LOAD_LIMIT: Duration = Duration::from_secs(120);

/// Busy threads on every core while it lives (and at most [`LOAD_LIMIT`]).
struct CpuLoad {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl CpuLoad {
    fn start() -> CpuLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let threads = (0..cores)
            .map(|_| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let until = Instant::now() + LOAD_LIMIT;
                    let mut x: u64 = 1;
                    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                        for _ in 0..10_000 {
                            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005) | 1);
                        }
                    }
                })
            })
            .collect();
        CpuLoad { stop, threads }
    }
}

impl Drop for CpuLoad {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A request body and how it is framed.
#[derive(Clone, Copy)]
enum Framing {
    Length,
    Chunked,
}

/// What a client that writes its whole body while reading the answer saw.
struct Exchange {
    response: Result<Resp, String>,
    /// `Err` when a write failed (the server reset the connection before the body was sent).
    written: Result<(), String>,
}

/// Sends `head` and then `body` as fast as the socket takes it from a writer thread, while
/// this thread reads the answer; then waits for the writer and closes.
fn exchange(srv: &TestServer, head: Vec<u8>, body: Arc<Vec<u8>>) -> Exchange {
    let mut conn = srv.connect();
    let writer = conn.writer();
    writer
        .set_write_timeout(Some(Duration::from_secs(60)))
        .expect("set write timeout");
    let sender = std::thread::spawn(move || send_all(writer, &head, &body));
    let response = conn.try_read_response("refused upload", false);
    let written = sender.join().expect("writer thread");
    Exchange { response, written }
}

fn send_all(mut stream: TcpStream, head: &[u8], body: &[u8]) -> Result<(), String> {
    stream
        .write_all(head)
        .map_err(|e| format!("writing the head: {e}"))?;
    let mut sent = 0;
    for piece in body.chunks(WRITE_BYTES) {
        stream.write_all(piece).map_err(|e| {
            format!(
                "write failed after {sent} of {} body bytes: {e}",
                body.len()
            )
        })?;
        sent += piece.len();
    }
    Ok(())
}

/// The request head and body bytes of an upload of `data` to `id`.
fn upload_request(
    id: &str,
    data: &[u8],
    framing: Framing,
    token: Option<&str>,
) -> (Vec<u8>, Arc<Vec<u8>>) {
    let path = format!("/v2/images/{id}/file");
    let length = data.len().to_string();
    let mut headers = vec![("Content-Type", "application/octet-stream")];
    let body = match framing {
        Framing::Length => {
            headers.push(("Content-Length", &length));
            data.to_vec()
        }
        Framing::Chunked => {
            headers.push(("Transfer-Encoding", "chunked"));
            raw::chunked_body(data, 1 << 20)
        }
    };
    if let Some(token) = token {
        headers.push(("X-Auth-Token", token));
    }
    (raw::head("PUT", &path, &headers), Arc::new(body))
}

/// Requires the whole answer `status` with `text` in its body, and a client whose writes all
/// went through.
#[track_caller]
fn assert_answered(what: &str, round: usize, ex: Exchange, status: u16, text: &str) {
    let resp = match ex.response {
        Ok(resp) => resp,
        Err(e) => panic!("{what}, round {round}: the answer was lost: {e}"),
    };
    assert_eq!(resp.status, status, "{what}, round {round}: {resp:?}");
    assert!(
        resp.text().contains(text),
        "{what}, round {round}: {text:?} not in the body: {resp:?}"
    );
    if let Err(e) = ex.written {
        panic!(
            "{what}, round {round}: the client was cut off while it sent its body, so a \
             client that writes before it reads never sees the answer: {e}"
        );
    }
}

/// The image is `queued` again and no data of it is on disk.
#[track_caller]
fn assert_queued_without_data(srv: &TestServer, id: &str, image: serde_json::Value) {
    assert_eq!(image["status"], "queued", "{image}");
    assert!(image["size"].is_null(), "{image}");
    assert!(!srv.image_file(id).exists(), "image file of {id} exists");
    assert!(srv.part_files().is_empty(), "{:?}", srv.part_files());
}

fn framing(round: usize) -> Framing {
    if round.is_multiple_of(2) {
        Framing::Length
    } else {
        Framing::Chunked
    }
}

#[test]
fn format_mismatch_and_wrong_state_answers_reach_a_client_still_sending() {
    let srv = TestServer::start();
    let data = random_bytes(BODY_BYTES, 18);
    let active = srv.create_active_image(json!({}), b"already here");
    let _load = CpuLoad::start();
    for round in 0..ROUNDS {
        // 415: raw bytes declared qcow2; refused after the first frames.
        let id =
            id_of(&srv.create_image(json!({"disk_format": "qcow2", "container_format": "bare"})));
        let (head, body) = upload_request(&id, &data, framing(round), None);
        let ex = exchange(&srv, head, body);
        assert_answered(
            "415 format",
            round,
            ex,
            415,
            "does not match stream data raw",
        );
        assert_queued_without_data(&srv, &id, srv.image(&id));

        // 409: the image is active already; refused before the body is read.
        let (head, body) = upload_request(&active, &data, framing(round), None);
        let ex = exchange(&srv, head, body);
        assert_answered("409 state", round, ex, 409, "not allowed");
        let image = srv.image(&active);
        assert_eq!(image["status"], "active", "{image}");
        assert_eq!(image["size"], 12, "{image}");
        assert!(srv.part_files().is_empty(), "{:?}", srv.part_files());
    }
}

#[test]
fn size_cap_answers_reach_a_client_still_sending() {
    let srv = TestServer::start_with_config("image_size_cap = 4194304\n");
    let data = random_bytes(BODY_BYTES, 19);
    let _load = CpuLoad::start();
    for round in 0..ROUNDS {
        // Content-Length over the cap: refused before the body is read. Chunked: cut where
        // the cap is crossed, mid-stream.
        let id = srv.create_raw_image(json!({}));
        let (head, body) = upload_request(&id, &data, framing(round), None);
        let ex = exchange(&srv, head, body);
        assert_answered("413 cap", round, ex, 413, "4194304");
        assert_queued_without_data(&srv, &id, srv.image(&id));
    }
}

#[test]
fn quota_answers_reach_a_client_still_sending() {
    let srv = TestServer::start_with_config("[quotas]\nimage_size_total = 4\n");
    let data = random_bytes(BODY_BYTES, 20);
    let _load = CpuLoad::start();
    for round in 0..ROUNDS {
        // Content-Length over what the quota leaves: refused before the body. Chunked: the
        // stream is cut where the quota runs out.
        let id = srv.create_raw_image(json!({}));
        let (head, body) = upload_request(&id, &data, framing(round), None);
        let ex = exchange(&srv, head, body);
        assert_answered("413 quota", round, ex, 413, "image_size_total");
        assert_queued_without_data(&srv, &id, srv.image(&id));
    }
}

#[test]
fn auth_answers_reach_a_client_still_sending() {
    let keystone = FakeKeystone::start();
    let srv = TestServer::start_with_config(&keystone.glint_config());
    let hour = Duration::from_secs(3600);
    let member = keystone.issue("alice", "proj-a", &["member", "reader"], hour);
    let reader = keystone.issue("rita", "proj-a", &["reader"], hour);
    let data = random_bytes(BODY_BYTES, 21);
    let id = id_of(
        &srv.request("POST", "/v2/images")
            .header("x-auth-token", &member)
            .json(&json!({"disk_format": "raw", "container_format": "bare"}))
            .send()
            .expect_status(201)
            .json(),
    );
    let image = || {
        srv.request("GET", &format!("/v2/images/{id}"))
            .header("x-auth-token", &member)
            .send()
            .expect_status(200)
            .json()
    };
    let _load = CpuLoad::start();
    for round in 0..ROUNDS {
        // 401: a token Keystone does not know; refused before the body is read.
        let (head, body) = upload_request(&id, &data, framing(round), Some("not-a-token"));
        let ex = exchange(&srv, head, body);
        assert_answered("401", round, ex, 401, "requires authentication");
        assert_queued_without_data(&srv, &id, image());

        // 403: a reader may see the image but not upload to it.
        let (head, body) = upload_request(&id, &data, framing(round), Some(&reader));
        let ex = exchange(&srv, head, body);
        assert_answered("403", round, ex, 403, "Forbidden");
        assert_queued_without_data(&srv, &id, image());
    }
}

#[test]
fn deleted_during_upload_answers_410_after_the_body() {
    // Not an early answer (410 comes once the whole body is in), but the same client must
    // get it, and nothing of the image may remain.
    let srv = TestServer::start();
    let data = random_bytes(4 << 20, 22);
    for round in 0..4 {
        let id = srv.create_raw_image(json!({}));
        let mut conn = srv.connect();
        let path = format!("/v2/images/{id}/file");
        conn.send(&raw::head(
            "PUT",
            &path,
            &[
                ("Content-Type", "application/octet-stream"),
                ("Transfer-Encoding", "chunked"),
            ],
        ));
        let mut body = raw::chunked_body(&data, 1 << 20);
        let last = body.split_off(body.len() - 5); // "0\r\n\r\n"
        conn.send(&body);
        srv.wait_for_status(&id, "saving");
        srv.delete(&format!("/v2/images/{id}")).expect_status(204);
        conn.send(&last);
        let resp = conn
            .try_read_response("upload of a deleted image", false)
            .unwrap_or_else(|e| panic!("round {round}: the answer was lost: {e}"));
        assert_eq!(resp.status, 410, "round {round}: {resp:?}");
        srv.get(&format!("/v2/images/{id}")).expect_status(404);
        assert!(!srv.image_file(&id).exists());
        assert!(srv.part_files().is_empty(), "{:?}", srv.part_files());
    }
}

/// A client that never stops sending: an endless chunked body after the head. Returns the
/// answer, the bytes written until the server cut the connection, and how long that took.
fn endless_sender(srv: &TestServer, id: &str) -> (Resp, u64, Duration) {
    let path = format!("/v2/images/{id}/file");
    let head = raw::head(
        "PUT",
        &path,
        &[
            ("Content-Type", "application/octet-stream"),
            ("Transfer-Encoding", "chunked"),
        ],
    );
    let chunk = raw::chunked_body(&random_bytes(1 << 20, 23), 1 << 20);
    let chunk = chunk[..chunk.len() - 5].to_vec(); // without the final "0\r\n\r\n"
    let mut conn = srv.connect();
    let mut writer = conn.writer();
    writer
        .set_write_timeout(Some(Duration::from_secs(60)))
        .expect("set write timeout");
    let started = Instant::now();
    let sender = std::thread::spawn(move || {
        let mut sent = 0u64;
        let give_up = started + GIVE_UP;
        if writer.write_all(&head).is_err() {
            return sent;
        }
        while Instant::now() < give_up {
            if writer.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len() as u64;
        }
        sent
    });
    let resp = conn.read_response_to("endless upload", false);
    let sent = sender.join().expect("writer thread");
    let took = started.elapsed();
    assert!(
        took < GIVE_UP,
        "the server never cut the sender off ({sent} bytes sent)"
    );
    (resp, sent, took)
}

/// How long an endless sender keeps going if nobody stops it.
const GIVE_UP: Duration = Duration::from_secs(60);

#[test]
fn a_client_that_keeps_sending_is_cut_off_at_the_byte_bound() {
    let max_bytes: u64 = 8 << 20;
    let srv = TestServer::start_with_config(&format!(
        "lingering_close_max_bytes = {max_bytes}\nlingering_close_time_ms = 60000\n"
    ));
    let id = id_of(&srv.create_image(json!({"disk_format": "qcow2", "container_format": "bare"})));
    let (resp, sent, _took) = endless_sender(&srv, &id);
    assert_eq!(resp.status, 415, "{resp:?}");
    // What the client could write: the bound, what glint read before it refused, and what
    // the two sockets' buffers hold (a few MiB each at most).
    assert!(sent < max_bytes + (48 << 20), "{sent} bytes sent");
    let closes = poll_until(Duration::from_secs(10), "the lingering close", || {
        let n = srv.metric("glint_lingering_closes_total{end=\"bytes\"}");
        (n > 0.0).then_some(n)
    });
    assert_eq!(closes, 1.0);
    assert_eq!(
        srv.metric("glint_lingering_discarded_bytes_total"),
        max_bytes as f64
    );
    assert_queued_without_data(&srv, &id, srv.image(&id));
}

#[test]
fn a_client_that_keeps_sending_is_cut_off_at_the_time_bound_and_a_silent_one_at_idle() {
    let srv = TestServer::start_with_config(
        "lingering_close_max_bytes = 1099511627776\nlingering_close_time_ms = 500\n\
         lingering_close_idle_ms = 300\n",
    );
    let id = id_of(&srv.create_image(json!({"disk_format": "qcow2", "container_format": "bare"})));
    let (resp, _sent, _took) = endless_sender(&srv, &id);
    assert_eq!(resp.status, 415, "{resp:?}");
    poll_until(
        Duration::from_secs(10),
        "a lingering close at the time bound",
        || (srv.metric("glint_lingering_closes_total{end=\"time\"}") == 1.0).then_some(()),
    );

    // A client that stops sending after the answer but never closes: let go at idle.
    let data = random_bytes(4 << 20, 24);
    let (head, body) = upload_request(&id, &data, Framing::Length, None);
    let mut conn = srv.connect();
    conn.send(&head);
    conn.send(&body[..2 << 20]);
    let resp = conn.read_response_to("half-sent upload", false);
    assert_eq!(resp.status, 415, "{resp:?}");
    poll_until(
        Duration::from_secs(10),
        "a lingering close at the idle bound",
        || (srv.metric("glint_lingering_closes_total{end=\"idle\"}") == 1.0).then_some(()),
    );
    assert_queued_without_data(&srv, &id, srv.image(&id));
}
