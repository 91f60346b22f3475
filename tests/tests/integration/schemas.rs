//! `GET /v2/schemas/image` and `/v2/schemas/images`: the exact shapes glanceclient validates
//! against (it uses `is_base` to choose between `add` and `replace`).

use glint_tests::TestServer;
use serde_json::{json, Value};

const BASE_PROPERTIES: [&str; 24] = [
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
    "container_format",
    "disk_format",
    "created_at",
    "updated_at",
    "tags",
    "min_ram",
    "min_disk",
    "direct_url",
    "locations",
    "self",
    "file",
    "schema",
];

fn type_includes(prop: &Value, ty: &str) -> bool {
    match &prop["type"] {
        Value::String(s) => s == ty,
        Value::Array(types) => types.iter().any(|t| t == ty),
        _ => false,
    }
}

#[test]
fn image_schema_has_base_properties_links_and_string_extras() {
    let srv = TestServer::start();
    let resp = srv.get("/v2/schemas/image").expect_status(200);
    assert_eq!(resp.content_type().as_deref(), Some("application/json"));
    let schema = resp.json();
    assert_eq!(schema["name"], "image");
    assert_eq!(schema["additionalProperties"], json!({"type": "string"}));
    assert_eq!(
        schema["links"],
        json!([
            {"rel": "self", "href": "{self}"},
            {"rel": "enclosure", "href": "{file}"},
            {"rel": "describedby", "href": "{schema}"}
        ])
    );
    let props = schema["properties"].as_object().expect("properties");
    for name in BASE_PROPERTIES {
        let prop = props
            .get(name)
            .unwrap_or_else(|| panic!("base property {name} missing"));
        assert!(
            prop.get("is_base").is_none(),
            "{name} must not carry is_base: {prop}"
        );
    }
    // Custom (operator) properties are the only ones with is_base, and it is false.
    for (name, prop) in props {
        if let Some(is_base) = prop.get("is_base") {
            assert_eq!(is_base, &json!(false), "{name}");
            assert!(!BASE_PROPERTIES.contains(&name.as_str()), "{name}");
        }
    }
}

#[test]
fn image_schema_property_definitions_match_glance() {
    let srv = TestServer::start();
    let schema = srv.get_json("/v2/schemas/image");
    let p = &schema["properties"];

    let disk = p["disk_format"]["enum"]
        .as_array()
        .expect("disk_format enum");
    assert_eq!(disk[0], Value::Null, "null first in disk_format enum");
    for f in [
        "ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop",
    ] {
        assert!(disk.contains(&json!(f)), "disk_format {f}");
    }
    let container = p["container_format"]["enum"]
        .as_array()
        .expect("container_format enum");
    assert_eq!(
        container[0],
        Value::Null,
        "null first in container_format enum"
    );
    for f in [
        "ami",
        "ari",
        "aki",
        "bare",
        "ovf",
        "ova",
        "docker",
        "compressed",
    ] {
        assert!(container.contains(&json!(f)), "container_format {f}");
    }
    assert!(type_includes(&p["disk_format"], "null") && type_includes(&p["disk_format"], "string"));

    let mut visibility: Vec<&str> = p["visibility"]["enum"]
        .as_array()
        .expect("visibility enum")
        .iter()
        .map(|v| v.as_str().expect("string"))
        .collect();
    visibility.sort_unstable();
    assert_eq!(visibility, ["community", "private", "public", "shared"]);

    let mut statuses: Vec<&str> = p["status"]["enum"]
        .as_array()
        .expect("status enum")
        .iter()
        .map(|v| v.as_str().expect("string"))
        .collect();
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [
            "active",
            "deactivated",
            "deleted",
            "importing",
            "killed",
            "pending_delete",
            "queued",
            "saving",
            "uploading"
        ]
    );

    for read_only in [
        "status",
        "checksum",
        "os_hash_algo",
        "os_hash_value",
        "size",
        "virtual_size",
        "created_at",
        "updated_at",
        "direct_url",
        "self",
        "file",
        "schema",
    ] {
        assert_eq!(
            p[read_only]["readOnly"],
            json!(true),
            "{read_only} readOnly"
        );
    }
    for writable in [
        "name",
        "visibility",
        "protected",
        "min_ram",
        "tags",
        "disk_format",
    ] {
        assert_ne!(
            p[writable]["readOnly"],
            json!(true),
            "{writable} is writable"
        );
    }

    assert_eq!(
        p["id"]["pattern"],
        "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"
    );
    assert!(type_includes(&p["name"], "string") && type_includes(&p["name"], "null"));
    assert_eq!(p["name"]["maxLength"], 255);
    assert!(type_includes(&p["min_ram"], "integer"));
    assert!(type_includes(&p["min_disk"], "integer"));
    assert!(type_includes(&p["protected"], "boolean"));
    assert!(type_includes(&p["os_hidden"], "boolean"));
    assert!(type_includes(&p["size"], "integer") && type_includes(&p["size"], "null"));
    assert!(type_includes(&p["tags"], "array"));
    assert!(type_includes(&p["tags"]["items"], "string"));
    assert_eq!(p["tags"]["items"]["maxLength"], 255);
    assert_eq!(p["checksum"]["maxLength"], 32);
    assert_eq!(p["os_hash_algo"]["maxLength"], 64);
    assert_eq!(p["os_hash_value"]["maxLength"], 128);
}

#[test]
fn images_schema_wraps_the_image_schema() {
    let srv = TestServer::start();
    let image = srv.get_json("/v2/schemas/image");
    let resp = srv.get("/v2/schemas/images").expect_status(200);
    assert_eq!(resp.content_type().as_deref(), Some("application/json"));
    let images = resp.json();
    assert_eq!(images["name"], "images");
    assert_eq!(images["properties"]["images"]["type"], "array");
    assert_eq!(images["properties"]["images"]["items"], image);
    for key in ["first", "next", "schema"] {
        assert_eq!(
            images["properties"][key],
            json!({"type": "string"}),
            "{key}"
        );
    }
    assert_eq!(
        images["links"],
        json!([
            {"rel": "first", "href": "{first}"},
            {"rel": "next", "href": "{next}"},
            {"rel": "describedby", "href": "{schema}"}
        ])
    );
}

#[test]
fn schemas_refuse_other_methods_with_allow_get() {
    let srv = TestServer::start();
    for path in ["/v2/schemas/image", "/v2/schemas/images"] {
        for method in ["POST", "PUT", "DELETE", "PATCH"] {
            let resp = srv.request(method, path).send();
            assert_eq!(resp.status, 405, "{method} {path}: {resp:?}");
            assert_eq!(resp.header("allow"), Some("GET"), "{method} {path}");
        }
    }
}
