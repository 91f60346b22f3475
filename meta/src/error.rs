//! [`Error`]: every condition a caller of meta can act on, and nothing about HTTP or about any
//! engine.
//!
//! An engine's own failures (redb's, a database driver's) are wrapped in the opaque
//! [`StorageError`] so that no engine type appears in the public API; the gateway treats them
//! all alike (log, answer 500).

use std::fmt;

use crate::quota::QuotaResource;
use crate::types::{ImageId, ImageStatus};

/// The result type of every meta operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in a meta operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No live image has this id (it never existed, or it was deleted).
    #[error("image {0} not found")]
    NotFound(ImageId),
    /// An image with this id exists or existed: deleted ids stay taken.
    #[error("image {0} already exists or existed")]
    Duplicate(ImageId),
    /// The spec's status table does not allow this transition, or the operation expected the
    /// image in another status.
    #[error("image is {from}, cannot become {to}")]
    InvalidTransition {
        /// The status the image has.
        from: ImageStatus,
        /// The status the operation wanted.
        to: ImageStatus,
    },
    /// Leaving `queued`/`uploading` towards `saving`, `active` or `importing` needs both
    /// `disk_format` and `container_format`.
    #[error("image {0}: disk_format and container_format must be set before it can hold data")]
    FormatsNotSet(ImageId),
    /// `disk_format` and `container_format` can only change while the image is `queued` or
    /// `importing`.
    #[error("image {id}: disk_format and container_format cannot change while it is {status}")]
    FormatsLocked {
        /// The image.
        id: ImageId,
        /// Its status.
        status: ImageStatus,
    },
    /// An update tried to change a field only the store sets (`id`, `status`, `created_at`).
    #[error("image {id}: an update cannot change {field}")]
    ReadOnlyField {
        /// The image.
        id: ImageId,
        /// The field's Glance name.
        field: &'static str,
    },
    /// A new image must start `queued`.
    #[error("image {id}: a new image must be queued, not {status}")]
    NewImageNotQueued {
        /// The image.
        id: ImageId,
        /// The status it was given.
        status: ImageStatus,
    },
    /// The uploaded data does not match a `size`, `checksum` or `os_hash_value` the image
    /// already carried (e.g. from a location's `validation_data`); nothing was recorded.
    #[error("image {id}: uploaded data does not match its {field}")]
    DataMismatch {
        /// The image.
        id: ImageId,
        /// The field that differs.
        field: &'static str,
    },
    /// The image is protected and cannot be deleted.
    #[error("image {0} is protected")]
    Protected(ImageId),
    /// The operation would take a project over one of its limits; nothing was written.
    #[error(
        "Project {project} is over a limit for [Resource {resource} is over limit of {limit} \
         due to current usage {usage} and delta {delta}]"
    )]
    QuotaExceeded {
        /// The project charged (the image owner).
        project: String,
        /// The limit.
        resource: QuotaResource,
        /// Its value (MiB for sizes).
        limit: u64,
        /// The project's usage before the operation (MiB for sizes).
        usage: u64,
        /// What the operation adds (MiB for sizes, rounded up).
        delta: u64,
    },
    /// Members can only be added to, listed for or changed on `shared` images.
    #[error("image {0} is not shared; only shared images have members")]
    NotShared(ImageId),
    /// The project is already a member of the image.
    #[error("member {member} is duplicated for image {image}")]
    DuplicateMember {
        /// The image.
        image: ImageId,
        /// The project.
        member: String,
    },
    /// The project is not a member of the image.
    #[error("{member} not found in the member list of the image {image}")]
    MemberNotFound {
        /// The image.
        image: ImageId,
        /// The project.
        member: String,
    },
    /// Adding a member would exceed the per-image member limit.
    #[error("image {image} would have {attempted} members, more than {maximum}")]
    TooManyMembers {
        /// The image.
        image: ImageId,
        /// Members it would have.
        attempted: u64,
        /// The limit.
        maximum: u64,
    },
    /// The edit given to [`Backend::update_image`](crate::Backend::update_image) refused the
    /// change; nothing was written. [`BackendExt::update_image_with`](crate::BackendExt::update_image_with)
    /// hands the edit's own error back instead.
    #[error("the edit of image {0} was refused")]
    EditRefused(ImageId),
    /// [`Backend::adopt_image`](crate::Backend::adopt_image) found a different record under
    /// the id and was not asked to replace it; nothing was written.
    #[error("image {0} is stored with other values than the record being adopted")]
    AdoptConflict(ImageId),
    /// The pagination marker names no live image.
    #[error("marker image {0} not found")]
    MarkerNotFound(ImageId),
    /// No task has this id (or it expired and was removed).
    #[error("task {0} not found")]
    TaskNotFound(crate::tasks::TaskId),
    /// A task with this id exists.
    #[error("task {0} already exists")]
    DuplicateTask(crate::tasks::TaskId),
    /// The image's import lock is held by a task that is still running.
    #[error("image {0} is being imported by another task")]
    ImportInProgress(ImageId),
    /// The image's import lock no longer names the task (taken over, or the image is gone),
    /// or the task has ended: its runner must stop.
    #[error("the import of image {0} lost its lock")]
    ImportLockLost(ImageId),
    /// A metadef operation failed: not found, duplicate, protected or invalid.
    #[error(transparent)]
    Metadef(#[from] crate::metadefs::MetadefError),
    /// The database file is already open, by this process or another.
    #[error("the metadata database is already open")]
    AlreadyOpen,
    /// The database was written by a newer version of glint.
    #[error("metadata schema version {found} is newer than the supported {supported}")]
    SchemaTooNew {
        /// The version recorded in the file.
        found: u32,
        /// The newest version this build understands.
        supported: u32,
    },
    /// The database schema is older than this build needs and was not migrated (a networked
    /// engine migrates only when asked: `glint db sync`, or the start-up option).
    #[error(
        "metadata schema version {found} is older than the required {required}: run `glint db sync`"
    )]
    SchemaOutdated {
        /// The version the database records.
        found: u32,
        /// The version this build needs.
        required: u32,
    },
    /// The database cannot be reached now (refused, lost or timed-out connection, the server
    /// shutting down). Nothing was written, or — for a write whose connection broke while it
    /// committed — the outcome is unknown; the engine reconnects by itself on a later call.
    #[error("metadata database unavailable: {0}")]
    Unavailable(#[source] StorageError),
    /// A stored record could not be decoded.
    #[error("corrupt metadata: {0}")]
    Corrupt(String),
    /// The storage engine failed (I/O, a corrupted file, ...).
    #[error("metadata storage: {0}")]
    Storage(#[source] StorageError),
}

/// An opaque failure of the storage engine (I/O, a corrupted file, a lost connection, ...).
pub struct StorageError(Box<dyn std::error::Error + Send + Sync>);

impl StorageError {
    /// Wraps an engine's error.
    pub fn new(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StorageError {
        StorageError(cause.into())
    }
}

impl fmt::Debug for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}
