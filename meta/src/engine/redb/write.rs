//! The write transaction ([`Writer`]) and every image write: create, edit, the upload
//! transitions, status changes, delete and start-up recovery.
//!
//! A `Writer` opens every table once per transaction. Its low-level operations keep the
//! secondary tables in step with `images`: [`Writer::put`] rewrites only the index entries,
//! status counts and usage sums that changed, [`Writer::delete`] removes them all and leaves a
//! tombstone, and the upload owner lives exactly as long as the `saving`/`uploading` status it
//! belongs to, and so does its reservation. Every status change goes through [`Writer::transition`], which applies the
//! shared rules (`rules.rs`). Member writes are in `members.rs`.

use redb::{ReadableTable, Table, WriteTransaction};

use super::members::MemberValue;
use super::read::{load, read_upload, read_usage, reserved_by};
use super::schema::{
    self, IndexKey, IMAGES, INDEXES, MEMBERS, MEMBERS_BY_PROJECT, PROJECT_USAGE, RESERVATIONS,
    STATUS_COUNTS, TOMBSTONES, UPLOADS,
};
use super::{record, StorageResultExt};
use crate::backend::{Adopted, Adoption, Edit};
use crate::error::{Error, Result};
use crate::quota::{self, Limits, Usage};
use crate::rules;
use crate::sort::SortKey;
use crate::types::{
    Image, ImageId, ImageStatus, NodeId, Timestamp, UploadClaim, UploadOutcome, UploadStart,
};

/// The tables of one write transaction, and the operations that keep them consistent.
pub(super) struct Writer<'txn> {
    images: Table<'txn, u128, &'static [u8]>,
    tombstones: Table<'txn, u128, i64>,
    status_counts: Table<'txn, u8, u64>,
    indexes: Vec<(SortKey, Table<'txn, IndexKey<'static>, ()>)>,
    pub(super) members: Table<'txn, (u128, &'static str), MemberValue>,
    pub(super) members_by_project: Table<'txn, (&'static str, u128), u8>,
    project_usage: Table<'txn, &'static str, (u64, u64, u64)>,
    uploads: Table<'txn, u128, (&'static str, i64)>,
    reservations: Table<'txn, u128, u64>,
    /// The time of this transaction: every `updated_at` it writes.
    pub(super) now: Timestamp,
}

