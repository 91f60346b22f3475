//! Stores (issue 11): several named stores (§4.14, §4.16), upload to a chosen store, download
//! falling back across locations, the http store against a web origin on loopback, the
//! locations API (§4.11) and the legacy location patches (§4.4), and — when a Ceph RGW is up
//! (`tests/e2e/rgw.sh`) — the S3 store end to end.

use std::time::Duration;

use glint_tests::origin::{Behaviour, Origin};
use glint_tests::{
    digest_hex, md5_hex, poll_until, random_bytes, ServerBuilder, TestServer, PATCH_V21,
};
use serde_json::{json, Value};

/// Two file stores (`local`, the default, and `backup`) and a web store allowed to reach
/// `origin`.
fn multi(origin: Option<&Origin>, extra: &str) -> ServerBuilder {
    let port = origin.map_or(80, Origin::port);
    TestServer::builder().config(&format!(
        "{extra}\n[import_filtering_opts]\nallowed_hosts = [\"127.0.0.1\"]\nallowed_ports = \
         [{port}]\n\n[stores]\ndefault = \"local\"\n\n[stores.local]\ntype = \"file\"\n\
         description = \"Local disk\"\n\n[stores.backup]\ntype = \"file\"\n\n[stores.web]\n\
         type = \"http\"\ndescription = \"The web\"\n"
    ))
}

fn upload_to(srv: &TestServer, id: &str, store: &str, data: &[u8]) -> glint_tests::Resp {
    srv.request("PUT", &format!("/v2/images/{id}/file"))
        .header("content-type", "application/octet-stream")
        .header("x-image-meta-store", store)
        .body(data.to_vec())
        .send()
}

fn patch(srv: &TestServer, id: &str, ops: Value) -> glint_tests::Resp {
    srv.request("PATCH", &format!("/v2/images/{id}"))
        .header("content-type", PATCH_V21)
        .json(&ops)
        .send()
}

#[test]
fn single_store_mode_has_no_multi_store_api() {
    let srv = TestServer::start();
    let resp = srv.get("/v2/info/stores").expect_status(404);
    assert!(
        resp.text()
            .contains("Multi backend is not supported at this site."),
        "{}",
        resp.text()
    );
    srv.get("/v2/info/stores/detail").expect_status(404);
    let id = srv.create_raw_image(json!({}));
    srv.delete(&format!("/v2/stores/file/{id}"))
        .expect_status(404);
    // X-Image-Meta-Store means nothing without stores: the default store takes it.
    upload_to(&srv, &id, "nowhere", b"data").expect_status(204);
    let image = srv.image(&id);
    assert!(image.get("stores").is_none(), "{image}");
    assert!(image.get("locations").is_none() && image.get("direct_url").is_none());
    let created = srv.post_json("/v2/images", &json!({}));
    assert!(created.header("openstack-image-store-ids").is_none());
}

