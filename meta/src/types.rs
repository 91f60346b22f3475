//! The domain types meta stores and returns: [`Image`] and the values it is made of.
//!
//! These types are the public face of the store. They carry no serde derives on purpose: their
//! on-disk form is a separate, versioned record (see `record.rs`), so changing a public type can
//! never silently change the disk format. JSON rendering belongs to the gateway.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

/// A value could not be parsed from its text form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: {input:?}")]
pub struct ParseError {
    what: &'static str,
    input: String,
}

impl ParseError {
    pub(crate) fn new(what: &'static str, input: &str) -> ParseError {
        ParseError {
            what,
            input: input.to_owned(),
        }
    }

    /// What kind of value was expected, e.g. `"image id"`.
    pub fn what(&self) -> &'static str {
        self.what
    }

    /// The text that failed to parse.
    pub fn input(&self) -> &str {
        &self.input
    }
}

/// The id of an image: a UUID, shown in its hyphenated lowercase form.
///
/// Parsing accepts only the canonical `8-4-4-4-12` form that Glance's schema allows (either
/// letter case); braces, `urn:uuid:` prefixes and the unhyphenated form are rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImageId(Uuid);

impl ImageId {
    /// A new random (version 4) id, as Glance generates when the client gives none.
    pub fn new_v4() -> ImageId {
        ImageId(Uuid::new_v4())
    }

    /// Wraps an existing UUID.
    pub const fn from_uuid(uuid: Uuid) -> ImageId {
        ImageId(uuid)
    }

    /// The UUID inside.
    pub const fn as_uuid(&self) -> Uuid {
        self.0
    }

    /// The id as a big-endian integer: the key of the images table. Numeric order of this value
    /// equals the lexicographic order of the hyphenated lowercase text, so sorting by `id`
    /// agrees with Glance's string column.
    pub(crate) const fn to_key(self) -> u128 {
        self.0.as_u128()
    }

    pub(crate) const fn from_key(key: u128) -> ImageId {
        ImageId(Uuid::from_u128(key))
    }
}

impl From<Uuid> for ImageId {
    fn from(uuid: Uuid) -> ImageId {
        ImageId(uuid)
    }
}

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl FromStr for ImageId {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<ImageId, ParseError> {
        let bytes = text.as_bytes();
        let canonical = bytes.len() == 36
            && bytes.iter().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => *b == b'-',
                _ => b.is_ascii_hexdigit(),
            });
        if !canonical {
            return Err(ParseError::new("image id", text));
        }
        Uuid::try_parse(text)
            .map(ImageId)
            .map_err(|_| ParseError::new("image id", text))
    }
}

/// The status of an image (spec §3.5). Names are Glance's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageStatus {
    /// The record exists and has no data.
    Queued,
    /// Data is being uploaded through `PUT /file`.
    Saving,
    /// Data is available.
    Active,
    /// Legacy error state; the v2 upload path never produces it.
    Killed,
    /// Soft-deleted. meta keeps only a tombstone and reports such images as not found.
    Deleted,
    /// Data was staged through `PUT /stage` and awaits import.
    Uploading,
    /// An import task is moving data to the store.
    Importing,
    /// Deleted with delayed delete; the data awaits the scrubber.
    PendingDelete,
    /// Data download is blocked for non-admins.
    Deactivated,
}

impl ImageStatus {
    /// Every status, in declaration order.
    pub const ALL: [ImageStatus; 9] = [
        ImageStatus::Queued,
        ImageStatus::Saving,
        ImageStatus::Active,
        ImageStatus::Killed,
        ImageStatus::Deleted,
        ImageStatus::Uploading,
        ImageStatus::Importing,
        ImageStatus::PendingDelete,
        ImageStatus::Deactivated,
    ];

