//! The legacy tasks API's `POST /v2/tasks` (Glance's `import` task, §4.15): the task creates
//! an image from `image_properties`, fetches `import_from` through `[import_filtering_opts]`,
//! and streams it into the store as an upload — or fails, deleting the image it created.
//! Also the quotas of an import while its data lands (`image_size_total`,
//! `image_stage_total`).

use std::time::Duration;

use glint_tests::fake_keystone::FakeKeystone;
use glint_tests::origin::{Behaviour, Origin};
use glint_tests::{digest_hex, md5_hex, poll_until, random_bytes, ServerBuilder, TestServer};
use serde_json::{json, Value};

/// A server allowed to fetch from `origin` on loopback.
fn with_origin(origin: &Origin, extra: &str) -> ServerBuilder {
    TestServer::builder().config(&format!(
        "{extra}\n[import_filtering_opts]\nallowed_hosts = [\"127.0.0.1\"]\nallowed_ports = [{}]\n",
        origin.port()
    ))
}

fn create_task(srv: &TestServer, body: Value) -> glint_tests::Resp {
    srv.post_json("/v2/tasks", &body)
}

fn import_task(uri: &str, properties: Value) -> Value {
    json!({
        "type": "import",
        "input": {
            "import_from": uri,
            "import_from_format": "raw",
            "image_properties": properties,
        }
    })
}

/// Polls task `id` until it has ended; returns it.
fn wait_task(srv: &TestServer, id: &str) -> Value {
    poll_until(Duration::from_secs(30), "the task to end", || {
        let task = srv.get_json(&format!("/v2/tasks/{id}"));
        matches!(task["status"].as_str(), Some("success" | "failure")).then_some(task)
    })
}

/// Creates a task that must be accepted and returns it once ended.
fn run_task(srv: &TestServer, body: Value) -> Value {
    let created = create_task(srv, body).expect_status(201);
    let task = created.json();
    assert_eq!(task["status"], "pending", "{task}");
    let id = task["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.header("location"),
        Some(&*format!("/v2/tasks/{id}"))
    );
    wait_task(srv, &id)
}

fn image_count(srv: &TestServer) -> usize {
    srv.list("")["images"].as_array().unwrap().len()
}

fn stored_files(srv: &TestServer) -> Vec<String> {
    let mut found = Vec::new();
    for dir in ["images", "staging"] {
        if let Ok(entries) = std::fs::read_dir(srv.data_dir().join(dir)) {
            found.extend(
                entries
                    .flatten()
                    .map(|e| format!("{dir}/{}", e.file_name().to_string_lossy())),
            );
        }
    }
    found
}

fn wait_nothing_stored(srv: &TestServer) {
    poll_until(
        Duration::from_secs(20),
        &format!("no image data, not {:?}", stored_files(srv)),
        || stored_files(srv).is_empty().then_some(()),
    );
}

#[test]
fn an_import_task_creates_the_image_and_streams_the_data_in() {
    let origin = Origin::start();
    let data = random_bytes(2 * 1024 * 1024 + 11, 21);
    origin.put("/disk.img", data.clone());
    let srv = with_origin(&origin, "").start();
    let created = create_task(
        &srv,
        import_task(
            &origin.url("/disk.img"),
            json!({"name": "from-task", "disk_format": "raw", "container_format": "bare",
                   "visibility": "private", "hw_rng_model": "virtio"}),
        ),
    )
    .expect_status(201)
    .json();
    assert_eq!(created["type"], "import");
    assert_eq!(created["status"], "pending");
    assert_eq!(created["input"]["import_from_format"], "raw");
    assert_eq!(created["result"], Value::Null);
    assert_eq!(created["message"], "");
    assert_eq!(created["schema"], "/v2/schemas/task");
    let task = wait_task(&srv, created["id"].as_str().unwrap());
    assert_eq!(task["status"], "success", "{task}");
    assert!(task["expires_at"].is_string());
    let id = task["result"]["image_id"].as_str().unwrap().to_owned();
    let image = srv.image(&id);
    assert_eq!(image["status"], "active");
    assert_eq!(image["name"], "from-task");
    assert_eq!(image["visibility"], "private");
    assert_eq!(image["hw_rng_model"], "virtio");
    assert_eq!(image["size"], data.len());
    assert_eq!(image["checksum"], md5_hex(&data));
    assert_eq!(image["os_hash_value"], digest_hex("sha512", &data));
    assert_eq!(srv.download(&id).expect_status(200).body, data);
    // Listed with the others (the legacy type filter).
    let listed = srv.get_json("/v2/tasks?type=import");
    assert_eq!(listed["tasks"][0]["id"], task["id"]);
}

