//! An image as a row of `images`, and back; members and the text forms of the enums.
//!
//! Numbers are `bigint` (a `u64` above `i64::MAX` is refused on write), times microseconds
//! since the epoch, tags a `text[]`, extra properties a `jsonb` object of strings, locations
//! a `jsonb` array of `{"url", "store"}` in their order.

use std::collections::{BTreeMap, BTreeSet};

use postgres::Row;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{i64_of, u64_of};
use crate::error::{Error, Result};
use crate::members::{Member, MemberStatus};
use crate::types::{Image, ImageId, ImageStatus, Location, Timestamp, Visibility};

pub(super) fn status(text: &str) -> Result<ImageStatus> {
    text.parse()
        .map_err(|_| Error::Corrupt(format!("image status {text:?}")))
}

pub(super) fn member_status(text: &str) -> Result<MemberStatus> {
    text.parse()
        .map_err(|_| Error::Corrupt(format!("member status {text:?}")))
}

/// The image of a row selected with [`IMAGE_COLUMNS`].
pub(super) fn image_from_row(row: &Row) -> Result<Image> {
    let id = ImageId::from_uuid(row.get::<_, Uuid>(0));
    let visibility: String = row.get(3);
    let tags: Vec<String> = row.get(18);
    let properties: Value = row.get(19);
    let locations: Value = row.get(20);
    let corrupt = |what: &str| Error::Corrupt(format!("image {id}: {what}"));
    let properties = match properties {
        Value::Object(map) => map
            .into_iter()
            .map(|(key, value)| match value {
                Value::String(text) => Ok((key, text)),
                _ => Err(corrupt("a property that is not a string")),
            })
            .collect::<Result<BTreeMap<_, _>>>()?,
        _ => return Err(corrupt("properties are not an object")),
    };
    let locations = match locations {
        Value::Array(items) => items
            .into_iter()
            .map(|item| {
                let field = |name: &str| item.get(name).and_then(Value::as_str).map(String::from);
                Ok(Location {
                    url: field("url").ok_or_else(|| corrupt("a location without url"))?,
                    store: field("store").ok_or_else(|| corrupt("a location without store"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?,
        _ => return Err(corrupt("locations are not an array")),
    };
    Ok(Image {
        id,
        name: row.get(1),
        status: status(row.get::<_, &str>(2))?,
        visibility: visibility
            .parse::<Visibility>()
            .map_err(|_| corrupt("visibility"))?,
        protected: row.get(4),
        os_hidden: row.get(5),
        checksum: row.get(6),
        os_hash_algo: row.get(7),
        os_hash_value: row.get(8),
        owner: row.get(9),
        size: row.get::<_, Option<i64>>(10).map(u64_of),
        virtual_size: row.get::<_, Option<i64>>(11).map(u64_of),
        min_ram: u64_of(row.get(12)),
        min_disk: u64_of(row.get(13)),
        disk_format: row.get(14),
        container_format: row.get(15),
        created_at: Timestamp::from_unix_micros(row.get(16)),
        updated_at: Timestamp::from_unix_micros(row.get(17)),
        tags: tags.into_iter().collect::<BTreeSet<_>>(),
        properties,
        locations,
    })
}

/// The row's `version` (after [`IMAGE_COLUMNS`]' image fields).
pub(super) fn version_of(row: &Row) -> i64 {
    row.get(21)
}

/// The upload columns: `(node, started_at µs, reserved bytes)`.
pub(super) fn upload_of(row: &Row) -> (Option<String>, Option<i64>, Option<i64>) {
    (row.get(22), row.get(23), row.get(24))
}

/// The column values of an image, as statement parameters.
pub(super) struct Columns {
    pub(super) id: Uuid,
    pub(super) name: Option<String>,
    pub(super) status: &'static str,
    pub(super) visibility: &'static str,
    pub(super) protected: bool,
    pub(super) os_hidden: bool,
    pub(super) checksum: Option<String>,
    pub(super) os_hash_algo: Option<String>,
    pub(super) os_hash_value: Option<String>,
    pub(super) owner: Option<String>,
    pub(super) size: Option<i64>,
    pub(super) virtual_size: Option<i64>,
    pub(super) min_ram: i64,
    pub(super) min_disk: i64,
    pub(super) disk_format: Option<String>,
    pub(super) container_format: Option<String>,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
    pub(super) tags: Vec<String>,
    pub(super) properties: Value,
    pub(super) locations: Value,
}

impl Columns {
    pub(super) fn of(image: &Image) -> Result<Columns> {
        let properties: serde_json::Map<String, Value> = image
            .properties
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let locations: Vec<Value> = image
            .locations
            .iter()
            .map(|l| json!({ "url": l.url, "store": l.store }))
            .collect();
        Ok(Columns {
            id: image.id.as_uuid(),
            name: image.name.clone(),
            status: image.status.as_str(),
            visibility: image.visibility.as_str(),
            protected: image.protected,
            os_hidden: image.os_hidden,
            checksum: image.checksum.clone(),
            os_hash_algo: image.os_hash_algo.clone(),
            os_hash_value: image.os_hash_value.clone(),
            owner: image.owner.clone(),
            size: image.size.map(|v| i64_of(v, "size")).transpose()?,
            virtual_size: image
                .virtual_size
                .map(|v| i64_of(v, "virtual_size"))
                .transpose()?,
            min_ram: i64_of(image.min_ram, "min_ram")?,
            min_disk: i64_of(image.min_disk, "min_disk")?,
            disk_format: image.disk_format.clone(),
            container_format: image.container_format.clone(),
            created_at: image.created_at.as_unix_micros(),
            updated_at: image.updated_at.as_unix_micros(),
            tags: image.tags.iter().cloned().collect(),
            properties: Value::Object(properties),
            locations: Value::Array(locations),
        })
    }

    /// `$1 … $21` in [`IMAGE_COLUMNS`]' order (id first).
    pub(super) fn params(&self) -> [&(dyn postgres::types::ToSql + Sync); 21] {
        [
            &self.id,
            &self.name,
            &self.status,
            &self.visibility,
            &self.protected,
            &self.os_hidden,
            &self.checksum,
            &self.os_hash_algo,
            &self.os_hash_value,
            &self.owner,
            &self.size,
            &self.virtual_size,
            &self.min_ram,
            &self.min_disk,
            &self.disk_format,
            &self.container_format,
            &self.created_at,
            &self.updated_at,
            &self.tags,
            &self.properties,
            &self.locations,
        ]
    }
}

pub(super) fn member_from_row(row: &Row) -> Result<Member> {
    let status: String = row.get(2);
    Ok(Member {
        image_id: ImageId::from_uuid(row.get(0)),
        member_id: row.get(1),
        status: member_status(&status)?,
        created_at: Timestamp::from_unix_micros(row.get(3)),
        updated_at: Timestamp::from_unix_micros(row.get(4)),
    })
}
