//! Glance's metadef JSON, both ways: request bodies and definition files → meta's typed
//! records (with the checks of Glance's JSON schemas), and records → API answers and export
//! files.
//!
//! Glance runs two layers over a request body: a JSON schema (types, `maxLength`, required
//! keys, and `additionalProperties: false` at the top of each schema), then WSME models, which
//! silently drop keys they do not know and turn a property's `default` into text. Both are
//! reproduced here. Definition files (`glance-manage db load_metadefs`) are read without the
//! top-level strictness: Glance's loader ignores keys it does not know, and files written by
//! `glint metadefs export` carry timestamps and the owner that Glance's own export leaves out.

use std::collections::BTreeMap;

use meta::metadefs::{
    ItemsDefinition, MetadefObject, MetadefTag, Namespace, NamespaceDocument, NamespaceVisibility,
    PropertyDefinition, ResourceType, ResourceTypeAssociation,
};
use meta::Timestamp;
use serde_json::{json, Map, Value};

use crate::handlers::images::format_timestamp;

/// A body or file that breaks one of Glance's metadef schemas: the reason, worded as
/// jsonschema words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaViolation(pub String);

type Parsed<T> = Result<T, SchemaViolation>;

fn violation(reason: impl Into<String>) -> SchemaViolation {
    SchemaViolation(reason.into())
}

/// How strictly a body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A request body: unknown top-level keys are refused.
    Api,
    /// A definition file: unknown keys are ignored, `null` counts as absent, and exported
    /// timestamps are kept.
    File,
}

/// The keys of Glance's property schema (`/v2/schemas/metadefs/property`).
const PROPERTY_KEYS: [&str; 19] = [
    "name",
    "title",
    "description",
    "operators",
    "type",
    "required",
    "minimum",
    "maximum",
    "maxLength",
    "minLength",
    "pattern",
    "enum",
    "readonly",
    "default",
    "items",
    "maxItems",
    "minItems",
    "uniqueItems",
    "additionalItems",
];

fn not_of_type(value: &Value, wanted: &str) -> SchemaViolation {
    violation(format!("{value} is not of type '{wanted}'"))
}

/// The object's fields, or why it is not an object.
pub fn as_object(value: &Value) -> Parsed<&Map<String, Value>> {
    value
        .as_object()
        .ok_or_else(|| not_of_type(value, "object"))
}

/// Refuses keys not in `allowed` (jsonschema's `additionalProperties: false`).
pub fn refuse_unknown(fields: &Map<String, Value>, allowed: &[&str]) -> Parsed<()> {
    let unknown: Vec<String> = fields
        .keys()
        .filter(|key| !allowed.contains(&key.as_str()))
        .map(|key| format!("'{key}'"))
        .collect();
    match unknown.len() {
        0 => Ok(()),
        1 => Err(violation(format!(
            "Additional properties are not allowed ({} was unexpected)",
            unknown[0]
        ))),
        _ => Err(violation(format!(
            "Additional properties are not allowed ({} were unexpected)",
            unknown.join(", ")
        ))),
    }
}

/// Reads optional fields; `null` is absent when `source` is a file.
struct Fields<'a> {
    fields: &'a Map<String, Value>,
    source: Source,
}

impl<'a> Fields<'a> {
    fn new(fields: &'a Map<String, Value>, source: Source) -> Fields<'a> {
        Fields { fields, source }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        match self.fields.get(key) {
            Some(Value::Null) if self.source == Source::File => None,
            other => other,
        }
    }

    fn required(&self, key: &str) -> Parsed<&'a Value> {
        self.get(key)
            .ok_or_else(|| violation(format!("'{key}' is a required property")))
    }

