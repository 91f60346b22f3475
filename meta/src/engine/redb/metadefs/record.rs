//! The on-disk encoding of metadef records, kept apart from the public types (as `record.rs`
//! is for images): one format byte, then postcard.
//!
//! ```text
//! 0      format byte: METADEF_RECORD_V1 = 1
//! 1..    postcard(NamespaceV1 | ObjectV1 | PropertyV1 | AssociationV1)
//! ```
//!
//! Rules as for images: never reorder or retype a field of a `…V1` struct; a new layout gets a
//! new format byte, `decode_*` keeps reading the old one. Visibility is stored as an explicit
//! code. Every record carries `seq`, the store-wide creation counter that orders records
//! created in the same microsecond.

use std::collections::BTreeMap;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::types::Timestamp;

use crate::metadefs::{
    ItemsDefinition, MetadefObject, Namespace, NamespaceVisibility, PropertyDefinition,
    ResourceTypeAssociation,
};

const METADEF_RECORD_V1: u8 = 1;

#[derive(Serialize, Deserialize)]
struct NamespaceV1 {
    seq: u64,
    display_name: Option<String>,
    description: Option<String>,
    visibility: u8,
    protected: bool,
    owner: String,
    created_at: i64,
    updated_at: i64,
}

#[derive(Serialize, Deserialize)]
struct ObjectV1 {
    seq: u64,
    description: Option<String>,
    required: Vec<String>,
    properties: Vec<(String, PropertyV1)>,
    created_at: i64,
    updated_at: i64,
}

#[derive(Serialize, Deserialize)]
struct PropertyV1 {
    title: String,
    property_type: String,
    description: Option<String>,
    operators: Option<Vec<String>>,
    default: Option<String>,
    readonly: Option<bool>,
    minimum: Option<i64>,
    maximum: Option<i64>,
    enum_values: Option<Vec<String>>,
    pattern: Option<String>,
    min_length: Option<u64>,
    max_length: Option<u64>,
    confidential: Option<bool>,
    items: Option<(String, Option<Vec<String>>)>,
    unique_items: Option<bool>,
    min_items: Option<u64>,
    max_items: Option<u64>,
    additional_items: Option<bool>,
}

#[derive(Serialize, Deserialize)]
struct AssociationV1 {
    seq: u64,
    prefix: Option<String>,
    properties_target: Option<String>,
    created_at: i64,
    updated_at: i64,
}

const fn visibility_code(visibility: NamespaceVisibility) -> u8 {
    match visibility {
        NamespaceVisibility::Public => 0,
        NamespaceVisibility::Private => 1,
    }
}

fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    let mut bytes = vec![METADEF_RECORD_V1];
    // As for images: postcard into a Vec fails only for unsupported serde types, none here.
    let body = postcard::to_allocvec(record).expect("postcard encodes plain structs into a Vec");
    bytes.extend_from_slice(&body);
    bytes
}

fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    let corrupt = |why: String| Error::Corrupt(format!("metadef {what}: {why}"));
    let (format, body) = bytes
        .split_first()
        .ok_or_else(|| corrupt("empty record".to_owned()))?;
    if *format != METADEF_RECORD_V1 {
        return Err(corrupt(format!("unknown record format {format}")));
    }
    let (record, rest) = postcard::take_from_bytes::<T>(body)
        .map_err(|err| corrupt(format!("undecodable record: {err}")))?;
    if !rest.is_empty() {
        return Err(corrupt(format!("{} trailing bytes", rest.len())));
    }
    Ok(record)
}

pub(crate) fn encode_namespace(namespace: &Namespace, seq: u64) -> Vec<u8> {
    encode(&NamespaceV1 {
        seq,
        display_name: namespace.display_name.clone(),
        description: namespace.description.clone(),
        visibility: visibility_code(namespace.visibility),
        protected: namespace.protected,
        owner: namespace.owner.clone(),
        created_at: namespace.created_at.as_unix_micros(),
        updated_at: namespace.updated_at.as_unix_micros(),
    })
}

/// The namespace stored under `name`, and its `seq`.
pub(crate) fn decode_namespace(name: &str, bytes: &[u8]) -> Result<(Namespace, u64)> {
    let record: NamespaceV1 = decode(name, bytes)?;
    let visibility = NamespaceVisibility::ALL
        .into_iter()
        .find(|v| visibility_code(*v) == record.visibility)
        .ok_or_else(|| {
            Error::Corrupt(format!(
                "metadef namespace {name}: visibility code {}",
                record.visibility
            ))
        })?;
    Ok((
        Namespace {
            namespace: name.to_owned(),
            display_name: record.display_name,
            description: record.description,
            visibility,
            protected: record.protected,
            owner: record.owner,
            created_at: Timestamp::from_unix_micros(record.created_at),
            updated_at: Timestamp::from_unix_micros(record.updated_at),
        },
        record.seq,
    ))
}

