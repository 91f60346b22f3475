//! [`Backend`]: the metadata API every engine implements, and the contract of each call.
//!
//! The trait is synchronous and object-safe (`Arc<dyn Backend>`): an async caller decides where
//! a call runs (the gateway's catalog sends writes to its writer thread and, for a networked
//! engine, reads to a blocking pool — see [`Locality`]). Every call is one atomic unit: it reads
//! what it checks and writes what it changes in one transaction, and a call that fails writes
//! nothing. The rules themselves (status table, formats, edits, quotas) are shared by every
//! engine, so engines differ only in storage:
//!
//! * status changes are compare-and-set: the engine reads the image, the shared rules decide,
//!   and the write applies only to the status that was read (a SQL engine:
//!   `UPDATE … WHERE id = $1 AND status = $2`, or `SELECT … FOR UPDATE` first);
//! * quota checks read the owner's usage inside the same write;
//! * [`Backend::list_images`] takes a [`ListFilter`], which a SQL engine runs as
//!   `WHERE … ORDER BY … LIMIT`;
//! * writes set `updated_at` to the time of their transaction.
//!
//! Deleted images leave a tombstone: their ids can never be used again, as in Glance.

use crate::error::{Error, Result};
use crate::filter::ListFilter;
use crate::members::{Member, MemberStatus};
use crate::quota::{Limits, Usage};
use crate::types::{
    Image, ImageId, ImageStatus, NodeId, Timestamp, UploadClaim, UploadOutcome, UploadStart,
    UploadState,
};

/// Where an engine's data lives, which decides where an async caller runs its reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Locality {
    /// In this process (redb): a read is a few page lookups that never wait on a writer; it may
    /// run inline on an I/O thread.
    Embedded,
    /// Across a network (PostgreSQL): every call waits for round trips; run reads where
    /// blocking is allowed, never on an I/O thread.
    Networked,
}

/// A status change of an image, made by any gateway sharing the database (see
/// [`Backend::watch_changes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageChange {
    /// The image.
    pub id: ImageId,
    /// Its status now (`deleted` for a deleted image).
    pub status: ImageStatus,
}

/// Status changes as they are committed, by whichever gateway: what a gateway watches to drop
/// what it keeps of an image another gateway deleted or deactivated.
pub trait ChangeFeed: Send {
    /// The next change, waiting at most `timeout` (`None`: nothing came). An error means the
    /// feed is broken (a lost connection): open a new one.
    fn next(&mut self, timeout: std::time::Duration) -> Result<Option<ImageChange>>;
}

/// The edit [`Backend::update_image`] applies to an image.
pub type Edit<'a> = dyn FnMut(&mut Image) -> Result<()> + 'a;

/// An image record taken over from another Image service, for [`Backend::adopt_image`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adoption {
    /// A live image (any status but `deleted`), exactly as it was there, and its members.
    Live {
        /// The image: status, timestamps, checksums, owner, locations as they were.
        image: Box<Image>,
        /// Its members, with their statuses and timestamps.
        members: Vec<Member>,
    },
    /// A deleted image: only its id, which must stay taken.
    Deleted {
        /// The image's id.
        id: ImageId,
        /// When it was deleted.
        deleted_at: Timestamp,
    },
}

impl Adoption {
    /// The image's id.
    pub fn id(&self) -> ImageId {
        match self {
            Adoption::Live { image, .. } => image.id,
            Adoption::Deleted { id, .. } => *id,
        }
    }

    /// An adopted live image's members in member-id order, after checking that each belongs
    /// to `id`: what every engine stores.
    pub fn sorted_members(id: ImageId, members: &[Member]) -> Result<Vec<Member>> {
        if members.iter().any(|m| m.image_id != id) {
            return Err(Error::Corrupt(format!(
                "a member adopted with image {id} belongs to another image"
            )));
        }
        let mut members = members.to_vec();
        members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        Ok(members)
    }
}

/// What [`Backend::adopt_image`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Adopted {
    /// The id was free: the record is now stored.
    Created,
    /// The same record (and members) was already stored: nothing was written.
    Unchanged,
    /// A different record was stored under the id and was replaced (`replace` was given).
    Replaced,
}