#[test]
fn refusals_answer_as_glance_and_create_nothing() {
    let origin = Origin::start();
    origin.put("/disk.img", b"data".to_vec());
    // Loopback is not allow-listed by default.
    let srv = TestServer::start();
    let props = json!({"disk_format": "raw", "container_format": "bare"});
    let refused: [(Value, &str); 10] = [
        (json!({"input": {}}), "Task 'type' is required"),
        (json!({"type": "import"}), "Task 'input' is required"),
        (
            json!({"type": "bogus", "input": {}}),
            "Provided object does not match schema 'task': 'bogus' is not one of",
        ),
        (
            json!({"type": "import", "input": "x"}),
            "is not of type 'null', 'object'",
        ),
        (
            json!({"type": "import", "input": {}}),
            "Invalid location: None",
        ),
        (
            json!({"type": "import", "input": null}),
            "Invalid location: None",
        ),
        (
            import_task("file:///etc/passwd", props.clone()),
            "File based imports are not allowed",
        ),
        (
            import_task("ftp://example.com/x", props.clone()),
            "supported uri ['http']",
        ),
        (
            import_task(&origin.url("/disk.img"), props.clone()),
            "URI for legacy import task does not pass filtering",
        ),
        (
            json!({"type": "api_image_import", "input": {"image_id": "x"}}),
            "image import API",
        ),
    ];
    for (body, message) in refused {
        let answer = create_task(&srv, body.clone()).expect_status(400);
        assert!(answer.text().contains(message), "{body}: {}", answer.text());
    }
    srv.request("POST", "/v2/tasks")
        .header("content-type", "application/json")
        .send()
        .expect_status(400);
    assert!(srv.get_json("/v2/tasks")["tasks"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(image_count(&srv), 0);
    assert!(origin.hits("/disk.img") == 0, "the origin was contacted");
}

#[test]
fn a_failing_task_deletes_the_image_it_created() {
    let origin = Origin::start();
    origin.put_with(
        "/cut.img",
        random_bytes(1024 * 1024, 3),
        Behaviour::CutAfter(300_000),
    );
    origin.put("/qcow2.img", b"QFI\xfb\x00\x00\x00\x03".repeat(64));
    let srv = with_origin(&origin, "").start();
    let raw = json!({"disk_format": "raw", "container_format": "bare", "protected": true});
    let cases: [(Value, &str); 5] = [
        // The origin stops midway.
        (
            import_task(&origin.url("/cut.img"), raw.clone()),
            "origin stopped",
        ),
        // Not found there.
        (import_task(&origin.url("/missing"), raw.clone()), "404"),
        // The data is not what the image says (the inspector, as for an upload).
        (
            import_task(&origin.url("/qcow2.img"), raw.clone()),
            "Image data is not acceptable",
        ),
        // Input Glance checks when the task runs.
        (
            json!({"type": "import", "input": {"import_from": origin.url("/cut.img"),
                   "image_properties": {}}}),
            "Input does not contain 'import_from_format' field",
        ),
        (
            import_task(&origin.url("/cut.img"), json!({"os_glance_x": "1"})),
            "Attribute 'os_glance_x' is reserved.",
        ),
    ];
    for (body, message) in cases {
        let task = run_task(&srv, body.clone());
        assert_eq!(task["status"], "failure", "{body}: {task}");
        let text = task["message"].as_str().unwrap();
        assert!(text.contains(message), "{body}: {text}");
        assert_eq!(task["result"], Value::Null);
        assert_eq!(image_count(&srv), 0, "{body}: an image stayed");
        wait_nothing_stored(&srv);
        assert!(srv.part_files().is_empty());
    }
    // A name that resolves to loopback is refused when the task connects.
    let srv = TestServer::start();
    let task = run_task(
        &srv,
        import_task(
            "http://localhost/x",
            json!({"disk_format": "raw", "container_format": "bare"}),
        ),
    );
    assert_eq!(task["status"], "failure");
    assert!(
        task["message"].as_str().unwrap().contains("not allowed"),
        "{task}"
    );
    assert_eq!(image_count(&srv), 0);
}

#[test]
fn an_import_task_is_charged_as_an_upload() {
    let origin = Origin::start();
    origin.put("/big.img", random_bytes(2 * 1024 * 1024, 4));
    origin.put("/small.img", random_bytes(1000, 4));
    let srv = with_origin(&origin, "[quotas]\nimage_size_total = 1\n").start();
    let props = json!({"disk_format": "raw", "container_format": "bare"});
    let task = run_task(&srv, import_task(&origin.url("/big.img"), props.clone()));
    assert_eq!(task["status"], "failure");
    let text = task["message"].as_str().unwrap();
    assert!(
        text.starts_with("The request returned a 413 Request Entity Too Large.")
            && text.contains("image_size_total"),
        "{text}"
    );
    assert_eq!(image_count(&srv), 0);
    wait_nothing_stored(&srv);
    let task = run_task(&srv, import_task(&origin.url("/small.img"), props));
    assert_eq!(task["status"], "success", "{task}");
}

#[test]
fn only_admins_may_create_tasks() {
    let keystone = FakeKeystone::start();
    let srv = TestServer::start_with_config(&keystone.glint_config());
    let member = keystone.issue(
        "alice",
        "proj-a",
        &["member", "reader"],
        Duration::from_secs(3600),
    );
    let answer = srv
        .request("POST", "/v2/tasks")
        .header("x-auth-token", &member)
        .json(&import_task(
            "http://example.com/x",
            json!({"disk_format": "raw", "container_format": "bare"}),
        ))
        .send()
        .expect_status(403);
    assert!(
        answer.text().contains("tasks_api_access"),
        "{}",
        answer.text()
    );
}

/// A web-download that a quota stops: the task fails with Glance's words, the image stays
/// `queued`, nothing stays staged or stored.
fn web_download_over(quota: &str, resource: &str) {
    let origin = Origin::start();
    origin.put("/big.img", random_bytes(2 * 1024 * 1024, 5));
    // Chunked, no length announced: the stream stops at the quota.
    origin.put_with(
        "/chunked.img",
        random_bytes(2 * 1024 * 1024, 5),
        Behaviour::Chunked,
    );
    let srv = with_origin(&origin, &format!("[quotas]\n{quota} = 1\n")).start();
    for path in ["/big.img", "/chunked.img"] {
        let id = srv.create_raw_image(json!({}));
        srv.post_json(
            &format!("/v2/images/{id}/import"),
            &json!({"method": {"name": "web-download", "uri": origin.url(path)}}),
        )
        .expect_status(202);
        let task = poll_until(Duration::from_secs(30), "the import to end", || {
            let tasks = srv.get_json(&format!("/v2/images/{id}/tasks"));
            let last = tasks["tasks"].as_array()?.last()?.clone();
            matches!(last["status"].as_str(), Some("success" | "failure")).then_some(last)
        });
        assert_eq!(task["status"], "failure", "{path}: {task}");
        let text = task["message"].as_str().unwrap();
        assert!(
            text.starts_with("The request returned a 413 Request Entity Too Large.")
                && text.contains(&format!("[Resource {resource} is over limit of 1")),
            "{path}: {text}"
        );
        let image = srv.wait_for_status(&id, "queued");
        assert_eq!(image["size"], Value::Null, "{path}");
        assert!(image.get("os_glance_import_task").is_none(), "{path}");
        wait_nothing_stored(&srv);
        assert!(srv.part_files().is_empty());
    }
    // What fits goes through.
    origin.put("/small.img", random_bytes(1000, 5));
    let id = srv.create_raw_image(json!({}));
    srv.post_json(
        &format!("/v2/images/{id}/import"),
        &json!({"method": {"name": "web-download", "uri": origin.url("/small.img")}}),
    )
    .expect_status(202);
    srv.wait_for_status(&id, "active");
}

#[test]
fn web_download_over_image_size_total_fails_and_leaves_nothing() {
    web_download_over("image_size_total", "image_size_total");
}

#[test]
fn web_download_over_image_stage_total_fails_and_leaves_nothing() {
    web_download_over("image_stage_total", "image_stage_total");
}

#[test]
fn kill_9_mid_task_then_restart_fails_it_and_deletes_its_image() {
    let origin = Origin::start();
    origin.put_with(
        "/slow.img",
        random_bytes(64 * 1024, 7),
        Behaviour::Stall(32 * 1024),
    );
    let mut srv = with_origin(&origin, "").start();
    let created = create_task(
        &srv,
        import_task(
            &origin.url("/slow.img"),
            json!({"disk_format": "raw", "container_format": "bare"}),
        ),
    )
    .expect_status(201)
    .json();
    let task_id = created["id"].as_str().unwrap().to_owned();
    // The image exists and is receiving bytes (`saving`).
    let image_id = poll_until(Duration::from_secs(20), "the task's image saving", || {
        let images = srv.list("");
        let image = images["images"].as_array()?.first()?.clone();
        (image["status"] == "saving").then(|| image["id"].as_str().unwrap().to_owned())
    });
    srv.kill9();
    srv.start_again();
    let task = srv.get_json(&format!("/v2/tasks/{task_id}"));
    assert_eq!(task["status"], "failure", "{task}");
    assert!(
        task["message"].as_str().unwrap().contains("restarted"),
        "{task}"
    );
    srv.get(&format!("/v2/images/{image_id}"))
        .expect_status(404);
    assert_eq!(image_count(&srv), 0);
    wait_nothing_stored(&srv);
    assert!(srv.part_files().is_empty());
}
