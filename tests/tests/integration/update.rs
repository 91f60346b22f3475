//! `PATCH /v2/images/{id}` (§4.4): both JSON-patch dialects, the op/target table, pointers,
//! media types, validation and all-or-nothing application.

use glint_tests::{id_of, raw, Resp, TestServer, PATCH_V20, PATCH_V21};
use serde_json::{json, Value};

fn patch_as(srv: &TestServer, id: &str, media_type: &str, body: &[u8]) -> Resp {
    srv.request("PATCH", &format!("/v2/images/{id}"))
        .header("content-type", media_type)
        .body(body.to_vec())
        .send()
}

fn patch20(srv: &TestServer, id: &str, ops: Value) -> Resp {
    patch_as(srv, id, PATCH_V20, &serde_json::to_vec(&ops).unwrap())
}

/// The image without `updated_at`, for "nothing changed" comparisons.
fn without_updated_at(mut image: Value) -> Value {
    image.as_object_mut().unwrap().remove("updated_at");
    image
}

#[test]
fn replace_sets_base_and_extra_properties() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({"name": "a", "foo": "1"})));
    let resp = srv
        .patch(
            &id,
            json!([
                {"op": "replace", "path": "/name", "value": "b"},
                {"op": "replace", "path": "/foo", "value": "2"},
                {"op": "replace", "path": "/min_ram", "value": 128},
                {"op": "replace", "path": "/min_disk", "value": 3},
                {"op": "replace", "path": "/visibility", "value": "private"},
                {"op": "replace", "path": "/protected", "value": true},
                {"op": "replace", "path": "/os_hidden", "value": true},
                {"op": "replace", "path": "/tags", "value": ["x", "y"]},
                {"op": "replace", "path": "/disk_format", "value": "qcow2"},
                {"op": "replace", "path": "/container_format", "value": "bare"}
            ]),
        )
        .expect_status(200);
    assert_eq!(resp.content_type().as_deref(), Some("application/json"));
    let image = resp.json();
    assert_eq!(image["name"], "b");
    assert_eq!(image["foo"], "2");
    assert_eq!(image["min_ram"], 128);
    assert_eq!(image["min_disk"], 3);
    assert_eq!(image["visibility"], "private");
    assert_eq!(image["protected"], true);
    assert_eq!(image["os_hidden"], true);
    let mut tags = image["tags"].as_array().unwrap().clone();
    tags.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    assert_eq!(tags, [json!("x"), json!("y")]);
    assert_eq!(image["disk_format"], "qcow2");
    assert_eq!(image["container_format"], "bare");
    assert_eq!(srv.image(&id), image, "show returns the patched image");
}

#[test]
fn add_sets_base_attributes_and_creates_or_overwrites_extras_in_v21() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({"foo": "1"})));
    let image = srv
        .patch(
            &id,
            json!([
                {"op": "add", "path": "/name", "value": "n"},
                {"op": "add", "path": "/min_disk", "value": 5},
                {"op": "add", "path": "/foo", "value": "2"},
                {"op": "add", "path": "/bar", "value": "3"}
            ]),
        )
        .expect_status(200)
        .json();
    assert_eq!(image["name"], "n");
    assert_eq!(image["min_disk"], 5);
    assert_eq!(
        image["foo"], "2",
        "add overwrites an existing extra property"
    );
    assert_eq!(image["bar"], "3");
}

#[test]
fn add_of_present_property_conflicts_in_v20() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({"foo": "1"})));
    let resp = patch20(&srv, &id, json!([{"add": "/name", "value": "x"}]));
    assert_eq!(resp.status, 409, "base attribute: {resp:?}");
    let resp = patch20(&srv, &id, json!([{"add": "/foo", "value": "x"}]));
    assert_eq!(resp.status, 409, "existing extra: {resp:?}");
    let image = patch20(&srv, &id, json!([{"add": "/bar", "value": "new"}]))
        .expect_status(200)
        .json();
    assert_eq!(image["bar"], "new");
    assert_eq!(image["foo"], "1");
    assert_eq!(image["name"], Value::Null);
}

#[test]
fn replace_and_remove_work_in_v20() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({"foo": "1"})));
    let image = patch20(
        &srv,
        &id,
        json!([
            {"replace": "/name", "value": "renamed"},
            {"remove": "/foo"}
        ]),
    )
    .expect_status(200)
    .json();
    assert_eq!(image["name"], "renamed");
    assert!(image.get("foo").is_none(), "{image}");
    let resp = patch20(&srv, &id, json!([{"replace": "/missing", "value": "x"}]));
    assert_eq!(resp.status, 409, "{resp:?}");
}