    fn string(&self, key: &str, max_chars: Option<usize>) -> Parsed<Option<String>> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        let text = value.as_str().ok_or_else(|| not_of_type(value, "string"))?;
        if let Some(max) = max_chars {
            if text.chars().count() > max {
                return Err(violation(format!("{value} is too long")));
            }
        }
        Ok(Some(text.to_owned()))
    }

    fn required_string(&self, key: &str, max_chars: Option<usize>) -> Parsed<String> {
        self.required(key)?;
        self.string(key, max_chars)
            .map(|text| text.unwrap_or_default())
    }

    fn boolean(&self, key: &str) -> Parsed<Option<bool>> {
        self.get(key)
            .map(|value| value.as_bool().ok_or_else(|| not_of_type(value, "boolean")))
            .transpose()
    }

    /// A JSON-schema `number`, truncated toward zero as WSME's `int` field does.
    fn number_as_int(&self, key: &str) -> Parsed<Option<i64>> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        let Value::Number(number) = value else {
            return Err(not_of_type(value, "number"));
        };
        if let Some(int) = number.as_i64() {
            return Ok(Some(int));
        }
        match number.as_f64() {
            Some(float) if float.is_finite() && float.abs() < 9.2e18 => {
                Ok(Some(float.trunc() as i64))
            }
            _ => Err(violation(format!("{value} is out of range"))),
        }
    }

    /// Glance's `positiveInteger`: an integer ≥ 0.
    fn non_negative(&self, key: &str) -> Parsed<Option<u64>> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        let integral = match value {
            Value::Number(n) => n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                    .map(|f| f as u64)
            }),
            _ => None,
        };
        match integral {
            Some(n) => Ok(Some(n)),
            None if value.as_i64().is_some_and(|n| n < 0) => {
                Err(violation(format!("{value} is less than the minimum of 0")))
            }
            None => Err(not_of_type(value, "integer")),
        }
    }

    /// An array of strings (WSME's `[text]`).
    fn strings(&self, key: &str, unique: bool) -> Parsed<Option<Vec<String>>> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        let items = value
            .as_array()
            .ok_or_else(|| not_of_type(value, "array"))?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let text = item.as_str().ok_or_else(|| not_of_type(item, "string"))?;
            if unique && out.iter().any(|seen: &String| seen == text) {
                return Err(violation(format!("{value} has non-unique elements")));
            }
            out.push(text.to_owned());
        }
        Ok(Some(out))
    }
}

/// A property definition, with the name it carries (if any).
///
/// `strict` is the property schema of `POST/PUT .../properties` and of an object's properties
/// on `POST .../objects`: unknown keys are refused. Otherwise (a namespace's embedded
/// properties, files) unknown keys are dropped, as Glance's models drop them, except
/// `confidential`, which Glance's model keeps.
pub fn property_from_json(
    value: &Value,
    strict: bool,
    source: Source,
) -> Parsed<(Option<String>, PropertyDefinition)> {
    let fields = as_object(value)?;
    if strict {
        refuse_unknown(fields, &PROPERTY_KEYS)?;
    }
    let f = Fields::new(fields, source);
    let name = f.string("name", Some(meta::metadefs::MAX_NAME_CHARS))?;
    let title = f.required_string("title", None)?;
    let property_type = f.required_string("type", None)?;
    if !meta::metadefs::PROPERTY_TYPES.contains(&property_type.as_str()) {
        return Err(violation(format!(
            "'{property_type}' is not one of {:?}",
            meta::metadefs::PROPERTY_TYPES
        )));
    }
    // `required` belongs to the schema but not to Glance's model: checked, then dropped.
    f.strings("required", true)?;
    let default = match f.get("default") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.clone()),
        // Python's str() of the value, as Glance stores it.
        Some(Value::Bool(true)) => Some("True".to_owned()),
        Some(Value::Bool(false)) => Some("False".to_owned()),
        Some(Value::Number(number)) => Some(number.to_string()),
        Some(other) => {
            return Err(violation(format!(
                "default {other} is not a string, number or boolean"
            )))
        }
    };
    let items = match f.get("items") {
        None => None,
        Some(items) => {
            let items = Fields::new(as_object(items)?, source);
            let item_type = items.required_string("type", None)?;
            if !meta::metadefs::PROPERTY_TYPES.contains(&item_type.as_str()) {
                return Err(violation(format!(
                    "'{item_type}' is not one of {:?}",
                    meta::metadefs::PROPERTY_TYPES
                )));
            }
            Some(ItemsDefinition {
                item_type,
                enum_values: items.strings("enum", false)?,
            })
        }
    };
    let definition = PropertyDefinition {
        title,
        property_type,
        description: f.string("description", None)?,
        operators: f.strings("operators", false)?,
        default,
        readonly: f.boolean("readonly")?,
        minimum: f.number_as_int("minimum")?,
        maximum: f.number_as_int("maximum")?,
        enum_values: f.strings("enum", false)?,
        pattern: f.string("pattern", None)?,
        min_length: f.non_negative("minLength")?,
        max_length: f.non_negative("maxLength")?,
        confidential: if strict {
            None
        } else {
            f.boolean("confidential")?
        },
        items,
        unique_items: f.boolean("uniqueItems")?,
        min_items: f.non_negative("minItems")?,
        max_items: f.non_negative("maxItems")?,
        additional_items: f.boolean("additionalItems")?,
    };
    Ok((name, definition))
}

