//! The on-disk layout: table definitions, index keys, the schema version and its migrations.
//!
//! Tables (schema version 5; version 4 had all but the task tables, which `tasks.rs` lists;
//! version 3 also lacked the metadef tables, which `metadefs/tables.rs` lists; version 2 also
//! lacked `image_uploads`, version 1 also the member and usage tables):
//!
//! | table                         | key                     | value                       |
//! |-------------------------------|-------------------------|-----------------------------|
//! | `schema`                      | `&str` (`"version"`)    | `u64` schema version        |
//! | `images`                      | `u128` image id         | `&[u8]` record (`record.rs`) |
//! | `image_tombstones`            | `u128` image id         | `i64` deleted_at (µs)       |
//! | `image_status_counts`         | `u8` status code        | `u64` live images           |
//! | `images_by_<sort key>` (×7)   | `(&[u8], i64, u128)`    | `()`                        |
//! | `image_members`               | `(u128, &str)` image, project | `(u8, i64, i64)` status, created_at, updated_at (µs) |
//! | `members_by_project`          | `(&str, u128)` project, image | `u8` status          |
//! | `project_usage`               | `&str` owner            | `(u64, u64, u64)` images, bytes, uploading |
//! | `image_uploads`               | `u128` image id         | `(&str, i64)` node id, started_at (µs) |
//! | `image_upload_reservations`   | `u128` image id         | `u64` bytes reserved        |
//!
//! `image_upload_reservations` holds the size an upload under way announced, counted against
//! its owner's `image_size_total` until the upload ends. Its rows live only as long as an
//! upload, so it is not versioned: every open creates it if missing (a file written before it
//! existed has no upload in flight to reserve for, and an older glint ignores it).
//!
//! `images` holds live images only (every status but `deleted`); a deleted image moves to
//! `image_tombstones`, which keeps its id taken. Ids are stored as the big-endian `u128` of the
//! UUID, so key order equals the order of the hyphenated text.
//!
//! Each sort key but `id` has an index whose key is `(sort value, created_at, id)`. The sort
//! value is encoded so that byte order equals value order: strings as their UTF-8 bytes (NULL as
//! `""`), `size` as a big-endian `u64` (NULL as 0), timestamps as a big-endian `i64` with the
//! sign bit flipped, status as its Glance name (Glance sorts the status column as text). Sorting
//! by `id` walks `images` itself. Every write keeps all indexes and the status counts in step
//! with `images` inside the same transaction.
//!
//! The two member tables hold the same rows in both key orders; `project_usage` is the sum of
//! [`Usage::of`] over the live images of each owner. `image_uploads` names the node running
//! each upload begun through `begin_upload`: a row exists only while its image is `saving` or
//! `uploading`. All are kept in step by every write.
//!
//! Adding a table later: define it here, create it in [`create_tables`], and append a migration
//! step to [`MIGRATIONS`] that creates (and, if needed, fills) it for databases of the version
//! before; bump [`CURRENT_VERSION`]. Steps run in order inside one transaction, so a file
//! several versions old takes every step at once.

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::{record, StorageResultExt};
use crate::error::{Error, Result};
use crate::quota::Usage;
use crate::sort::SortKey;
use crate::types::{Image, ImageId};

/// The schema version this build writes.
pub(crate) const CURRENT_VERSION: u32 = 5;

/// Migration steps: `MIGRATIONS[i]` turns a version `i + 1` database into version `i + 2`,
/// inside the open-time write transaction.
const MIGRATIONS: &[fn(&WriteTransaction) -> Result<()>] = &[
    migrate_1_to_2,
    migrate_2_to_3,
    migrate_3_to_4,
    migrate_4_to_5,
];

pub(crate) const SCHEMA: TableDefinition<&str, u64> = TableDefinition::new("schema");
const VERSION_KEY: &str = "version";

pub(crate) const IMAGES: TableDefinition<u128, &[u8]> = TableDefinition::new("images");
pub(crate) const TOMBSTONES: TableDefinition<u128, i64> = TableDefinition::new("image_tombstones");
pub(crate) const STATUS_COUNTS: TableDefinition<u8, u64> =
    TableDefinition::new("image_status_counts");

/// `(image, member project)` → `(status code, created_at µs, updated_at µs)`.
pub(crate) const MEMBERS: TableDefinition<(u128, &str), (u8, i64, i64)> =
    TableDefinition::new("image_members");