#[test]
fn replace_of_missing_extra_property_conflicts() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({})));
    let resp = srv.patch(
        &id,
        json!([{"op": "replace", "path": "/nothere", "value": "x"}]),
    );
    assert_eq!(resp.status, 409, "{resp:?}");
    assert!(srv.image(&id).get("nothere").is_none());
}

#[test]
fn remove_deletes_extra_property_and_missing_one_conflicts() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({"foo": "1", "keep": "2"})));
    let image = srv
        .patch(&id, json!([{"op": "remove", "path": "/foo"}]))
        .expect_status(200)
        .json();
    assert!(image.get("foo").is_none(), "{image}");
    assert_eq!(image["keep"], "2");
    let resp = srv.patch(&id, json!([{"op": "remove", "path": "/foo"}]));
    assert_eq!(resp.status, 409, "removing it again: {resp:?}");
}

#[test]
fn remove_of_base_property_is_forbidden() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({"name": "x"})));
    for path in [
        "/name",
        "/min_ram",
        "/min_disk",
        "/tags",
        "/visibility",
        "/protected",
        "/os_hidden",
        "/disk_format",
        "/container_format",
        "/owner",
    ] {
        let resp = srv.patch(&id, json!([{"op": "remove", "path": path}]));
        assert_eq!(resp.status, 403, "remove {path}: {resp:?}");
    }
    assert_eq!(srv.image(&id)["name"], "x");
}

#[test]
fn read_only_paths_are_forbidden_for_every_op() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({})));
    let before = srv.image(&id);
    let cases = [
        ("created_at", json!("2020-01-01T00:00:00Z")),
        ("updated_at", json!("2020-01-01T00:00:00Z")),
        ("status", json!("active")),
        ("checksum", json!("d41d8cd98f00b204e9800998ecf8427e")),
        ("size", json!(1)),
        ("virtual_size", json!(1)),
        ("direct_url", json!("file:///x")),
        ("self", json!("/v2/images/x")),
        ("file", json!("/v2/images/x/file")),
        ("schema", json!("/v2/schemas/image")),
        ("id", json!(uuid::Uuid::new_v4().to_string())),
        ("os_hash_algo", json!("sha512")),
        ("os_hash_value", json!("00")),
    ];
    for (key, value) in cases {
        let path = format!("/{key}");
        for op in [
            json!({"op": "replace", "path": path, "value": value}),
            json!({"op": "add", "path": path, "value": value}),
            json!({"op": "remove", "path": path}),
        ] {
            let resp = srv.patch(&id, json!([op]));
            assert_eq!(resp.status, 403, "{op}: {resp:?}");
        }
    }
    assert_eq!(
        without_updated_at(srv.image(&id)),
        without_updated_at(before)
    );
}

#[test]
fn reserved_paths_are_forbidden() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({})));
    for key in [
        "location",
        "deleted",
        "deleted_at",
        "os_glance_import_task",
        "os_glance_x",
    ] {
        let path = format!("/{key}");
        for op in ["add", "replace"] {
            let resp = srv.patch(&id, json!([{"op": op, "path": path, "value": "x"}]));
            assert_eq!(resp.status, 403, "{op} {path}: {resp:?}");
        }
        let resp = srv.patch(&id, json!([{"op": "remove", "path": path}]));
        assert_eq!(resp.status, 403, "remove {path}: {resp:?}");
    }
}

#[test]
fn schema_violations_are_bad_request_and_change_nothing() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({"name": "x", "foo": "1"})));
    let before = srv.image(&id);
    let long = "x".repeat(256);
    let cases = [
        json!({"op": "replace", "path": "/visibility", "value": "bogus"}),
        json!({"op": "add", "path": "/foo", "value": 5}),
        json!({"op": "add", "path": "/newkey", "value": true}),
        json!({"op": "replace", "path": "/foo", "value": null}),
        json!({"op": "replace", "path": "/min_ram", "value": "1"}),
        json!({"op": "replace", "path": "/min_ram", "value": -1}),
        json!({"op": "replace", "path": "/min_disk", "value": -1}),
        json!({"op": "replace", "path": "/name", "value": long}),
        json!({"op": "replace", "path": "/protected", "value": "yes"}),
        json!({"op": "replace", "path": "/tags", "value": "a"}),
        json!({"op": "replace", "path": "/tags", "value": [long]}),
        json!({"op": "replace", "path": "/disk_format", "value": "bogus"}),
        json!({"op": "replace", "path": "/container_format", "value": "bogus"}),
    ];
    for op in cases {
        let resp = srv.patch(&id, json!([op]));
        assert_eq!(resp.status, 400, "{op}: {resp:?}");
    }
    assert_eq!(
        without_updated_at(srv.image(&id)),
        without_updated_at(before)
    );
}

