//! The `glance-download` import method (issue 12, §4.10): one glint imports an image from
//! another glint on loopback, found as `RegionTwo`'s `image` endpoint in the service catalog
//! of a fake Keystone (glint_tests::fake_keystone). The real Keystone and glanceclient do the
//! same in tests/e2e/keystone.sh.

use std::time::Duration;

use glint_tests::fake_keystone::FakeKeystone;
use glint_tests::origin::{Behaviour, Origin};
use glint_tests::{digest_hex, md5_hex, poll_until, random_bytes, Resp, TestServer};
use serde_json::{json, Value};

const HOUR: Duration = Duration::from_secs(3600);

/// The remote region's Image service (no auth: it ignores the token it is sent) and a local
/// glint with Keystone auth that may reach it.
struct Regions {
    keystone: FakeKeystone,
    remote: TestServer,
    local: TestServer,
    token: String,
}

fn regions(allow_loopback: bool) -> Regions {
    let remote = TestServer::start();
    let keystone = FakeKeystone::start();
    keystone.add_image_endpoint("RegionOne", "public", "http://192.0.2.1:9292");
    keystone.add_image_endpoint("RegionTwo", "public", &format!("{}/", remote.url()));
    // The port is always allowed; the loopback host only when `allow_loopback`.
    let hosts = if allow_loopback {
        "[\"127.0.0.1\"]"
    } else {
        "[]"
    };
    let allow = format!(
        "[import_filtering_opts]\nallowed_hosts = {hosts}\nallowed_ports = [{}]\n",
        remote.addr().port()
    );
    let local = TestServer::start_with_config(&format!(
        "enabled_import_methods = [\"glance-direct\", \"glance-download\"]\n\
         [glance_download_properties]\nextra_properties = [\"hw_\", \"os_distro\"]\n\
         {allow}\n{}",
        keystone.glint_config()
    ));
    let token = keystone.issue("alice", "proj-a", &["member", "reader"], HOUR);
    Regions {
        keystone,
        remote,
        local,
        token,
    }
}

impl Regions {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        let request = self
            .local
            .request(method, path)
            .header("x-auth-token", &self.token);
        match body {
            Some(body) => request.json(&body).send(),
            None => request.send(),
        }
    }

    fn create(&self, body: Value) -> String {
        let image = self
            .call("POST", "/v2/images", Some(body))
            .expect_status(201)
            .json();
        image["id"].as_str().unwrap().to_owned()
    }

    fn image(&self, id: &str) -> Value {
        self.call("GET", &format!("/v2/images/{id}"), None)
            .expect_status(200)
            .json()
    }

    fn import(&self, id: &str, method: Value) -> Resp {
        self.call(
            "POST",
            &format!("/v2/images/{id}/import"),
            Some(json!({ "method": method })),
        )
    }

    /// The newest task of `id`, once ended.
    fn wait_task(&self, id: &str) -> Value {
        poll_until(Duration::from_secs(30), "the import task to end", || {
            let tasks = self
                .call("GET", &format!("/v2/images/{id}/tasks"), None)
                .expect_status(200)
                .json();
            let last = tasks["tasks"].as_array()?.last()?.clone();
            matches!(last["status"].as_str(), Some("success" | "failure")).then_some(last)
        })
    }

    /// An active image in the remote region, with properties.
    fn remote_image(&self, data: &[u8]) -> String {
        let id = self.remote.create_image(json!({
            "name": "cirros", "disk_format": "raw", "container_format": "bare",
            "hw_disk_bus": "virtio", "os_distro": "cirros", "os_type": "linux",
            "custom_note": "stays remote"
        }))["id"]
            .as_str()
            .unwrap()
            .to_owned();
        self.remote.upload(&id, data).expect_status(204);
        id
    }
}

fn download_body(remote_id: &str, region: &str) -> Value {
    json!({"name": "glance-download", "glance_region": region, "glance_image_id": remote_id})
}

