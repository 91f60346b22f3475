//! The on-disk encoding of an image record, kept apart from the public [`Image`] type.
//!
//! A record is one format byte followed by a postcard encoding of a private struct that mirrors
//! `Image` (the id is the table key and is not repeated):
//!
//! ```text
//! 0      format byte: RECORD_V1 = 1
//! 1..    postcard(ImageRecordV1)   (varint integers, length-prefixed strings and sequences)
//! ```
//!
//! Status and visibility are stored as the explicit one-byte codes below, never as the position
//! of a Rust enum variant. Rules for changing the format: never reorder or retype a field of
//! `ImageRecordV1`; a new layout gets a new format byte and struct, `decode` keeps reading every
//! older one, and `encode` writes the newest. Anything that does not decode is
//! [`Error::Corrupt`], never a panic.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::members::MemberStatus;
use crate::types::{Image, ImageId, ImageStatus, Location, Timestamp, Visibility};

/// The format byte of [`ImageRecordV1`].
const RECORD_V1: u8 = 1;

/// Image record, format 1. Field order is part of the disk format.
#[derive(Serialize, Deserialize)]
struct ImageRecordV1 {
    name: Option<String>,
    status: u8,
    visibility: u8,
    protected: bool,
    os_hidden: bool,
    checksum: Option<String>,
    os_hash_algo: Option<String>,
    os_hash_value: Option<String>,
    owner: Option<String>,
    size: Option<u64>,
    virtual_size: Option<u64>,
    min_ram: u64,
    min_disk: u64,
    disk_format: Option<String>,
    container_format: Option<String>,
    created_at: i64,
    updated_at: i64,
    tags: Vec<String>,
    properties: Vec<(String, String)>,
    locations: Vec<LocationV1>,
}

#[derive(Serialize, Deserialize)]
struct LocationV1 {
    url: String,
    store: String,
}

/// The stored one-byte code of a status. Part of the disk format (records and the status-count
/// table): codes are never reused or renumbered.
pub(crate) const fn status_code(status: ImageStatus) -> u8 {
    match status {
        ImageStatus::Queued => 0,
        ImageStatus::Saving => 1,
        ImageStatus::Active => 2,
        ImageStatus::Killed => 3,
        ImageStatus::Deleted => 4,
        ImageStatus::Uploading => 5,
        ImageStatus::Importing => 6,
        ImageStatus::PendingDelete => 7,
        ImageStatus::Deactivated => 8,
    }
}

pub(crate) fn status_from_code(code: u8) -> Option<ImageStatus> {
    ImageStatus::ALL
        .into_iter()
        .find(|status| status_code(*status) == code)
}

const fn visibility_code(visibility: Visibility) -> u8 {
    match visibility {
        Visibility::Public => 0,
        Visibility::Private => 1,
        Visibility::Shared => 2,
        Visibility::Community => 3,
    }
}

fn visibility_from_code(code: u8) -> Option<Visibility> {
    Visibility::ALL
        .into_iter()
        .find(|visibility| visibility_code(*visibility) == code)
}

/// The stored one-byte code of a member status (member tables). Never reused or renumbered.
pub(crate) const fn member_status_code(status: MemberStatus) -> u8 {
    match status {
        MemberStatus::Pending => 0,
        MemberStatus::Accepted => 1,
        MemberStatus::Rejected => 2,
    }
}

pub(crate) fn member_status_from_code(code: u8) -> Option<MemberStatus> {
    MemberStatus::ALL
        .into_iter()
        .find(|status| member_status_code(*status) == code)
}

/// Encodes `image` in the newest record format.
pub(crate) fn encode(image: &Image) -> Vec<u8> {
    let record = ImageRecordV1 {
        name: image.name.clone(),
        status: status_code(image.status),
        visibility: visibility_code(image.visibility),
        protected: image.protected,
        os_hidden: image.os_hidden,
        checksum: image.checksum.clone(),
        os_hash_algo: image.os_hash_algo.clone(),
        os_hash_value: image.os_hash_value.clone(),
        owner: image.owner.clone(),
        size: image.size,
        virtual_size: image.virtual_size,
        min_ram: image.min_ram,
        min_disk: image.min_disk,
        disk_format: image.disk_format.clone(),
        container_format: image.container_format.clone(),
        created_at: image.created_at.as_unix_micros(),
        updated_at: image.updated_at.as_unix_micros(),
        tags: image.tags.iter().cloned().collect(),
        properties: image
            .properties
            .iter()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect(),
        locations: image
            .locations
            .iter()
            .map(|location| LocationV1 {
                url: location.url.clone(),
                store: location.store.clone(),
            })
            .collect(),
    };
    let mut bytes = vec![RECORD_V1];
    // Serializing plain owned data into a Vec has no failure mode (postcard fails only on a full
    // fixed buffer or on serde types it does not support, neither of which occurs here).
    let body = postcard::to_allocvec(&record).expect("postcard encodes plain structs into a Vec");
    bytes.extend_from_slice(&body);
    bytes
}

