//! What survives a restart or a crash: metadata, data, tags; uploads cut short by a crash or
//! a clean stop come back as `queued` with no partial file (§3.5: glint, unlike Glance, never
//! leaves `saving` behind). Also: SIGTERM exits 0.

use std::time::Duration;

use glint_tests::{id_of, poll_until, random_bytes, raw, TestServer};
use serde_json::{json, Value};

/// Start a `PUT /file` that announces `total` bytes but sends only `sent` of them, wait until
/// the image is `saving` and its `.part` file exists, and hand back the open connection.
pub fn start_partial_upload(srv: &TestServer, id: &str, total: usize, sent: usize) -> raw::Conn {
    let mut conn = srv.connect();
    let len = total.to_string();
    conn.send(&raw::head(
        "PUT",
        &format!("/v2/images/{id}/file"),
        &[
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", &len),
        ],
    ));
    conn.send(&random_bytes(sent, 99));
    srv.wait_for_status(id, "saving");
    poll_until(
        Duration::from_secs(30),
        "the .part file of the upload",
        || srv.part_file(id).filter(|p| p.is_file()),
    );
    conn
}

/// Everything that must be identical after a restart: the image bodies (with `updated_at`).
fn snapshot(srv: &TestServer, ids: &[&String]) -> Vec<Value> {
    ids.iter().map(|id| srv.image(id)).collect()
}

#[test]
fn sigterm_exits_with_status_zero() {
    let mut srv = TestServer::start();
    srv.create_active_image(json!({}), b"x");
    let status = srv.stop().expect("server was running");
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
}

#[test]
fn sigint_exits_with_status_zero() {
    let mut srv = TestServer::start();
    srv.create_image(json!({}));
    let status = srv.stop_with(libc::SIGINT).expect("server was running");
    assert!(status.success(), "exit status after SIGINT: {status:?}");
}

#[test]
fn serve_is_the_default_subcommand() {
    let mut srv = TestServer::builder().without_serve_subcommand().start();
    let id = srv.create_active_image(json!({}), b"default");
    srv.restart();
    assert_eq!(srv.download(&id).expect_status(200).body, b"default");
}

#[test]
fn images_data_and_tags_survive_restart() {
    let mut srv = TestServer::start();
    let data = random_bytes(2_000_000, 21);
    let active = srv.create_active_image(
        json!({"name": "keep", "tags": ["t1"], "os_distro": "cirros", "visibility": "public"}),
        &data,
    );
    srv.request("PUT", &format!("/v2/images/{active}/tags/t2"))
        .send()
        .expect_status(204);
    let queued = id_of(&srv.create_image(json!({"name": "empty", "protected": true})));
    let hidden = srv.create_active_image(json!({"os_hidden": true}), b"hidden bytes");
    let deactivated = srv.create_active_image(json!({}), b"deactivated bytes");
    srv.post_empty(&format!("/v2/images/{deactivated}/actions/deactivate"))
        .expect_status(204);
    let deleted = id_of(&srv.create_image(json!({})));
    srv.delete(&format!("/v2/images/{deleted}"))
        .expect_status(204);
    let ids = [&active, &queued, &hidden, &deactivated];
    let before = snapshot(&srv, &ids);
    let list_before = srv.list("");
    let old_url = srv.url();

    srv.restart();
    assert_ne!(srv.url(), old_url, "new ephemeral port after restart");

    assert_eq!(snapshot(&srv, &ids), before, "image bodies after restart");
    assert_eq!(
        srv.list("")["images"],
        list_before["images"],
        "list after restart"
    );
    assert_eq!(srv.get(&format!("/v2/images/{deleted}")).status, 404);
    let resp = srv.download(&active).expect_status(200);
    assert!(resp.body == data, "downloaded bytes after restart");
    assert_eq!(
        srv.download(&hidden).expect_status(200).body,
        b"hidden bytes"
    );
    assert_eq!(srv.download(&queued).status, 204);
    // The store still enforces its rules after a restart.
    assert_eq!(srv.upload(&active, b"again").status, 409);
    assert_eq!(srv.delete(&format!("/v2/images/{queued}")).status, 403);
    let resp = srv.post_json("/v2/images", &json!({"id": deleted}));
    assert_eq!(
        resp.status, 409,
        "deleted id stays taken after restart: {resp:?}"
    );
}

#[test]
fn writes_after_restart_persist_again() {
    let mut srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({"name": "one"})));
    srv.restart();
    srv.patch(
        &id,
        json!([{"op": "replace", "path": "/name", "value": "two"}]),
    )
    .expect_status(200);
    srv.request("PUT", &format!("/v2/images/{id}/tags/x"))
        .send()
        .expect_status(204);
    srv.restart();
    let image = srv.image(&id);
    assert_eq!(image["name"], "two");
    assert_eq!(image["tags"], json!(["x"]));
}

#[test]
fn crash_during_upload_recovers_image_to_queued() {
    let mut srv = TestServer::start();
    let id = srv.create_raw_image(json!({"name": "interrupted"}));
    let conn = start_partial_upload(&srv, &id, 4 << 20, 1 << 20);
    srv.kill9();
    drop(conn);
    srv.start_again();

    let image = srv.image(&id);
    assert_eq!(
        image["status"], "queued",
        "saving is recovered at start-up: {image}"
    );
    for key in ["size", "checksum", "os_hash_value", "virtual_size"] {
        assert_eq!(image[key], Value::Null, "{key}: {image}");
    }
    assert!(
        srv.part_files().is_empty(),
        "stray .part removed at start-up"
    );
    assert!(!srv.image_file(&id).exists());
    // The upload can be retried.
    let data = random_bytes(10_000, 22);
    srv.upload(&id, &data).expect_status(204);
    assert_eq!(srv.download(&id).expect_status(200).body, data);
}