#[test]
fn imports_the_remote_image_with_its_formats_and_chosen_properties() {
    let r = regions(true);
    let data = random_bytes(2 * 1024 * 1024 + 333, 41);
    let remote_id = r.remote_image(&data);
    // Formats set locally are replaced by the remote's.
    let id = r.create(json!({"name": "copy", "disk_format": "iso", "container_format": "ovf"}));
    let catalogs_before = r.keystone.catalog_requests();
    assert_eq!(catalogs_before, 0, "validation never asks for the catalog");
    r.import(&id, download_body(&remote_id, "regiontwo"))
        .expect_status(202);
    let task = r.wait_task(&id);
    assert_eq!(task["status"], "success", "{task}");
    // The default interface is recorded in the task's input, as Glance does.
    assert_eq!(
        task["input"]["import_req"]["method"]["glance_service_interface"],
        "public"
    );
    let image = r.image(&id);
    assert_eq!(image["status"], "active", "{image}");
    assert_eq!(image["size"], data.len());
    assert_eq!(image["checksum"], md5_hex(&data));
    assert_eq!(image["os_hash_value"], digest_hex("sha512", &data));
    assert_eq!(
        (&image["disk_format"], &image["container_format"]),
        (&json!("raw"), &json!("bare"))
    );
    assert_eq!(image["hw_disk_bus"], "virtio");
    assert_eq!(image["os_distro"], "cirros");
    // Not named by extra_properties (the configured prefixes), so not copied.
    assert!(image.get("os_type").is_none(), "{image}");
    assert!(image.get("custom_note").is_none(), "{image}");
    assert_eq!(image["name"], "copy");
    let body = r
        .call("GET", &format!("/v2/images/{id}/file"), None)
        .expect_status(200)
        .body;
    assert_eq!(md5_hex(&body), md5_hex(&data));
    // One catalog fetch for the import; token checks stay catalog-free.
    assert_eq!(r.keystone.catalog_requests(), 1);
}

#[test]
fn failures_revert_the_image_and_say_why() {
    let r = regions(true);
    let data = random_bytes(4096, 42);
    let remote_id = r.remote_image(&data);
    let id = r.create(json!({"disk_format": "iso", "container_format": "bare",
                              "hw_disk_bus": "ide"}));
    let cases = [
        (
            download_body(&remote_id, "RegionNine"),
            "public glance endpoint not found for region RegionNine".to_owned(),
        ),
        (
            json!({"name": "glance-download", "glance_region": "RegionTwo",
                   "glance_image_id": remote_id, "glance_service_interface": "internal"}),
            "internal glance endpoint not found for region RegionTwo".to_owned(),
        ),
        (
            // No such image there: the remote's 404.
            download_body("5d0b2cf2-93b8-4c43-8e0c-0a8a4b6e3a11", "RegionTwo"),
            "404".to_owned(),
        ),
        (
            // RegionOne's endpoint is a documentation address, refused by allowed_hosts.
            download_body(&remote_id, "RegionOne"),
            "Processed URI for glance-download does not pass filtering".to_owned(),
        ),
    ];
    for (method, expected) in cases {
        r.import(&id, method).expect_status(202);
        let task = r.wait_task(&id);
        assert_eq!(task["status"], "failure", "{task}");
        let message = task["message"].as_str().unwrap();
        assert!(message.contains(&expected), "{expected:?} in {message:?}");
        let image = r.image(&id);
        assert_eq!(image["status"], "queued", "{image}");
        // The image is as it was: its own formats and properties.
        assert_eq!(image["disk_format"], "iso");
        assert_eq!(image["hw_disk_bus"], "ide");
        assert!(image.get("os_distro").is_none(), "{image}");
        assert!(image.get("os_glance_import_task").is_none(), "{image}");
    }
    // A remote image that is not active.
    let queued = r
        .remote
        .create_image(json!({"disk_format": "raw", "container_format": "bare"}));
    let queued = queued["id"].as_str().unwrap();
    r.import(&id, download_body(queued, "RegionTwo"))
        .expect_status(202);
    let task = r.wait_task(&id);
    assert_eq!(
        task["message"],
        "Source image status should be active instead of queued"
    );
    // Nothing was left in staging.
    super::import::wait_no_staging(&r.local);
}