#[test]
fn wrong_media_type_is_415_with_accept_patch() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({})));
    let body =
        serde_json::to_vec(&json!([{"op": "replace", "path": "/name", "value": "x"}])).unwrap();
    for media_type in [
        "application/json",
        "application/json-patch+json",
        "text/plain",
        "",
    ] {
        let resp = patch_as(&srv, &id, media_type, &body);
        assert_eq!(resp.status, 415, "{media_type:?}: {resp:?}");
        let mut accepted: Vec<&str> = resp
            .header("accept-patch")
            .unwrap_or_else(|| panic!("no Accept-Patch: {resp:?}"))
            .split(',')
            .map(str::trim)
            .collect();
        accepted.sort_unstable();
        assert_eq!(accepted, [PATCH_V20, PATCH_V21]);
    }
    assert_eq!(srv.image(&id)["name"], Value::Null);
}

#[test]
fn bad_json_pointers_are_bad_request() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({})));
    for path in [
        "name", "/name/", "//name", "/name/x", "/tags/-", "/tags/0", "/a~2b", "/a~", "", "/",
    ] {
        let resp = srv.patch(&id, json!([{"op": "add", "path": path, "value": "x"}]));
        assert_eq!(resp.status, 400, "path {path:?}: {resp:?}");
    }
}

#[test]
fn pointer_escapes_are_decoded() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({})));
    let image = srv
        .patch(
            &id,
            json!([
                {"op": "add", "path": "/a~1b", "value": "slash"},
                {"op": "add", "path": "/c~0d", "value": "tilde"}
            ]),
        )
        .expect_status(200)
        .json();
    assert_eq!(image["a/b"], "slash");
    assert_eq!(image["c~d"], "tilde");
}

#[test]
fn invalid_operations_are_bad_request() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({"foo": "1"})));
    let v21 = [
        json!({"op": "move", "from": "/foo", "path": "/bar"}),
        json!({"op": "copy", "from": "/foo", "path": "/bar"}),
        json!({"op": "test", "path": "/foo", "value": "1"}),
        json!({"op": "bogus", "path": "/foo", "value": "1"}),
        json!({"path": "/foo", "value": "1"}),
        json!({"op": "replace", "value": "1"}),
        json!({"op": "add", "path": "/bar"}),
        json!({"op": "replace", "path": "/foo"}),
    ];
    for op in v21 {
        let resp = srv.patch(&id, json!([op]));
        assert_eq!(resp.status, 400, "v2.1 {op}: {resp:?}");
    }
    let v20 = [
        json!({"add": "/bar", "replace": "/foo", "value": "x"}),
        json!({"value": "x"}),
        json!({"move": "/foo", "value": "x"}),
        json!({"replace": "/foo"}),
    ];
    for op in v20 {
        let resp = patch20(&srv, &id, json!([op]));
        assert_eq!(resp.status, 400, "v2.0 {op}: {resp:?}");
    }
    assert_eq!(srv.image(&id)["foo"], "1");
}

#[test]
fn body_that_is_not_an_array_of_objects_is_bad_request() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({})));
    let bodies: [&[u8]; 6] = [
        b"{\"op\": \"replace\", \"path\": \"/name\", \"value\": \"x\"}",
        b"\"string\"",
        b"[1]",
        b"[\"op\"]",
        b"[{",
        b"",
    ];
    for body in bodies {
        let resp = patch_as(&srv, &id, PATCH_V21, body);
        assert_eq!(
            resp.status,
            400,
            "{}: {resp:?}",
            String::from_utf8_lossy(body)
        );
    }
    let resp = srv.raw(&raw::head(
        "PATCH",
        &format!("/v2/images/{id}"),
        &[("Content-Type", PATCH_V21), ("Connection", "close")],
    ));
    assert_eq!(resp.status, 400, "no body at all: {resp:?}");
}

