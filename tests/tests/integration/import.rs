//! Interoperable image import and tasks (issue 12, §4.9, §4.10, §4.15, §4.16): stage,
//! glance-direct, web-download through the fetch policy, copy-image across stores, the import
//! lock, reverts on failure, and recovery after `kill -9`.

use std::time::Duration;

use glint_tests::origin::{Behaviour, Origin};
use glint_tests::{digest_hex, md5_hex, poll_until, random_bytes, ServerBuilder, TestServer};
use serde_json::{json, Value};

fn stage(srv: &TestServer, id: &str, data: &[u8]) -> glint_tests::Resp {
    srv.request("PUT", &format!("/v2/images/{id}/stage"))
        .header("content-type", "application/octet-stream")
        .body(data.to_vec())
        .send()
}

fn import(srv: &TestServer, id: &str, body: Value) -> glint_tests::Resp {
    srv.post_json(&format!("/v2/images/{id}/import"), &body)
}

/// Polls the image's tasks until the newest one has ended; returns it.
fn wait_task(srv: &TestServer, id: &str) -> Value {
    poll_until(Duration::from_secs(30), "the import task to end", || {
        let tasks = srv.get_json(&format!("/v2/images/{id}/tasks"));
        let last = tasks["tasks"].as_array()?.last()?.clone();
        matches!(last["status"].as_str(), Some("success" | "failure")).then_some(last)
    })
}