/// Decodes the record stored under `id`.
pub(crate) fn decode(id: ImageId, bytes: &[u8]) -> Result<Image> {
    #[cfg(test)]
    tests::count_decode();
    let corrupt = |what: &str| Error::Corrupt(format!("image {id}: {what}"));
    let (format, body) = bytes.split_first().ok_or_else(|| corrupt("empty record"))?;
    match *format {
        RECORD_V1 => {
            let (record, rest) = postcard::take_from_bytes::<ImageRecordV1>(body)
                .map_err(|err| corrupt(&format!("undecodable record: {err}")))?;
            if !rest.is_empty() {
                return Err(corrupt(&format!("{} trailing bytes", rest.len())));
            }
            Ok(Image {
                id,
                name: record.name,
                status: status_from_code(record.status)
                    .ok_or_else(|| corrupt(&format!("unknown status code {}", record.status)))?,
                visibility: visibility_from_code(record.visibility).ok_or_else(|| {
                    corrupt(&format!("unknown visibility code {}", record.visibility))
                })?,
                protected: record.protected,
                os_hidden: record.os_hidden,
                checksum: record.checksum,
                os_hash_algo: record.os_hash_algo,
                os_hash_value: record.os_hash_value,
                owner: record.owner,
                size: record.size,
                virtual_size: record.virtual_size,
                min_ram: record.min_ram,
                min_disk: record.min_disk,
                disk_format: record.disk_format,
                container_format: record.container_format,
                created_at: Timestamp::from_unix_micros(record.created_at),
                updated_at: Timestamp::from_unix_micros(record.updated_at),
                tags: record.tags.into_iter().collect(),
                properties: record.properties.into_iter().collect(),
                locations: record
                    .locations
                    .into_iter()
                    .map(|location| Location {
                        url: location.url,
                        store: location.store,
                    })
                    .collect(),
            })
        }
        other => Err(corrupt(&format!("unknown record format {other}"))),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::cell::Cell;

    use super::*;

    thread_local! {
        static DECODED: Cell<u64> = const { Cell::new(0) };
    }

    pub(crate) fn count_decode() {
        DECODED.with(|count| count.set(count.get() + 1));
    }

    /// How many records this thread has decoded so far.
    pub(crate) fn decoded_records() -> u64 {
        DECODED.with(Cell::get)
    }

    fn sample() -> Image {
        let mut image = Image::new(
            "b2173dd3-7ad6-4362-baa6-a68bce3565cb".parse().unwrap(),
            Timestamp::from_unix_micros(1_448_835_702_000_000),
        );
        image.name = Some("Ubuntu".into());
        image.status = ImageStatus::Active;
        image.visibility = Visibility::Community;
        image.protected = true;
        image.checksum = Some("ffa2d2a0b6c1f4d6b0e8b2c7f6c1c4a5".into());
        image.os_hash_algo = Some("sha512".into());
        image.os_hash_value = Some("ab".repeat(64));
        image.size = Some(13_287_936);
        image.virtual_size = Some(46_137_344);
        image.min_ram = 512;
        image.disk_format = Some("qcow2".into());
        image.container_format = Some("bare".into());
        image.updated_at = Timestamp::from_unix_micros(1_448_835_705_000_000);
        image.tags = ["fedora".to_string(), "beefy".to_string()].into();
        image.properties = [("hw_disk_bus".to_string(), "virtio".to_string())].into();
        image.locations = vec![Location {
            url: "file:///images/b2173dd3".into(),
            store: "file".into(),
        }];
        image
    }

    #[test]
    fn round_trips_every_field() {
        let image = sample();
        let bytes = encode(&image);
        assert_eq!(bytes[0], RECORD_V1);
        assert_eq!(decode(image.id, &bytes).unwrap(), image);
    }

    #[test]
    fn codes_round_trip_and_are_distinct() {
        for status in ImageStatus::ALL {
            assert_eq!(status_from_code(status_code(status)), Some(status));
        }
        for visibility in Visibility::ALL {
            assert_eq!(
                visibility_from_code(visibility_code(visibility)),
                Some(visibility)
            );
        }
        for status in MemberStatus::ALL {
            assert_eq!(
                member_status_from_code(member_status_code(status)),
                Some(status)
            );
        }
    }

    #[test]
    fn rejects_undecodable_records() {
        let image = sample();
        let good = encode(&image);
        let mut unknown_format = good.clone();
        unknown_format[0] = 99;
        let mut trailing = good.clone();
        trailing.push(0);
        let truncated = &good[..good.len() - 3];
        for bytes in [&[][..], &unknown_format, &trailing, truncated, &[RECORD_V1]] {
            assert!(matches!(decode(image.id, bytes), Err(Error::Corrupt(_))));
        }
    }

    #[test]
    fn rejects_unknown_status_code() {
        let mut image = sample();
        image.name = None;
        let mut bytes = encode(&image);
        // Layout: format byte, name None (0), then the status code.
        assert_eq!(bytes[2], status_code(ImageStatus::Active));
        bytes[2] = 42;
        assert!(matches!(decode(image.id, &bytes), Err(Error::Corrupt(_))));
    }
}
