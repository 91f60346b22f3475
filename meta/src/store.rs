//! [`Meta`], the store handle: opening the database, and every operation with its status rules.
//!
//! Each operation is one redb transaction. Writes commit with redb's default immediate
//! durability (the commit is on disk when the call returns), set `updated_at` to the time the
//! transaction started, and keep the indexes and status counts in step with the record. A write
//! that fails for any reason writes nothing. All status changes go through
//! [`Writer::transition`] (or [`Writer::delete`]), the one place the spec's table and the formats
//! rule are checked. Listing lives in `list.rs`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{ReadableTable, Table, WriteTransaction};

use crate::error::{Error, Result, StorageResultExt};
use crate::handle::Handle;
use crate::list::{self, SortDir, SortKey};
use crate::members::{Member, MemberStatus};
use crate::quota::{self, Limits, Usage};
use crate::record;
use crate::schema::{
    self, IndexKey, IMAGES, INDEXES, MEMBERS, MEMBERS_BY_PROJECT, PROJECT_USAGE, STATUS_COUNTS,
    TOMBSTONES,
};
use crate::types::{
    Image, ImageId, ImageStatus, Timestamp, UploadOutcome, UploadStart, Visibility,
};

/// A handle on the metadata database. Cheap to clone; clones share one database.
///
/// Reads (`get_image`, `list_images`, counts) run in read transactions and never wait for a
/// writer. Writes take redb's single write lock for the length of one transaction, fsync
/// included, so they belong on a thread that may block.
#[derive(Clone)]
pub struct Meta {
    inner: Arc<Inner>,
}

struct Inner {
    db: Handle,
    path: PathBuf,
    schema_version: u32,
}

impl fmt::Debug for Meta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Meta")
            .field("path", &self.inner.path)
            .field("schema_version", &self.inner.schema_version)
            .finish()
    }
}

impl Meta {
    /// Opens the database at `path`, creating it when the file is missing or empty and
    /// migrating it when an older version of glint wrote it.
    ///
    /// The parent directory must exist. Fails with [`Error::AlreadyOpen`] when the file is open
    /// elsewhere and [`Error::SchemaTooNew`] when a newer glint wrote it.
    pub fn open(path: &Path) -> Result<Meta> {
        Meta::open_handle(Handle::open(path).storage()?, path)
    }

    fn open_handle(db: Handle, path: &Path) -> Result<Meta> {
        let txn = db.begin_write().storage()?;
        // On error `txn` is dropped, which rolls back a half-done migration.
        let schema_version = schema::create_or_migrate(&txn)?;
        txn.commit().storage()?;
        Ok(Meta {
            inner: Arc::new(Inner {
                db,
                path: path.to_owned(),
                schema_version,
            }),
        })
    }

    /// The schema version of the open database (always the current one after `open`).
    pub fn schema_version(&self) -> u32 {
        self.inner.schema_version
    }

    /// Stores a new image exactly as given (timestamps included).
    ///
    /// Fails with [`Error::Duplicate`] when the id is taken by a live or a deleted image, and
    /// with [`Error::NewImageNotQueued`] unless `image.status` is `queued`.
    pub fn create_image(&self, image: &Image) -> Result<()> {
        self.create_image_within(image, &Limits::UNLIMITED)
    }

    /// [`Meta::create_image`], refusing it with [`Error::QuotaExceeded`] when the owner would
    /// own more than `limits.image_count_total` images.
    pub fn create_image_within(&self, image: &Image, limits: &Limits) -> Result<()> {
        self.write(|writer| {
            if image.status != ImageStatus::Queued {
                return Err(Error::NewImageNotQueued {
                    id: image.id,
                    status: image.status,
                });
            }
            if let Some(owner) = &image.owner {
                quota::check_create(owner, &writer.usage(owner)?, limits)?;
            }
            writer.insert_new(image)
        })
    }

    /// The live image `id`; [`Error::NotFound`] when it does not exist or was deleted.
    pub fn get_image(&self, id: ImageId) -> Result<Image> {
        let txn = self.inner.db.begin_read().storage()?;
        let images = txn.open_table(IMAGES).storage()?;
        list::load(&images, id)?.ok_or(Error::NotFound(id))
    }