/// A map of property definitions (the key is the name).
pub fn properties_from_json(
    value: &Value,
    strict: bool,
    source: Source,
) -> Parsed<BTreeMap<String, PropertyDefinition>> {
    let mut out = BTreeMap::new();
    for (name, value) in as_object(value)? {
        let (_, definition) = property_from_json(value, strict, source)
            .map_err(|e| violation(format!("property {name}: {}", e.0)))?;
        out.insert(name.clone(), definition);
    }
    Ok(out)
}

/// The keys of the object schema a request may send.
pub const OBJECT_KEYS: [&str; 8] = [
    "name",
    "description",
    "required",
    "properties",
    "self",
    "schema",
    "created_at",
    "updated_at",
];

/// An object from a request body or a file. `now` stamps it unless a file gives its times.
/// `closed` refuses unknown keys (a body's top level); `strict_properties` applies the
/// property schema to each of its properties (`POST .../objects`).
pub fn object_from_json(
    value: &Value,
    source: Source,
    closed: bool,
    strict_properties: bool,
    now: Timestamp,
) -> Parsed<MetadefObject> {
    let fields = as_object(value)?;
    if closed {
        refuse_unknown(fields, &OBJECT_KEYS)?;
    }
    let f = Fields::new(fields, source);
    let name = f.required_string("name", Some(meta::metadefs::MAX_NAME_CHARS))?;
    let properties = match f.get("properties") {
        Some(value) => properties_from_json(value, strict_properties, source)?,
        None => BTreeMap::new(),
    };
    let (created_at, updated_at) = times(&f, source, now)?;
    Ok(MetadefObject {
        name,
        description: f.string("description", None)?,
        required: f.strings("required", true)?.unwrap_or_default(),
        properties,
        created_at,
        updated_at,
    })
}

/// The keys of the namespace schema a request may send.
pub const NAMESPACE_KEYS: [&str; 14] = [
    "namespace",
    "display_name",
    "description",
    "visibility",
    "protected",
    "owner",
    "created_at",
    "updated_at",
    "schema",
    "self",
    "resource_type_associations",
    "properties",
    "objects",
    "tags",
];

