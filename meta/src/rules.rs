//! The rules every write obeys, whatever the engine: the spec's status table and its formats
//! rule, what an edit may change, what a finished upload must agree with, what a delete needs.
//!
//! These are pure functions of the image as read inside the write's transaction; an engine
//! calls them between its read and its write (the redb engine inside one write transaction, a
//! SQL engine after `SELECT … FOR UPDATE`, or as the `WHERE` of a compare-and-set `UPDATE`), so
//! the rules live once. Atomicity and storage belong to the engine.

use crate::error::{Error, Result};
use crate::types::{Image, ImageStatus, Timestamp, UploadOutcome, Visibility};

/// A new image must start `queued`.
pub(crate) fn check_new(image: &Image) -> Result<()> {
    if image.status != ImageStatus::Queued {
        return Err(Error::NewImageNotQueued {
            id: image.id,
            status: image.status,
        });
    }
    Ok(())
}

/// An edit (`old` → `new`) may not change `id`, `status` or `created_at`, and may change the
/// formats only while the image is `queued` or `importing`.
pub(crate) fn check_edit(old: &Image, new: &Image) -> Result<()> {
    let read_only = [
        ("id", new.id != old.id),
        ("status", new.status != old.status),
        ("created_at", new.created_at != old.created_at),
    ];
    if let Some((field, _)) = read_only.into_iter().find(|(_, changed)| *changed) {
        return Err(Error::ReadOnlyField { id: old.id, field });
    }
    let formats_changed =
        new.disk_format != old.disk_format || new.container_format != old.container_format;
    if formats_changed && !matches!(old.status, ImageStatus::Queued | ImageStatus::Importing) {
        return Err(Error::FormatsLocked {
            id: old.id,
            status: old.status,
        });
    }
    Ok(())
}

/// `begin_upload`'s compare-and-set: the image must be `queued` and `to` a receiving status.
pub(crate) fn check_begin(image: &Image, to: ImageStatus) -> Result<()> {
    let receiving = matches!(to, ImageStatus::Saving | ImageStatus::Uploading);
    if image.status != ImageStatus::Queued || !receiving {
        return Err(Error::InvalidTransition {
            from: image.status,
            to,
        });
    }
    Ok(())
}

/// `complete_upload`'s checks: the image is `saving`, and the data agrees with any size,
/// checksum or hash it already carried.
pub(crate) fn check_complete(image: &Image, outcome: &UploadOutcome) -> Result<()> {
    if image.status != ImageStatus::Saving {
        return Err(Error::InvalidTransition {
            from: image.status,
            to: ImageStatus::Active,
        });
    }
    let mismatch = |field| Error::DataMismatch {
        id: image.id,
        field,
    };
    if image.size.is_some_and(|size| size != outcome.size) {
        return Err(mismatch("size"));
    }
    if let Some(checksum) = &image.checksum {
        if !checksum.eq_ignore_ascii_case(&outcome.checksum) {
            return Err(mismatch("checksum"));
        }
    }
    if let Some(value) = &image.os_hash_value {
        let same_algo = image
            .os_hash_algo
            .as_deref()
            .is_none_or(|algo| algo == outcome.os_hash_algo);
        if !same_algo || !value.eq_ignore_ascii_case(&outcome.os_hash_value) {
            return Err(mismatch("os_hash_value"));
        }
    }
    Ok(())
}

/// `image` with what a finished upload learned (status unchanged: [`transition`] sets it).
pub(crate) fn filled(image: &Image, outcome: UploadOutcome) -> Image {
    let mut filled = image.clone();
    filled.size = Some(outcome.size);
    filled.checksum = Some(outcome.checksum);
    filled.os_hash_algo = Some(outcome.os_hash_algo);
    filled.os_hash_value = Some(outcome.os_hash_value);
    filled.virtual_size = outcome.virtual_size;
    filled.locations.push(outcome.location);
    filled
}

/// `new` (a copy of `old`, perhaps with fields filled in) moved to status `to` at `now`, after
/// checking that `old.status` may become `to`: the spec's table, and both formats when leaving
/// `queued`/`uploading` towards data. Entering `queued` clears `size` and `virtual_size`.
/// The one place a status changes.
pub(crate) fn transition(
    old: &Image,
    mut new: Image,
    to: ImageStatus,
    now: Timestamp,
) -> Result<Image> {
    if !old.status.can_become(to) {
        return Err(Error::InvalidTransition {
            from: old.status,
            to,
        });
    }
    if old.status.needs_formats(to) && (new.disk_format.is_none() || new.container_format.is_none())
    {
        return Err(Error::FormatsNotSet(old.id));
    }
    new.status = to;
    if to == ImageStatus::Queued {
        new.size = None;
        new.virtual_size = None;
    }
    new.updated_at = now;
    Ok(new)
}

/// What `abort_upload` does to an image in `status`: nothing (`Ok(false)`), back to `queued`
/// (`Ok(true)`), or refuse.
pub(crate) fn abort_requeues(status: ImageStatus) -> Result<bool> {
    match status {
        ImageStatus::Queued => Ok(false),
        ImageStatus::Saving | ImageStatus::Uploading => Ok(true),
        from => Err(Error::InvalidTransition {
            from,
            to: ImageStatus::Queued,
        }),
    }
}

/// Whether `status` is an upload in progress (which has an owner node).
pub(crate) fn receiving(status: ImageStatus) -> bool {
    matches!(status, ImageStatus::Saving | ImageStatus::Uploading)
}

/// A delete needs an unprotected image whose status may become `deleted`.
pub(crate) fn check_delete(image: &Image) -> Result<()> {
    if image.protected {
        return Err(Error::Protected(image.id));
    }
    if !image.status.can_become(ImageStatus::Deleted) {
        return Err(Error::InvalidTransition {
            from: image.status,
            to: ImageStatus::Deleted,
        });
    }
    Ok(())
}

/// Member writes need a `shared` image.
pub(crate) fn check_shared(image: &Image) -> Result<()> {
    if image.visibility != Visibility::Shared {
        return Err(Error::NotShared(image.id));
    }
    Ok(())
}