#[test]
fn empty_array_returns_the_unchanged_image() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({"name": "same", "foo": "1"})));
    let before = srv.image(&id);
    let after = srv.patch(&id, json!([])).expect_status(200).json();
    assert_eq!(without_updated_at(after), without_updated_at(before));
}

#[test]
fn operations_apply_in_order_and_all_or_nothing() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({"name": "orig"})));
    let image = srv
        .patch(
            &id,
            json!([
                {"op": "add", "path": "/foo", "value": "1"},
                {"op": "replace", "path": "/foo", "value": "2"},
                {"op": "add", "path": "/gone", "value": "x"},
                {"op": "remove", "path": "/gone"}
            ]),
        )
        .expect_status(200)
        .json();
    assert_eq!(image["foo"], "2");
    assert!(image.get("gone").is_none());

    let resp = srv.patch(
        &id,
        json!([
            {"op": "replace", "path": "/name", "value": "changed"},
            {"op": "add", "path": "/bar", "value": "b"},
            {"op": "replace", "path": "/nonexistent", "value": "x"}
        ]),
    );
    assert_eq!(resp.status, 409, "{resp:?}");
    let image = srv.image(&id);
    assert_eq!(image["name"], "orig", "failed patch saved nothing");
    assert!(image.get("bar").is_none(), "failed patch saved nothing");
}

#[test]
fn formats_can_change_only_while_queued() {
    let srv = TestServer::start();
    let id = srv.create_raw_image(json!({}));
    srv.patch(
        &id,
        json!([{"op": "replace", "path": "/disk_format", "value": "iso"}]),
    )
    .expect_status(200);
    srv.patch(
        &id,
        json!([{"op": "replace", "path": "/disk_format", "value": "raw"}]),
    )
    .expect_status(200);
    srv.upload(&id, b"bytes").expect_status(204);
    for (path, value) in [("/disk_format", "qcow2"), ("/container_format", "ovf")] {
        let resp = srv.patch(
            &id,
            json!([{"op": "replace", "path": path, "value": value}]),
        );
        assert_eq!(resp.status, 403, "active {path}: {resp:?}");
    }
    srv.post_empty(&format!("/v2/images/{id}/actions/deactivate"))
        .expect_status(204);
    let resp = srv.patch(
        &id,
        json!([{"op": "replace", "path": "/disk_format", "value": "qcow2"}]),
    );
    assert_eq!(resp.status, 403, "deactivated: {resp:?}");
    let image = srv.image(&id);
    assert_eq!(image["disk_format"], "raw");
    assert_eq!(image["container_format"], "bare");
}

#[test]
fn metadata_stays_editable_when_active_or_deactivated() {
    let srv = TestServer::start();
    let id = srv.create_active_image(json!({}), b"bytes");
    let image = srv
        .patch(
            &id,
            json!([{"op": "replace", "path": "/name", "value": "active-name"}]),
        )
        .expect_status(200)
        .json();
    assert_eq!(image["name"], "active-name");
    assert_eq!(image["status"], "active");
    srv.post_empty(&format!("/v2/images/{id}/actions/deactivate"))
        .expect_status(204);
    let image = srv
        .patch(&id, json!([{"op": "add", "path": "/k", "value": "v"}]))
        .expect_status(200)
        .json();
    assert_eq!(image["k"], "v");
    assert_eq!(image["status"], "deactivated");
}

#[test]
fn owner_can_be_replaced_by_admin() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({})));
    let image = srv
        .patch(
            &id,
            json!([{"op": "replace", "path": "/owner", "value": "newowner"}]),
        )
        .expect_status(200)
        .json();
    assert_eq!(image["owner"], "newowner");
}

#[test]
fn patch_over_property_quota_is_413() {
    let srv = TestServer::start_with_config("image_property_quota = 2\n");
    let id = id_of(&srv.create_image(json!({"a": "1"})));
    srv.patch(&id, json!([{"op": "add", "path": "/b", "value": "2"}]))
        .expect_status(200);
    let resp = srv.patch(&id, json!([{"op": "add", "path": "/c", "value": "3"}]));
    assert_eq!(resp.status, 413, "{resp:?}");
    assert!(srv.image(&id).get("c").is_none());
    // Replacing an existing property does not count against the quota.
    srv.patch(&id, json!([{"op": "replace", "path": "/b", "value": "22"}]))
        .expect_status(200);
}