    /// The Glance name, e.g. `"pending_delete"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ImageStatus::Queued => "queued",
            ImageStatus::Saving => "saving",
            ImageStatus::Active => "active",
            ImageStatus::Killed => "killed",
            ImageStatus::Deleted => "deleted",
            ImageStatus::Uploading => "uploading",
            ImageStatus::Importing => "importing",
            ImageStatus::PendingDelete => "pending_delete",
            ImageStatus::Deactivated => "deactivated",
        }
    }

    /// Whether the spec's transition table (§3.5) allows going from `self` to `to`.
    ///
    /// This is the table alone; the extra rule about formats is checked by the store, which
    /// knows the image. A status never "transitions" to itself.
    pub const fn can_become(self, to: ImageStatus) -> bool {
        use ImageStatus::*;
        matches!(
            (self, to),
            (Queued, Saving | Uploading | Importing | Active | Deleted)
                | (Saving, Active | Killed | Deleted | Queued)
                | (Uploading, Importing | Queued | Deleted)
                | (Importing, Active | Deleted | Queued)
                | (Active, PendingDelete | Deleted | Deactivated)
                | (Killed, Deleted)
                | (PendingDelete, Deleted | Active)
                | (Deactivated, Active | Deleted)
        )
    }

    /// Whether going from `self` to `to` requires both `disk_format` and `container_format`:
    /// leaving `queued` or `uploading` towards `saving`, `active` or `importing`.
    pub const fn needs_formats(self, to: ImageStatus) -> bool {
        use ImageStatus::*;
        matches!(
            (self, to),
            (Queued | Uploading, Saving | Active | Importing)
        )
    }
}

impl fmt::Display for ImageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ImageStatus {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<ImageStatus, ParseError> {
        ImageStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| ParseError::new("image status", text))
    }
}

/// Who may see an image (spec §8.1). Names are Glance's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Visibility {
    /// Everyone.
    Public,
    /// The owner only.
    Private,
    /// The owner and its members; Glance's default for new images.
    Shared,
    /// Everyone who asks for community images.
    Community,
}

impl Visibility {
    /// Every visibility, in declaration order.
    pub const ALL: [Visibility; 4] = [
        Visibility::Public,
        Visibility::Private,
        Visibility::Shared,
        Visibility::Community,
    ];

    /// The Glance name, e.g. `"community"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Private => "private",
            Visibility::Shared => "shared",
            Visibility::Community => "community",
        }
    }
}

impl fmt::Display for Visibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Visibility {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Visibility, ParseError> {
        Visibility::ALL
            .into_iter()
            .find(|visibility| visibility.as_str() == text)
            .ok_or_else(|| ParseError::new("visibility", text))
    }
}

/// A point in time: microseconds since the Unix epoch (UTC). The gateway formats it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current time of the system clock.
    pub fn now() -> Timestamp {
        let micros = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_micros()).unwrap_or(i64::MAX),
            Err(before) => i64::try_from(before.duration().as_micros())
                .map(|micros| -micros)
                .unwrap_or(i64::MIN),
        };
        Timestamp(micros)
    }

    /// The time `micros` microseconds after the Unix epoch (before it when negative).
    pub const fn from_unix_micros(micros: i64) -> Timestamp {
        Timestamp(micros)
    }

    /// Microseconds since the Unix epoch.
    pub const fn as_unix_micros(self) -> i64 {
        self.0
    }
}

/// Where an image's data lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    /// The data's URL, e.g. `file:///var/lib/glint/images/<id>`.
    pub url: String,
    /// The id of the store holding it.
    pub store: String,
}

/// An image record: Glance's base properties, its tags, extra properties and locations.
///
/// `None` stands for Glance's JSON `null`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The image's id; never changes.
    pub id: ImageId,
    /// Display name; not unique.
    pub name: Option<String>,
    /// Lifecycle status; changed only through the store's transition operations.
    pub status: ImageStatus,
    /// Who may see the image.
    pub visibility: Visibility,
    /// When true the image cannot be deleted.
    pub protected: bool,
    /// When true the image is left out of default listings.
    pub os_hidden: bool,
    /// Lowercase hex MD5 of the data.
    pub checksum: Option<String>,
    /// The algorithm of `os_hash_value`, e.g. `"sha512"`.
    pub os_hash_algo: Option<String>,
    /// Lowercase hex digest of the data with `os_hash_algo`.
    pub os_hash_value: Option<String>,
    /// The owning project id.
    pub owner: Option<String>,
    /// Bytes of stored data; `None` until data exists.
    pub size: Option<u64>,
    /// Bytes of the virtual disk, from header inspection.
    pub virtual_size: Option<u64>,
    /// Minimum RAM in MiB needed to boot the image.
    pub min_ram: u64,
    /// Minimum disk in GiB needed to boot the image.
    pub min_disk: u64,
    /// Disk format, e.g. `"qcow2"`.
    pub disk_format: Option<String>,
    /// Container format, e.g. `"bare"`.
    pub container_format: Option<String>,
    /// When the image was created; never changes.
    pub created_at: Timestamp,
    /// When the image was last written; the store sets it on every write.
    pub updated_at: Timestamp,
    /// Tags, a set.
    pub tags: BTreeSet<String>,
    /// Extra (additional) properties, string to string.
    pub properties: BTreeMap<String, String>,
    /// Where the data lives; empty until data exists.
    pub locations: Vec<Location>,
}