/// `(member project, image)` → status code.
pub(crate) const MEMBERS_BY_PROJECT: TableDefinition<(&str, u128), u8> =
    TableDefinition::new("members_by_project");
/// owner → `(image count, size bytes, uploading count)`.
pub(crate) const PROJECT_USAGE: TableDefinition<&str, (u64, u64, u64)> =
    TableDefinition::new("project_usage");
/// image → `(node id, started_at µs)` of the upload it is receiving.
pub(crate) const UPLOADS: TableDefinition<u128, (&str, i64)> =
    TableDefinition::new("image_uploads");

/// image → bytes its upload under way reserved (`quota.rs`).
pub(crate) const RESERVATIONS: TableDefinition<u128, u64> =
    TableDefinition::new("image_upload_reservations");

/// The key of every index table: (encoded sort value, created_at µs, id).
pub(crate) type IndexKey<'a> = (&'a [u8], i64, u128);
pub(crate) type IndexTable = TableDefinition<'static, IndexKey<'static>, ()>;

const BY_NAME: IndexTable = TableDefinition::new("images_by_name");
const BY_STATUS: IndexTable = TableDefinition::new("images_by_status");
const BY_CONTAINER_FORMAT: IndexTable = TableDefinition::new("images_by_container_format");
const BY_DISK_FORMAT: IndexTable = TableDefinition::new("images_by_disk_format");
const BY_SIZE: IndexTable = TableDefinition::new("images_by_size");
const BY_CREATED_AT: IndexTable = TableDefinition::new("images_by_created_at");
const BY_UPDATED_AT: IndexTable = TableDefinition::new("images_by_updated_at");

/// The indexed sort keys and their tables, in a fixed order.
pub(crate) const INDEXES: [(SortKey, IndexTable); 7] = [
    (SortKey::Name, BY_NAME),
    (SortKey::Status, BY_STATUS),
    (SortKey::ContainerFormat, BY_CONTAINER_FORMAT),
    (SortKey::DiskFormat, BY_DISK_FORMAT),
    (SortKey::Size, BY_SIZE),
    (SortKey::CreatedAt, BY_CREATED_AT),
    (SortKey::UpdatedAt, BY_UPDATED_AT),
];

/// The index table of `key`; `None` for `id`, which walks `images`.
pub(crate) fn index_table(key: SortKey) -> Option<IndexTable> {
    INDEXES
        .iter()
        .find(|(indexed, _)| *indexed == key)
        .map(|(_, table)| *table)
}

/// Order-preserving bytes of a timestamp or other `i64`.
pub(crate) fn encode_i64(value: i64) -> [u8; 8] {
    ((value as u64) ^ (1 << 63)).to_be_bytes()
}

/// The encoded sort value of `image` under `key`; byte order equals the listing order's value
/// order. For `id` this is the 16 big-endian bytes of the UUID.
pub(crate) fn sort_value(image: &Image, key: SortKey) -> Vec<u8> {
    let text = |value: &Option<String>| value.as_deref().unwrap_or("").as_bytes().to_vec();
    match key {
        SortKey::Name => text(&image.name),
        SortKey::Status => image.status.as_str().as_bytes().to_vec(),
        SortKey::ContainerFormat => text(&image.container_format),
        SortKey::DiskFormat => text(&image.disk_format),
        SortKey::Size => image.size.unwrap_or(0).to_be_bytes().to_vec(),
        SortKey::Id => image.id.to_key().to_be_bytes().to_vec(),
        SortKey::CreatedAt => encode_i64(image.created_at.as_unix_micros()).to_vec(),
        SortKey::UpdatedAt => encode_i64(image.updated_at.as_unix_micros()).to_vec(),
    }
}

/// Creates every table of the current version (a no-op for tables that exist).
fn create_tables(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(SCHEMA).storage()?;
    txn.open_table(IMAGES).storage()?;
    txn.open_table(TOMBSTONES).storage()?;
    txn.open_table(STATUS_COUNTS).storage()?;
    for (_, table) in INDEXES {
        txn.open_table(table).storage()?;
    }
    txn.open_table(MEMBERS).storage()?;
    txn.open_table(MEMBERS_BY_PROJECT).storage()?;
    txn.open_table(PROJECT_USAGE).storage()?;
    txn.open_table(UPLOADS).storage()?;
    txn.open_table(RESERVATIONS).storage()?;
    super::metadefs::tables::create(txn)?;
    super::tasks::create(txn)?;
    Ok(())
}