#[test]
fn data_unlike_the_remote_metadata_fails_and_leaves_nothing() {
    // A stand-in remote Image service whose data disagrees with its metadata.
    let origin = Origin::start();
    let keystone = FakeKeystone::start();
    keystone.add_image_endpoint("RegionTwo", "public", &origin.url(""));
    let local = TestServer::start_with_config(&format!(
        "enabled_import_methods = [\"glance-download\"]\n\
         [import_filtering_opts]\nallowed_hosts = [\"127.0.0.1\"]\nallowed_ports = [{}]\n{}",
        origin.port(),
        keystone.glint_config()
    ));
    let r = Regions {
        token: keystone.issue("alice", "proj-a", &["member"], HOUR),
        keystone,
        remote: TestServer::start(),
        local,
    };
    let data = random_bytes(100_000, 43);
    let cases = [
        // (remote image id, size announced, md5 announced, behaviour, expected message)
        (
            "11111111-1111-4111-8111-111111111111",
            data.len(),
            md5_hex(b"other bytes"),
            Behaviour::Normal,
            "The downloaded data's checksum differs from the remote image's",
        ),
        (
            "22222222-2222-4222-8222-222222222222",
            data.len() + 10,
            md5_hex(&data),
            Behaviour::Normal,
            "The downloaded data size 100000 is different from the expected 100010.",
        ),
        (
            "33333333-3333-4333-8333-333333333333",
            data.len(),
            md5_hex(&data),
            Behaviour::CutAfter(5000),
            "the origin stopped sending",
        ),
    ];
    let id = r.create(json!({"disk_format": "raw", "container_format": "bare"}));
    // A remote disk_format this site does not allow: refused before any data moves.
    let odd = "44444444-4444-4444-8444-444444444444";
    origin.put(
        &format!("/v2/images/{odd}"),
        json!({"id": odd, "status": "active", "size": 3, "disk_format": "floppy",
               "container_format": "bare"})
        .to_string()
        .into_bytes(),
    );
    r.import(&id, download_body(odd, "RegionTwo"))
        .expect_status(202);
    let task = r.wait_task(&id);
    let message = task["message"].as_str().unwrap();
    assert!(
        message.starts_with("The remote image's disk_format floppy is not one of this site's"),
        "{message}"
    );
    assert_eq!(origin.hits(&format!("/v2/images/{odd}/file")), 0);
    for (remote_id, size, checksum, behaviour, expected) in cases {
        let doc = json!({"id": remote_id, "status": "active", "size": size,
                         "disk_format": "raw", "container_format": "bare",
                         "checksum": checksum, "hw_disk_bus": "virtio"});
        origin.put(
            &format!("/v2/images/{remote_id}"),
            doc.to_string().into_bytes(),
        );
        origin.put_with(
            &format!("/v2/images/{remote_id}/file"),
            data.clone(),
            behaviour,
        );
        r.import(&id, download_body(remote_id, "RegionTwo"))
            .expect_status(202);
        let task = r.wait_task(&id);
        assert_eq!(task["status"], "failure", "{task}");
        let message = task["message"].as_str().unwrap();
        assert!(message.contains(expected), "{expected:?} in {message:?}");
        let image = r.image(&id);
        assert_eq!(image["status"], "queued", "{image}");
        assert!(image.get("hw_disk_bus").is_none(), "{image}");
        assert_eq!(image["checksum"], Value::Null);
        assert_eq!(origin.hits(&format!("/v2/images/{remote_id}/file")), 1);
    }
    super::import::wait_no_staging(&r.local);
}