/// The metadata API: images, their status and uploads, members, usage; and, through its
/// supertraits [`Metadefs`](crate::metadefs::Metadefs), the metadefs catalog, and
/// [`Tasks`](crate::tasks::Tasks), tasks and the import lock.
///
/// Implemented by [`RedbBackend`](crate::RedbBackend) (embedded, one gateway) and
/// [`PgBackend`](crate::PgBackend) (PostgreSQL, several gateways). The same test suite runs
/// against every implementation (`meta/tests/suite`).
pub trait Backend: crate::metadefs::Metadefs + crate::tasks::Tasks + Send + Sync {
    /// Where this engine's data lives.
    fn locality(&self) -> Locality;

    /// The schema version of the open database (always the current one once open).
    fn schema_version(&self) -> u32;

    // ---- images: reads

    /// The live image `id`; [`Error::NotFound`] when it does not exist or was deleted.
    fn get_image(&self, id: ImageId) -> Result<Image>;

    /// Whether `id` belonged to an image that was deleted (its tombstone keeps the id taken).
    /// With [`Backend::get_image`], this tells an id glint never issued from one it did:
    /// start-up recovery removes only data files whose image glint knows.
    fn was_deleted(&self, id: ImageId) -> Result<bool>;

    /// One page of images: those `filter` admits, in `filter`'s full order, strictly after its
    /// marker, at most `filter.limit` of them ([`Error::MarkerNotFound`] when the marker names
    /// no live image). Deleted images are never listed.
    ///
    /// A page must cost about `limit` images read, not the whole table, for the default order
    /// and any single sort key, when the filter rejects few images.
    fn list_images(&self, filter: &ListFilter) -> Result<Vec<Image>>;

    /// The number of live (not deleted) images.
    fn count_images(&self) -> Result<u64>;

    /// The number of live images in each status, for every status but `deleted` (zeros
    /// included), in [`ImageStatus::ALL`] order.
    fn images_by_status(&self) -> Result<Vec<(ImageStatus, u64)>>;

    /// The usage of `project`: the images it owns, their bytes, its uploads in progress.
    fn usage(&self, project: &str) -> Result<Usage>;

    /// Who runs the upload of image `id`: `None` unless it is `saving` or `uploading` through
    /// [`Backend::begin_upload`] (an image moved there by [`Backend::set_status`], or by a
    /// version of glint that did not record owners, has no owner).
    fn upload_state(&self, id: ImageId) -> Result<Option<UploadState>>;

    // ---- images: writes

    /// Stores a new image exactly as given (timestamps included).
    ///
    /// Fails with [`Error::Duplicate`] when the id is taken by a live or a deleted image, with
    /// [`Error::NewImageNotQueued`] unless `image.status` is `queued`, and with
    /// [`Error::QuotaExceeded`] when the owner would own more than `limits.image_count_total`
    /// images.
    fn create_image(&self, image: &Image, limits: &Limits) -> Result<()>;

