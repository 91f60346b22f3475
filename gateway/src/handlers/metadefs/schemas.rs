//! `GET /v2/schemas/metadefs/{namespace,namespaces,object,objects,property,properties,
//! resource_type,resource_types,tag,tags}`: the JSON schemas Glance serves, which
//! python-glanceclient fetches and validates requests and answers against (warlock). Each
//! closes its top level (`additionalProperties: false`), so answers carry no other keys.

use serde_json::{json, Value};

/// The names after `/v2/schemas/metadefs/`.
pub const NAMES: [&str; 10] = [
    "namespace",
    "namespaces",
    "object",
    "objects",
    "property",
    "properties",
    "resource_type",
    "resource_types",
    "tag",
    "tags",
];

const TYPES: [Option<&str>; 7] = [
    Some("array"),
    Some("boolean"),
    Some("integer"),
    Some("number"),
    Some("object"),
    Some("string"),
    None,
];

fn read_only_time(what: &str) -> Value {
    json!({"type": "string", "readOnly": true, "description": what, "format": "date-time"})
}

fn base_definitions(string_array_min_items: bool) -> serde_json::Map<String, Value> {
    let mut string_array =
        json!({"type": "array", "items": {"type": "string"}, "uniqueItems": true});
    if string_array_min_items {
        string_array["minItems"] = json!(1);
    }
    let mut m = serde_json::Map::new();
    m.insert(
        "positiveInteger".into(),
        json!({"type": "integer", "minimum": 0}),
    );
    m.insert(
        "positiveIntegerDefault0".into(),
        json!({"allOf": [{"$ref": "#/definitions/positiveInteger"}, {"default": 0}]}),
    );
    m.insert("stringArray".into(), string_array);
    m
}

/// The fields of one property definition.
fn property_fields() -> Value {
    json!({
        "name": {"type": "string", "maxLength": 80},
        "title": {"type": "string"},
        "description": {"type": "string"},
        "operators": {"type": "array", "items": {"type": "string"}},
        "type": {"type": "string", "enum": TYPES},
        "required": {"$ref": "#/definitions/stringArray"},
        "minimum": {"type": "number"},
        "maximum": {"type": "number"},
        "maxLength": {"$ref": "#/definitions/positiveInteger"},
        "minLength": {"$ref": "#/definitions/positiveIntegerDefault0"},
        "pattern": {"type": "string", "format": "regex"},
        "enum": {"type": "array"},
        "readonly": {"type": "boolean"},
        "default": {},
        "items": {
            "type": "object",
            "properties": {
                "type": {"type": "string", "enum": TYPES},
                "enum": {"type": "array"}
            }
        },
        "maxItems": {"$ref": "#/definitions/positiveInteger"},
        "minItems": {"$ref": "#/definitions/positiveIntegerDefault0"},
        "uniqueItems": {"type": "boolean", "default": false},
        "additionalItems": {"type": "boolean"}
    })
}

/// The definitions shared by the namespace and object schemas, `property` included.
fn namespace_definitions() -> Value {
    let mut m = base_definitions(false);
    m.insert(
        "property".into(),
        json!({
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["title", "type"],
                "properties": property_fields()
            }
        }),
    );
    Value::Object(m)
}

fn namespace_properties() -> Value {
    json!({
        "namespace": {"type": "string", "description": "The unique namespace text.", "maxLength": 80},
        "display_name": {"type": "string", "maxLength": 80,
            "description": "The user friendly name for the namespace. Used by UI if available."},
        "description": {"type": "string", "maxLength": 500,
            "description": "Provides a user friendly description of the namespace."},
        "visibility": {"type": "string", "description": "Scope of namespace accessibility.",
            "enum": ["public", "private"]},
        "protected": {"type": "boolean", "description": "If true, namespace will not be deletable."},
        "owner": {"type": "string", "description": "Owner of the namespace.", "maxLength": 255},
        "created_at": read_only_time("Date and time of namespace creation"),
        "updated_at": read_only_time("Date and time of the last namespace modification"),
        "schema": {"readOnly": true, "type": "string"},
        "self": {"readOnly": true, "type": "string"},
        "resource_type_associations": {
            "type": "array",
            "items": {"type": "object", "properties": {
                "name": {"type": "string"},
                "prefix": {"type": "string"},
                "properties_target": {"type": "string"}
            }}
        },
        "properties": {"$ref": "#/definitions/property"},
        "objects": {
            "type": "array",
            "items": {"type": "object", "properties": {
                "name": {"type": "string"},
                "description": {"type": "string"},
                "required": {"$ref": "#/definitions/stringArray"},
                "properties": {"$ref": "#/definitions/property"}
            }}
        },
        "tags": {
            "type": "array",
            "items": {"type": "object", "properties": {"name": {"type": "string"}}}
        }
    })
}