    /// Whether `id` belonged to an image that was deleted (its tombstone keeps the id taken).
    /// With [`Meta::get_image`], this tells an id glint never issued from one it did: start-up
    /// recovery removes only data files whose image glint knows.
    pub fn was_deleted(&self, id: ImageId) -> Result<bool> {
        let txn = self.inner.db.begin_read().storage()?;
        let tombstones = txn.open_table(TOMBSTONES).storage()?;
        Ok(tombstones.get(id.to_key()).storage()?.is_some())
    }

    /// Edits fields of image `id` in one transaction: `edit` gets the current image and may
    /// change it; the result is stored with `updated_at` set and returned.
    ///
    /// If `edit` returns an error nothing is written and that error is returned. `edit` must
    /// not change `id`, `status` or `created_at` ([`Error::ReadOnlyField`]); `disk_format` and
    /// `container_format` may change only while the image is `queued` or `importing`
    /// ([`Error::FormatsLocked`]). Fails with [`Error::NotFound`] before calling `edit` when the
    /// image does not exist.
    ///
    /// `edit` runs inside the write transaction, holding the write lock: keep it to field
    /// validation and assignment, no I/O.
    pub fn update_image<E, F>(&self, id: ImageId, edit: F) -> Result<Image, E>
    where
        E: From<Error>,
        F: FnOnce(&mut Image) -> Result<(), E>,
    {
        self.write(|writer| {
            let old = writer.require(id)?;
            let mut new = old.clone();
            edit(&mut new)?;
            let read_only = [
                ("id", new.id != old.id),
                ("status", new.status != old.status),
                ("created_at", new.created_at != old.created_at),
            ];
            if let Some((field, _)) = read_only.into_iter().find(|(_, changed)| *changed) {
                return Err(Error::ReadOnlyField { id, field }.into());
            }
            let formats_changed =
                new.disk_format != old.disk_format || new.container_format != old.container_format;
            if formats_changed
                && !matches!(old.status, ImageStatus::Queued | ImageStatus::Importing)
            {
                return Err(Error::FormatsLocked {
                    id,
                    status: old.status,
                }
                .into());
            }
            new.updated_at = writer.now;
            writer.put(Some(&old), &new)?;
            Ok(new)
        })
    }

    /// Starts receiving data: compare-and-set of image `id` from `queued` to `to`, which must be
    /// `saving` (`PUT /file`) or `uploading` (`PUT /stage`). Returns the image as stored.
    ///
    /// Fails with [`Error::InvalidTransition`] when the image is not `queued` (another upload
    /// won) or `to` is another status, and with [`Error::FormatsNotSet`] when going to `saving`
    /// without both formats.
    pub fn begin_upload(&self, id: ImageId, to: ImageStatus) -> Result<Image> {
        Ok(self
            .begin_upload_within(id, to, None, &Limits::UNLIMITED)?
            .image)
    }

    /// [`Meta::begin_upload`], refusing it with [`Error::QuotaExceeded`] when the owner already
    /// has more than `limits.image_count_uploading` uploads under way, or would be over
    /// `limits.image_size_total_mib` counting `incoming_bytes` (the announced size, if any).
    /// Also says how many bytes that size limit leaves, read in the same transaction.
    pub fn begin_upload_within(
        &self,
        id: ImageId,
        to: ImageStatus,
        incoming_bytes: Option<u64>,
        limits: &Limits,
    ) -> Result<UploadStart> {
        self.write(|writer| {
            let image = writer.require(id)?;
            let receiving = matches!(to, ImageStatus::Saving | ImageStatus::Uploading);
            if image.status != ImageStatus::Queued || !receiving {
                return Err(Error::InvalidTransition {
                    from: image.status,
                    to,
                });
            }
            let mut size_left = None;
            if let Some(owner) = &image.owner {
                let usage = writer.usage(owner)?;
                quota::check_begin_upload(owner, &usage, limits, incoming_bytes)?;
                size_left = quota::size_left(&usage, limits);
            }
            let image = writer.transition(&image, to)?;
            Ok(UploadStart { image, size_left })
        })
    }

    /// Finishes a `PUT /file` upload: image `id` goes from `saving` to `active` with the data's
    /// size, checksums and virtual size, and `outcome.location` appended to its locations.
    ///
    /// Fails with [`Error::NotFound`] when the image was deleted during the upload (the caller
    /// then removes the data), [`Error::InvalidTransition`] when it is not `saving`, and
    /// [`Error::DataMismatch`] when the image already carried a size, checksum or hash the data
    /// does not match; in every failure nothing is written.
    pub fn complete_upload(&self, id: ImageId, outcome: UploadOutcome) -> Result<Image> {
        self.complete_upload_within(id, outcome, &Limits::UNLIMITED)
    }