/// Issue 10: an upload belongs to the node that runs it, and start-up recovery resets only
/// this node's, so that gateways sharing metadata never reset each other's uploads in flight.
/// The node id is generated on first start and kept in the data folder; writing another id
/// there makes the restarted server another node.
#[test]
fn recovery_resets_only_this_nodes_uploads() {
    let mut srv = TestServer::start();
    let node_file = srv.data_dir().join("node_id");
    let node = std::fs::read_to_string(&node_file).expect("the node id is kept in the data dir");
    assert!(node.trim().starts_with("glint-"), "{node:?}");
    let id = srv.create_raw_image(json!({}));
    let conn = start_partial_upload(&srv, &id, 4 << 20, 1 << 20);
    srv.kill9();
    drop(conn);

    std::fs::write(&node_file, "another-node\n").unwrap();
    srv.start_again();
    let image = srv.image(&id);
    assert_eq!(image["status"], "saving", "not this node's upload: {image}");
    srv.stop();

    std::fs::write(&node_file, &node).unwrap();
    srv.start_again();
    let image = srv.image(&id);
    assert_eq!(image["status"], "queued", "this node's upload: {image}");
    assert_eq!(std::fs::read_to_string(&node_file).unwrap(), node);
}

#[test]
fn stray_part_file_is_removed_at_start_up() {
    let mut srv = TestServer::start();
    let id = srv.create_active_image(json!({}), b"kept");
    srv.stop();
    let stray = srv
        .data_dir()
        .join("images")
        .join(format!("{}.part", uuid::Uuid::new_v4()));
    std::fs::write(&stray, b"junk").unwrap();
    srv.start_again();
    assert!(!stray.exists(), "stray .part removed");
    assert_eq!(srv.download(&id).expect_status(200).body, b"kept");
}

#[test]
fn clean_stop_during_upload_leaves_no_saving_image() {
    let mut srv = TestServer::start();
    let id = srv.create_raw_image(json!({}));
    let conn = start_partial_upload(&srv, &id, 4 << 20, 1 << 20);
    // The server may let the in-flight request run for a grace period, but must then exit 0
    // on its own (stop() would SIGKILL after 15 s), and the image must not stay `saving`.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Keep the client connection open until the server is gone.
        let _conn = conn;
        let _ = rx.recv_timeout(Duration::from_secs(60));
    });
    let status = srv.stop().expect("server was running");
    let _ = tx.send(());
    assert!(
        status.success(),
        "SIGTERM with a stalled upload in flight still exits 0 (before the harness's SIGKILL): \
         {status:?}"
    );
    srv.start_again();
    let image = srv.image(&id);
    assert_eq!(image["status"], "queued", "{image}");
    assert_eq!(image["size"], Value::Null);
    assert!(srv.part_files().is_empty());
}

/// Issue 15: a crash between the rename of `<id>.part` to `<id>` and the metadata commit left
/// the image `queued` with its whole file under the final name, and no start-up removed it; a
/// crash between a delete's commit and its unlink left the file of a deleted image.
#[test]
fn data_files_no_image_owns_are_removed_at_start_up() {
    let mut srv = TestServer::start();
    let kept = srv.create_active_image(json!({}), b"kept");
    let queued = srv.create_raw_image(json!({}));
    let deleted = srv.create_raw_image(json!({}));
    srv.delete(&format!("/v2/images/{deleted}"))
        .expect_status(204);
    srv.stop();
    std::fs::write(srv.image_file(&queued), b"renamed, never committed").unwrap();
    std::fs::write(srv.image_file(&deleted), b"deleted, never unlinked").unwrap();
    // An id glint never issued: not glint's file, so it stays.
    let stranger = uuid::Uuid::new_v4().to_string();
    std::fs::write(srv.image_file(&stranger), b"someone else's").unwrap();
    srv.start_again();

    assert!(
        !srv.image_file(&queued).exists(),
        "orphan of a queued image"
    );
    assert!(
        !srv.image_file(&deleted).exists(),
        "orphan of a deleted image"
    );
    assert!(
        srv.image_file(&stranger).exists(),
        "unknown files are left alone"
    );
    assert_eq!(srv.download(&kept).expect_status(200).body, b"kept");
    let image = srv.image(&queued);
    assert_eq!(image["status"], "queued", "{image}");
    srv.upload(&queued, b"retried").expect_status(204);
    assert_eq!(srv.download(&queued).expect_status(200).body, b"retried");
}

/// An active image whose file vanished keeps its metadata (the checksum a restored file is
/// checked against); start-up logs it and counts it, and downloads answer 503.
#[test]
fn active_image_without_its_file_is_reported_and_kept() {
    let mut srv = TestServer::start();
    let lost = srv.create_active_image(json!({}), b"lost bytes");
    let fine = srv.create_active_image(json!({}), b"fine");
    let before = srv.image(&lost);
    srv.stop();
    std::fs::remove_file(srv.image_file(&lost)).unwrap();
    srv.start_again();

    assert_eq!(srv.image(&lost), before, "metadata untouched");
    let metrics = srv.get("/metrics").expect_status(200).text();
    assert!(
        metrics.lines().any(|l| l == "glint_images_missing_data 1"),
        "{metrics}"
    );
    assert_eq!(srv.download(&lost).status, 503);
    assert_eq!(srv.download(&fine).expect_status(200).body, b"fine");
    assert!(
        srv.log_tail(200).contains("image data missing or damaged"),
        "{}",
        srv.log_tail(40)
    );
}