/// A namespace's own fields from a request body or a file. `owner` is used when the body
/// names none.
pub fn namespace_from_json(
    fields: &Map<String, Value>,
    source: Source,
    owner: &str,
    now: Timestamp,
) -> Parsed<Namespace> {
    let f = Fields::new(fields, source);
    let visibility = match f.string("visibility", None)? {
        None => NamespaceVisibility::Private,
        Some(text) => text
            .parse()
            .map_err(|_| violation(format!("'{text}' is not one of ['public', 'private']")))?,
    };
    let (created_at, updated_at) = times(&f, source, now)?;
    Ok(Namespace {
        namespace: f.required_string("namespace", Some(meta::metadefs::MAX_NAME_CHARS))?,
        display_name: f.string("display_name", Some(meta::metadefs::MAX_NAME_CHARS))?,
        description: f.string("description", Some(meta::metadefs::MAX_DESCRIPTION_CHARS))?,
        visibility,
        protected: f.boolean("protected")?.unwrap_or(false),
        owner: f
            .string("owner", Some(meta::metadefs::MAX_OWNER_CHARS))?
            .unwrap_or_else(|| owner.to_owned()),
        created_at,
        updated_at,
    })
}

/// A namespace with its content, from `POST /v2/metadefs/namespaces` or a definition file.
pub fn document_from_json(
    value: &Value,
    source: Source,
    owner: &str,
    now: Timestamp,
) -> Parsed<NamespaceDocument> {
    let fields = as_object(value)?;
    if source == Source::Api {
        refuse_unknown(fields, &NAMESPACE_KEYS)?;
    }
    let mut document = NamespaceDocument::new(namespace_from_json(fields, source, owner, now)?);
    let f = Fields::new(fields, source);
    if let Some(value) = f.get("resource_type_associations") {
        let items = value
            .as_array()
            .ok_or_else(|| not_of_type(value, "array"))?;
        for item in items {
            let association = association_from_json(item, source, false, now)
                .map_err(|e| violation(format!("resource_type_associations: {}", e.0)))?;
            if source == Source::File {
                if let Some(resource_type) = resource_type_from_file(item, &association.name)? {
                    document.resource_types.push(resource_type);
                }
            }
            document.resource_type_associations.push(association);
        }
    }
    if let Some(value) = f.get("properties") {
        document.properties = properties_from_json(value, false, source)?;
    }
    if let Some(value) = f.get("objects") {
        let items = value
            .as_array()
            .ok_or_else(|| not_of_type(value, "array"))?;
        for item in items {
            // Embedded objects: the namespace schema does not close them to extra keys.
            document.objects.push(
                object_from_json(item, source, false, false, now)
                    .map_err(|e| violation(format!("objects: {}", e.0)))?,
            );
        }
    }
    if let Some(value) = f.get("tags") {
        let items = value
            .as_array()
            .ok_or_else(|| not_of_type(value, "array"))?;
        for item in items {
            let tag = Fields::new(as_object(item)?, source);
            let (created_at, updated_at) = times(&tag, source, now)?;
            document.tags.push(MetadefTag {
                name: tag.required_string("name", None)?,
                created_at,
                updated_at,
            });
        }
    }
    Ok(document)
}

/// The keys a resource-type association body may send.
pub const ASSOCIATION_KEYS: [&str; 5] = [
    "name",
    "prefix",
    "properties_target",
    "created_at",
    "updated_at",
];

/// A resource-type association from a request body or a file; `closed` refuses unknown keys.
pub fn association_from_json(
    value: &Value,
    source: Source,
    closed: bool,
    now: Timestamp,
) -> Parsed<ResourceTypeAssociation> {
    let fields = as_object(value)?;
    if closed {
        refuse_unknown(fields, &ASSOCIATION_KEYS)?;
    }
    let f = Fields::new(fields, source);
    let max = Some(meta::metadefs::MAX_NAME_CHARS);
    let (created_at, updated_at) = times(&f, source, now)?;
    Ok(ResourceTypeAssociation {
        name: f.required_string("name", max)?,
        prefix: f.string("prefix", max)?,
        properties_target: f.string("properties_target", max)?,
        created_at,
        updated_at,
    })
}