    /// [`Meta::complete_upload`], refusing it with [`Error::QuotaExceeded`] (writing nothing)
    /// when the data would take the owner over `limits.image_size_total_mib`.
    pub fn complete_upload_within(
        &self,
        id: ImageId,
        outcome: UploadOutcome,
        limits: &Limits,
    ) -> Result<Image> {
        self.write(|writer| {
            let image = writer.require(id)?;
            if image.status != ImageStatus::Saving {
                return Err(Error::InvalidTransition {
                    from: image.status,
                    to: ImageStatus::Active,
                });
            }
            check_expected_data(&image, &outcome)?;
            if let Some(owner) = &image.owner {
                // The saving image holds no size yet, so usage does not count it.
                quota::check_size(owner, &writer.usage(owner)?, limits, outcome.size)?;
            }
            let mut filled = image.clone();
            filled.size = Some(outcome.size);
            filled.checksum = Some(outcome.checksum);
            filled.os_hash_algo = Some(outcome.os_hash_algo);
            filled.os_hash_value = Some(outcome.os_hash_value);
            filled.virtual_size = outcome.virtual_size;
            filled.locations.push(outcome.location);
            writer.transition_from(&image, filled, ImageStatus::Active)
        })
    }

    /// Gives up on a failed upload or stage: image `id` goes from `saving` or `uploading` back
    /// to `queued`, losing `size` and `virtual_size`.
    ///
    /// Does nothing when the image is gone (deleted meanwhile) or already `queued`; fails with
    /// [`Error::InvalidTransition`] from any other status.
    pub fn abort_upload(&self, id: ImageId) -> Result<()> {
        self.write(|writer| {
            let Some(image) = writer.live(id)? else {
                return Ok(());
            };
            match image.status {
                ImageStatus::Queued => Ok(()),
                ImageStatus::Saving | ImageStatus::Uploading => {
                    writer.transition(&image, ImageStatus::Queued).map(drop)
                }
                from => Err(Error::InvalidTransition {
                    from,
                    to: ImageStatus::Queued,
                }),
            }
        })
    }

    /// Moves image `id` to status `to` if the spec's table allows it (deactivate, reactivate,
    /// import steps, ...). Returns the image as stored.
    ///
    /// Entering `queued` clears `size` and `virtual_size`; leaving `queued`/`uploading` towards
    /// `saving`, `active` or `importing` needs both formats ([`Error::FormatsNotSet`]). A status
    /// never transitions to itself: the caller that treats e.g. deactivating a deactivated image
    /// as a no-op matches `InvalidTransition { from, to }` with `from == to`. `to == deleted`
    /// deletes as [`Meta::delete_image`] does and returns the image marked `deleted`.
    pub fn set_status(&self, id: ImageId, to: ImageStatus) -> Result<Image> {
        self.write(|writer| {
            let image = writer.require(id)?;
            if to == ImageStatus::Deleted {
                let mut deleted = writer.delete(image)?;
                deleted.status = ImageStatus::Deleted;
                deleted.updated_at = writer.now;
                return Ok(deleted);
            }
            writer.transition(&image, to)
        })
    }

    /// Deletes image `id`: its record and index entries go, a tombstone keeps the id taken.
    /// Returns the image as it was, so that the caller can remove its data.
    ///
    /// Fails with [`Error::Protected`] when the image is protected and [`Error::NotFound`] when
    /// it does not exist or is already deleted.
    pub fn delete_image(&self, id: ImageId) -> Result<Image> {
        self.write(|writer| {
            let image = writer.require(id)?;
            writer.delete(image)
        })
    }

    /// Start-up recovery: every image left `saving` or `uploading` by a crash goes back to
    /// `queued` (losing `size` and `virtual_size`). Returns their ids, so that the caller can
    /// remove partial and staged data. Reads only the status index, not every image.
    pub fn recover_interrupted(&self) -> Result<Vec<ImageId>> {
        self.write(|writer| {
            let mut ids = Vec::new();
            for status in [ImageStatus::Saving, ImageStatus::Uploading] {
                ids.extend(writer.ids_with_status(status)?);
            }
            for id in &ids {
                let image = writer.require(*id)?;
                writer.transition(&image, ImageStatus::Queued)?;
            }
            Ok(ids)
        })
    }