impl Image {
    /// A new `queued` image with Glance's defaults (`shared`, not protected, not hidden, no
    /// data), created and updated at `now`.
    pub fn new(id: ImageId, now: Timestamp) -> Image {
        Image {
            id,
            name: None,
            status: ImageStatus::Queued,
            visibility: Visibility::Shared,
            protected: false,
            os_hidden: false,
            checksum: None,
            os_hash_algo: None,
            os_hash_value: None,
            owner: None,
            size: None,
            virtual_size: None,
            min_ram: 0,
            min_disk: 0,
            disk_format: None,
            container_format: None,
            created_at: now,
            updated_at: now,
            tags: BTreeSet::new(),
            properties: BTreeMap::new(),
            locations: Vec::new(),
        }
    }
}

/// The id of a gateway node: who runs an upload. Several gateways sharing one database each
/// have their own, so that one never resets another's uploads in flight.
///
/// Any non-empty text of at most 255 printable ASCII characters without spaces.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(String);

impl NodeId {
    /// The longest node id, in bytes.
    pub const MAX_LEN: usize = 255;

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for NodeId {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<NodeId, ParseError> {
        let valid = !text.is_empty()
            && text.len() <= NodeId::MAX_LEN
            && text.bytes().all(|b| b.is_ascii_graphic());
        if valid {
            Ok(NodeId(text.to_owned()))
        } else {
            Err(ParseError::new("node id", text))
        }
    }
}

/// A node's claim on an image's upload, for [`Backend::begin_upload`](crate::Backend::begin_upload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadClaim {
    /// `saving` (`PUT /file`) or `uploading` (`PUT /stage`).
    pub to: ImageStatus,
    /// The node that runs the upload, recorded until the upload ends.
    pub node: NodeId,
    /// The announced size, if any, checked against the owner's size quota before any data.
    pub incoming_bytes: Option<u64>,
}

/// Who runs an image's upload, while it is `saving` or `uploading`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadState {
    /// The node that began it.
    pub node: NodeId,
    /// When it began.
    pub started_at: Timestamp,
}

/// An upload just begun by [`Backend::begin_upload`](crate::Backend::begin_upload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadStart {
    /// The image, now receiving data.
    pub image: Image,
    /// Bytes the owner's `image_size_total` still allows (before this upload), so that a
    /// stream can stop there; `None` when unlimited or the image has no owner.
    pub size_left: Option<u64>,
}

