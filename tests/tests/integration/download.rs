//! `GET /v2/images/{id}/file` (§4.8): full download headers, 204 when there is no data, and
//! the single-range rules (206 / 400 / 416).

use glint_tests::{id_of, md5_hex, random_bytes, raw, Resp, TestServer};
use serde_json::json;

fn get_range(srv: &TestServer, id: &str, range: &str) -> Resp {
    srv.request("GET", &format!("/v2/images/{id}/file"))
        .header("range", range)
        .send()
}

#[test]
fn full_download_has_octet_stream_length_and_hex_md5() {
    let srv = TestServer::start();
    let data = random_bytes(123_457, 10);
    let id = srv.create_active_image(json!({}), &data);
    let resp = srv.download(&id).expect_status(200);
    assert_eq!(
        resp.content_type().as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(resp.header("content-length"), Some("123457"));
    assert_eq!(resp.header("content-md5"), Some(md5_hex(&data).as_str()));
    assert!(resp.header("content-range").is_none());
    assert!(resp.body == data, "downloaded bytes differ");
}

#[test]
fn download_of_image_without_data_is_204() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({})));
    let resp = srv.download(&id).expect_status(204);
    assert!(resp.body.is_empty());
    let id = srv.create_raw_image(json!({}));
    srv.download(&id).expect_status(204);
}

#[test]
fn download_of_unknown_image_is_404() {
    let srv = TestServer::start();
    let resp = srv.download(&uuid::Uuid::new_v4().to_string());
    assert_eq!(resp.status, 404, "{resp:?}");
    assert_eq!(srv.download("not-a-uuid").status, 404);
}

#[test]
fn single_ranges_return_206_with_content_range() {
    let srv = TestServer::start();
    let data = random_bytes(1000, 11);
    let id = srv.create_active_image(json!({}), &data);
    let md5 = md5_hex(&data);
    let cases: [(&str, usize, usize); 6] = [
        ("bytes=0-99", 0, 99),
        ("bytes=100-199", 100, 199),
        ("bytes=999-999", 999, 999),
        ("bytes=900-", 900, 999),
        ("bytes=0-", 0, 999),
        ("bytes=-10", 990, 999),
    ];
    for (range, first, last) in cases {
        let resp = get_range(&srv, &id, range);
        assert_eq!(resp.status, 206, "{range}: {resp:?}");
        assert_eq!(
            resp.header("content-range"),
            Some(format!("bytes {first}-{last}/1000").as_str()),
            "{range}"
        );
        assert_eq!(
            resp.header("content-length"),
            Some((last - first + 1).to_string().as_str()),
            "{range}"
        );
        assert_eq!(
            resp.header("content-md5"),
            Some(md5.as_str()),
            "{range}: Content-MD5 is the whole image's"
        );
        assert_eq!(
            resp.content_type().as_deref(),
            Some("application/octet-stream")
        );
        assert!(resp.body == data[first..=last], "{range}: wrong bytes");
    }
}

#[test]
fn range_end_past_the_image_is_clamped() {
    let srv = TestServer::start();
    let data = random_bytes(1000, 15);
    let id = srv.create_active_image(json!({}), &data);
    let resp = get_range(&srv, &id, "bytes=900-5000").expect_status(206);
    assert_eq!(resp.header("content-range"), Some("bytes 900-999/1000"));
    assert!(resp.body == data[900..]);
}

#[test]
fn legacy_content_range_request_header_is_honoured() {
    // §4.8: Glance still honours a Content-Range *request* header for old clients.
    let srv = TestServer::start();
    let data = random_bytes(1000, 16);
    let id = srv.create_active_image(json!({}), &data);
    let resp = srv
        .request("GET", &format!("/v2/images/{id}/file"))
        .header("content-range", "bytes 2-5/*")
        .send()
        .expect_status(206);
    assert_eq!(resp.header("content-range"), Some("bytes 2-5/1000"));
    assert!(resp.body == data[2..6]);
    let resp = srv
        .request("GET", &format!("/v2/images/{id}/file"))
        .header("content-range", "bytes 1000-1005/*")
        .send();
    assert_eq!(resp.status, 416, "start past the end: {resp:?}");
}

#[test]
fn range_on_empty_image_is_416() {
    let srv = TestServer::start();
    let id = srv.create_active_image(json!({}), b"");
    let resp = get_range(&srv, &id, "bytes=0-");
    assert_eq!(resp.status, 416, "{resp:?}");
}

#[test]
fn multiple_ranges_are_bad_request() {
    let srv = TestServer::start();
    let id = srv.create_active_image(json!({}), &random_bytes(1000, 12));
    for range in ["bytes=0-1,5-6", "bytes=0-1, 5-6", "bytes=-5,0-1"] {
        let resp = get_range(&srv, &id, range);
        assert_eq!(resp.status, 400, "{range}: {resp:?}");
    }
}

#[test]
fn unsatisfiable_or_unparsable_ranges_are_416() {
    let srv = TestServer::start();
    let id = srv.create_active_image(json!({}), &random_bytes(1000, 13));
    for range in [
        "bytes=1000-",
        "bytes=1000-1005",
        "bytes=5000-6000",
        "bytes=abc",
        "bytes=5-2",
    ] {
        let resp = get_range(&srv, &id, range);
        assert_eq!(resp.status, 416, "{range}: {resp:?}");
    }
}

#[test]
fn download_with_a_body_is_bad_request() {
    let srv = TestServer::start();
    let id = srv.create_active_image(json!({}), b"data");
    let resp = srv.raw(&raw::request(
        "GET",
        &format!("/v2/images/{id}/file"),
        &[],
        b"unexpected",
    ));
    assert_eq!(resp.status, 400, "{resp:?}");
}

#[test]
fn file_route_refuses_other_methods_with_allow() {
    let srv = TestServer::start();
    let id = srv.create_active_image(json!({}), b"data");
    for method in ["POST", "DELETE", "PATCH"] {
        let resp = srv.request(method, &format!("/v2/images/{id}/file")).send();
        assert_eq!(resp.status, 405, "{method}: {resp:?}");
        let mut allow: Vec<&str> = resp
            .header("allow")
            .unwrap_or_else(|| panic!("{method}: no Allow: {resp:?}"))
            .split(',')
            .map(str::trim)
            .collect();
        allow.sort_unstable();
        assert_eq!(allow, ["GET", "PUT"], "{method}");
    }
}

#[test]
fn downloads_are_repeatable_and_keep_alive_works() {
    // Several downloads on one connection, as Nova's and the clients' sessions do.
    let srv = TestServer::start();
    let data = random_bytes(200_000, 14);
    let id = srv.create_active_image(json!({}), &data);
    let mut conn = srv.connect();
    for _ in 0..3 {
        conn.send(&raw::head("GET", &format!("/v2/images/{id}/file"), &[]));
        let resp = conn.read_response();
        assert_eq!(resp.status, 200, "{resp:?}");
        assert!(resp.body == data, "bytes differ");
    }
}
