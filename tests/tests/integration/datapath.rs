//! The streaming data path under realistic load: a 64 MiB round trip, concurrent uploads and
//! downloads, clients that vanish mid-body, and the epoll fallback driver.

use std::time::Duration;

use glint_tests::{digest_hex, md5_hex, poll_until, random_bytes, raw, TestServer};
use serde_json::{json, Value};

use crate::persistence::start_partial_upload;

#[track_caller]
fn assert_queued_without_leftovers(srv: &TestServer, id: &str) {
    let image = poll_until(Duration::from_secs(30), "image back to queued", || {
        let image = srv.image(id);
        (image["status"] == "queued").then_some(image)
    });
    assert_eq!(image["size"], Value::Null, "{image}");
    assert_eq!(image["checksum"], Value::Null, "{image}");
    poll_until(Duration::from_secs(30), "no .part file left", || {
        srv.part_files().is_empty().then_some(())
    });
    assert!(!srv.image_file(id).exists());
}

#[test]
fn upload_and_download_64_mib_byte_identical() {
    let srv = TestServer::start();
    let data = random_bytes(64 << 20, 31);
    let id = srv.create_raw_image(json!({"name": "big"}));
    srv.upload(&id, &data).expect_status(204);
    let image = srv.image(&id);
    assert_eq!(image["status"], "active");
    assert_eq!(image["size"], data.len());
    assert_eq!(image["checksum"], md5_hex(&data));
    assert_eq!(image["os_hash_value"], digest_hex("sha512", &data));
    let resp = srv.download(&id).expect_status(200);
    assert_eq!(
        resp.header("content-length"),
        Some((64u64 << 20).to_string().as_str())
    );
    assert!(resp.body == data, "64 MiB download differs from upload");
}

#[test]
fn chunked_upload_of_16_mib_in_one_mib_chunks() {
    // python-glanceclient streams files as 1 MiB chunks.
    let srv = TestServer::start();
    let data = random_bytes(16 << 20, 32);
    let id = srv.create_raw_image(json!({}));
    let mut req = raw::head(
        "PUT",
        &format!("/v2/images/{id}/file"),
        &[
            ("Content-Type", "application/octet-stream"),
            ("Transfer-Encoding", "chunked"),
            ("Connection", "close"),
        ],
    );
    req.extend(raw::chunked_body(&data, 1 << 20));
    let resp = srv.raw(&req);
    assert_eq!(resp.status, 204, "{resp:?}");
    assert_eq!(srv.image(&id)["checksum"], md5_hex(&data));
    assert!(srv.download(&id).expect_status(200).body == data);
}

#[test]
fn concurrent_uploads_to_different_images() {
    let srv = TestServer::start();
    let jobs: Vec<(String, Vec<u8>)> = (0..6)
        .map(|i| {
            (
                srv.create_raw_image(json!({})),
                random_bytes(3 << 20, 40 + i),
            )
        })
        .collect();
    std::thread::scope(|s| {
        for (i, (id, data)) in jobs.iter().enumerate() {
            let srv = &srv;
            s.spawn(move || {
                if i % 2 == 0 {
                    srv.upload(id, data).expect_status(204);
                } else {
                    srv.upload_chunked(id, data).expect_status(204);
                }
            });
        }
    });
    for (id, data) in &jobs {
        let image = srv.image(id);
        assert_eq!(image["status"], "active");
        assert_eq!(image["checksum"], md5_hex(data));
        assert_eq!(image["os_hash_value"], digest_hex("sha512", data));
        assert!(srv.download(id).expect_status(200).body == *data);
    }
}

#[test]
fn concurrent_downloads_of_one_image() {
    let srv = TestServer::start();
    let data = random_bytes(4 << 20, 50);
    let id = srv.create_active_image(json!({}), &data);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                let resp = srv.download(&id).expect_status(200);
                assert!(resp.body == data, "concurrent download differs");
            });
        }
    });
}

#[test]
fn second_upload_while_first_is_saving_conflicts() {
    let srv = TestServer::start();
    let id = srv.create_raw_image(json!({}));
    let mut conn = start_partial_upload(&srv, &id, 2 << 20, 1 << 20);
    let resp = srv.upload(&id, b"intruder");
    assert_eq!(resp.status, 409, "{resp:?}");
    // The first upload completes normally.
    conn.send(&random_bytes(1 << 20, 98));
    let resp = conn.read_response();
    assert_eq!(resp.status, 204, "{resp:?}");
    let mut expected = random_bytes(1 << 20, 99);
    expected.extend(random_bytes(1 << 20, 98));
    assert_eq!(srv.image(&id)["checksum"], md5_hex(&expected));
}

#[test]
fn client_disconnect_mid_body_resets_image_to_queued() {
    let srv = TestServer::start();
    let id = srv.create_raw_image(json!({}));
    let conn = start_partial_upload(&srv, &id, 8 << 20, 1 << 20);
    drop(conn);
    assert_queued_without_leftovers(&srv, &id);
    // A retry succeeds.
    let data = random_bytes(1 << 20, 33);
    srv.upload(&id, &data).expect_status(204);
    assert!(srv.download(&id).expect_status(200).body == data);
}