    /// One page of images, in order, after `marker`.
    ///
    /// The order is `sort` followed by `created_at` and `id`, each appended with direction
    /// `desc` unless `sort` already names it; an empty `sort` means `created_at desc`. Unset
    /// values sort as `""` or 0. (Glance appends the tie-breakers in the direction of the
    /// request's single `sort_dir` when exactly one was given; a caller reproducing that passes
    /// `created_at` and `id` explicitly with that direction.)
    ///
    /// The page starts strictly after `marker`'s position in that order ([`Error::MarkerNotFound`]
    /// when no live image has that id) and holds at most `limit` images, each of which passed
    /// `keep`; images `keep` rejects are skipped, not counted. Deleted images are never listed;
    /// every other status is, and the caller's `keep` decides visibility.
    ///
    /// Cost: O(limit) records read plus those `keep` rejects, for any single sort key and the
    /// default; more for orders whose first key has large groups of equal values and whose
    /// second key is not `created_at` (see `list.rs`).
    pub fn list_images<F>(
        &self,
        sort: &[(SortKey, SortDir)],
        marker: Option<ImageId>,
        limit: usize,
        keep: F,
    ) -> Result<Vec<Image>>
    where
        F: FnMut(&Image) -> bool,
    {
        let txn = self.inner.db.begin_read().storage()?;
        list::list(&txn, sort, marker, limit, keep)
    }

    /// The number of live (not deleted) images. Reads one table header.
    pub fn count_images(&self) -> Result<u64> {
        let txn = self.inner.db.begin_read().storage()?;
        list::count(&txn)
    }