fn staging_files(srv: &TestServer) -> Vec<String> {
    std::fs::read_dir(srv.data_dir().join("staging"))
        .map(|dir| {
            dir.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until the staging folder is empty (files are removed off the request path).
pub(crate) fn wait_no_staging(srv: &TestServer) {
    poll_until(
        Duration::from_secs(20),
        &format!("an empty staging folder, not {:?}", staging_files(srv)),
        || staging_files(srv).is_empty().then_some(()),
    );
}

/// A server allowed to fetch from `origin` on loopback.
fn with_origin(origin: &Origin, extra: &str) -> ServerBuilder {
    TestServer::builder().config(&format!(
        "{extra}\n[import_filtering_opts]\nallowed_hosts = [\"127.0.0.1\"]\nallowed_ports = [{}]\n",
        origin.port()
    ))
}

#[test]
fn info_import_lists_the_enabled_methods() {
    let srv = TestServer::start();
    let info = srv.get_json("/v2/info/import");
    assert_eq!(
        info["import-methods"]["value"],
        json!(["glance-direct", "web-download", "copy-image"])
    );
    let srv = TestServer::start_with_config("enabled_import_methods = [\"copy-image\"]\n");
    let info = srv.get_json("/v2/info/import");
    assert_eq!(info["import-methods"]["value"], json!(["copy-image"]));
    // Without glance-direct, staging is not offered.
    let id = srv.create_raw_image(json!({}));
    stage(&srv, &id, b"abc").expect_status(404);
    import(&srv, &id, json!({"method": {"name": "glance-direct"}})).expect_status(400);
}

#[test]
fn stage_then_glance_direct_makes_the_image_active_with_its_checksums() {
    let srv = TestServer::start();
    let data = random_bytes(3 * 1024 * 1024 + 17, 12);
    let id = srv.create_raw_image(json!({}));
    stage(&srv, &id, &data).expect_status(204);
    let staged = srv.image(&id);
    assert_eq!(staged["status"], "uploading");
    assert_eq!(staged["size"], data.len());
    assert_eq!(staged["checksum"], Value::Null);
    // Where the data is staged is hidden, as in Glance.
    assert!(staged.get("os_glance_stage_host").is_none(), "{staged}");
    // A second stage of the same image: 409.
    stage(&srv, &id, b"again").expect_status(409);

    import(&srv, &id, json!({"method": {"name": "glance-direct"}})).expect_status(202);
    let task = wait_task(&srv, &id);
    assert_eq!(task["status"], "success", "{task}");
    assert_eq!(task["type"], "api_image_import");
    assert_eq!(task["result"], json!({"image_id": id}));
    assert_eq!(
        task["input"]["import_req"]["method"]["name"],
        "glance-direct"
    );
    assert!(task["expires_at"].is_string());
    let image = srv.wait_for_status(&id, "active");
    assert_eq!(image["checksum"], md5_hex(&data));
    assert_eq!(image["os_hash_value"], digest_hex("sha512", &data));
    assert_eq!(image["size"], data.len());
    assert_eq!(image["os_glance_importing_to_stores"], "");
    assert!(image.get("os_glance_import_task").is_none(), "{image}");
    assert_eq!(srv.download(&id).expect_status(200).body, data);
    wait_no_staging(&srv);
}

#[test]
fn import_preconditions_answer_as_glance() {
    let srv = TestServer::start();
    let id = srv.create_raw_image(json!({}));
    // Not staged.
    import(&srv, &id, json!({"method": {"name": "glance-direct"}})).expect_status(409);
    // Body checks.
    import(&srv, &id, json!({})).expect_status(400);
    import(&srv, &id, json!({"method": {}})).expect_status(400);
    import(&srv, &id, json!({"method": {"name": "nope"}})).expect_status(400);
    import(
        &srv,
        &id,
        json!({"method": {"name": "web-download", "uri": "http://example.com/x"}, "all_stores": "yes"}),
    )
    .expect_status(400);
    // all_stores_must_succeed false needs multi-store.
    import(
        &srv,
        &id,
        json!({"method": {"name": "web-download", "uri": "http://example.com/x"},
               "all_stores_must_succeed": false}),
    )
    .expect_status(400);
    // Formats unset: 409.
    let bare = srv.create_image(json!({}))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    import(
        &srv,
        &bare,
        json!({"method": {"name": "web-download", "uri": "http://example.com/x"}}),
    )
    .expect_status(409);
    // copy-image of a queued image: 409; a non-copy on an active image: 409.
    import(&srv, &id, json!({"method": {"name": "copy-image"}})).expect_status(409);
    let active = srv.create_active_image(json!({}), b"data");
    import(
        &srv,
        &active,
        json!({"method": {"name": "web-download", "uri": "http://example.com/x"}}),
    )
    .expect_status(409);
    // Unknown image.
    import(
        &srv,
        "6f0c2a7e-3b1d-4c55-9a3e-0d9a1c2b3e41",
        json!({"method": {"name": "glance-direct"}}),
    )
    .expect_status(404);
}

#[test]
fn web_download_imports_from_an_allowed_origin() {
    let origin = Origin::start();
    let data = random_bytes(2 * 1024 * 1024 + 5, 12);
    origin.put("/disk.img", data.clone());
    let srv = with_origin(&origin, "").start();
    let id = srv.create_raw_image(json!({}));
    import(
        &srv,
        &id,
        json!({"method": {"name": "web-download", "uri": origin.url("/disk.img")}}),
    )
    .expect_status(202);
    let task = wait_task(&srv, &id);
    assert_eq!(task["status"], "success", "{task}");
    let image = srv.wait_for_status(&id, "active");
    assert_eq!(image["checksum"], md5_hex(&data));
    assert_eq!(srv.download(&id).expect_status(200).body, data);
    wait_no_staging(&srv);
}

#[test]
fn web_download_refusals_stage_nothing() {
    // The default policy: ports 80 and 443, no loopback, private or metadata address.
    let srv = TestServer::start();
    let refused = [
        "http://127.0.0.1/x",
        "http://2130706433/x",
        "http://0x7f.1/x",
        "http://localhost/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/x",
        "http://example.com:8080/x",
        "ftp://example.com/x",
        "file:///etc/passwd",
    ];
    for uri in refused {
        let id = srv.create_raw_image(json!({}));
        let answer = import(
            &srv,
            &id,
            json!({"method": {"name": "web-download", "uri": uri}}),
        );
        // Names are resolved when the task connects: `localhost` is refused there.
        if answer.status == 202 {
            let task = wait_task(&srv, &id);
            assert_eq!(task["status"], "failure", "{uri}: {task}");
            let message = task["message"].as_str().unwrap();
            assert!(message.contains("not allowed"), "{uri}: {message}");
        } else {
            let body = answer.expect_status(400).text();
            assert!(body.contains("does not pass filtering"), "{uri}: {body}");
        }
        let image = srv.wait_for_status(&id, "queued");
        assert!(image.get("os_glance_import_task").is_none(), "{uri}");
        wait_no_staging(&srv);
    }
}

#[test]
fn web_download_redirects_are_checked_again() {
    // The origin is allowed (loopback named in allowed_hosts); where it redirects is not.
    let origin = Origin::start();
    origin.put_with(
        "/meta",
        Vec::new(),
        Behaviour::Redirect("http://169.254.169.254/latest/meta-data/"),
    );
    origin.put_with(
        "/other-port",
        Vec::new(),
        Behaviour::Redirect("http://127.0.0.1:1/x"),
    );
    let srv = with_origin(&origin, "").start();
    for (path, refusal) in [
        ("/meta", "not allowed"),
        ("/other-port", "port 1 is not allowed"),
    ] {
        let id = srv.create_raw_image(json!({}));
        import(
            &srv,
            &id,
            json!({"method": {"name": "web-download", "uri": origin.url(path)}}),
        )
        .expect_status(202);
        let task = wait_task(&srv, &id);
        assert_eq!(task["status"], "failure");
        let message = task["message"].as_str().unwrap();
        assert!(message.contains(refusal), "{path}: {message}");
        assert_eq!(srv.image(&id)["status"], "queued");
        wait_no_staging(&srv);
    }
}

#[test]
fn deleting_a_staged_image_removes_its_staged_data() {
    let srv = TestServer::start();
    let id = srv.create_raw_image(json!({}));
    stage(&srv, &id, b"staged").expect_status(204);
    assert_eq!(staging_files(&srv), vec![id.clone()]);
    srv.delete(&format!("/v2/images/{id}")).expect_status(204);
    wait_no_staging(&srv);
}

#[test]
fn web_download_origin_stopping_midway_reverts_to_queued() {
    let origin = Origin::start();
    origin.put_with(
        "/cut.img",
        random_bytes(1024 * 1024, 12),
        Behaviour::CutAfter(300_000),
    );
    let srv = with_origin(&origin, "").start();
    let id = srv.create_raw_image(json!({}));
    import(
        &srv,
        &id,
        json!({"method": {"name": "web-download", "uri": origin.url("/cut.img")}}),
    )
    .expect_status(202);
    let task = wait_task(&srv, &id);
    assert_eq!(task["status"], "failure");
    assert!(
        task["message"].as_str().unwrap().contains("origin stopped"),
        "{task}"
    );
    let image = srv.wait_for_status(&id, "queued");
    assert_eq!(image["size"], Value::Null);
    wait_no_staging(&srv);
    assert!(srv.part_files().is_empty());
}

#[test]
fn a_refused_format_reverts_the_import() {
    let srv = TestServer::start();
    let qcow2_magic = b"QFI\xfb\x00\x00\x00\x03".repeat(64);
    let id = srv.create_raw_image(json!({}));
    stage(&srv, &id, &qcow2_magic).expect_status(204);
    import(&srv, &id, json!({"method": {"name": "glance-direct"}})).expect_status(202);
    let task = wait_task(&srv, &id);
    assert_eq!(task["status"], "failure", "{task}");
    let image = srv.wait_for_status(&id, "queued");
    assert_eq!(image["size"], Value::Null);
    wait_no_staging(&srv);
    assert!(srv.part_files().is_empty());
}

#[test]
fn a_second_import_while_one_runs_is_409() {
    // An origin that never finishes holds the first import in `importing`.
    let origin = Origin::start();
    origin.put_with(
        "/slow.img",
        random_bytes(64 * 1024, 12),
        Behaviour::Stall(32 * 1024),
    );
    let srv = with_origin(&origin, "").start();
    let id = srv.create_raw_image(json!({}));
    let body = json!({"method": {"name": "web-download", "uri": origin.url("/slow.img")}});
    import(&srv, &id, body.clone()).expect_status(202);
    assert_eq!(srv.image(&id)["status"], "importing");
    import(&srv, &id, body).expect_status(409);
    let tasks = srv.get_json(&format!("/v2/images/{id}/tasks"));
    assert_eq!(tasks["tasks"].as_array().unwrap().len(), 1);
}

#[test]
fn kill_9_mid_import_then_restart_leaves_nothing_importing() {
    let origin = Origin::start();
    origin.put_with(
        "/slow.img",
        random_bytes(64 * 1024, 12),
        Behaviour::Stall(32 * 1024),
    );
    let mut srv = with_origin(&origin, "").start();
    let id = srv.create_raw_image(json!({}));
    import(
        &srv,
        &id,
        json!({"method": {"name": "web-download", "uri": origin.url("/slow.img")}}),
    )
    .expect_status(202);
    poll_until(Duration::from_secs(20), "bytes staged", || {
        (!staging_files(&srv).is_empty()).then_some(())
    });
    srv.kill9();
    srv.start_again();
    let image = srv.image(&id);
    assert_eq!(image["status"], "queued", "{image}");
    assert!(image.get("os_glance_import_task").is_none(), "{image}");
    wait_no_staging(&srv);
    let tasks = srv.get_json(&format!("/v2/images/{id}/tasks"));
    let task = &tasks["tasks"][0];
    assert_eq!(task["status"], "failure");
    assert!(
        task["message"].as_str().unwrap().contains("restarted"),
        "{task}"
    );
    // The image can be imported again.
    origin.put("/fast.img", b"now it works".to_vec());
    import(
        &srv,
        &id,
        json!({"method": {"name": "web-download", "uri": origin.url("/fast.img")}}),
    )
    .expect_status(202);
    assert_eq!(wait_task(&srv, &id)["status"], "success");
    assert_eq!(srv.download(&id).expect_status(200).body, b"now it works");
}

#[test]
fn kill_9_after_a_stage_keeps_the_staged_data() {
    let mut srv = TestServer::start();
    let id = srv.create_raw_image(json!({}));
    stage(&srv, &id, b"staged bytes").expect_status(204);
    srv.kill9();
    srv.start_again();
    assert_eq!(srv.image(&id)["status"], "uploading");
    import(&srv, &id, json!({"method": {"name": "glance-direct"}})).expect_status(202);
    assert_eq!(wait_task(&srv, &id)["status"], "success");
    assert_eq!(srv.download(&id).expect_status(200).body, b"staged bytes");
}

#[test]
fn staging_disk_full_reverts_the_stage() {
    // A staging folder on a 1 MiB tmpfs would need root; a quota does the same job for a
    // stage: image_stage_total refuses what does not fit and leaves nothing behind.
    let srv = TestServer::start_with_config("[quotas]\nimage_stage_total = 1\n");
    let id = srv.create_raw_image(json!({}));
    stage(&srv, &id, &random_bytes(2 * 1024 * 1024, 12)).expect_status(413);
    assert_eq!(srv.image(&id)["status"], "queued");
    wait_no_staging(&srv);
    let usage = srv.get_json("/v2/info/usage");
    assert_eq!(usage["usage"]["image_stage_total"]["usage"], 0);
    stage(&srv, &id, &random_bytes(1000, 12)).expect_status(204);
}

#[test]
fn copy_image_fills_another_store_and_records_failures() {
    let srv = TestServer::builder()
        .config(
            "[stores]\ndefault = \"local\"\n[stores.local]\ntype = \"file\"\n\
             [stores.backup]\ntype = \"file\"\n",
        )
        .start();
    let data = random_bytes(1024 * 1024 + 3, 12);
    let id = srv.create_active_image(json!({}), &data);
    // Already present: 400.
    import(
        &srv,
        &id,
        json!({"method": {"name": "copy-image"}, "stores": ["local"]}),
    )
    .expect_status(400);
    // Unknown store: 409.
    import(
        &srv,
        &id,
        json!({"method": {"name": "copy-image"}, "stores": ["nowhere"]}),
    )
    .expect_status(409);
    import(
        &srv,
        &id,
        json!({"method": {"name": "copy-image"}, "stores": ["backup"]}),
    )
    .expect_status(202);
    assert_eq!(wait_task(&srv, &id)["status"], "success");
    let image = srv.image(&id);
    assert_eq!(image["status"], "active");
    assert_eq!(image["stores"], "local,backup");
    assert_eq!(image["os_glance_importing_to_stores"], "");
    assert_eq!(image["os_glance_failed_import"], "");
    // all_stores with nothing left: 202, nothing to do.
    import(
        &srv,
        &id,
        json!({"method": {"name": "copy-image"}, "all_stores": true}),
    )
    .expect_status(202);
    // The copy reads back the same bytes: drop the first store's file, download from backup.
    std::fs::remove_file(srv.data_dir().join("stores/local").join(&id))
        .or_else(|_| std::fs::remove_file(srv.data_dir().join("images").join(&id)))
        .ok();
    assert_eq!(srv.download(&id).expect_status(200).body, data);
}

#[test]
fn legacy_tasks_api_lists_and_shows_tasks() {
    let srv = TestServer::start();
    let id = srv.create_raw_image(json!({}));
    stage(&srv, &id, b"abc").expect_status(204);
    import(&srv, &id, json!({"method": {"name": "glance-direct"}})).expect_status(202);
    let task = wait_task(&srv, &id);
    let task_id = task["id"].as_str().unwrap();
    let list = srv.get_json("/v2/tasks");
    assert_eq!(list["tasks"][0]["id"], task_id);
    assert!(list["tasks"][0].get("input").is_none());
    assert_eq!(list["schema"], "/v2/schemas/tasks");
    let shown = srv.get_json(&format!("/v2/tasks/{task_id}"));
    assert_eq!(shown["status"], "success");
    assert_eq!(shown["image_id"], id);
    assert_eq!(shown["self"], format!("/v2/tasks/{task_id}"));
    let listed = srv.get_json("/v2/tasks?status=failure");
    assert!(listed["tasks"].as_array().unwrap().is_empty());
    // glanceclient's task-list defaults: sort_key=status, sort_dir=desc.
    let sorted = srv.get_json("/v2/tasks?sort_key=status&sort_dir=desc");
    assert_eq!(sorted["tasks"][0]["id"], task_id);
    srv.get("/v2/tasks?sort_key=owner_name").expect_status(400);
    srv.get("/v2/tasks?type=api_image_import")
        .expect_status(400);
    srv.get("/v2/tasks?marker=nope").expect_status(400);
    srv.get("/v2/tasks/6f0c2a7e-3b1d-4c55-9a3e-0d9a1c2b3e41")
        .expect_status(404);
    let deleted = srv
        .delete(&format!("/v2/tasks/{task_id}"))
        .expect_status(405);
    assert_eq!(deleted.header("allow"), Some("GET"));
    srv.get_json("/v2/schemas/task");
    srv.get_json("/v2/schemas/tasks");
}

/// A qcow2 image made by `qemu-img create` (`size` e.g. "4M"), and its bytes.
fn qcow2(size: &str, extra: &[&str]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.qcow2");
    let mut args = vec!["create", "-q", "-f", "qcow2"];
    args.extend_from_slice(extra);
    let path_text = path.to_str().unwrap().to_owned();
    args.push(&path_text);
    args.push(size);
    let out = std::process::Command::new("qemu-img")
        .args(&args)
        .output()
        .expect("qemu-img is required (apt-get install qemu-utils)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(&path).unwrap()
}

#[test]
fn image_conversion_turns_a_qcow2_into_raw_and_inject_sets_properties() {
    let srv = TestServer::start_with_config(
        "image_import_plugins = [\"image_conversion\", \"inject_image_metadata\"]\n\
         [image_conversion]\noutput_format = \"raw\"\n\
         [inject_metadata_properties]\nignore_user_roles = []\n\
         inject = { hw_disk_bus = \"virtio\", injected = \"yes\" }\n",
    );
    let data = qcow2("4M", &[]);
    let id = srv.create_image(json!({"disk_format": "qcow2", "container_format": "bare"}))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    stage(&srv, &id, &data).expect_status(204);
    import(&srv, &id, json!({"method": {"name": "glance-direct"}})).expect_status(202);
    assert_eq!(wait_task(&srv, &id)["status"], "success");
    let image = srv.image(&id);
    assert_eq!(image["disk_format"], "raw");
    assert_eq!(image["size"], 4 * 1024 * 1024);
    assert_eq!(image["virtual_size"], 4 * 1024 * 1024);
    assert_eq!(image["hw_disk_bus"], "virtio");
    assert_eq!(image["injected"], "yes");
    let raw = srv.download(&id).expect_status(200).body;
    assert_eq!(raw, vec![0u8; 4 * 1024 * 1024]);
    wait_no_staging(&srv);
}

#[test]
fn glance_direct_whose_converted_data_is_over_image_size_total_fails() {
    // The staged qcow2 fits; the raw it converts to (4 MiB) does not fit image_size_total.
    let srv = TestServer::start_with_config(
        "image_import_plugins = [\"image_conversion\"]\n[quotas]\nimage_size_total = 2\n",
    );
    let id = srv.create_image(json!({"disk_format": "qcow2", "container_format": "bare"}))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    stage(&srv, &id, &qcow2("4M", &[])).expect_status(204);
    import(&srv, &id, json!({"method": {"name": "glance-direct"}})).expect_status(202);
    let task = wait_task(&srv, &id);
    assert_eq!(task["status"], "failure", "{task}");
    let text = task["message"].as_str().unwrap();
    assert!(
        text.starts_with("The request returned a 413 Request Entity Too Large.")
            && text.contains("[Resource image_size_total is over limit of 2"),
        "{text}"
    );
    let image = srv.wait_for_status(&id, "queued");
    assert_eq!(image["size"], Value::Null);
    wait_no_staging(&srv);
    assert!(std::fs::read_dir(srv.data_dir().join("images"))
        .map(|d| d.count() == 0)
        .unwrap_or(true));
}

#[test]
fn image_conversion_refuses_a_qcow2_with_a_backing_file_before_converting() {
    let srv = TestServer::start_with_config("image_import_plugins = [\"image_conversion\"]\n");
    let base = tempfile::tempdir().unwrap();
    let base_path = base.path().join("base.raw");
    std::fs::write(&base_path, vec![7u8; 1024 * 1024]).unwrap();
    let base_text = base_path.to_str().unwrap().to_owned();
    let data = qcow2("1M", &["-b", &base_text, "-F", "raw"]);
    let id = srv.create_image(json!({"disk_format": "qcow2", "container_format": "bare"}))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    stage(&srv, &id, &data).expect_status(204);
    import(&srv, &id, json!({"method": {"name": "glance-direct"}})).expect_status(202);
    let task = wait_task(&srv, &id);
    assert_eq!(task["status"], "failure");
    assert!(
        task["message"]
            .as_str()
            .unwrap()
            .contains("Image conversion failed"),
        "{task}"
    );
    let image = srv.wait_for_status(&id, "queued");
    assert_eq!(image["disk_format"], "qcow2");
    wait_no_staging(&srv);
}

/// glance-direct imports use the digests `PUT /stage` computed (a hidden, reserved record)
/// when the staged data is imported unchanged, and hash anew when a conversion rewrote it or
/// the record does not fit (another `hashing_algorithm` since): the image's digests are those
/// of its stored bytes either way.
#[test]
fn imported_digests_are_those_of_the_stored_bytes_with_and_without_conversion() {
    let mut srv = TestServer::start_with_config(
        "image_import_plugins = [\"image_conversion\"]\n[image_conversion]\noutput_format = \"raw\"\n",
    );
    // Unchanged (raw staged, raw wanted): the stage's digests.
    let data = random_bytes(2 * 1024 * 1024 + 5, 21);
    let id = srv.create_raw_image(json!({}));
    stage(&srv, &id, &data).expect_status(204);
    let staged = srv.image(&id);
    assert!(staged.get("os_glance_stage_digests").is_none(), "{staged}");
    // The record is the server's: callers can neither set nor replace it.
    let forged = json!([{"op": "add", "path": "/os_glance_stage_digests",
        "value": format!("{}:{}:sha512:{}", data.len(), md5_hex(b"x"), digest_hex("sha512", b"x"))}]);
    srv.patch(&id, forged).expect_status(403);
    // md5 and sha512 each count the bytes they hash.
    let hashed = || srv.metric("glint_hashed_bytes_total");
    let staged_hashed = hashed();
    assert_eq!(staged_hashed, 2.0 * data.len() as f64);
    import(&srv, &id, json!({"method": {"name": "glance-direct"}})).expect_status(202);
    assert_eq!(wait_task(&srv, &id)["status"], "success");
    // Not hashed again.
    assert_eq!(hashed(), staged_hashed);
    let image = srv.image(&id);
    assert_eq!(image["checksum"], md5_hex(&data));
    assert_eq!(image["os_hash_algo"], "sha512");
    assert_eq!(image["os_hash_value"], digest_hex("sha512", &data));
    assert!(image.get("os_glance_stage_digests").is_none(), "{image}");
    assert_eq!(srv.download(&id).expect_status(200).body, data);

    // Converted (qcow2 staged, raw stored): the digests of the raw bytes, not the qcow2's.
    let qcow = qcow2("3M", &[]);
    let id = srv.create_image(json!({"disk_format": "qcow2", "container_format": "bare"}))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    stage(&srv, &id, &qcow).expect_status(204);
    let before = hashed();
    import(&srv, &id, json!({"method": {"name": "glance-direct"}})).expect_status(202);
    assert_eq!(wait_task(&srv, &id)["status"], "success");
    let raw = vec![0u8; 3 * 1024 * 1024];
    assert_eq!(hashed() - before, 2.0 * raw.len() as f64);
    let image = srv.image(&id);
    assert_eq!(image["disk_format"], "raw");
    assert_eq!(image["checksum"], md5_hex(&raw));
    assert_eq!(image["os_hash_value"], digest_hex("sha512", &raw));
    assert_eq!(srv.download(&id).expect_status(200).body, raw);

    // Staged under sha512, imported under sha256: the record does not fit; hashed anew.
    let data = random_bytes(1024 * 1024 + 3, 22);
    let id = srv.create_raw_image(json!({}));
    stage(&srv, &id, &data).expect_status(204);
    let config = srv.config_file().unwrap().to_owned();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("hashing_algorithm = \"sha256\"\n{text}")).unwrap();
    srv.restart();
    import(&srv, &id, json!({"method": {"name": "glance-direct"}})).expect_status(202);
    assert_eq!(wait_task(&srv, &id)["status"], "success");
    assert_eq!(
        srv.metric("glint_hashed_bytes_total"),
        2.0 * data.len() as f64
    );
    let image = srv.image(&id);
    assert_eq!(image["checksum"], md5_hex(&data));
    assert_eq!(image["os_hash_algo"], "sha256");
    assert_eq!(image["os_hash_value"], digest_hex("sha256", &data));
    wait_no_staging(&srv);
}