#[test]
fn client_half_close_mid_body_resets_image_to_queued() {
    // EOF before Content-Length is reached (the client shut down its sending side and
    // waits for an answer).
    let srv = TestServer::start();
    let id = srv.create_raw_image(json!({}));
    let mut conn = start_partial_upload(&srv, &id, 8 << 20, 1 << 20);
    conn.shutdown_write();
    // Whatever the server answers (if anything), the image must be reset.
    let _ = conn.is_closed_within(Duration::from_secs(30));
    assert_queued_without_leftovers(&srv, &id);
}

#[test]
fn client_disconnect_mid_chunked_body_resets_image_to_queued() {
    let srv = TestServer::start();
    let id = srv.create_raw_image(json!({}));
    let mut conn = srv.connect();
    conn.send(&raw::head(
        "PUT",
        &format!("/v2/images/{id}/file"),
        &[
            ("Content-Type", "application/octet-stream"),
            ("Transfer-Encoding", "chunked"),
        ],
    ));
    let body = raw::chunked_body(&random_bytes(2 << 20, 34), 256 << 10);
    // Everything but the terminating zero chunk, then a chunk header promising more.
    conn.send(&body[..body.len() - 5]);
    conn.send(b"10000\r\nabc");
    srv.wait_for_status(&id, "saving");
    drop(conn);
    assert_queued_without_leftovers(&srv, &id);
}

#[test]
fn epoll_driver_serves_uploads_and_downloads() {
    for srv in [
        TestServer::builder()
            .env("GLINT_IO_DRIVER", "epoll")
            .start(),
        TestServer::start_with_config("io_driver = \"epoll\"\n"),
    ] {
        // DESIGN.md: the driver chosen at start-up is logged.
        assert!(
            srv.log_tail(500).contains("epoll"),
            "the log does not mention the epoll driver:\n{}",
            srv.log_tail(20)
        );
        let data = random_bytes(8 << 20, 35);
        let id = srv.create_raw_image(json!({}));
        srv.upload_chunked(&id, &data).expect_status(204);
        assert_eq!(srv.image(&id)["checksum"], md5_hex(&data));
        assert!(srv.download(&id).expect_status(200).body == data);
        let resp = srv
            .request("GET", &format!("/v2/images/{id}/file"))
            .header("range", "bytes=-100")
            .send()
            .expect_status(206);
        assert!(resp.body == data[data.len() - 100..]);
        assert_eq!(srv.list_ids(""), [id]);
    }
}

#[test]
fn single_worker_config_serves_concurrent_clients() {
    let srv = TestServer::start_with_config("workers = 1\n");
    let data = random_bytes(2 << 20, 36);
    let id = srv.create_active_image(json!({}), &data);
    std::thread::scope(|s| {
        for i in 0..4 {
            let srv = &srv;
            let data = &data;
            let id = &id;
            s.spawn(move || {
                let fresh = srv.create_raw_image(json!({"name": format!("w{i}")}));
                srv.upload(&fresh, data).expect_status(204);
                assert!(srv.download(id).expect_status(200).body == *data);
            });
        }
    });
    assert_eq!(srv.list_ids("status=active").len(), 5);
}

#[test]
fn image_in_saving_state_follows_the_status_rules() {
    let srv = TestServer::start();
    let id = srv.create_raw_image(json!({}));
    let mut conn = start_partial_upload(&srv, &id, 2 << 20, 1 << 20);
    // §4.8: no data yet → 204.
    assert_eq!(srv.download(&id).status, 204, "download while saving");
    // §4.4: formats only change while queued; other metadata stays editable.
    let resp = srv.patch(
        &id,
        json!([{"op": "replace", "path": "/disk_format", "value": "qcow2"}]),
    );
    assert_eq!(resp.status, 403, "disk_format while saving: {resp:?}");
    srv.patch(
        &id,
        json!([{"op": "replace", "path": "/name", "value": "busy"}]),
    )
    .expect_status(200);
    // §4.6: only active images can be deactivated.
    let resp = srv.post_empty(&format!("/v2/images/{id}/actions/deactivate"));
    assert_eq!(resp.status, 403, "deactivate while saving: {resp:?}");
    assert_eq!(srv.list_ids("status=saving"), [id.as_str()]);
    conn.send(&random_bytes(1 << 20, 97));
    assert_eq!(conn.read_response().status, 204);
    let image = srv.image(&id);
    assert_eq!(image["status"], "active");
    assert_eq!(image["name"], "busy", "the PATCH made while saving is kept");
}

#[test]
fn image_deleted_during_upload_gets_410_and_leaves_nothing() {
    // §3.5: "image deleted concurrently → 410 Gone", chunks cleaned up.
    let srv = TestServer::start();
    let id = srv.create_raw_image(json!({}));
    let mut conn = start_partial_upload(&srv, &id, 2 << 20, 1 << 20);
    srv.delete(&format!("/v2/images/{id}")).expect_status(204);
    conn.send_lenient(&random_bytes(1 << 20, 96));
    let resp = conn.read_response();
    assert_eq!(resp.status, 410, "{resp:?}");
    assert_eq!(srv.get(&format!("/v2/images/{id}")).status, 404);
    poll_until(Duration::from_secs(30), "no .part file left", || {
        srv.part_files().is_empty().then_some(())
    });
    assert!(
        !srv.image_file(&id).exists(),
        "no data file for a deleted image"
    );
}