/// The `resource_type` glint's export adds to an association (the resource type's own times
/// and flag); `None` in Glance's files.
fn resource_type_from_file(item: &Value, name: &str) -> Parsed<Option<ResourceType>> {
    let Some(value) = item.get("resource_type").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let f = Fields::new(as_object(value)?, Source::File);
    let (created_at, updated_at) = times(&f, Source::File, Timestamp::from_unix_micros(0))?;
    Ok(Some(ResourceType {
        name: name.to_owned(),
        protected: f.boolean("protected")?.unwrap_or(false),
        created_at,
        updated_at,
    }))
}

/// `created_at`/`updated_at` of an exported file (RFC 3339), else `now`.
fn times(f: &Fields<'_>, source: Source, now: Timestamp) -> Parsed<(Timestamp, Timestamp)> {
    if source == Source::Api {
        return Ok((now, now));
    }
    let read = |key: &str| -> Parsed<Option<Timestamp>> {
        match f.string(key, None)? {
            None => Ok(None),
            Some(text) => parse_timestamp(&text)
                .map(Some)
                .ok_or_else(|| violation(format!("{key} {text:?} is not an RFC 3339 time"))),
        }
    };
    let created = read("created_at")?.unwrap_or(now);
    let updated = read("updated_at")?.unwrap_or(created);
    Ok((created, updated))
}

/// An RFC 3339 time with microseconds, as export files carry them.
pub fn export_timestamp(t: Timestamp) -> String {
    let micros = t.as_unix_micros();
    let seconds = format_timestamp(t);
    let fraction = micros.rem_euclid(1_000_000);
    format!("{}.{fraction:06}Z", seconds.trim_end_matches('Z'))
}

fn parse_timestamp(text: &str) -> Option<Timestamp> {
    let parsed =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    let micros = parsed.unix_timestamp_nanos() / 1_000;
    i64::try_from(micros).ok().map(Timestamp::from_unix_micros)
}

// ---- rendering

/// A property definition as Glance answers it (unset fields left out), with `name` when
/// given.
pub fn property_to_json(definition: &PropertyDefinition, name: Option<&str>) -> Value {
    let mut m = Map::new();
    if let Some(name) = name {
        m.insert("name".into(), json!(name));
    }
    m.insert("title".into(), json!(definition.title));
    m.insert("type".into(), json!(definition.property_type));
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            m.insert(key.into(), value);
        }
    };
    put(
        "description",
        definition.description.as_ref().map(|v| json!(v)),
    );
    put("operators", definition.operators.as_ref().map(|v| json!(v)));
    put("default", definition.default.as_ref().map(|v| json!(v)));
    put("readonly", definition.readonly.map(|v| json!(v)));
    put("minimum", definition.minimum.map(|v| json!(v)));
    put("maximum", definition.maximum.map(|v| json!(v)));
    put("enum", definition.enum_values.as_ref().map(|v| json!(v)));
    put("pattern", definition.pattern.as_ref().map(|v| json!(v)));
    put("minLength", definition.min_length.map(|v| json!(v)));
    put("maxLength", definition.max_length.map(|v| json!(v)));
    put("confidential", definition.confidential.map(|v| json!(v)));
    put(
        "items",
        definition.items.as_ref().map(|items| {
            let mut i = Map::new();
            i.insert("type".into(), json!(items.item_type));
            if let Some(values) = &items.enum_values {
                i.insert("enum".into(), json!(values));
            }
            Value::Object(i)
        }),
    );
    put("uniqueItems", definition.unique_items.map(|v| json!(v)));
    put("minItems", definition.min_items.map(|v| json!(v)));
    put("maxItems", definition.max_items.map(|v| json!(v)));
    put(
        "additionalItems",
        definition.additional_items.map(|v| json!(v)),
    );
    Value::Object(m)
}

/// A map of property definitions, each name prefixed with `prefix`.
pub fn properties_to_json(
    properties: &BTreeMap<String, PropertyDefinition>,
    prefix: &str,
) -> Value {
    Value::Object(
        properties
            .iter()
            .map(|(name, definition)| {
                (
                    format!("{prefix}{name}"),
                    property_to_json(definition, None),
                )
            })
            .collect(),
    )
}

