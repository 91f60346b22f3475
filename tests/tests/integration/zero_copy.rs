//! Zero-copy downloads (splice file → pipe → socket): the same bytes as the read + write
//! path, for whole files and single ranges, with keep-alive and pipelined requests, a client
//! that reads slowly (the socket fills and the server must wait), and the path switched off.

use std::time::Duration;

use glint_tests::{md5_hex, random_bytes, raw, TestServer};
use serde_json::json;

/// Crosses the 1 MiB frames of the zero-copy path, with an odd tail.
const SIZE: usize = 3 * (1 << 20) + 12_345;

#[test]
fn pipelined_whole_range_json_and_whole_again_on_one_connection() {
    let srv = TestServer::start();
    let data = random_bytes(SIZE, 61);
    let id = srv.create_active_image(json!({}), &data);
    let path = format!("/v2/images/{id}/file");
    let mut requests = raw::head("GET", &path, &[]);
    requests.extend(raw::head(
        "GET",
        &path,
        &[("Range", "bytes=1048570-2097160")],
    ));
    requests.extend(raw::head("GET", "/v2/images", &[]));
    requests.extend(raw::head("GET", &path, &[("Range", "bytes=-100")]));
    requests.extend(raw::head("GET", &path, &[]));
    let mut conn = srv.connect();
    conn.send(&requests);
    let whole = conn.read_response();
    assert_eq!(whole.status, 200);
    assert!(whole.body == data, "whole download differs");
    let range = conn.read_response();
    assert_eq!(range.status, 206);
    assert!(
        range.body[..] == data[1_048_570..=2_097_160],
        "range differs"
    );
    let list = conn.read_response();
    assert_eq!(list.status, 200);
    assert_eq!(list.json()["images"][0]["id"], id.as_str());
    let tail = conn.read_response();
    assert_eq!(tail.status, 206);
    assert!(tail.body[..] == data[SIZE - 100..], "suffix range differs");
    let again = conn.read_response();
    assert_eq!(again.status, 200);
    assert_eq!(md5_hex(&again.body), md5_hex(&data));
    // Every image byte above went the zero-copy way, and was metered.
    let sent = 2 * SIZE + (2_097_160 - 1_048_570 + 1) + 100;
    assert_eq!(spliced_bytes(&srv), sent as f64);
}

/// `glint_spliced_bytes_total` from `/metrics`.
fn spliced_bytes(srv: &TestServer) -> f64 {
    let text = srv.get("/metrics").expect_status(200).text();
    text.lines()
        .find_map(|l| l.strip_prefix("glint_spliced_bytes_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no glint_spliced_bytes_total in:\n{text}"))
}

#[test]
fn a_slow_reader_gets_every_byte() {
    let srv = TestServer::start();
    let data = random_bytes(4 * SIZE, 62);
    let id = srv.create_active_image(json!({}), &data);
    let mut conn = srv.connect();
    conn.send(&raw::head("GET", &format!("/v2/images/{id}/file"), &[]));
    // Let the socket buffers fill: the server has to wait for the client to drain them.
    std::thread::sleep(Duration::from_millis(500));
    let resp = conn.read_response();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.len(), data.len());
    assert_eq!(md5_hex(&resp.body), md5_hex(&data));
    // The connection is still good for another request.
    conn.send(&raw::head(
        "GET",
        &format!("/v2/images/{id}/file"),
        &[("Range", "bytes=5-9")],
    ));
    let resp = conn.read_response();
    assert_eq!(resp.status, 206);
    assert_eq!(resp.body, data[5..10]);
}

#[test]
fn switched_off_the_read_write_path_serves_the_same_bytes() {
    let srv = TestServer::start_with_config("zero_copy_download = false\n");
    let data = random_bytes(SIZE, 63);
    let id = srv.create_active_image(json!({}), &data);
    let resp = srv.download(&id).expect_status(200);
    assert_eq!(md5_hex(&resp.body), md5_hex(&data));
    let resp = srv
        .request("GET", &format!("/v2/images/{id}/file"))
        .header("range", "bytes=100-")
        .send()
        .expect_status(206);
    assert!(resp.body[..] == data[100..]);
    assert_eq!(spliced_bytes(&srv), 0.0);
}