#[test]
fn stores_are_listed_as_glance_lists_them() {
    let srv = multi(None, "").start();
    let stores = srv.get_json("/v2/info/stores");
    assert_eq!(
        stores,
        json!({"stores": [
            {"id": "backup"},
            {"id": "local", "description": "Local disk", "default": "true"},
            {"id": "web", "description": "The web", "read-only": "true"},
        ]})
    );
    let detail = srv.get_json("/v2/info/stores/detail");
    let by_id = |id: &str| {
        detail["stores"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .cloned()
            .unwrap()
    };
    let local = by_id("local");
    assert_eq!(local["type"], "file");
    assert_eq!(local["weight"], 0);
    assert_eq!(local["properties"]["chunk_size"], 65536);
    assert_eq!(local["properties"]["thin_provisioning"], false);
    assert!(local["properties"]["data_dir"]
        .as_str()
        .unwrap()
        .ends_with("/images"));
    assert!(by_id("backup")["properties"]["data_dir"]
        .as_str()
        .unwrap()
        .ends_with("/images-backup"));
    assert_eq!(by_id("web")["type"], "http");
    assert_eq!(by_id("web")["properties"], json!({}));
    let created = srv.post_json("/v2/images", &json!({}));
    assert_eq!(
        created.header("openstack-image-store-ids"),
        Some("backup,local,web")
    );
    // The versions of these features are advertised.
    let versions = srv.get_json("/versions");
    for id in ["v2.8", "v2.15", "v2.17"] {
        assert!(
            versions["versions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v["id"] == id),
            "{id} in {versions}"
        );
    }
}

#[test]
fn an_upload_goes_to_the_store_it_names() {
    let srv = multi(None, "").start();
    let data = random_bytes(300_000, 1);
    let id = srv.create_raw_image(json!({}));
    upload_to(&srv, &id, "backup", &data).expect_status(204);
    let image = srv.image(&id);
    assert_eq!(image["stores"], "backup", "{image}");
    assert_eq!(image["checksum"], md5_hex(&data));
    let file = srv.data_dir().join("images-backup").join(&id);
    assert_eq!(std::fs::read(&file).unwrap(), data);
    assert!(!srv.data_dir().join("images").join(&id).exists());
    assert_eq!(srv.download(&id).expect_status(200).body, data);

    // The default store without the header.
    let other = srv.create_raw_image(json!({}));
    srv.upload(&other, b"abc").expect_status(204);
    assert_eq!(srv.image(&other)["stores"], "local");

    // An unknown store: 400 before anything happens; the read-only store: 410.
    let queued = srv.create_raw_image(json!({}));
    let resp = upload_to(&srv, &queued, "nowhere", b"abc").expect_status(400);
    assert!(resp.text().contains("nowhere"), "{}", resp.text());
    upload_to(&srv, &queued, "web", b"abc").expect_status(410);
    let image = srv.image(&queued);
    assert_eq!(image["status"], "queued");
    assert!(image.get("stores").is_none(), "{image}");

    // Deleting the image deletes its data from its store.
    srv.delete(&format!("/v2/images/{id}")).expect_status(204);
    poll_until(Duration::from_secs(30), "data removed", || {
        (!file.exists()).then_some(())
    });
}

#[test]
fn an_image_in_two_stores_survives_the_loss_of_one() {
    let srv = multi(None, "show_multiple_locations = true\n").start();
    let data = random_bytes(200_000, 2);
    let id = srv.create_raw_image(json!({}));
    upload_to(&srv, &id, "local", &data).expect_status(204);
    // A copy in the second store (what copy-image does), added as a location.
    let backup_dir = srv.data_dir().join("images-backup");
    let copy = backup_dir.join(&id);
    std::fs::write(&copy, &data).unwrap();
    let url = format!("file://{}", copy.display());
    patch(
        &srv,
        &id,
        json!([{"op": "add", "path": "/locations/-",
                "value": {"url": url, "metadata": {"store": "backup"}}}]),
    )
    .expect_status(200);
    let image = srv.image(&id);
    assert_eq!(image["stores"], "local,backup", "{image}");
    assert_eq!(image["locations"][1]["metadata"]["store"], "backup");
    assert_eq!(
        image["direct_url"],
        Value::Null,
        "not shown unless asked for"
    );

    // The first store loses the data: downloads come from the second.
    let local = srv.data_dir().join("images").join(&id);
    std::fs::remove_file(&local).unwrap();
    assert_eq!(srv.download(&id).expect_status(200).body, data);
    let ranged = srv
        .request("GET", &format!("/v2/images/{id}/file"))
        .header("range", "bytes=100-199")
        .send()
        .expect_status(206);
    assert_eq!(ranged.body, &data[100..200]);

    // Delete from one store (§4.14): the checks, then the copy goes.
    srv.delete(&format!("/v2/stores/nowhere/{id}"))
        .expect_status(409);
    let missing = uuid::Uuid::new_v4();
    srv.delete(&format!("/v2/stores/local/{missing}"))
        .expect_status(404);
    srv.delete(&format!("/v2/stores/local/{id}"))
        .expect_status(204);
    let image = srv.image(&id);
    assert_eq!(image["stores"], "backup", "{image}");
    assert_eq!(image["locations"].as_array().unwrap().len(), 1);
    let last = srv
        .delete(&format!("/v2/stores/backup/{id}"))
        .expect_status(403);
    assert!(last.text().contains("only store"), "{}", last.text());
    // Glance checks "only one location" before "not in that store".
    srv.delete(&format!("/v2/stores/local/{id}"))
        .expect_status(403);
    assert_eq!(srv.download(&id).expect_status(200).body, data);
    let queued = srv.create_raw_image(json!({}));
    srv.delete(&format!("/v2/stores/local/{queued}"))
        .expect_status(409);

    // Every store down: a clear 503, never a short 200.
    std::fs::remove_file(&copy).unwrap();
    srv.download(&id).expect_status(503);
}

#[test]
fn location_patches_follow_glance() {
    let origin = Origin::start();
    let data = random_bytes(50_000, 3);
    origin.put("/a.img", data.clone());
    origin.put("/b.img", data.clone());
    let srv = multi(
        Some(&origin),
        "show_multiple_locations = true\nshow_image_direct_url = true\n",
    )
    .start();
    let id = srv.create_raw_image(json!({}));
    let at = |path: &str| json!({"url": origin.url(path), "metadata": {}});
    // A queued image given a location becomes active, its size from the origin.
    let resp = patch(
        &srv,
        &id,
        json!([{"op": "add", "path": "/locations/-", "value": at("/a.img")}]),
    )
    .expect_status(200);
    let image = resp.json();
    assert_eq!(image["status"], "active", "{image}");
    assert_eq!(image["size"], data.len());
    assert_eq!(image["stores"], "web");
    assert_eq!(image["direct_url"], origin.url("/a.img"));
    assert_eq!(srv.download(&id).expect_status(200).body, data);
    // Duplicates, positions, the last location.
    patch(
        &srv,
        &id,
        json!([{"op": "add", "path": "/locations/-", "value": at("/a.img")}]),
    )
    .expect_status(400);
    patch(
        &srv,
        &id,
        json!([{"op": "add", "path": "/locations/x", "value": at("/b.img")}]),
    )
    .expect_status(400);
    patch(&srv, &id, json!([{"op": "remove", "path": "/locations/0"}])).expect_status(403);
    patch(
        &srv,
        &id,
        json!([{"op": "add", "path": "/locations/0", "value": at("/b.img")}]),
    )
    .expect_status(200);
    assert_eq!(srv.image(&id)["locations"][0]["url"], origin.url("/b.img"));
    patch(&srv, &id, json!([{"op": "remove", "path": "/locations/5"}])).expect_status(400);
    patch(&srv, &id, json!([{"op": "remove", "path": "/locations/0"}])).expect_status(200);
    assert_eq!(srv.image(&id)["locations"].as_array().unwrap().len(), 1);
    patch(
        &srv,
        &id,
        json!([{"op": "replace", "path": "/locations", "value": []}]),
    )
    .expect_status(403);
    // A URL no store holds, and validation data that contradicts the image.
    let foreign = json!({"url": "ftp://example.com/x", "metadata": {}});
    patch(
        &srv,
        &id,
        json!([{"op": "add", "path": "/locations/-", "value": foreign}]),
    )
    .expect_status(400);
    let wrong = json!({"url": origin.url("/b.img"), "metadata": {},
        "validation_data": {"os_hash_algo": "sha512", "os_hash_value": "00".repeat(64)}});
    patch(
        &srv,
        &id,
        json!([{"op": "add", "path": "/locations/-", "value": wrong}]),
    )
    .expect_status(409);
    // Validation data on a queued image sets its hashes.
    let other = srv.create_raw_image(json!({}));
    let given = json!({"url": origin.url("/b.img"), "metadata": {},
        "validation_data": {"os_hash_algo": "sha512",
                            "os_hash_value": digest_hex("sha512", &data)}});
    let image = patch(
        &srv,
        &other,
        json!([{"op": "replace", "path": "/locations", "value": [given]}]),
    )
    .expect_status(200)
    .json();
    assert_eq!(image["os_hash_value"], digest_hex("sha512", &data));
    assert_eq!(image["status"], "active");
}

#[test]
fn the_location_api_adds_web_images_and_hashes_them() {
    let origin = Origin::start();
    let data = random_bytes(3 << 20, 4);
    origin.put("/cirros.img", data.clone());
    let srv = multi(Some(&origin), "").start();

    let id = srv.create_raw_image(json!({}));
    let resp = srv
        .post_json(
            &format!("/v2/images/{id}/locations"),
            &json!({"url": origin.url("/cirros.img")}),
        )
        .expect_status(202);
    assert!(resp.body.is_empty());
    // Active at once (do_secure_hash, no validation data); the hashes follow.
    let image = poll_until(Duration::from_secs(30), "image hashed", || {
        let image = srv.image(&id);
        (image["os_hash_value"] != Value::Null).then_some(image)
    });
    assert_eq!(image["status"], "active");
    assert_eq!(image["size"], data.len());
    assert_eq!(image["checksum"], md5_hex(&data));
    assert_eq!(image["os_hash_value"], digest_hex("sha512", &data));
    assert_eq!(image["stores"], "web");
    assert!(
        image.get("locations").is_none(),
        "hidden without show_multiple_locations"
    );
    // Downloads stream from the origin, ranges passed through.
    let gets = origin.gets();
    assert_eq!(srv.download(&id).expect_status(200).body, data);
    let ranged = srv
        .request("GET", &format!("/v2/images/{id}/file"))
        .header("range", "bytes=1000-1999")
        .send()
        .expect_status(206);
    assert_eq!(ranged.body, &data[1000..2000]);
    assert_eq!(
        origin.gets(),
        gets + 2,
        "each download is one GET of the origin"
    );
    // GET /locations: for services (admin in noauth).
    let listed = srv.get_json(&format!("/v2/images/{id}/locations"));
    assert_eq!(
        listed,
        json!([{"url": origin.url("/cirros.img"), "metadata": {"store": "web"}}])
    );
    // Only a queued image takes one.
    srv.post_json(
        &format!("/v2/images/{id}/locations"),
        &json!({"url": origin.url("/cirros.img")}),
    )
    .expect_status(409);

    // Validation data: checked before the image becomes active.
    let good = srv.create_raw_image(json!({}));
    srv.post_json(
        &format!("/v2/images/{good}/locations"),
        &json!({"url": origin.url("/cirros.img"),
                "validation_data": {"os_hash_algo": "sha256",
                                    "os_hash_value": digest_hex("sha256", &data)}}),
    )
    .expect_status(202);
    srv.wait_for_status(&good, "active");
    assert_eq!(srv.image(&good)["os_hash_algo"], "sha256");
    let bad = srv.create_raw_image(json!({}));
    srv.post_json(
        &format!("/v2/images/{bad}/locations"),
        &json!({"url": origin.url("/cirros.img"),
                "validation_data": {"os_hash_algo": "sha256", "os_hash_value": "ab".repeat(32)}}),
    )
    .expect_status(202);
    // It goes importing, finds the mismatch, and comes back queued without the location.
    poll_until(Duration::from_secs(30), "back to queued", || {
        let image = srv.image(&bad);
        (image["status"] == "queued" && image.get("stores").is_none()).then_some(())
    });
    assert_eq!(srv.image(&bad)["os_hash_value"], Value::Null);

    // Requests refused before anything happens.
    let q = srv.create_raw_image(json!({}));
    let post = |body: Value| srv.post_json(&format!("/v2/images/{q}/locations"), &body);
    post(json!({})).expect_status(400);
    post(json!({"url": 7})).expect_status(400);
    post(json!({"url": origin.url("/x"), "validation_data": {"os_hash_algo": "sha256"}}))
        .expect_status(400);
    post(
        json!({"url": origin.url("/x"), "validation_data": {"os_hash_algo": "crc32",
        "os_hash_value": "00"}}),
    )
    .expect_status(400);
    post(
        json!({"url": origin.url("/x"), "validation_data": {"os_hash_algo": "sha256",
        "os_hash_value": "abc"}}),
    )
    .expect_status(400);
    // Callers without the service role may add only web URLs.
    let refused = post(json!({"url": "gopher://example.com/x"})).expect_status(403);
    assert!(refused.text().contains("http store"), "{}", refused.text());
    // A URL the origin does not have: accepted, and the image stays queued.
    post(json!({"url": origin.url("/missing.img")})).expect_status(202);
    poll_until(Duration::from_secs(30), "the origin asked", || {
        (origin.hits("/missing.img") > 0).then_some(())
    });
    // The size could not be read: nothing was written.
    assert_eq!(srv.image(&q)["status"], "queued");
    srv.get(&format!("/v2/images/{}/locations", uuid::Uuid::new_v4()))
        .expect_status(404);
}

#[test]
fn origin_failures_are_errors_never_a_short_download() {
    let origin = Origin::start();
    let data = random_bytes(1 << 20, 5);
    origin.put("/ok.img", data.clone());
    let srv = multi(Some(&origin), "do_secure_hash = false\n").start();
    let id = srv.create_raw_image(json!({}));
    srv.post_json(
        &format!("/v2/images/{id}/locations"),
        &json!({"url": origin.url("/ok.img")}),
    )
    .expect_status(202);
    srv.wait_for_status(&id, "active");
    assert_eq!(
        srv.image(&id)["checksum"],
        Value::Null,
        "no hashing asked for"
    );
    // The origin now breaks off after 1000 bytes: the download fails, it is not short.
    origin.put_with("/ok.img", data.clone(), Behaviour::CutAfter(1000));
    let mut conn = srv.connect();
    conn.send(&glint_tests::raw::head(
        "GET",
        &format!("/v2/images/{id}/file"),
        &[],
    ));
    let cut = conn.try_read_response("download of a cut origin", false);
    let err = cut.expect_err("the body must not be complete");
    assert!(err.contains("body bytes"), "{err}");
    assert!(
        conn.is_closed_within(Duration::from_secs(30)),
        "glint closes the connection"
    );
    // The origin ignores Range: the bytes before the range are skipped, not sent.
    origin.put_with("/ok.img", data.clone(), Behaviour::NoRanges);
    let ranged = srv
        .request("GET", &format!("/v2/images/{id}/file"))
        .header("range", "bytes=500000-500099")
        .send()
        .expect_status(206);
    assert_eq!(ranged.body, &data[500_000..500_100]);
    // Gone from the origin: 503.
    origin.remove("/ok.img");
    srv.download(&id).expect_status(503);
}

// ---- the S3 store on a real Ceph RGW (tests/e2e/rgw.sh sets GLINT_S3_TEST_*)

use glint_tests::rgw::{rgw, Rgw};

fn s3_config(rgw: &Rgw, bucket: &str, secret: &str) -> String {
    format!(
        "[stores]\ndefault = \"local\"\n\n[stores.local]\ntype = \"file\"\n\n[stores.ceph]\n\
         type = \"s3\"\ns3_store_host = \"{}\"\ns3_store_access_key = \"{}\"\n\
         s3_store_secret_key = \"{secret}\"\ns3_store_bucket = \"{bucket}\"\n\
         s3_store_create_bucket_on_put = true\ns3_store_large_object_size = 6\n\
         s3_store_large_object_chunk_size = 5\ns3_store_thread_pools = 2\n",
        rgw.endpoint, rgw.access_key
    )
}

/// Runs `f` with an S3 client of `bucket`, on a runtime of its own.
fn in_bucket<T>(
    rgw: &Rgw,
    bucket: &str,
    f: impl AsyncFnOnce(&gateway::net::s3::S3Client) -> T,
) -> T {
    use gateway::net::client::{ClientSettings, HttpClient};
    use gateway::net::s3::{Addressing, S3Client, S3Settings, SecretKey};
    let client = S3Client::new(
        HttpClient::new(ClientSettings::default()),
        &S3Settings {
            endpoint: rgw.endpoint.clone(),
            region: String::new(),
            access_key: rgw.access_key.clone(),
            secret_key: SecretKey::new(rgw.secret_key.clone()),
            bucket: bucket.to_owned(),
            addressing: Addressing::Path,
        },
    )
    .unwrap();
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .unwrap()
        .block_on(f(&client))
}

/// Whether the bucket holds object `key`.
fn has_object(rgw: &Rgw, bucket: &str, key: &str) -> bool {
    in_bucket(rgw, bucket, async |c| match c.head_object(key).await {
        Ok(_) => true,
        Err(e) if e.is_not_found() => false,
        Err(e) => panic!("head {key}: {e}"),
    })
}

/// Incomplete multipart uploads in the bucket.
fn multipart_uploads(rgw: &Rgw, bucket: &str) -> usize {
    in_bucket(rgw, bucket, async |c| {
        c.list_multipart_uploads("").await.unwrap().len()
    })
}

#[test]
fn the_s3_store_on_ceph_rgw_end_to_end() {
    let Some(rgw) = rgw() else { return };
    let bucket = format!(
        "glint-it-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let srv = TestServer::start_with_config(&s3_config(&rgw, &bucket, &rgw.secret_key));
    srv.get("/healthcheck").expect_status(200);

    // One PutObject (announced and small), multipart (announced, and of unknown length).
    let small = random_bytes(1 << 20, 10);
    let large = random_bytes((13 << 20) + 12_345, 11);
    let mut ids = Vec::new();
    for (data, chunked) in [(&small, false), (&large, false), (&large, true)] {
        let id = srv.create_raw_image(json!({}));
        let mut req = srv
            .request("PUT", &format!("/v2/images/{id}/file"))
            .header("content-type", "application/octet-stream")
            .header("x-image-meta-store", "ceph");
        req = if chunked {
            req.chunked(data.clone())
        } else {
            req.body(data.clone())
        };
        req.send().expect_status(204);
        let image = srv.image(&id);
        assert_eq!(image["stores"], "ceph", "{image}");
        assert_eq!(image["checksum"], md5_hex(data));
        assert_eq!(image["os_hash_value"], digest_hex("sha512", data));
        assert!(has_object(&rgw, &bucket, &id), "object {id} in the bucket");
        assert_eq!(srv.download(&id).expect_status(200).body, *data);
        let ranged = srv
            .request("GET", &format!("/v2/images/{id}/file"))
            .header("range", "bytes=5242000-5243000")
            .send();
        if data.len() > 5_243_000 {
            assert_eq!(ranged.expect_status(206).body, &data[5_242_000..=5_243_000]);
        }
        ids.push(id);
    }
    assert_eq!(
        multipart_uploads(&rgw, &bucket),
        0,
        "every multipart upload completed"
    );

    // Refused uploads leave nothing in the bucket: too short, too long, wrong format.
    let id = srv.create_raw_image(json!({}));
    for (announced, sent) in [(12 << 20, 11 << 20), (4 << 20, 5 << 20)] {
        srv.request("PUT", &format!("/v2/images/{id}/file"))
            .header("content-type", "application/octet-stream")
            .header("x-image-meta-store", "ceph")
            .header("x-openstack-image-size", &announced.to_string())
            .chunked(random_bytes(sent, 12))
            .send()
            .expect_status(400);
        assert_eq!(srv.image(&id)["status"], "queued");
    }
    let qcow = srv.create_image(json!({"disk_format": "qcow2", "container_format": "bare"}));
    let qcow = qcow["id"].as_str().unwrap();
    upload_to(&srv, qcow, "ceph", &random_bytes(7 << 20, 13)).expect_status(415);
    poll_until(Duration::from_secs(30), "no partial upload left", || {
        (multipart_uploads(&rgw, &bucket) == 0).then_some(())
    });
    assert!(!has_object(&rgw, &bucket, &id) && !has_object(&rgw, &bucket, qcow));

    // An object missing from the bucket: a clear 503 on download, never a short 200.
    in_bucket(&rgw, &bucket, async |c| {
        c.delete_object(&ids[0]).await.unwrap()
    });
    srv.download(&ids[0]).expect_status(503);

    // Deleting the images empties the bucket.
    for id in &ids {
        srv.delete(&format!("/v2/images/{id}")).expect_status(204);
        assert!(
            !has_object(&rgw, &bucket, id),
            "{id} deleted from the bucket"
        );
    }
}

#[test]
fn wrong_s3_credentials_stop_start_up_naming_the_store() {
    let Some(rgw) = rgw() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("glint.toml");
    std::fs::write(
        &config,
        s3_config(&rgw, "glint-wrong-credentials", "not-the-secret-at-all"),
    )
    .unwrap();
    let out = std::process::Command::new(glint_tests::glint_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("store ceph"), "{stderr}");
    assert!(stderr.contains("credentials"), "{stderr}");
    assert!(!stderr.contains("not-the-secret"), "{stderr}");
}