/// `/v2/metadefs/namespaces/{namespace}`.
pub fn namespace_href(namespace: &str) -> String {
    format!("/v2/metadefs/namespaces/{namespace}")
}

/// An object as Glance answers it; property names and `required` get `prefix`.
pub fn object_to_json(namespace: &str, object: &MetadefObject, prefix: &str) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(object.name));
    if let Some(description) = &object.description {
        m.insert("description".into(), json!(description));
    }
    let required: Vec<String> = object
        .required
        .iter()
        .map(|name| format!("{prefix}{name}"))
        .collect();
    m.insert("required".into(), json!(required));
    m.insert(
        "properties".into(),
        properties_to_json(&object.properties, prefix),
    );
    m.insert(
        "created_at".into(),
        json!(format_timestamp(object.created_at)),
    );
    m.insert(
        "updated_at".into(),
        json!(format_timestamp(object.updated_at)),
    );
    m.insert(
        "self".into(),
        json!(format!(
            "{}/objects/{}",
            namespace_href(namespace),
            object.name
        )),
    );
    m.insert("schema".into(), json!("/v2/schemas/metadefs/object"));
    Value::Object(m)
}

/// A tag as `GET` of one tag answers it.
pub fn tag_to_json(tag: &MetadefTag) -> Value {
    json!({
        "name": tag.name,
        "created_at": format_timestamp(tag.created_at),
        "updated_at": format_timestamp(tag.updated_at),
    })
}

/// A resource-type association (unset prefix and target left out).
pub fn association_to_json(association: &ResourceTypeAssociation) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(association.name));
    if let Some(prefix) = &association.prefix {
        m.insert("prefix".into(), json!(prefix));
    }
    if let Some(target) = &association.properties_target {
        m.insert("properties_target".into(), json!(target));
    }
    m.insert(
        "created_at".into(),
        json!(format_timestamp(association.created_at)),
    );
    m.insert(
        "updated_at".into(),
        json!(format_timestamp(association.updated_at)),
    );
    Value::Object(m)
}

/// A resource type, as `GET /v2/metadefs/resource_types` lists it.
pub fn resource_type_to_json(resource_type: &ResourceType) -> Value {
    json!({
        "name": resource_type.name,
        "created_at": format_timestamp(resource_type.created_at),
        "updated_at": format_timestamp(resource_type.updated_at),
    })
}

/// A namespace's own fields, its links, and its associations when it has any (the list's
/// form).
pub fn namespace_to_json(
    namespace: &Namespace,
    associations: &[ResourceTypeAssociation],
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("namespace".into(), json!(namespace.namespace));
    if let Some(display_name) = &namespace.display_name {
        m.insert("display_name".into(), json!(display_name));
    }
    if let Some(description) = &namespace.description {
        m.insert("description".into(), json!(description));
    }
    m.insert("visibility".into(), json!(namespace.visibility.as_str()));
    m.insert("protected".into(), json!(namespace.protected));
    m.insert("owner".into(), json!(namespace.owner));
    m.insert(
        "created_at".into(),
        json!(format_timestamp(namespace.created_at)),
    );
    m.insert(
        "updated_at".into(),
        json!(format_timestamp(namespace.updated_at)),
    );
    m.insert("schema".into(), json!("/v2/schemas/metadefs/namespace"));
    m.insert("self".into(), json!(namespace_href(&namespace.namespace)));
    if !associations.is_empty() {
        m.insert(
            "resource_type_associations".into(),
            Value::Array(associations.iter().map(association_to_json).collect()),
        );
    }
    m
}

