//! `PUT /v2/images/{id}/file` (§4.7, §3.4): checksums, size, content types, status rules, the
//! size cap and the expected-size header; every refused upload leaves the image `queued` with
//! no data and no partial file.

use glint_tests::{digest_hex, id_of, md5_hex, random_bytes, raw, Resp, TestServer};
use serde_json::{json, Value};

/// The image went back to `queued` with no data, and nothing is left on disk.
#[track_caller]
pub fn assert_reset_to_queued(srv: &TestServer, id: &str) {
    let image = srv.image(id);
    assert_eq!(image["status"], "queued", "{image}");
    for key in [
        "size",
        "virtual_size",
        "checksum",
        "os_hash_algo",
        "os_hash_value",
    ] {
        assert_eq!(
            image[key],
            Value::Null,
            "{key} after a failed upload: {image}"
        );
    }
    assert_eq!(
        srv.part_files(),
        Vec::<std::path::PathBuf>::new(),
        "no .part left"
    );
    assert!(!srv.image_file(id).exists(), "no data file left");
}

#[track_caller]
fn assert_active_with(srv: &TestServer, id: &str, data: &[u8], algo: &str) -> Value {
    let image = srv.image(id);
    assert_eq!(image["status"], "active", "{image}");
    assert_eq!(image["size"], data.len(), "{image}");
    assert_eq!(image["checksum"], md5_hex(data), "checksum is the md5");
    assert_eq!(image["os_hash_algo"], algo);
    assert_eq!(image["os_hash_value"], digest_hex(algo, data));
    image
}

fn put_file(srv: &TestServer, id: &str, content_type: &str, data: &[u8]) -> Resp {
    srv.request("PUT", &format!("/v2/images/{id}/file"))
        .header("content-type", content_type)
        .body(data.to_vec())
        .send()
}

#[test]
fn upload_with_content_length_makes_image_active_with_hashes() {
    let srv = TestServer::start();
    let data = random_bytes(300_000, 1);
    let id = srv.create_raw_image(json!({}));
    let resp = srv.upload(&id, &data).expect_status(204);
    assert!(resp.body.is_empty(), "204 has no body");
    assert_active_with(&srv, &id, &data, "sha512");
    assert_eq!(
        std::fs::read(srv.image_file(&id)).expect("images/<id> exists"),
        data,
        "stored bytes"
    );
    assert!(srv.part_files().is_empty());
}

#[test]
fn upload_with_chunked_body_makes_image_active_with_hashes() {
    let srv = TestServer::start();
    let data = random_bytes(1_500_000, 2);
    let id = srv.create_raw_image(json!({}));
    srv.upload_chunked(&id, &data).expect_status(204);
    assert_active_with(&srv, &id, &data, "sha512");
    assert_eq!(srv.download(&id).expect_status(200).body, data);
}

#[test]
fn upload_of_zero_bytes_makes_empty_active_image() {
    let srv = TestServer::start();
    let id = srv.create_raw_image(json!({}));
    srv.upload(&id, b"").expect_status(204);
    let image = assert_active_with(&srv, &id, b"", "sha512");
    assert_eq!(image["checksum"], "d41d8cd98f00b204e9800998ecf8427e");
    let resp = srv.download(&id).expect_status(200);
    assert!(resp.body.is_empty());
}

#[test]
fn upload_honours_hashing_algorithm_config() {
    for algo in ["sha256", "sha384", "md5"] {
        let srv = TestServer::start_with_config(&format!("hashing_algorithm = \"{algo}\"\n"));
        let data = random_bytes(70_000, 3);
        let id = srv.create_active_image(json!({}), &data);
        assert_active_with(&srv, &id, &data, algo);
    }
}

#[test]
fn upload_without_octet_stream_content_type_is_415() {
    let srv = TestServer::start();
    let id = srv.create_raw_image(json!({}));
    for content_type in [
        "",
        "application/json",
        "text/plain",
        "application/x-www-form-urlencoded",
    ] {
        let resp = put_file(&srv, &id, content_type, b"data");
        assert_eq!(resp.status, 415, "{content_type:?}: {resp:?}");
        assert_reset_to_queued(&srv, &id);
    }
    srv.upload(&id, b"data").expect_status(204);
}

#[test]
fn second_upload_conflicts_and_keeps_first_data() {
    let srv = TestServer::start();
    let id = srv.create_active_image(json!({}), b"first");
    let resp = srv.upload(&id, b"second");
    assert_eq!(resp.status, 409, "{resp:?}");
    assert_active_with(&srv, &id, b"first", "sha512");
    assert_eq!(srv.download(&id).expect_status(200).body, b"first");
}

#[test]
fn upload_before_formats_are_set_is_bad_request() {
    let srv = TestServer::start();
    for body in [
        json!({}),
        json!({"disk_format": "raw"}),
        json!({"container_format": "bare"}),
    ] {
        let id = id_of(&srv.create_image(body.clone()));
        let resp = srv.upload(&id, b"data");
        assert_eq!(resp.status, 400, "{body}: {resp:?}");
        assert_reset_to_queued(&srv, &id);
    }
}

#[test]
fn upload_to_unknown_image_is_404() {
    let srv = TestServer::start();
    let resp = srv.upload(&uuid::Uuid::new_v4().to_string(), b"data");
    assert_eq!(resp.status, 404, "{resp:?}");
    assert!(srv.part_files().is_empty());
}