    /// Edits fields of image `id` in one transaction: `edit` gets the current image and may
    /// change it; the result is stored with `updated_at` set and returned.
    ///
    /// If `edit` returns an error nothing is written and that error is returned. The edit must
    /// not change `id`, `status` or `created_at` ([`Error::ReadOnlyField`]); `disk_format` and
    /// `container_format` may change only while the image is `queued` or `importing`
    /// ([`Error::FormatsLocked`]). Fails with [`Error::NotFound`] before calling `edit` when
    /// the image does not exist.
    ///
    /// `edit` runs inside the write, holding it open (and an engine may run it again when it
    /// retries a conflicting transaction): keep it to validation and assignment, no I/O.
    /// [`BackendExt::update_image_with`] takes an edit with the caller's own error type.
    fn update_image(&self, id: ImageId, edit: &mut Edit<'_>) -> Result<Image>;

    /// Edits image `id` and moves it to status `to`, in one transaction: data that arrives
    /// without an upload — a location added to a `queued` image makes it `active`; a location
    /// import goes `queued` → `importing` → `active`, or back to `queued` when it fails.
    ///
    /// `edit` has [`Backend::update_image`]'s limits (not `id`, `status` or `created_at`; the
    /// formats only while `queued` or `importing`), then the status changes as
    /// [`Backend::set_status`] would change it: the spec's table ([`Error::InvalidTransition`]
    /// otherwise, e.g. when another request moved the image meanwhile), both formats when
    /// leaving `queued` towards data ([`Error::FormatsNotSet`]), `size` and `virtual_size`
    /// cleared when entering `queued`. Nothing is written when any of it fails.
    fn update_image_to(&self, id: ImageId, to: ImageStatus, edit: &mut Edit<'_>) -> Result<Image>;

    /// Starts receiving data: compare-and-set of image `id` from `queued` to `claim.to`, which
    /// must be `saving` (`PUT /file`) or `uploading` (`PUT /stage`), recording `claim.node` as
    /// the upload's owner. Also says how many bytes the owner's size limit leaves, read in the
    /// same transaction.
    ///
    /// Fails with [`Error::InvalidTransition`] when the image is not `queued` (another upload
    /// won) or `claim.to` is another status, with [`Error::FormatsNotSet`] when going to
    /// `saving` without both formats, and with [`Error::QuotaExceeded`] when the owner already
    /// has more than `limits.image_count_uploading` uploads under way or would be over
    /// `limits.image_size_total_mib` counting `claim.incoming_bytes`.
    ///
    /// Quotas are hard: an announced size is *reserved* — counted in the owner's
    /// [`Usage::reserved_bytes`] against `image_size_total` by every later check — until the
    /// upload ends, when [`Backend::complete_upload`] charges the data instead or any other end
    /// (abort, recovery, delete) releases it. Two uploads that each fit alone cannot both
    /// begin when together they would not fit.
    fn begin_upload(
        &self,
        id: ImageId,
        claim: &UploadClaim,
        limits: &Limits,
    ) -> Result<UploadStart>;

    /// Finishes a `PUT /file` upload: image `id` goes from `saving` to `active` with the data's
    /// size, checksums and virtual size, and `outcome.location` appended to its locations; the
    /// upload's owner is forgotten.
    ///
    /// Fails with [`Error::NotFound`] when the image was deleted during the upload (the caller
    /// then removes the data), [`Error::InvalidTransition`] when it is not `saving`,
    /// [`Error::DataMismatch`] when the image already carried a size, checksum or hash the data
    /// does not match, and [`Error::QuotaExceeded`] when the data would take the owner over
    /// `limits.image_size_total_mib` (its data and the reservations of its other uploads); in
    /// every failure nothing is written. On success the upload's reservation is released.
    fn complete_upload(
        &self,
        id: ImageId,
        outcome: UploadOutcome,
        limits: &Limits,
    ) -> Result<Image>;

    /// Gives up on a failed upload or stage: image `id` goes from `saving` or `uploading` back
    /// to `queued`, losing `size` and `virtual_size` and its upload's owner.
    ///
    /// Does nothing when the image is gone (deleted meanwhile) or already `queued`; fails with
    /// [`Error::InvalidTransition`] from any other status.
    fn abort_upload(&self, id: ImageId) -> Result<()>;

    /// Moves image `id` to status `to` if the spec's table allows it (deactivate, reactivate,
    /// import steps, ...). Returns the image as stored.
    ///
    /// Entering `queued` clears `size` and `virtual_size`; leaving `queued`/`uploading` towards
    /// `saving`, `active` or `importing` needs both formats ([`Error::FormatsNotSet`]). A status
    /// never transitions to itself: the caller that treats e.g. deactivating a deactivated image
    /// as a no-op matches `InvalidTransition { from, to }` with `from == to`. `to == deleted`
    /// deletes as [`Backend::delete_image`] does and returns the image marked `deleted`.
    fn set_status(&self, id: ImageId, to: ImageStatus) -> Result<Image>;

    /// Deletes image `id`: its record, members and upload owner go, a tombstone keeps the id
    /// taken. Returns the image as it was, so that the caller can remove its data.
    ///
    /// Fails with [`Error::Protected`] when the image is protected and [`Error::NotFound`] when
    /// it does not exist or is already deleted.
    fn delete_image(&self, id: ImageId) -> Result<Image>;

    /// Start-up recovery of node `node`: every image left `saving` or `uploading` by an upload
    /// `node` ran (or one with no recorded owner) goes back to `queued`, losing `size` and
    /// `virtual_size`. Uploads other nodes run are left alone, and so are finished stages
    /// (`uploading` images carrying `os_glance_stage_host`, the node holding their data,
    /// which waits for an import). Returns the ids, so that the
    /// caller can remove partial and staged data.
    fn recover_interrupted(&self, node: &NodeId) -> Result<Vec<ImageId>>;

    /// Stores a record taken over from another Image service (`glint migrate-from-glance`)
    /// exactly as it was there: status, `created_at`, `updated_at`, checksums and locations
    /// included, and its members with their statuses and timestamps — no status rule and no
    /// quota applies, but indexes, counts and usage follow as for any write. A
    /// [`Adoption::Deleted`] record leaves only a tombstone, so that its id is never reused.
    ///
    /// Idempotent: adopting the record that is already stored writes nothing
    /// ([`Adopted::Unchanged`]). When a different live record holds the id, it is replaced
    /// (members included; a deleted record deletes it, protected or not) if `replace`, else
    /// the call fails with [`Error::AdoptConflict`]. A live record whose id belongs to a
    /// deleted image fails with [`Error::Duplicate`], whatever `replace` says.
    fn adopt_image(&self, record: &Adoption, replace: bool) -> Result<Adopted>;

    // ---- members

    /// `project`'s membership of image `id`, whatever the image's visibility; `None` when it
    /// is not a member (or the image does not exist).
    fn get_member(&self, id: ImageId, project: &str) -> Result<Option<Member>>;

    /// Every member of image `id`, by project id.
    fn list_members(&self, id: ImageId) -> Result<Vec<Member>>;

    /// The images `project` is a member of, with its status for each, by image id.
    fn images_shared_with(&self, project: &str) -> Result<Vec<(ImageId, MemberStatus)>>;

    /// Shares image `id` with `project`, as a `pending` member.
    ///
    /// Fails with [`Error::NotFound`], [`Error::NotShared`] unless the image is `shared`,
    /// [`Error::DuplicateMember`] when the project is a member already, and
    /// [`Error::TooManyMembers`] when the image would have more than `max_members`.
    fn add_member(&self, id: ImageId, project: &str, max_members: Option<u64>) -> Result<Member>;

    /// Sets the status of `project`'s membership of image `id`.
    ///
    /// Fails with [`Error::NotFound`], [`Error::NotShared`] and [`Error::MemberNotFound`].
    fn update_member(&self, id: ImageId, project: &str, status: MemberStatus) -> Result<Member>;

    /// Ends `project`'s membership of image `id`.
    ///
    /// Fails with [`Error::NotFound`], [`Error::NotShared`] and [`Error::MemberNotFound`].
    fn delete_member(&self, id: ImageId, project: &str) -> Result<()>;

    // ---- several gateways

    /// A feed of the status changes every gateway sharing this database commits, when the
    /// engine can share one (`None` for an embedded engine: only its own gateway writes).
    fn watch_changes(&self) -> Result<Option<Box<dyn ChangeFeed>>> {
        Ok(None)
    }
}

/// Conveniences over any [`Backend`].
pub trait BackendExt: Backend {
    /// [`Backend::update_image`] with an edit that fails with the caller's own error type
    /// (e.g. the gateway's API error): that error comes back as it was.
    fn update_image_with<E, F>(&self, id: ImageId, mut edit: F) -> Result<Image, E>
    where
        E: From<Error>,
        F: FnMut(&mut Image) -> Result<(), E>,
    {
        let mut refusal: Option<E> = None;
        let result = self.update_image(id, &mut |image| {
            edit(image).map_err(|err| {
                refusal = Some(err);
                Error::EditRefused(id)
            })
        });
        match (result, refusal) {
            (Ok(image), _) => Ok(image),
            (Err(Error::EditRefused(_)), Some(err)) => Err(err),
            (Err(err), _) => Err(err.into()),
        }
    }

    /// [`Backend::update_image_to`] with an edit that fails with the caller's own error type.
    fn update_image_to_with<E, F>(
        &self,
        id: ImageId,
        to: ImageStatus,
        mut edit: F,
    ) -> Result<Image, E>
    where
        E: From<Error>,
        F: FnMut(&mut Image) -> Result<(), E>,
    {
        let mut refusal: Option<E> = None;
        let result = self.update_image_to(id, to, &mut |image| {
            edit(image).map_err(|err| {
                refusal = Some(err);
                Error::EditRefused(id)
            })
        });
        match (result, refusal) {
            (Ok(image), _) => Ok(image),
            (Err(Error::EditRefused(_)), Some(err)) => Err(err),
            (Err(err), _) => Err(err.into()),
        }
    }
}

impl<B: Backend + ?Sized> BackendExt for B {}
