//! `POST /v2/images` (§4.1): defaults, the 201 response, validation order and codes.

use glint_tests::{id_of, raw, TestServer};
use serde_json::{json, Value};

/// Keys every image body carries, null when unset (§3.1, §11.5).
const ALWAYS_PRESENT: [&str; 22] = [
    "id",
    "name",
    "status",
    "visibility",
    "protected",
    "os_hidden",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "owner",
    "size",
    "virtual_size",
    "min_ram",
    "min_disk",
    "disk_format",
    "container_format",
    "created_at",
    "updated_at",
    "tags",
    "self",
    "file",
    "schema",
];

/// `YYYY-MM-DDTHH:MM:SSZ`.
pub fn is_glance_timestamp(v: &Value) -> bool {
    let Some(s) = v.as_str() else { return false };
    let b = s.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

#[test]
fn create_with_empty_object_applies_defaults() {
    let srv = TestServer::start();
    let resp = srv.post_json("/v2/images", &json!({})).expect_status(201);
    assert_eq!(resp.content_type().as_deref(), Some("application/json"));
    let image = resp.json();
    for key in ALWAYS_PRESENT {
        assert!(image.get(key).is_some(), "{key} missing from {image}");
    }
    let id = id_of(&image);
    let uuid = uuid::Uuid::parse_str(&id).expect("id is a UUID");
    assert_eq!(uuid.to_string(), id, "canonical lower-case form");
    assert_eq!(uuid.get_version_num(), 4, "generated ids are uuid4");
    assert_eq!(image["status"], "queued");
    assert_eq!(image["visibility"], "shared");
    assert_eq!(image["protected"], false);
    assert_eq!(image["os_hidden"], false);
    assert_eq!(image["min_ram"], 0);
    assert_eq!(image["min_disk"], 0);
    assert_eq!(image["tags"], json!([]));
    for null in [
        "name",
        "checksum",
        "os_hash_algo",
        "os_hash_value",
        "size",
        "virtual_size",
        "disk_format",
        "container_format",
    ] {
        assert_eq!(image[null], Value::Null, "{null} defaults to null");
    }
    assert!(
        image["owner"].as_str().is_some_and(|o| !o.is_empty()),
        "owner defaults to the caller's project: {image}"
    );
    assert!(is_glance_timestamp(&image["created_at"]), "{image}");
    assert!(is_glance_timestamp(&image["updated_at"]), "{image}");
    assert_eq!(image["self"], format!("/v2/images/{id}"));
    assert_eq!(image["file"], format!("/v2/images/{id}/file"));
    assert_eq!(image["schema"], "/v2/schemas/image");
    // show_multiple_locations and show_image_direct_url are off by default.
    assert!(image.get("locations").is_none(), "{image}");
    assert!(image.get("direct_url").is_none(), "{image}");
}

#[test]
fn create_returns_absolute_location_and_show_matches_body() {
    let srv = TestServer::start();
    let resp = srv
        .post_json("/v2/images", &json!({"name": "loc"}))
        .expect_status(201);
    let image = resp.json();
    let id = id_of(&image);
    assert_eq!(
        resp.header("location"),
        Some(format!("{}/v2/images/{id}", srv.url()).as_str())
    );
    assert_eq!(srv.image(&id), image, "show returns what create returned");
}

#[test]
fn create_stores_every_writable_field_and_extra_properties() {
    let srv = TestServer::start();
    let body = json!({
        "name": "Ünïcode ☃ image",
        "visibility": "private",
        "protected": true,
        "os_hidden": true,
        "min_ram": 512,
        "min_disk": 10,
        "disk_format": "qcow2",
        "container_format": "bare",
        "tags": ["b", "a", "b"],
        "hw_disk_bus": "virtio",
        "owner_specified.openstack.md5": "",
        "com.example:key": "värde",
    });
    let resp = srv.post_json("/v2/images", &body).expect_status(201);
    assert!(
        resp.text().contains("Ünïcode ☃ image"),
        "non-ASCII is emitted raw, not \\u-escaped: {}",
        resp.text()
    );
    let image = resp.json();
    for key in [
        "name",
        "visibility",
        "protected",
        "os_hidden",
        "min_ram",
        "min_disk",
        "disk_format",
        "container_format",
        "hw_disk_bus",
        "owner_specified.openstack.md5",
        "com.example:key",
    ] {
        assert_eq!(image[key], body[key], "{key}");
    }
    let mut tags: Vec<&str> = image["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    tags.sort_unstable();
    assert_eq!(tags, ["a", "b"], "tags are a set");
    assert_eq!(srv.image(&id_of(&image)), image);
}

#[test]
fn create_public_and_community_as_admin() {
    let srv = TestServer::start();
    for visibility in ["public", "community", "shared", "private"] {
        let image = srv.create_image(json!({"visibility": visibility}));
        assert_eq!(image["visibility"], visibility);
    }
}

#[test]
fn create_with_owner_as_admin_sets_owner() {
    let srv = TestServer::start();
    let image = srv.create_image(json!({"owner": "someotherproject"}));
    assert_eq!(image["owner"], "someotherproject");
}

#[test]
fn create_with_given_id_uses_it_and_duplicate_conflicts() {
    let srv = TestServer::start();
    let id = uuid::Uuid::new_v4().to_string();
    let image = srv.create_image(json!({"id": id, "name": "first"}));
    assert_eq!(image["id"], id.as_str());
    assert_eq!(
        srv.post_json("/v2/images", &json!({"id": id, "name": "second"}))
            .status,
        409
    );
    assert_eq!(
        srv.image(&id)["name"],
        "first",
        "duplicate did not overwrite"
    );
}

#[test]
fn create_with_id_of_deleted_image_conflicts() {
    // Glance soft-deletes: the id of a deleted image stays taken.
    let srv = TestServer::start();
    let id = uuid::Uuid::new_v4().to_string();
    srv.create_image(json!({"id": id}));
    srv.delete(&format!("/v2/images/{id}")).expect_status(204);
    let resp = srv.post_json("/v2/images", &json!({"id": id}));
    assert_eq!(resp.status, 409, "{resp:?}");
}

#[test]
fn create_with_read_only_attributes_is_forbidden() {
    let srv = TestServer::start();
    let cases = [
        ("created_at", json!("2020-01-01T00:00:00Z")),
        ("updated_at", json!("2020-01-01T00:00:00Z")),
        ("status", json!("active")),
        ("checksum", json!("d41d8cd98f00b204e9800998ecf8427e")),
        ("os_hash_algo", json!("sha512")),
        ("os_hash_value", json!("00")),
        ("size", json!(5)),
        ("virtual_size", json!(5)),
        ("direct_url", json!("file:///x")),
        ("self", json!("/v2/images/x")),
        ("file", json!("/v2/images/x/file")),
        ("schema", json!("/v2/schemas/image")),
        ("stores", json!("a,b")),
        ("locations", json!([])),
    ];
    for (key, value) in cases {
        let resp = srv.post_json("/v2/images", &json!({ key: value }));
        assert_eq!(resp.status, 403, "{key}: {resp:?}");
    }
    assert_eq!(srv.list_ids("").len(), 0, "nothing was created");
}

#[test]
fn create_with_reserved_attributes_is_forbidden() {
    let srv = TestServer::start();
    for key in [
        "location",
        "deleted",
        "deleted_at",
        "os_glance",
        "os_glance_import_task",
        "os_glance_whatever",
    ] {
        let resp = srv.post_json("/v2/images", &json!({ key: "x" }));
        assert_eq!(resp.status, 403, "{key}: {resp:?}");
    }
    assert_eq!(srv.list_ids("").len(), 0, "nothing was created");
}

#[test]
fn create_with_schema_violations_is_bad_request() {
    let srv = TestServer::start();
    let long = "x".repeat(256);
    let cases = [
        json!({"disk_format": "bogus"}),
        json!({"container_format": "bogus"}),
        json!({"visibility": "bogus"}),
        json!({"id": "not-a-uuid"}),
        json!({"id": "12345678-1234-1234-1234-12345678901g"}),
        json!({"name": long}),
        json!({"name": 5}),
        json!({"min_ram": -1}),
        json!({"min_disk": -1}),
        json!({"min_ram": "1"}),
        json!({"protected": "yes"}),
        json!({"os_hidden": 1}),
        json!({"tags": "a"}),
        json!({"tags": [1]}),
        json!({"tags": [long]}),
        json!({"extra": 5}),
        json!({"extra": true}),
        json!({"extra": null}),
        json!({"extra": {"a": "b"}}),
        json!({"extra": ["a"]}),
        json!({ long.clone(): "value" }),
    ];
    for body in cases {
        let resp = srv.post_json("/v2/images", &body);
        assert_eq!(resp.status, 400, "{body}: {resp:?}");
    }
    assert_eq!(srv.list_ids("").len(), 0, "nothing was created");
}

#[test]
fn create_with_name_of_255_chars_is_accepted() {
    let srv = TestServer::start();
    let name = "n".repeat(255);
    let key = "k".repeat(255);
    let image = srv.create_image(json!({"name": name, key.clone(): "v"}));
    assert_eq!(image["name"], name.as_str());
    assert_eq!(image[&key], "v");
}

#[test]
fn create_with_non_object_or_malformed_body_is_bad_request() {
    let srv = TestServer::start();
    let bodies: [&[u8]; 6] = [b"[]", b"\"string\"", b"42", b"{", b"{\"name\": }", b"null"];
    for body in bodies {
        let resp = srv
            .request("POST", "/v2/images")
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send();
        assert_eq!(
            resp.status,
            400,
            "{}: {resp:?}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn create_without_body_is_bad_request() {
    let srv = TestServer::start();
    let resp = srv.raw(&raw::head(
        "POST",
        "/v2/images",
        &[
            ("Content-Type", "application/json"),
            ("Connection", "close"),
        ],
    ));
    assert_eq!(resp.status, 400, "no body at all: {resp:?}");
    let resp = srv
        .request("POST", "/v2/images")
        .header("content-type", "application/json")
        .body(Vec::new())
        .send();
    assert_eq!(resp.status, 400, "Content-Length: 0: {resp:?}");
    assert_eq!(srv.list_ids("").len(), 0);
}

#[test]
fn create_over_property_quota_is_413() {
    let srv = TestServer::start_with_config("image_property_quota = 2\n");
    srv.create_image(json!({"a": "1", "b": "2"}));
    let resp = srv.post_json("/v2/images", &json!({"a": "1", "b": "2", "c": "3"}));
    assert_eq!(resp.status, 413, "{resp:?}");
    assert_eq!(srv.list_ids("").len(), 1);
}

#[test]
fn property_quota_counts_only_extra_properties() {
    let srv = TestServer::start_with_config("image_property_quota = 2\n");
    let image = srv.create_image(json!({
        "name": "n", "min_ram": 1, "min_disk": 1, "visibility": "private", "protected": false,
        "disk_format": "raw", "container_format": "bare", "tags": ["a"], "x": "1", "y": "2"
    }));
    assert_eq!(image["y"], "2");
}

#[test]
fn create_accepts_a_json_body_without_json_content_type() {
    // §2.3: JSON routes parse any body as JSON (only PATCH is strict about its type).
    let srv = TestServer::start();
    for content_type in ["", "text/plain", "application/octet-stream"] {
        let resp = srv
            .request("POST", "/v2/images")
            .header("content-type", content_type)
            .body(br#"{"name": "loose"}"#.to_vec())
            .send();
        assert_eq!(resp.status, 201, "{content_type:?}: {resp:?}");
        assert_eq!(resp.json()["name"], "loose");
    }
}

#[test]
fn create_over_tag_quota_is_413() {
    let srv = TestServer::start_with_config("image_tag_quota = 2\n");
    srv.create_image(json!({"tags": ["a", "b"]}));
    let resp = srv.post_json("/v2/images", &json!({"tags": ["a", "b", "c"]}));
    assert_eq!(resp.status, 413, "{resp:?}");
    assert_eq!(srv.list_ids("").len(), 1);
}