#[test]
fn upload_over_size_cap_is_413_and_resets_image() {
    let srv = TestServer::start_with_config("image_size_cap = 1000\n");
    let id = srv.create_raw_image(json!({}));
    let resp = srv.upload(&id, &random_bytes(1001, 4));
    assert_eq!(resp.status, 413, "Content-Length body: {resp:?}");
    assert_reset_to_queued(&srv, &id);

    let resp = srv.upload_chunked(&id, &random_bytes(1500, 5));
    assert_eq!(resp.status, 413, "chunked body: {resp:?}");
    assert_reset_to_queued(&srv, &id);

    // Exactly the cap is allowed.
    let data = random_bytes(1000, 6);
    srv.upload(&id, &data).expect_status(204);
    assert_active_with(&srv, &id, &data, "sha512");
}

#[test]
fn upload_size_differing_from_expected_size_header_is_400() {
    let srv = TestServer::start();
    let id = srv.create_raw_image(json!({}));
    let data = random_bytes(100, 8);
    for (header, body) in [("50", &data[..]), ("100", &data[..50]), ("0", &data[..1])] {
        let resp = srv
            .request("PUT", &format!("/v2/images/{id}/file"))
            .header("content-type", "application/octet-stream")
            .header("x-openstack-image-size", header)
            .body(body.to_vec())
            .send();
        assert_eq!(
            resp.status,
            400,
            "header {header}, {} bytes: {resp:?}",
            body.len()
        );
        assert_reset_to_queued(&srv, &id);
    }
    // Chunked body, so the header is the only size the server knows beforehand.
    let resp = srv
        .request("PUT", &format!("/v2/images/{id}/file"))
        .header("content-type", "application/octet-stream")
        .header("x-openstack-image-size", "99")
        .chunked(data.clone())
        .send();
    assert_eq!(resp.status, 400, "chunked, header 99, 100 bytes: {resp:?}");
    assert_reset_to_queued(&srv, &id);

    let resp = srv
        .request("PUT", &format!("/v2/images/{id}/file"))
        .header("content-type", "application/octet-stream")
        .header("x-openstack-image-size", "100")
        .chunked(data.clone())
        .send();
    assert_eq!(resp.status, 204, "matching header: {resp:?}");
    assert_active_with(&srv, &id, &data, "sha512");
}

#[test]
fn non_integer_expected_size_header_is_400() {
    let srv = TestServer::start();
    let id = srv.create_raw_image(json!({}));
    for header in ["abc", "1.5", "", "12abc"] {
        let resp = srv
            .request("PUT", &format!("/v2/images/{id}/file"))
            .header("content-type", "application/octet-stream")
            // An empty value would mean "don't send" to the harness; send a space instead.
            .header(
                "x-openstack-image-size",
                if header.is_empty() { " " } else { header },
            )
            .body(b"data".to_vec())
            .send();
        assert_eq!(resp.status, 400, "{header:?}: {resp:?}");
        assert_reset_to_queued(&srv, &id);
    }
}

#[test]
fn upload_can_be_retried_after_a_refused_one() {
    let srv = TestServer::start_with_config("image_size_cap = 100\n");
    let id = srv.create_raw_image(json!({}));
    assert_eq!(srv.upload(&id, &[0; 101]).status, 413);
    assert_reset_to_queued(&srv, &id);
    let data = random_bytes(100, 9);
    srv.upload(&id, &data).expect_status(204);
    assert_active_with(&srv, &id, &data, "sha512");
}

#[test]
fn upload_far_over_size_cap_is_refused_while_streaming() {
    let srv = TestServer::start_with_config("image_size_cap = 1048576\n");
    for chunked in [false, true] {
        let id = srv.create_raw_image(json!({}));
        let resp = srv.upload_streaming(&id, &random_bytes(16 << 20, 7), chunked);
        assert_eq!(resp.status, 413, "chunked={chunked}: {resp:?}");
        assert_reset_to_queued(&srv, &id);
    }
}

#[test]
fn store_header_is_ignored_in_single_store_mode() {
    // §4.1/§4.7: glanceclient may send X-Image-Meta-Store; without multi-store it has no
    // effect.
    let srv = TestServer::start();
    let resp = srv
        .request("POST", "/v2/images")
        .header("x-image-meta-store", "anystore")
        .json(&json!({"disk_format": "raw", "container_format": "bare"}))
        .send()
        .expect_status(201);
    let id = id_of(&resp.json());
    let data = random_bytes(5000, 17);
    srv.request("PUT", &format!("/v2/images/{id}/file"))
        .header("content-type", "application/octet-stream")
        .header("x-image-meta-store", "anystore")
        .body(data.clone())
        .send()
        .expect_status(204);
    assert_active_with(&srv, &id, &data, "sha512");
}

#[test]
fn upload_with_expect_100_continue() {
    // curl and some HTTP libraries ask before sending a large body.
    let srv = TestServer::start();
    let id = srv.create_raw_image(json!({}));
    let data = random_bytes(200_000, 18);
    let len = data.len().to_string();
    let mut conn = srv.connect();
    conn.send(&raw::head(
        "PUT",
        &format!("/v2/images/{id}/file"),
        &[
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", &len),
            ("Expect", "100-continue"),
        ],
    ));
    conn.send(&data);
    let resp = conn.read_response();
    assert_eq!(resp.status, 204, "{resp:?}");
    assert_active_with(&srv, &id, &data, "sha512");
}
