//! Reads of single images and of the kept sums: an image, the counts, a project's usage, an
//! upload's owner. Each one is a lookup or a short range in one read transaction; the helpers
//! take any readable table so that writes reuse them inside their own transaction.

use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata};

use super::schema::{IMAGES, PROJECT_USAGE, RESERVATIONS, STATUS_COUNTS, TOMBSTONES, UPLOADS};
use super::{record, StorageResultExt};
use crate::error::{Error, Result};
use crate::quota::Usage;
use crate::types::{Image, ImageId, ImageStatus, NodeId, Timestamp, UploadState};

/// Reads and decodes the live image `id`, if any.
pub(super) fn load(
    images: &impl ReadableTable<u128, &'static [u8]>,
    id: ImageId,
) -> Result<Option<Image>> {
    match images.get(id.to_key()).storage()? {
        Some(guard) => record::decode(id, guard.value()).map(Some),
        None => Ok(None),
    }
}

pub(super) fn get_image(txn: &ReadTransaction, id: ImageId) -> Result<Image> {
    let images = txn.open_table(IMAGES).storage()?;
    load(&images, id)?.ok_or(Error::NotFound(id))
}

/// A lookup in the tombstones.
pub(super) fn was_deleted(txn: &ReadTransaction, id: ImageId) -> Result<bool> {
    let tombstones = txn.open_table(TOMBSTONES).storage()?;
    Ok(tombstones.get(id.to_key()).storage()?.is_some())
}

/// Live images: the length of `images`, one table header.
pub(super) fn count_images(txn: &ReadTransaction) -> Result<u64> {
    txn.open_table(IMAGES).storage()?.len().storage()
}

/// From the status-count table of at most nine rows.
pub(super) fn images_by_status(txn: &ReadTransaction) -> Result<Vec<(ImageStatus, u64)>> {
    let counts = txn.open_table(STATUS_COUNTS).storage()?;
    let mut out = Vec::with_capacity(ImageStatus::ALL.len());
    for status in ImageStatus::ALL {
        if status == ImageStatus::Deleted {
            continue;
        }
        let count = counts
            .get(record::status_code(status))
            .storage()?
            .map_or(0, |guard| guard.value());
        out.push((status, count));
    }
    Ok(out)
}

pub(super) fn usage(txn: &ReadTransaction, project: &str) -> Result<Usage> {
    let mut usage = read_usage(&txn.open_table(PROJECT_USAGE).storage()?, project)?;
    usage.reserved_bytes = reserved_by(
        &txn.open_table(IMAGES).storage()?,
        &txn.open_table(RESERVATIONS).storage()?,
        project,
        None,
    )?;
    Ok(usage)
}

/// Bytes reserved by the uploads under way of images `project` owns, but `except`'s. A scan
/// of the reservations: one row per upload in flight, a handful.
pub(super) fn reserved_by(
    images: &impl ReadableTable<u128, &'static [u8]>,
    reservations: &impl ReadableTable<u128, u64>,
    project: &str,
    except: Option<ImageId>,
) -> Result<u64> {
    let mut total: u64 = 0;
    for entry in reservations.iter().storage()? {
        let (key, bytes) = entry.storage()?;
        let id = ImageId::from_key(key.value());
        if Some(id) == except {
            continue;
        }
        if load(images, id)?.is_some_and(|image| image.owner.as_deref() == Some(project)) {
            total = total.saturating_add(bytes.value());
        }
    }
    Ok(total)
}

pub(super) fn read_usage(
    table: &impl ReadableTable<&'static str, (u64, u64, u64)>,
    project: &str,
) -> Result<Usage> {
    Ok(table
        .get(project)
        .storage()?
        .map_or(Usage::default(), |guard| {
            let (image_count, size_bytes, uploading_count) = guard.value();
            Usage {
                image_count,
                size_bytes,
                uploading_count,
                reserved_bytes: 0,
            }
        }))
}

pub(super) fn upload_state(txn: &ReadTransaction, id: ImageId) -> Result<Option<UploadState>> {
    read_upload(&txn.open_table(UPLOADS).storage()?, id)
}

pub(super) fn read_upload(
    table: &impl ReadableTable<u128, (&'static str, i64)>,
    id: ImageId,
) -> Result<Option<UploadState>> {
    let Some(guard) = table.get(id.to_key()).storage()? else {
        return Ok(None);
    };
    let (node, started_at) = guard.value();
    let node: NodeId = node
        .parse()
        .map_err(|_| Error::Corrupt(format!("image {id}: upload owner {node:?}")))?;
    Ok(Some(UploadState {
        node,
        started_at: Timestamp::from_unix_micros(started_at),
    }))
}