/// What a finished upload learned about the data, recorded by
/// [`Backend::complete_upload`](crate::Backend::complete_upload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadOutcome {
    /// Bytes received.
    pub size: u64,
    /// Lowercase hex MD5 of the data.
    pub checksum: String,
    /// The algorithm of `os_hash_value`.
    pub os_hash_algo: String,
    /// Lowercase hex digest of the data with `os_hash_algo`.
    pub os_hash_value: String,
    /// Bytes of the virtual disk, when inspection found one.
    pub virtual_size: Option<u64>,
    /// Where the data was written.
    pub location: Location,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_id_round_trips_in_lowercase() {
        let id: ImageId = "B2173DD3-7AD6-4362-BAA6-A68BCE3565CB".parse().unwrap();
        assert_eq!(id.to_string(), "b2173dd3-7ad6-4362-baa6-a68bce3565cb");
        assert_eq!(id.to_string().parse::<ImageId>().unwrap(), id);
    }

    #[test]
    fn image_id_rejects_non_canonical_forms() {
        for text in [
            "",
            "b2173dd37ad64362baa6a68bce3565cb",
            "{b2173dd3-7ad6-4362-baa6-a68bce3565cb}",
            "urn:uuid:b2173dd3-7ad6-4362-baa6-a68bce3565cb",
            "b2173dd3-7ad6-4362-baa6-a68bce3565c",
            "b2173dd3-7ad6-4362-baa6-a68bce3565cbb",
            "b2173dd3-7ad6-4362-baa6-a68bce3565cg",
            "b2173dd37-ad6-4362-baa6-a68bce3565cb",
            "b2173dd3-7ad6-4362-baa6-a68bce3565c\u{e9}",
        ] {
            let err = text.parse::<ImageId>().unwrap_err();
            assert_eq!(err.what(), "image id");
            assert_eq!(err.input(), text);
        }
    }

    #[test]
    fn image_id_key_order_matches_text_order() {
        let mut ids: Vec<ImageId> = (0..200).map(|_| ImageId::new_v4()).collect();
        ids.sort_by_key(|id| id.to_key());
        let texts: Vec<String> = ids.iter().map(ToString::to_string).collect();
        let mut sorted = texts.clone();
        sorted.sort();
        assert_eq!(texts, sorted);
        assert!(ids.iter().all(|id| ImageId::from_key(id.to_key()) == *id));
    }

    #[test]
    fn status_names_round_trip() {
        for status in ImageStatus::ALL {
            assert_eq!(status.to_string().parse::<ImageStatus>().unwrap(), status);
        }
        assert_eq!(ImageStatus::PendingDelete.to_string(), "pending_delete");
        assert!("Active".parse::<ImageStatus>().is_err());
        assert!("pending-delete".parse::<ImageStatus>().is_err());
    }

    #[test]
    fn visibility_names_round_trip() {
        for visibility in Visibility::ALL {
            assert_eq!(
                visibility.to_string().parse::<Visibility>().unwrap(),
                visibility
            );
        }
        assert!("all".parse::<Visibility>().is_err());
    }

    #[test]
    fn transition_table_matches_spec() {
        use ImageStatus::*;
        let allowed: &[(ImageStatus, &[ImageStatus])] = &[
            (Queued, &[Saving, Uploading, Importing, Active, Deleted]),
            (Saving, &[Active, Killed, Deleted, Queued]),
            (Uploading, &[Importing, Queued, Deleted]),
            (Importing, &[Active, Deleted, Queued]),
            (Active, &[PendingDelete, Deleted, Deactivated]),
            (Killed, &[Deleted]),
            (PendingDelete, &[Deleted, Active]),
            (Deleted, &[]),
            (Deactivated, &[Active, Deleted]),
        ];
        for (from, targets) in allowed {
            for to in ImageStatus::ALL {
                assert_eq!(from.can_become(to), targets.contains(&to), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn formats_rule_covers_leaving_queued_and_uploading() {
        use ImageStatus::*;
        for from in ImageStatus::ALL {
            for to in ImageStatus::ALL {
                let expected =
                    matches!(from, Queued | Uploading) && matches!(to, Saving | Active | Importing);
                assert_eq!(from.needs_formats(to), expected, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn node_ids_are_printable_ascii_without_spaces() {
        let node: NodeId = "gw-1.example".parse().unwrap();
        assert_eq!(node.as_str(), "gw-1.example");
        assert_eq!(node.to_string(), "gw-1.example");
        for bad in ["", "a b", "caf\u{e9}", "tab\there"] {
            assert_eq!(bad.parse::<NodeId>().unwrap_err().what(), "node id");
        }
        assert!("x".repeat(255).parse::<NodeId>().is_ok());
        assert!("x".repeat(256).parse::<NodeId>().is_err());
    }

    #[test]
    fn timestamp_now_is_after_2020() {
        assert!(Timestamp::now().as_unix_micros() > 1_577_836_800_000_000);
        assert_eq!(Timestamp::from_unix_micros(-5).as_unix_micros(), -5);
    }
}