fn object_properties() -> Value {
    json!({
        "name": {"type": "string", "maxLength": 80},
        "description": {"type": "string"},
        "required": {"$ref": "#/definitions/stringArray"},
        "properties": {"$ref": "#/definitions/property"},
        "schema": {"readOnly": true, "type": "string"},
        "self": {"readOnly": true, "type": "string"},
        "created_at": read_only_time("Date and time of object creation"),
        "updated_at": read_only_time("Date and time of the last object modification")
    })
}

fn resource_type_properties() -> Value {
    json!({
        "name": {"type": "string", "maxLength": 80,
            "description": "Resource type names should be aligned with Heat resource types \
                whenever possible: https://docs.openstack.org/heat/latest/template_guide/openstack.html"},
        "prefix": {"type": "string", "maxLength": 80,
            "description": "Specifies the prefix to use for the given resource type. Any \
                properties in the namespace should be prefixed with this prefix when being \
                applied to the specified resource type. Must include prefix separator (e.g. a \
                colon :)."},
        "properties_target": {"type": "string", "maxLength": 80,
            "description": "Some resource types allow more than one key / value pair per \
                instance.  For example, Cinder allows user and image metadata on volumes. Only \
                the image properties metadata is evaluated by Nova (scheduling or drivers). \
                This property allows a namespace target to remove the ambiguity."},
        "created_at": read_only_time("Date and time of resource type association"),
        "updated_at": read_only_time("Date and time of the last resource type association modification")
    })
}

fn tag_properties() -> Value {
    json!({
        "name": {"type": "string", "maxLength": 80},
        "created_at": read_only_time("Date and time of tag creation"),
        "updated_at": read_only_time("Date and time of the last tag modification")
    })
}

/// A single-item schema (Glance's `Schema.raw()`).
fn item(name: &str, properties: Value, required: &[&str], definitions: Option<Value>) -> Value {
    let mut schema = json!({
        "name": name,
        "properties": properties,
        "additionalProperties": false,
        "required": required,
    });
    if let Some(definitions) = definitions {
        schema["definitions"] = definitions;
    }
    schema
}

fn links() -> Value {
    json!([
        {"rel": "first", "href": "{first}"},
        {"rel": "next", "href": "{next}"},
        {"rel": "describedby", "href": "{schema}"}
    ])
}

/// A list schema (Glance's `CollectionSchema`): the item's definitions move to the top.
fn collection(name: &str, mut item: Value) -> Value {
    let definitions = item.as_object_mut().and_then(|m| m.remove("definitions"));
    let mut schema = json!({
        "name": name,
        "properties": {
            name: {"type": "array", "items": item},
            "first": {"type": "string"},
            "next": {"type": "string"},
            "schema": {"type": "string"}
        },
        "links": links(),
    });
    if let Some(definitions) = definitions {
        schema["definitions"] = definitions;
    }
    schema
}

fn property_item(require_name: bool) -> Value {
    let required: &[&str] = if require_name {
        &["type", "title", "name"]
    } else {
        &["type", "title"]
    };
    item(
        "property",
        property_fields(),
        required,
        Some(Value::Object(base_definitions(true))),
    )
}

/// The schema called `name`, or `None` for an unknown name.
pub fn schema(name: &str) -> Option<Value> {
    let namespace = || {
        item(
            "namespace",
            namespace_properties(),
            &["namespace"],
            Some(namespace_definitions()),
        )
    };
    let object = || {
        item(
            "object",
            object_properties(),
            &["name"],
            Some(namespace_definitions()),
        )
    };
    let resource_type = || {
        item(
            "resource_type_association",
            resource_type_properties(),
            &["name"],
            None,
        )
    };
    let tag = || item("tag", tag_properties(), &["name"], None);
    Some(match name {
        "namespace" => namespace(),
        "namespaces" => collection("namespaces", namespace()),
        "object" => object(),
        "objects" => collection("objects", object()),
        "property" => property_item(true),
        "properties" => {
            // A map keyed by property name (Glance's `DictCollectionSchema`).
            let mut item = property_item(false);
            let definitions = item.as_object_mut().and_then(|m| m.remove("definitions"));
            json!({
                "name": "properties",
                "properties": {
                    "properties": {"type": "object", "additionalProperties": item},
                    "first": {"type": "string"},
                    "next": {"type": "string"},
                    "schema": {"type": "string"}
                },
                "links": links(),
                "definitions": definitions,
            })
        }
        "resource_type" => resource_type(),
        "resource_types" => collection("resource_type_associations", resource_type()),
        "tag" => tag(),
        "tags" => collection("tags", tag()),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_has_a_schema_that_closes_its_items() {
        for name in NAMES {
            let schema = schema(name).unwrap();
            assert!(schema["name"].is_string(), "{name}");
        }
        assert!(schema("nothing").is_none());
        assert_eq!(schema("namespace").unwrap()["additionalProperties"], false);
        assert_eq!(
            schema("namespaces").unwrap()["properties"]["namespaces"]["items"]
                ["additionalProperties"],
            false
        );
        assert_eq!(
            schema("property").unwrap()["required"],
            json!(["type", "title", "name"])
        );
        assert!(schema("properties").unwrap()["definitions"]["stringArray"]["minItems"] == 1);
    }
}
