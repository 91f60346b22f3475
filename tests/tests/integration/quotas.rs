//! Per-project quotas (`[quotas]`, Glance's unified limits) and `GET /v2/info/usage`
//! (§4.16), in noauth mode: everything is charged to project "glint".

use glint_tests::{id_of, raw, TestServer};
use serde_json::json;

#[test]
fn usage_reports_counts_sizes_and_unlimited_as_minus_one() {
    let srv = TestServer::start();
    srv.create_active_image(json!({}), &vec![7u8; 3 << 20]);
    srv.create_image(json!({}));
    let usage = srv.get_json("/v2/info/usage")["usage"].clone();
    assert_eq!(usage["image_count_total"], json!({"limit": -1, "usage": 2}));
    assert_eq!(usage["image_size_total"], json!({"limit": -1, "usage": 3}));
    assert_eq!(usage["image_stage_total"], json!({"limit": -1, "usage": 0}));
    assert_eq!(
        usage["image_count_uploading"],
        json!({"limit": -1, "usage": 0})
    );
}

#[test]
fn image_count_total_refuses_with_413() {
    let srv = TestServer::start_with_config("[quotas]\nimage_count_total = 2\n");
    let first = id_of(&srv.create_image(json!({})));
    srv.create_image(json!({}));
    let over = srv.post_json("/v2/images", &json!({})).expect_status(413);
    assert!(
        over.text().contains(
            "Project glint is over a limit for [Resource image_count_total is over limit of 2 \
             due to current usage 2 and delta 1]"
        ),
        "{}",
        over.text()
    );
    assert_eq!(srv.list_ids("").len(), 2);
    // Deleting frees the slot.
    srv.delete(&format!("/v2/images/{first}"))
        .expect_status(204);
    srv.create_image(json!({}));
    let usage = srv.get_json("/v2/info/usage");
    assert_eq!(
        usage["usage"]["image_count_total"],
        json!({"limit": 2, "usage": 2})
    );
}

#[test]
fn image_size_total_refuses_uploads_and_the_image_stays_queued() {
    // A project override (the default section stays unlimited).
    let srv = TestServer::start_with_config("[quotas.projects.glint]\nimage_size_total = 1\n");
    let small = srv.create_active_image(json!({}), &vec![1u8; 512 << 10]);
    assert_eq!(srv.image(&small)["status"], "active");
    // Announced size over what is left: refused before the data is read.
    let big = srv.create_raw_image(json!({}));
    let resp = srv.upload_streaming(&big, &vec![2u8; 1 << 20], false);
    assert_eq!(resp.status, 413, "{}", resp.text());
    assert_eq!(srv.image(&big)["status"], "queued");
    // Unannounced (chunked): the stream is cut where the quota ends, nothing kept.
    let resp = srv.upload_streaming(&big, &vec![2u8; 1 << 20], true);
    assert_eq!(resp.status, 413, "{}", resp.text());
    assert!(
        resp.text()
            .contains("image_size_total quota: 524288 bytes remaining"),
        "{}",
        resp.text()
    );
    assert_eq!(srv.image(&big)["status"], "queued");
    assert!(srv.part_files().is_empty());
    assert!(!srv.image_file(&big).exists());
    srv.upload(&big, &vec![3u8; 256 << 10]).expect_status(204);
}

#[test]
fn image_count_uploading_counts_the_uploads_already_under_way() {
    // Glance checks this quota with delta 0: at limit 0 one upload may run, a second may not.
    let srv = TestServer::start_with_config("[quotas]\nimage_count_uploading = 0\n");
    let first = srv.create_raw_image(json!({}));
    let second = srv.create_raw_image(json!({}));
    let mut conn = srv.connect();
    conn.send(&raw::head(
        "PUT",
        &format!("/v2/images/{first}/file"),
        &[
            ("Content-Type", "application/octet-stream"),
            ("Transfer-Encoding", "chunked"),
        ],
    ));
    conn.send(b"4\r\ndata\r\n");
    srv.wait_for_status(&first, "saving");
    let over = srv.upload(&second, b"data");
    assert_eq!(over.status, 413, "{}", over.text());
    assert!(
        over.text().contains("image_count_uploading"),
        "{}",
        over.text()
    );
    assert_eq!(srv.image(&second)["status"], "queued");
    // The first one finishes; then the second may go.
    conn.send(b"0\r\n\r\n");
    assert_eq!(conn.read_response().status, 204);
    srv.upload(&second, b"data").expect_status(204);
}