/// Version 5 adds the task tables, empty (no earlier version had tasks).
fn migrate_4_to_5(txn: &WriteTransaction) -> Result<()> {
    super::tasks::create(txn)
}

/// Version 4 adds the metadef tables, empty (no earlier version had metadefs).
fn migrate_3_to_4(txn: &WriteTransaction) -> Result<()> {
    super::metadefs::tables::create(txn)
}

/// Version 2 adds members (empty: version 1 had none) and per-owner usage, computed once from
/// every image.
fn migrate_1_to_2(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(MEMBERS).storage()?;
    txn.open_table(MEMBERS_BY_PROJECT).storage()?;
    let mut totals: std::collections::BTreeMap<String, Usage> = Default::default();
    {
        let images = txn.open_table(IMAGES).storage()?;
        for entry in images.iter().storage()? {
            let (key, bytes) = entry.storage()?;
            let image = record::decode(ImageId::from_key(key.value()), bytes.value())?;
            if let Some(owner) = &image.owner {
                let add = Usage::of(&image);
                let total = totals.entry(owner.clone()).or_default();
                total.image_count += add.image_count;
                total.size_bytes += add.size_bytes;
                total.uploading_count += add.uploading_count;
            }
        }
    }
    let mut usage = txn.open_table(PROJECT_USAGE).storage()?;
    for (owner, total) in &totals {
        usage
            .insert(
                owner.as_str(),
                (total.image_count, total.size_bytes, total.uploading_count),
            )
            .storage()?;
    }
    Ok(())
}

/// Version 3 records which node runs each upload (empty: the uploads of older versions have no
/// recorded owner, and the recovery of whichever node opens the file resets them).
fn migrate_2_to_3(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(UPLOADS).storage()?;
    Ok(())
}

/// Brings a database to [`CURRENT_VERSION`] inside `txn`: creates the tables of a new one, runs
/// the migration steps of an older one, refuses a newer one. Returns the version now recorded.
pub(crate) fn create_or_migrate(txn: &WriteTransaction) -> Result<u32> {
    let recorded = {
        let schema = txn.open_table(SCHEMA).storage()?;
        let version = schema
            .get(VERSION_KEY)
            .storage()?
            .map(|guard| guard.value());
        version
    };
    let Some(recorded) = recorded else {
        create_tables(txn)?;
        write_version(txn, CURRENT_VERSION)?;
        return Ok(CURRENT_VERSION);
    };
    let recorded = u32::try_from(recorded)
        .ok()
        .filter(|version| *version >= 1)
        .ok_or_else(|| Error::Corrupt(format!("invalid schema version {recorded}")))?;
    if recorded > CURRENT_VERSION {
        return Err(Error::SchemaTooNew {
            found: recorded,
            supported: CURRENT_VERSION,
        });
    }
    for version in recorded..CURRENT_VERSION {
        // `version` >= 1, so the index is in range: MIGRATIONS has CURRENT_VERSION - 1 steps.
        let step = MIGRATIONS[(version - 1) as usize];
        step(txn)?;
        write_version(txn, version + 1)?;
    }
    // Unversioned (see the module docs).
    txn.open_table(RESERVATIONS).storage()?;
    Ok(CURRENT_VERSION)
}

fn write_version(txn: &WriteTransaction, version: u32) -> Result<()> {
    let mut schema = txn.open_table(SCHEMA).storage()?;
    schema.insert(VERSION_KEY, u64::from(version)).storage()?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Overwrites the recorded schema version, to test refusal of newer files.
    pub(crate) fn force_version(txn: &WriteTransaction, version: u64) {
        let mut schema = txn.open_table(SCHEMA).unwrap();
        schema.insert(VERSION_KEY, version).unwrap();
    }

    #[test]
    fn migrations_cover_every_older_version() {
        assert_eq!(MIGRATIONS.len(), (CURRENT_VERSION - 1) as usize);
    }

    #[test]
    fn i64_encoding_preserves_order() {
        let values = [i64::MIN, -1_000_000, -1, 0, 1, 42, 1 << 40, i64::MAX];
        for pair in values.windows(2) {
            assert!(encode_i64(pair[0]) < encode_i64(pair[1]), "{pair:?}");
        }
    }

    #[test]
    fn every_sort_key_but_id_has_one_index() {
        for key in SortKey::ALL {
            assert_eq!(index_table(key).is_some(), key != SortKey::Id, "{key:?}");
        }
    }
}