    /// The number of live images in each status, for every status but `deleted` (zeros
    /// included), in [`ImageStatus::ALL`] order. Reads a table of at most nine rows.
    pub fn images_by_status(&self) -> Result<Vec<(ImageStatus, u64)>> {
        let txn = self.inner.db.begin_read().storage()?;
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

    /// The usage of `project`: the images it owns, their bytes, its uploads in progress.
    pub fn usage(&self, project: &str) -> Result<Usage> {
        let txn = self.inner.db.begin_read().storage()?;
        let table = txn.open_table(PROJECT_USAGE).storage()?;
        read_usage(&table, project)
    }

    /// Shares image `id` with `project`, as a `pending` member.
    ///
    /// Fails with [`Error::NotFound`], [`Error::NotShared`] unless the image is `shared`,
    /// [`Error::DuplicateMember`] when the project is a member already, and
    /// [`Error::TooManyMembers`] when the image would have more than `max_members`.
    pub fn add_member(
        &self,
        id: ImageId,
        project: &str,
        max_members: Option<u64>,
    ) -> Result<Member> {
        self.write(|writer| {
            let image = writer.require(id)?;
            if image.visibility != Visibility::Shared {
                return Err(Error::NotShared(id));
            }
            if writer.member(id, project)?.is_some() {
                return Err(Error::DuplicateMember {
                    image: id,
                    member: project.to_owned(),
                });
            }
            if let Some(maximum) = max_members {
                let attempted = writer.members_of(id)?.len() as u64 + 1;
                if attempted > maximum {
                    return Err(Error::TooManyMembers {
                        image: id,
                        attempted,
                        maximum,
                    });
                }
            }
            let member = Member {
                image_id: id,
                member_id: project.to_owned(),
                status: MemberStatus::Pending,
                created_at: writer.now,
                updated_at: writer.now,
            };
            writer.put_member(&member)?;
            Ok(member)
        })
    }

    /// Sets the status of `project`'s membership of image `id`.
    ///
    /// Fails with [`Error::NotFound`], [`Error::NotShared`] and [`Error::MemberNotFound`].
    pub fn update_member(
        &self,
        id: ImageId,
        project: &str,
        status: MemberStatus,
    ) -> Result<Member> {
        self.write(|writer| {
            let image = writer.require(id)?;
            if image.visibility != Visibility::Shared {
                return Err(Error::NotShared(id));
            }
            let mut member = writer.require_member(id, project)?;
            member.status = status;
            member.updated_at = writer.now;
            writer.put_member(&member)?;
            Ok(member)
        })
    }

    /// Ends `project`'s membership of image `id`.
    ///
    /// Fails with [`Error::NotFound`], [`Error::NotShared`] and [`Error::MemberNotFound`].
    pub fn delete_member(&self, id: ImageId, project: &str) -> Result<()> {
        self.write(|writer| {
            let image = writer.require(id)?;
            if image.visibility != Visibility::Shared {
                return Err(Error::NotShared(id));
            }
            writer.require_member(id, project)?;
            writer.remove_member(id, project)
        })
    }

    /// `project`'s membership of image `id`, whatever the image's visibility; `None` when it
    /// is not a member (or the image does not exist).
    pub fn get_member(&self, id: ImageId, project: &str) -> Result<Option<Member>> {
        let txn = self.inner.db.begin_read().storage()?;
        let table = txn.open_table(MEMBERS).storage()?;
        read_member(&table, id, project)
    }

    /// Every member of image `id`, by project id.
    pub fn list_members(&self, id: ImageId) -> Result<Vec<Member>> {
        let txn = self.inner.db.begin_read().storage()?;
        let table = txn.open_table(MEMBERS).storage()?;
        read_members(&table, id)
    }

    /// The images `project` is a member of, with its status for each: one range of the
    /// by-project index, whatever the number of images.
    pub fn images_shared_with(&self, project: &str) -> Result<Vec<(ImageId, MemberStatus)>> {
        let txn = self.inner.db.begin_read().storage()?;
        let table = txn.open_table(MEMBERS_BY_PROJECT).storage()?;
        let mut out = Vec::new();
        for entry in table
            .range((project, u128::MIN)..=(project, u128::MAX))
            .storage()?
        {
            let (key, value) = entry.storage()?;
            let status = MemberStatus::from_code(value.value())
                .ok_or_else(|| Error::Corrupt(format!("member status code {}", value.value())))?;
            out.push((ImageId::from_key(key.value().1), status));
        }
        Ok(out)
    }

    /// Runs `op` in one write transaction: commits when it returns `Ok`, rolls back otherwise.
    fn write<T, E>(&self, op: impl FnOnce(&mut Writer<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<Error>,
    {
        let txn = self.inner.db.begin_write().storage()?;
        let outcome = {
            let mut writer = Writer::open(&txn)?;
            op(&mut writer)
        };
        match outcome {
            Ok(value) => {
                txn.commit().storage()?;
                Ok(value)
            }
            Err(err) => {
                // Rolling back an uncommitted transaction only frees its pages; if that fails
                // the operation's own error is still the one worth reporting.
                let _ = txn.abort();
                Err(err)
            }
        }
    }

    /// Inserts many new images in one transaction, for tests that need a large database.
    #[cfg(test)]
    pub(crate) fn insert_many(&self, images: &[Image]) -> Result<()> {
        self.write(|writer| images.iter().try_for_each(|image| writer.insert_new(image)))
    }

    #[cfg(test)]
    pub(crate) fn database(&self) -> &Handle {
        &self.inner.db
    }

    /// A `Meta` on a file whose disk is full while the returned flag is set.
    #[cfg(test)]
    pub(crate) fn open_on_full_disk(
        path: &Path,
    ) -> Result<(Meta, Arc<std::sync::atomic::AtomicBool>)> {
        let (handle, full) = crate::handle::tests::full_disk_handle(path);
        Ok((Meta::open_handle(handle, path)?, full))
    }
}

/// `complete_upload`'s check against values the image carried before the upload.
fn check_expected_data(image: &Image, outcome: &UploadOutcome) -> Result<()> {
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

fn read_usage(
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
            }
        }))
}

type MemberValue = (u8, i64, i64);

fn member_from(
    id: ImageId,
    project: &str,
    (code, created, updated): MemberValue,
) -> Result<Member> {
    Ok(Member {
        image_id: id,
        member_id: project.to_owned(),
        status: MemberStatus::from_code(code)
            .ok_or_else(|| Error::Corrupt(format!("member status code {code}")))?,
        created_at: Timestamp::from_unix_micros(created),
        updated_at: Timestamp::from_unix_micros(updated),
    })
}

