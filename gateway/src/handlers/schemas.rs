//! `GET /v2/schemas/image`, `/images`, `/member` and `/members`: the JSON schemas clients
//! validate against.
//!
//! python-glanceclient validates create/update requests against the image schema and decides
//! between `add` and `replace` patch operations with it, so the document has the exact shape
//! Glance serves (types, `readOnly`, enums with `null` first, the UUID pattern). The
//! `disk_format`/`container_format` enums come from the configuration, as in Glance.

use serde_json::{json, Value};

use crate::config::Config;

/// The UUID pattern Glance puts on `id`.
pub const UUID_PATTERN: &str =
    "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$";

/// Every status an image can be in, in Glance's order.
pub const STATUSES: &[&str] = &[
    "queued",
    "saving",
    "active",
    "killed",
    "deleted",
    "uploading",
    "importing",
    "pending_delete",
    "deactivated",
];

/// The image schema (`GET /v2/schemas/image`).
pub fn image(config: &Config) -> Value {
    let with_null = |values: &[String]| {
        let mut v = vec![Value::Null];
        v.extend(values.iter().map(|s| Value::String(s.clone())));
        Value::Array(v)
    };
    let read_only = |ty: Value, description: &str| json!({ "type": ty, "readOnly": true, "description": description });
    let mut checksum = read_only(json!(["null", "string"]), "md5 hash of image contents.");
    checksum["maxLength"] = json!(32);
    let mut hash_algo = read_only(
        json!(["null", "string"]),
        "Algorithm to calculate the os_hash_value",
    );
    hash_algo["maxLength"] = json!(64);
    let mut hash_value = read_only(
        json!(["null", "string"]),
        "Hexdigest of the image contents using the algorithm specified by the os_hash_algo",
    );
    hash_value["maxLength"] = json!(128);
    let mut status = read_only(json!("string"), "Status of the image");
    status["enum"] = json!(STATUSES);
    json!({
        "name": "image",
        "properties": {
            "id": {"type": "string", "description": "An identifier for the image",
                   "pattern": UUID_PATTERN},
            "name": {"type": ["null", "string"], "description": "Descriptive name for the image",
                     "maxLength": 255},
            "status": status,
            "visibility": {"type": "string", "description": "Scope of image accessibility",
                           "enum": ["community", "public", "private", "shared"]},
            "protected": {"type": "boolean",
                          "description": "If true, image will not be deletable."},
            "os_hidden": {"type": "boolean", "description":
                          "If true, image will not appear in default image list response."},
            "checksum": checksum,
            "os_hash_algo": hash_algo,
            "os_hash_value": hash_value,
            "owner": {"type": ["null", "string"], "description": "Owner of the image",
                      "maxLength": 255},
            "size": read_only(json!(["null", "integer"]), "Size of image file in bytes"),
            "virtual_size": read_only(json!(["null", "integer"]), "Virtual size of image in bytes"),
            "container_format": {"type": ["null", "string"], "description": "Format of the container",
                                 "enum": with_null(&config.container_formats)},
            "disk_format": {"type": ["null", "string"], "description": "Format of the disk",
                            "enum": with_null(&config.disk_formats)},
            "created_at": read_only(json!("string"), "Date and time of image registration"),
            "updated_at": read_only(json!("string"), "Date and time of the last image modification"),
            "tags": {"type": "array", "description": "List of strings related to the image",
                     "items": {"type": "string", "maxLength": 255}},
            "direct_url": read_only(json!("string"),
                "URL to access the image file kept in external store"),
            "min_ram": {"type": "integer",
                        "description": "Amount of ram (in MB) required to boot image."},
            "min_disk": {"type": "integer",
                         "description": "Amount of disk space (in GB) required to boot image."},
            "self": read_only(json!("string"), "An image self url"),
            "file": read_only(json!("string"), "An image file url"),
            "stores": read_only(json!("string"), "Store in which image data resides.  Only present \
                when the operator has enabled multiple stores.  May be a comma-separated list of \
                store identifiers."),
            "schema": read_only(json!("string"), "An image schema url"),
            "locations": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "url": {"type": "string", "maxLength": 255},
                        "metadata": {"type": "object"},
                        "validation_data": {
                            "description": "Values to be used to populate the corresponding \
                                image properties. If the image status is not 'queued', values \
                                must exactly match those already contained in the image properties.",
                            "type": "object",
                            "writeOnly": true,
                            "additionalProperties": false,
                            "properties": {
                                "checksum": {"type": "string", "minLength": 32, "maxLength": 32},
                                "os_hash_algo": {"type": "string", "maxLength": 64},
                                "os_hash_value": {"type": "string", "maxLength": 128}
                            },
                            "required": ["os_hash_algo", "os_hash_value"]
                        }
                    },
                    "required": ["url", "metadata"]
                },
                "description": "A set of URLs to access the image file kept in external store"
            }
        },
        "additionalProperties": {"type": "string"},
        "links": [
            {"rel": "self", "href": "{self}"},
            {"rel": "enclosure", "href": "{file}"},
            {"rel": "describedby", "href": "{schema}"}
        ]
    })
}

/// The image collection schema (`GET /v2/schemas/images`).
pub fn images(config: &Config) -> Value {
    collection("images", image(config))
}

/// A paged collection of `items` named `name` (`images`, `members`): Glance gives both the
/// same shape and links.
fn collection(name: &str, items: Value) -> Value {
    json!({
        "name": name,
        "properties": {
            name: {"type": "array", "items": items},
            "first": {"type": "string"},
            "next": {"type": "string"},
            "schema": {"type": "string"}
        },
        "links": [
            {"rel": "first", "href": "{first}"},
            {"rel": "next", "href": "{next}"},
            {"rel": "describedby", "href": "{schema}"}
        ]
    })
}

/// The member schema (`GET /v2/schemas/member`).
pub fn member() -> Value {
    json!({
        "name": "member",
        "properties": {
            "member_id": {
                "type": "string",
                "description": "An identifier for the image member (tenantId)"
            },
            "image_id": {
                "type": "string",
                "description": "An identifier for the image",
                "pattern": UUID_PATTERN
            },
            "created_at": {
                "type": "string",
                "description": "Date and time of image member creation"
            },
            "updated_at": {
                "type": "string",
                "description": "Date and time of last modification of image member"
            },
            "status": {
                "type": "string",
                "description": "The status of this image member",
                "enum": ["pending", "accepted", "rejected"]
            },
            "schema": {"readOnly": true, "type": "string"}
        },
        "additionalProperties": false
    })
}

/// The member collection schema (`GET /v2/schemas/members`).
pub fn members() -> Value {
    collection("members", member())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_enums_start_with_null() {
        let s = image(&Config::default());
        assert_eq!(s["properties"]["disk_format"]["enum"][0], Value::Null);
        assert_eq!(s["properties"]["container_format"]["enum"][0], Value::Null);
        assert_eq!(s["additionalProperties"]["type"], "string");
    }

    #[test]
    fn collection_embeds_image_schema() {
        let s = images(&Config::default());
        assert_eq!(s["properties"]["images"]["items"]["name"], "image");
    }
}