#[test]
fn the_endpoint_meets_the_fetch_policy() {
    // Without allowed_hosts naming it, the loopback endpoint from the catalog is refused by
    // its address (the port is allowed).
    let r = regions(false);
    let remote_id = r.remote_image(b"data");
    let id = r.create(json!({"disk_format": "raw", "container_format": "bare"}));
    r.import(&id, download_body(&remote_id, "RegionTwo"))
        .expect_status(202);
    let task = r.wait_task(&id);
    let message = task["message"].as_str().unwrap();
    assert!(
        message.starts_with("Processed URI for glance-download does not pass filtering")
            && message.contains("loopback"),
        "{message}"
    );
    assert_eq!(r.image(&id)["status"], "queued");
}

#[test]
fn the_request_is_checked_as_glance_checks_it() {
    let r = regions(true);
    let id = r.create(json!({"disk_format": "raw", "container_format": "bare"}));
    let uuid = "5d0b2cf2-93b8-4c43-8e0c-0a8a4b6e3a11";
    for (method, message) in [
        (
            json!({"name": "glance-download", "glance_image_id": uuid}),
            "'glance_region' needs to be set for glance-download import method",
        ),
        (
            json!({"name": "glance-download", "glance_region": "RegionTwo"}),
            "'glance_image_id' needs to be set for glance-download import method",
        ),
        (
            json!({"name": "glance-download", "glance_region": "RegionTwo",
                   "glance_image_id": "abc"}),
            "Remote image id does not look like a UUID: abc",
        ),
    ] {
        let resp = r.import(&id, method).expect_status(400);
        assert!(resp.text().contains(message), "{}", resp.text());
    }
    // Status before fields, as Glance: an image that is not queued is 409 first.
    let stage = r
        .local
        .request("PUT", &format!("/v2/images/{id}/stage"))
        .header("x-auth-token", &r.token)
        .header("content-type", "application/octet-stream")
        .body(b"staged".to_vec())
        .send();
    stage.expect_status(204);
    let resp = r
        .import(
            &id,
            json!({"name": "glance-download", "glance_region": "RegionTwo"}),
        )
        .expect_status(409);
    assert!(
        resp.text()
            .contains("Image needs to be in 'queued' state to use 'glance-download' method"),
        "{}",
        resp.text()
    );
    // Not enabled: unknown, as Glance.
    let plain = TestServer::start();
    let other = plain.create_raw_image(json!({}));
    plain
        .post_json(
            &format!("/v2/images/{other}/import"),
            &json!({"method": download_body(uuid, "RegionTwo")}),
        )
        .expect_status(400);
    assert_eq!(
        plain.get_json("/v2/info/import")["import-methods"]["value"],
        json!(["glance-direct", "web-download", "copy-image"])
    );
    assert_eq!(
        r.call("GET", "/v2/info/import", None)
            .expect_status(200)
            .json()["import-methods"]["value"],
        json!(["glance-direct", "glance-download"])
    );
}

#[test]
fn without_keystone_there_is_no_catalog_and_the_task_says_so() {
    let srv = TestServer::start_with_config("enabled_import_methods = [\"glance-download\"]\n");
    let id = srv.create_raw_image(json!({}));
    srv.post_json(
        &format!("/v2/images/{id}/import"),
        &json!({"method": download_body("5d0b2cf2-93b8-4c43-8e0c-0a8a4b6e3a11", "RegionTwo")}),
    )
    .expect_status(202);
    let task = poll_until(Duration::from_secs(30), "the import task to end", || {
        let tasks = srv.get_json(&format!("/v2/images/{id}/tasks"));
        let last = tasks["tasks"].as_array()?.last()?.clone();
        (last["status"] == "failure").then_some(last)
    });
    let message = task["message"].as_str().unwrap();
    assert!(
        message.contains("service catalog") && message.contains("noauth"),
        "{message}"
    );
    assert_eq!(srv.image(&id)["status"], "queued");
}