fn read_member(
    table: &impl ReadableTable<(u128, &'static str), MemberValue>,
    id: ImageId,
    project: &str,
) -> Result<Option<Member>> {
    match table.get((id.to_key(), project)).storage()? {
        Some(guard) => Ok(Some(member_from(id, project, guard.value())?)),
        None => Ok(None),
    }
}

fn read_members(
    table: &impl ReadableTable<(u128, &'static str), MemberValue>,
    id: ImageId,
) -> Result<Vec<Member>> {
    let key = id.to_key();
    let mut out = Vec::new();
    // "" sorts before every project id, so the range starts at the image's first member.
    for entry in table.range((key, "")..).storage()? {
        let (k, v) = entry.storage()?;
        let (image, project) = k.value();
        if image != key {
            break;
        }
        out.push(member_from(id, project, v.value())?);
    }
    Ok(out)
}

/// The tables of one write transaction, and the operations that keep them consistent.
struct Writer<'txn> {
    images: Table<'txn, u128, &'static [u8]>,
    tombstones: Table<'txn, u128, i64>,
    status_counts: Table<'txn, u8, u64>,
    indexes: Vec<(SortKey, Table<'txn, IndexKey<'static>, ()>)>,
    members: Table<'txn, (u128, &'static str), MemberValue>,
    members_by_project: Table<'txn, (&'static str, u128), u8>,
    project_usage: Table<'txn, &'static str, (u64, u64, u64)>,
    /// The time of this transaction: every `updated_at` it writes.
    now: Timestamp,
}

impl<'txn> Writer<'txn> {
    fn open(txn: &'txn WriteTransaction) -> Result<Writer<'txn>> {
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
            now: Timestamp::now(),
        })
    }

    fn live(&self, id: ImageId) -> Result<Option<Image>> {
        list::load(&self.images, id)
    }

    fn require(&self, id: ImageId) -> Result<Image> {
        self.live(id)?.ok_or(Error::NotFound(id))
    }

    fn usage(&self, project: &str) -> Result<Usage> {
        read_usage(&self.project_usage, project)
    }

    /// Adds (`add`) or removes `image`'s contribution to its owner's usage.
    fn charge(&mut self, image: &Image, add: bool) -> Result<()> {
        let Some(owner) = image.owner.as_deref() else {
            return Ok(());
        };
        let current = self.usage(owner)?;
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

    fn member(&self, id: ImageId, project: &str) -> Result<Option<Member>> {
        read_member(&self.members, id, project)
    }

    fn require_member(&self, id: ImageId, project: &str) -> Result<Member> {
        self.member(id, project)?
            .ok_or_else(|| Error::MemberNotFound {
                image: id,
                member: project.to_owned(),
            })
    }

    fn members_of(&self, id: ImageId) -> Result<Vec<Member>> {
        read_members(&self.members, id)
    }

    fn put_member(&mut self, member: &Member) -> Result<()> {
        let key = member.image_id.to_key();
        let code = member.status.code();
        self.members
            .insert(
                (key, member.member_id.as_str()),
                (
                    code,
                    member.created_at.as_unix_micros(),
                    member.updated_at.as_unix_micros(),
                ),
            )
            .storage()?;
        self.members_by_project
            .insert((member.member_id.as_str(), key), code)
            .storage()?;
        Ok(())
    }

    fn remove_member(&mut self, id: ImageId, project: &str) -> Result<()> {
        let key = id.to_key();
        self.members.remove((key, project)).storage()?;
        self.members_by_project.remove((project, key)).storage()?;
        Ok(())
    }

    fn insert_new(&mut self, image: &Image) -> Result<()> {
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
    /// after checking that `old.status` may become `to`. The one place status changes.
    fn transition_from(&mut self, old: &Image, mut new: Image, to: ImageStatus) -> Result<Image> {
        if !old.status.can_become(to) {
            return Err(Error::InvalidTransition {
                from: old.status,
                to,
            });
        }
        if old.status.needs_formats(to)
            && (new.disk_format.is_none() || new.container_format.is_none())
        {
            return Err(Error::FormatsNotSet(old.id));
        }
        new.status = to;
        if to == ImageStatus::Queued {
            new.size = None;
            new.virtual_size = None;
        }
        new.updated_at = self.now;
        self.put(Some(old), &new)?;
        Ok(new)
    }

    /// Deletes `image`, leaving a tombstone; returns it as it was.
    fn delete(&mut self, image: Image) -> Result<Image> {
        if image.protected {
            return Err(Error::Protected(image.id));
        }
        if !image.status.can_become(ImageStatus::Deleted) {
            return Err(Error::InvalidTransition {
                from: image.status,
                to: ImageStatus::Deleted,
            });
        }
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
        for member in self.members_of(image.id)? {
            self.remove_member(image.id, &member.member_id)?;
        }
        self.tombstones
            .insert(key, self.now.as_unix_micros())
            .storage()?;
        Ok(image)
    }

    /// Writes `new` over `old` (or as a new image), updating only the index entries and counts
    /// that changed.
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

#[cfg(test)]
mod tests;