fn property_record(definition: &PropertyDefinition) -> PropertyV1 {
    PropertyV1 {
        title: definition.title.clone(),
        property_type: definition.property_type.clone(),
        description: definition.description.clone(),
        operators: definition.operators.clone(),
        default: definition.default.clone(),
        readonly: definition.readonly,
        minimum: definition.minimum,
        maximum: definition.maximum,
        enum_values: definition.enum_values.clone(),
        pattern: definition.pattern.clone(),
        min_length: definition.min_length,
        max_length: definition.max_length,
        confidential: definition.confidential,
        items: definition
            .items
            .as_ref()
            .map(|items| (items.item_type.clone(), items.enum_values.clone())),
        unique_items: definition.unique_items,
        min_items: definition.min_items,
        max_items: definition.max_items,
        additional_items: definition.additional_items,
    }
}

fn property_definition(record: PropertyV1) -> PropertyDefinition {
    PropertyDefinition {
        title: record.title,
        property_type: record.property_type,
        description: record.description,
        operators: record.operators,
        default: record.default,
        readonly: record.readonly,
        minimum: record.minimum,
        maximum: record.maximum,
        enum_values: record.enum_values,
        pattern: record.pattern,
        min_length: record.min_length,
        max_length: record.max_length,
        confidential: record.confidential,
        items: record
            .items
            .map(|(item_type, enum_values)| ItemsDefinition {
                item_type,
                enum_values,
            }),
        unique_items: record.unique_items,
        min_items: record.min_items,
        max_items: record.max_items,
        additional_items: record.additional_items,
    }
}

pub(crate) fn encode_property(definition: &PropertyDefinition) -> Vec<u8> {
    encode(&property_record(definition))
}

pub(crate) fn decode_property(name: &str, bytes: &[u8]) -> Result<PropertyDefinition> {
    decode(name, bytes).map(property_definition)
}

pub(crate) fn encode_object(object: &MetadefObject, seq: u64) -> Vec<u8> {
    encode(&ObjectV1 {
        seq,
        description: object.description.clone(),
        required: object.required.clone(),
        properties: object
            .properties
            .iter()
            .map(|(name, definition)| (name.clone(), property_record(definition)))
            .collect(),
        created_at: object.created_at.as_unix_micros(),
        updated_at: object.updated_at.as_unix_micros(),
    })
}

/// The object stored under `name`, and its `seq`.
pub(crate) fn decode_object(name: &str, bytes: &[u8]) -> Result<(MetadefObject, u64)> {
    let record: ObjectV1 = decode(name, bytes)?;
    let properties: BTreeMap<String, PropertyDefinition> = record
        .properties
        .into_iter()
        .map(|(name, property)| (name, property_definition(property)))
        .collect();
    Ok((
        MetadefObject {
            name: name.to_owned(),
            description: record.description,
            required: record.required,
            properties,
            created_at: Timestamp::from_unix_micros(record.created_at),
            updated_at: Timestamp::from_unix_micros(record.updated_at),
        },
        record.seq,
    ))
}

pub(crate) fn encode_association(association: &ResourceTypeAssociation, seq: u64) -> Vec<u8> {
    encode(&AssociationV1 {
        seq,
        prefix: association.prefix.clone(),
        properties_target: association.properties_target.clone(),
        created_at: association.created_at.as_unix_micros(),
        updated_at: association.updated_at.as_unix_micros(),
    })
}

/// The association with resource type `name`, and its `seq`.
pub(crate) fn decode_association(
    name: &str,
    bytes: &[u8],
) -> Result<(ResourceTypeAssociation, u64)> {
    let record: AssociationV1 = decode(name, bytes)?;
    Ok((
        ResourceTypeAssociation {
            name: name.to_owned(),
            prefix: record.prefix,
            properties_target: record.properties_target,
            created_at: Timestamp::from_unix_micros(record.created_at),
            updated_at: Timestamp::from_unix_micros(record.updated_at),
        },
        record.seq,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_round_trips_every_field() {
        let definition = PropertyDefinition {
            title: "Disk Bus".into(),
            property_type: "array".into(),
            description: Some("d".into()),
            operators: Some(vec!["<or>".into()]),
            default: Some("virtio".into()),
            readonly: Some(false),
            minimum: Some(-3),
            maximum: Some(7),
            enum_values: Some(vec!["a".into(), "b".into()]),
            pattern: Some("^a".into()),
            min_length: Some(0),
            max_length: Some(9),
            confidential: Some(true),
            items: Some(ItemsDefinition {
                item_type: "string".into(),
                enum_values: Some(vec!["x".into()]),
            }),
            unique_items: Some(true),
            min_items: Some(1),
            max_items: Some(4),
            additional_items: Some(false),
        };
        let bytes = encode_property(&definition);
        assert_eq!(decode_property("p", &bytes).unwrap(), definition);
    }

    #[test]
    fn rejects_unknown_formats_and_trailing_bytes() {
        let mut bytes = encode_property(&PropertyDefinition::default());
        bytes.push(0);
        assert!(matches!(
            decode_property("p", &bytes),
            Err(Error::Corrupt(_))
        ));
        bytes[0] = 9;
        assert!(matches!(
            decode_property("p", &bytes),
            Err(Error::Corrupt(_))
        ));
    }
}