/// A namespace with its content (`GET` of one namespace); property names get `prefix`.
pub fn document_to_json(document: &NamespaceDocument, prefix: &str) -> Value {
    let name = &document.namespace.namespace;
    let mut m = namespace_to_json(&document.namespace, &document.resource_type_associations);
    if !document.properties.is_empty() {
        m.insert(
            "properties".into(),
            properties_to_json(&document.properties, prefix),
        );
    }
    if !document.objects.is_empty() {
        m.insert(
            "objects".into(),
            Value::Array(
                document
                    .objects
                    .iter()
                    .map(|object| object_to_json(name, object, prefix))
                    .collect(),
            ),
        );
    }
    if !document.tags.is_empty() {
        m.insert(
            "tags".into(),
            Value::Array(
                document
                    .tags
                    .iter()
                    .map(|t| json!({ "name": t.name }))
                    .collect(),
            ),
        );
    }
    Value::Object(m)
}

/// A namespace in Glance's definition-file format (what `glance-manage db export_metadefs`
/// writes), plus the owner, every record's times and each association's `resource_type`,
/// which Glance's loader ignores and `glint metadefs load` keeps.
pub fn document_to_file(document: &NamespaceDocument) -> Value {
    let ns = &document.namespace;
    let times = |created: Timestamp, updated: Timestamp| {
        (export_timestamp(created), export_timestamp(updated))
    };
    let (created, updated) = times(ns.created_at, ns.updated_at);
    let associations: Vec<Value> = document
        .resource_type_associations
        .iter()
        .map(|a| {
            let (created, updated) = times(a.created_at, a.updated_at);
            let mut entry = json!({
                "name": a.name,
                "prefix": a.prefix,
                "properties_target": a.properties_target,
                "created_at": created,
                "updated_at": updated,
            });
            if let Some(rt) = document.resource_types.iter().find(|rt| rt.name == a.name) {
                let (created, updated) = times(rt.created_at, rt.updated_at);
                entry["resource_type"] = json!({
                    "protected": rt.protected,
                    "created_at": created,
                    "updated_at": updated,
                });
            }
            entry
        })
        .collect();
    let objects: Vec<Value> = document
        .objects
        .iter()
        .map(|o| {
            let (created, updated) = times(o.created_at, o.updated_at);
            let properties: Map<String, Value> = o
                .properties
                .iter()
                .map(|(name, d)| (name.clone(), property_to_json(d, None)))
                .collect();
            json!({
                "name": o.name,
                "description": o.description,
                "required": o.required,
                "properties": properties,
                "created_at": created,
                "updated_at": updated,
            })
        })
        .collect();
    let properties: Map<String, Value> = document
        .properties
        .iter()
        .map(|(name, d)| (name.clone(), property_to_json(d, None)))
        .collect();
    let tags: Vec<Value> = document
        .tags
        .iter()
        .map(|t| {
            let (created, updated) = times(t.created_at, t.updated_at);
            json!({ "name": t.name, "created_at": created, "updated_at": updated })
        })
        .collect();
    json!({
        "namespace": ns.namespace,
        "display_name": ns.display_name,
        "description": ns.description,
        "visibility": ns.visibility.as_str(),
        "protected": ns.protected,
        "owner": ns.owner,
        "created_at": created,
        "updated_at": updated,
        "resource_type_associations": associations,
        "properties": properties,
        "objects": objects,
        "tags": tags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::from_unix_micros(1_700_000_000_123_456)
    }

    #[test]
    fn property_schema_rules() {
        let ok = json!({"name": "p", "title": "P", "type": "integer", "minimum": 1.7,
                        "default": 100, "readonly": false});
        let (name, definition) = property_from_json(&ok, true, Source::Api).unwrap();
        assert_eq!(name.as_deref(), Some("p"));
        assert_eq!(definition.minimum, Some(1), "truncated as WSME's int()");
        assert_eq!(definition.default.as_deref(), Some("100"), "stored as text");
        assert_eq!(definition.readonly, Some(false));

        for (bad, why) in [
            (json!({"type": "string"}), "'title' is a required property"),
            (json!({"title": "T"}), "'type' is a required property"),
            (json!({"title": "T", "type": "strin"}), "is not one of"),
            (
                json!({"title": "T", "type": "string", "minLength": -1}),
                "less than the minimum",
            ),
            (
                json!({"title": "T", "type": "string", "maxLength": "9"}),
                "is not of type 'integer'",
            ),
            (
                json!({"title": "T", "type": "string", "enum": "a"}),
                "is not of type 'array'",
            ),
            (
                json!({"title": "T", "type": "array", "items": {"enum": ["a"]}}),
                "'type' is a required",
            ),
            (
                json!({"title": "T", "type": "string", "default": ["a"]}),
                "not a string",
            ),
            (
                json!({"title": "T", "type": "string", "bogus": 1}),
                "'bogus' was unexpected",
            ),
            (
                json!({"title": "T", "type": "string", "name": "n".repeat(81)}),
                "too long",
            ),
        ] {
            let err = property_from_json(&bad, true, Source::Api).unwrap_err();
            assert!(err.0.contains(why), "{bad}: {}", err.0);
        }
        // Lenient: unknown keys are dropped, `confidential` kept.
        let loose = json!({"title": "T", "type": "string", "bogus": 1, "confidential": true});
        let (_, definition) = property_from_json(&loose, false, Source::Api).unwrap();
        assert_eq!(definition.confidential, Some(true));
    }

    #[test]
    fn properties_render_as_glance_answers_them() {
        let value = json!({"title": "T", "type": "array", "items": {"type": "string", "enum": ["a"]},
                           "default": true, "uniqueItems": true});
        let (_, definition) = property_from_json(&value, false, Source::File).unwrap();
        assert_eq!(
            property_to_json(&definition, Some("p")),
            json!({"name": "p", "title": "T", "type": "array",
                   "items": {"type": "string", "enum": ["a"]}, "default": "True", "uniqueItems": true})
        );
    }

    #[test]
    fn api_bodies_refuse_unknown_keys_and_files_ignore_them() {
        let body = json!({"namespace": "n", "extra": 1});
        assert!(document_from_json(&body, Source::Api, "p", now()).is_err());
        let document = document_from_json(&body, Source::File, "admin", now()).unwrap();
        assert_eq!(document.namespace.owner, "admin");
        assert_eq!(document.namespace.visibility, NamespaceVisibility::Private);
        let long = json!({"namespace": "n".repeat(81)});
        assert!(document_from_json(&long, Source::Api, "p", now())
            .unwrap_err()
            .0
            .contains("too long"));
        let nulls = json!({"namespace": "n", "display_name": null});
        assert!(document_from_json(&nulls, Source::Api, "p", now()).is_err());
        assert!(document_from_json(&nulls, Source::File, "p", now()).is_ok());
    }

    #[test]
    fn export_files_load_back_identically() {
        let file = json!({
            "namespace": "OS::Test", "display_name": "Test", "description": "d",
            "visibility": "public", "protected": true, "owner": "proj",
            "created_at": "2026-01-02T03:04:05.000006Z", "updated_at": "2026-01-02T03:04:06.000007Z",
            "resource_type_associations": [{"name": "OS::Glance::Image", "prefix": "hw_",
                "properties_target": null, "created_at": "2026-01-02T03:04:05.000006Z",
                "updated_at": "2026-01-02T03:04:05.000006Z"}],
            "properties": {"p": {"title": "P", "type": "string", "enum": ["a", "b"]}},
            "objects": [{"name": "o", "description": null, "required": ["q"],
                "properties": {"q": {"title": "Q", "type": "integer", "minimum": 0}}}],
            "tags": [{"name": "t"}],
        });
        let document = document_from_json(&file, Source::File, "admin", now()).unwrap();
        assert_eq!(
            document.namespace.created_at,
            Timestamp::from_unix_micros(1_767_323_045_000_006)
        );
        assert_eq!(
            document.objects[0].created_at,
            now(),
            "absent times are the load's"
        );
        let again =
            document_from_json(&document_to_file(&document), Source::File, "x", now()).unwrap();
        assert_eq!(again, document);
    }
}