impl<'txn> Writer<'txn> {
    pub(super) fn open(txn: &'txn WriteTransaction) -> Result<Writer<'txn>> {
        let mut indexes = Vec::with_capacity(INDEXES.len());
        for (key, definition) in INDEXES {
            indexes.push((key, txn.open_table(definition).storage()?));
        }
        Ok(Writer {
            images: txn.open_table(IMAGES).storage()?,
            tombstones: txn.open_table(TOMBSTONES).storage()?,
            status_counts: txn.open_table(STATUS_COUNTS).storage()?,
            indexes,
            members: txn.open_table(MEMBERS).storage()?,
            members_by_project: txn.open_table(MEMBERS_BY_PROJECT).storage()?,
            project_usage: txn.open_table(PROJECT_USAGE).storage()?,
            uploads: txn.open_table(UPLOADS).storage()?,
            reservations: txn.open_table(RESERVATIONS).storage()?,
            now: Timestamp::now(),
        })
    }

    // ---- the operations of `Backend`

    pub(super) fn create(&mut self, image: &Image, limits: &Limits) -> Result<()> {
        rules::check_new(image)?;
        if let Some(owner) = &image.owner {
            quota::check_create(owner, &self.usage(owner, None)?, limits)?;
        }
        self.insert_new(image)
    }

    pub(super) fn update(&mut self, id: ImageId, edit: &mut Edit<'_>) -> Result<Image> {
        let old = self.require(id)?;
        let mut new = old.clone();
        edit(&mut new)?;
        rules::check_edit(&old, &new)?;
        new.updated_at = self.now;
        self.put(Some(&old), &new)?;
        Ok(new)
    }

    pub(super) fn update_to(
        &mut self,
        id: ImageId,
        to: ImageStatus,
        edit: &mut Edit<'_>,
    ) -> Result<Image> {
        let old = self.require(id)?;
        let mut new = old.clone();
        edit(&mut new)?;
        rules::check_edit(&old, &new)?;
        self.transition_from(&old, new, to)
    }

    pub(super) fn begin_upload(
        &mut self,
        id: ImageId,
        claim: &UploadClaim,
        limits: &Limits,
    ) -> Result<UploadStart> {
        let image = self.require(id)?;
        rules::check_begin(&image, claim.to)?;
        let mut size_left = None;
        if let Some(owner) = &image.owner {
            let usage = self.usage(owner, None)?;
            quota::check_begin_upload(owner, &usage, limits, claim.incoming_bytes)?;
            size_left = quota::size_left(&usage, limits);
        }
        let image = self.transition(&image, claim.to)?;
        self.uploads
            .insert(
                id.to_key(),
                (claim.node.as_str(), self.now.as_unix_micros()),
            )
            .storage()?;
        if let Some(bytes) = claim.incoming_bytes.filter(|_| image.owner.is_some()) {
            self.reservations.insert(id.to_key(), bytes).storage()?;
        }
        Ok(UploadStart { image, size_left })
    }

    pub(super) fn complete_upload(
        &mut self,
        id: ImageId,
        outcome: UploadOutcome,
        limits: &Limits,
    ) -> Result<Image> {
        let image = self.require(id)?;
        rules::check_complete(&image, &outcome)?;
        if let Some(owner) = &image.owner {
            // The saving image holds no size yet, so usage does not count it; its own
            // reservation gives way to its data.
            quota::check_size(owner, &self.usage(owner, Some(id))?, limits, outcome.size)?;
        }
        let filled = rules::filled(&image, outcome);
        self.transition_from(&image, filled, ImageStatus::Active)
    }

    pub(super) fn abort_upload(&mut self, id: ImageId) -> Result<()> {
        let Some(image) = self.live(id)? else {
            return Ok(());
        };
        if rules::abort_requeues(image.status)? {
            self.transition(&image, ImageStatus::Queued)?;
        }
        Ok(())
    }

    pub(super) fn set_status(&mut self, id: ImageId, to: ImageStatus) -> Result<Image> {
        let image = self.require(id)?;
        if to == ImageStatus::Deleted {
            let mut deleted = self.delete(image)?;
            deleted.status = ImageStatus::Deleted;
            deleted.updated_at = self.now;
            return Ok(deleted);
        }
        self.transition(&image, to)
    }

    /// Reads only the status index (and the owners of what it finds), not every image.
    pub(super) fn recover_interrupted(&mut self, node: &NodeId) -> Result<Vec<ImageId>> {
        let mut ids = Vec::new();
        for status in [ImageStatus::Saving, ImageStatus::Uploading] {
            for id in self.ids_with_status(status)? {
                let owner = read_upload(&self.uploads, id)?;
                // A finished stage (`uploading`, naming the node that holds its data) is data
                // waiting for its import, not an interrupted upload: it stays.
                if status == ImageStatus::Uploading
                    && self
                        .require(id)?
                        .properties
                        .contains_key(crate::tasks::STAGE_HOST_PROPERTY)
                {
                    continue;
                }
                if owner.is_none_or(|upload| upload.node == *node) {
                    ids.push(id);
                }
            }
        }
        for id in &ids {
            let image = self.require(*id)?;
            self.transition(&image, ImageStatus::Queued)?;
        }
        Ok(ids)
    }

    // ---- building blocks

    fn live(&self, id: ImageId) -> Result<Option<Image>> {
        load(&self.images, id)
    }

    pub(super) fn require(&self, id: ImageId) -> Result<Image> {
        self.live(id)?.ok_or(Error::NotFound(id))
    }

    /// `project`'s usage with the reservations of its uploads (but `except`'s).
    pub(super) fn usage(&self, project: &str, except: Option<ImageId>) -> Result<Usage> {
        let mut usage = read_usage(&self.project_usage, project)?;
        usage.reserved_bytes = reserved_by(&self.images, &self.reservations, project, except)?;
        Ok(usage)
    }

    /// Adds (`add`) or removes `image`'s contribution to its owner's usage.
    fn charge(&mut self, image: &Image, add: bool) -> Result<()> {
        let Some(owner) = image.owner.as_deref() else {
            return Ok(());
        };
        let current = read_usage(&self.project_usage, owner)?;
        let delta = Usage::of(image);
        let apply = |value: u64, by: u64| {
            if add {
                Ok(value + by)
            } else {
                value.checked_sub(by).ok_or_else(|| {
                    Error::Corrupt(format!("usage of project {owner} would go below zero"))
                })
            }
        };
        let next = (
            apply(current.image_count, delta.image_count)?,
            apply(current.size_bytes, delta.size_bytes)?,
            apply(current.uploading_count, delta.uploading_count)?,
        );
        if next == (0, 0, 0) {
            self.project_usage.remove(owner).storage()?;
        } else {
            self.project_usage.insert(owner, next).storage()?;
        }
        Ok(())
    }

    pub(super) fn insert_new(&mut self, image: &Image) -> Result<()> {
        let key = image.id.to_key();
        if self.images.get(key).storage()?.is_some()
            || self.tombstones.get(key).storage()?.is_some()
        {
            return Err(Error::Duplicate(image.id));
        }
        self.put(None, image)
    }

    /// Moves `image` to `to`, checking the status rules.
    fn transition(&mut self, image: &Image, to: ImageStatus) -> Result<Image> {
        self.transition_from(image, image.clone(), to)
    }

    /// Stores `new` (which starts as a copy of `old` with fields filled in) with status `to`,
    /// after the shared rules allowed `old.status` to become `to`.
    fn transition_from(&mut self, old: &Image, new: Image, to: ImageStatus) -> Result<Image> {
        let new = rules::transition(old, new, to, self.now)?;
        self.put(Some(old), &new)?;
        Ok(new)
    }

    /// Stores a record taken over from another service (see `Backend::adopt_image`).
    pub(super) fn adopt(&mut self, record: &Adoption, replace: bool) -> Result<Adopted> {
        let id = record.id();
        let key = id.to_key();
        let deleted = self.tombstones.get(key).storage()?.is_some();
        let live = self.live(id)?;
        match record {
            Adoption::Deleted { deleted_at, .. } => match live {
                None if deleted => Ok(Adopted::Unchanged),
                None => {
                    self.tombstones
                        .insert(key, deleted_at.as_unix_micros())
                        .storage()?;
                    Ok(Adopted::Created)
                }
                Some(_) if !replace => Err(Error::AdoptConflict(id)),
                Some(old) => {
                    self.remove(old, *deleted_at)?;
                    Ok(Adopted::Replaced)
                }
            },
            Adoption::Live { image, members } => {
                if deleted {
                    return Err(Error::Duplicate(id));
                }
                let members = Adoption::sorted_members(id, members)?;
                let outcome = match live {
                    None => {
                        self.put(None, image)?;
                        Adopted::Created
                    }
                    Some(old) => {
                        if old == **image && self.members_of(id)? == members {
                            return Ok(Adopted::Unchanged);
                        }
                        if !replace {
                            return Err(Error::AdoptConflict(id));
                        }
                        self.put(Some(&old), image)?;
                        Adopted::Replaced
                    }
                };
                for old in self.members_of(id)? {
                    self.remove_member(id, &old.member_id)?;
                }
                for member in &members {
                    self.put_member(member)?;
                }
                Ok(outcome)
            }
        }
    }

    /// Deletes `image`, leaving a tombstone; returns it as it was.
    pub(super) fn delete(&mut self, image: Image) -> Result<Image> {
        rules::check_delete(&image)?;
        let now = self.now;
        self.remove(image, now)
    }

    /// Removes `image` (whatever its protection) with its indexes, counts, usage, upload owner
    /// and members, leaving a tombstone dated `deleted_at`; returns it as it was.
    fn remove(&mut self, image: Image, deleted_at: Timestamp) -> Result<Image> {
        let key = image.id.to_key();
        self.images.remove(key).storage()?;
        for (sort_key, table) in &mut self.indexes {
            let value = schema::sort_value(&image, *sort_key);
            table
                .remove((value.as_slice(), image.created_at.as_unix_micros(), key))
                .storage()?;
        }
        self.adjust_count(image.status, false)?;
        self.charge(&image, false)?;
        self.uploads.remove(key).storage()?;
        self.reservations.remove(key).storage()?;
        for member in self.members_of(image.id)? {
            self.remove_member(image.id, &member.member_id)?;
        }
        self.tombstones
            .insert(key, deleted_at.as_unix_micros())
            .storage()?;
        Ok(image)
    }

    /// Writes `new` over `old` (or as a new image), updating only the index entries, counts
    /// and sums that changed. Leaving `saving`/`uploading` forgets the upload's owner.
    fn put(&mut self, old: Option<&Image>, new: &Image) -> Result<()> {
        let key = new.id.to_key();
        let bytes = record::encode(new);
        self.images.insert(key, bytes.as_slice()).storage()?;
        for (sort_key, table) in &mut self.indexes {
            let new_value = schema::sort_value(new, *sort_key);
            let new_entry = (new_value.as_slice(), new.created_at.as_unix_micros(), key);
            if let Some(old) = old {
                let old_value = schema::sort_value(old, *sort_key);
                let old_entry = (
                    old_value.as_slice(),
                    old.created_at.as_unix_micros(),
                    old.id.to_key(),
                );
                if old_entry == new_entry {
                    continue;
                }
                table.remove(old_entry).storage()?;
            }
            table.insert(new_entry, ()).storage()?;
        }
        match old {
            Some(old) if old.status == new.status => {}
            Some(old) => {
                self.adjust_count(old.status, false)?;
                self.adjust_count(new.status, true)?;
                if rules::receiving(old.status) {
                    self.uploads.remove(key).storage()?;
                    self.reservations.remove(key).storage()?;
                }
            }
            None => self.adjust_count(new.status, true)?,
        }
        let same_charge =
            old.is_some_and(|old| old.owner == new.owner && Usage::of(old) == Usage::of(new));
        if !same_charge {
            if let Some(old) = old {
                self.charge(old, false)?;
            }
            self.charge(new, true)?;
        }
        Ok(())
    }

    fn adjust_count(&mut self, status: ImageStatus, increment: bool) -> Result<()> {
        let code = record::status_code(status);
        let current = self
            .status_counts
            .get(code)
            .storage()?
            .map_or(0, |guard| guard.value());
        let next = if increment {
            current + 1
        } else {
            current.checked_sub(1).ok_or_else(|| {
                Error::Corrupt(format!("status count of {status} would go below zero"))
            })?
        };
        if next == 0 {
            self.status_counts.remove(code).storage()?;
        } else {
            self.status_counts.insert(code, next).storage()?;
        }
        Ok(())
    }

    /// Ids of the live images in `status`, from the status index.
    fn ids_with_status(&self, status: ImageStatus) -> Result<Vec<ImageId>> {
        let (_, table) = self
            .indexes
            .iter()
            .find(|(key, _)| *key == SortKey::Status)
            .expect("INDEXES has a status index");
        let value = status.as_str().as_bytes();
        let low: IndexKey<'_> = (value, i64::MIN, u128::MIN);
        let high: IndexKey<'_> = (value, i64::MAX, u128::MAX);
        let mut ids = Vec::new();
        for entry in table.range(low..=high).storage()? {
            let (key, _) = entry.storage()?;
            ids.push(ImageId::from_key(key.value().2));
        }
        Ok(ids)
    }
}