#[test]
fn patch_over_tag_quota_is_413() {
    let srv = TestServer::start_with_config("image_tag_quota = 2\n");
    let id = id_of(&srv.create_image(json!({})));
    srv.patch(
        &id,
        json!([{"op": "replace", "path": "/tags", "value": ["a", "b"]}]),
    )
    .expect_status(200);
    let resp = srv.patch(
        &id,
        json!([{"op": "replace", "path": "/tags", "value": ["a", "b", "c"]}]),
    );
    assert_eq!(resp.status, 413, "{resp:?}");
    assert_eq!(srv.image(&id)["tags"].as_array().unwrap().len(), 2);
}

#[test]
fn patch_unknown_image_is_404() {
    let srv = TestServer::start();
    let resp = srv.patch(
        &uuid::Uuid::new_v4().to_string(),
        json!([{"op": "replace", "path": "/name", "value": "x"}]),
    );
    assert_eq!(resp.status, 404, "{resp:?}");
}

#[test]
fn name_can_be_nulled_and_extra_values_can_be_empty() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({"name": "x"})));
    let image = srv
        .patch(
            &id,
            json!([
                {"op": "replace", "path": "/name", "value": null},
                {"op": "add", "path": "/empty", "value": ""}
            ]),
        )
        .expect_status(200)
        .json();
    assert_eq!(image["name"], Value::Null);
    assert_eq!(image["empty"], "");
}

#[test]
fn visibility_can_be_changed_by_admin() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({})));
    for visibility in ["public", "community", "private", "shared"] {
        let image = srv
            .patch(
                &id,
                json!([{"op": "replace", "path": "/visibility", "value": visibility}]),
            )
            .expect_status(200)
            .json();
        assert_eq!(image["visibility"], visibility);
    }
}

#[test]
fn patch_bumps_updated_at() {
    // §3.2: updated_at is bumped on every save. It has second precision, so patch until a
    // second has passed (bounded by a deadline).
    let srv = TestServer::start();
    let created = srv.create_image(json!({}));
    let id = id_of(&created);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut round = 0;
    let image = loop {
        round += 1;
        let image = srv
            .patch(
                &id,
                json!([{"op": "replace", "path": "/name", "value": format!("r{round}")}]),
            )
            .expect_status(200)
            .json();
        if image["updated_at"] != created["updated_at"] {
            break image;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "updated_at never changed: {image}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(
        image["updated_at"].as_str() > created["created_at"].as_str(),
        "{image}"
    );
    assert_eq!(
        image["created_at"], created["created_at"],
        "created_at never changes"
    );
    assert_eq!(srv.image(&id)["updated_at"], image["updated_at"]);
}

#[test]
fn patch_of_deleted_image_is_404() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({})));
    srv.delete(&format!("/v2/images/{id}")).expect_status(204);
    let resp = srv.patch(
        &id,
        json!([{"op": "replace", "path": "/name", "value": "x"}]),
    );
    assert_eq!(resp.status, 404, "{resp:?}");
}

#[test]
fn replaced_tags_are_a_set() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({})));
    let image = srv
        .patch(
            &id,
            json!([{"op": "replace", "path": "/tags", "value": ["a", "b", "a"]}]),
        )
        .expect_status(200)
        .json();
    let mut tags: Vec<&str> = image["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    tags.sort_unstable();
    assert_eq!(tags, ["a", "b"]);
}

#[test]
fn location_ops_are_forbidden_while_locations_are_hidden() {
    // §4.4: with show_multiple_locations off (the default) every /locations op is 403.
    let srv = TestServer::start();
    let id = srv.create_active_image(json!({}), b"data");
    let location = json!({"url": "http://example.com/image", "metadata": {}});
    let mut wrong = Vec::new();
    for op in [
        json!({"op": "add", "path": "/locations/-", "value": location}),
        json!({"op": "add", "path": "/locations/0", "value": location}),
        json!({"op": "replace", "path": "/locations", "value": [location]}),
        json!({"op": "replace", "path": "/locations", "value": []}),
        json!({"op": "remove", "path": "/locations/0"}),
    ] {
        let resp = srv.patch(&id, json!([op]));
        if resp.status != 403 {
            wrong.push(format!("{op}: {}", resp.status));
        }
    }
    assert!(wrong.is_empty(), "expected 403 for:\n{}", wrong.join("\n"));
    let image = srv.image(&id);
    assert_eq!(image["status"], "active");
    assert!(image.get("locations").is_none());
}
