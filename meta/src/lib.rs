//! meta is glint's metadata store: images, their status and uploads, members and usage.
//!
//! It owns the image records, their lifecycle and their ordering, behind one backend-neutral,
//! typed and synchronous API, the [`Backend`] trait. Engine types (redb's, a database
//! driver's) never appear in it.
//!
//! - [`Backend`] is the API, object-safe so that callers hold an `Arc<dyn Backend>`. Each call
//!   is one transaction; writes are durable when they return, so async callers run them off
//!   latency-sensitive threads, and [`Backend::locality`] says whether reads may wait on a
//!   network.
//! - [`RedbBackend`] is the embedded engine (one redb file, one gateway): [`RedbBackend::open`]
//!   creates or migrates the file. [`PgBackend`] is the engine for several gateways sharing one
//!   PostgreSQL database: [`PgBackend::sync`] migrates its schema (`glint db sync`),
//!   [`PgBackend::connect`] opens a pool on it, and [`Backend::watch_changes`] announces the
//!   status changes any gateway commits. Both run the same test suite (`meta/tests/suite`).
//! - [`Image`] is the record, with [`ImageId`], [`ImageStatus`], [`Visibility`], [`Timestamp`]
//!   and [`Location`] spelled as Glance spells them.
//! - Every status change is checked against the spec's transition table and its formats rule,
//!   in one place shared by the engines: [`Backend::begin_upload`],
//!   [`Backend::complete_upload`], [`Backend::abort_upload`], [`Backend::set_status`],
//!   [`Backend::delete_image`] and [`Backend::recover_interrupted`]. Field edits go through
//!   [`Backend::update_image`], which cannot change the status.
//! - Uploads belong to the node that runs them ([`NodeId`], [`UploadClaim`]): start-up
//!   recovery resets only this node's, so gateways sharing a database never reset each other's.
//! - [`Backend::list_images`] takes a [`ListFilter`]: the viewer's visibility rules
//!   ([`Scope`], [`Viewer`]), [`Condition`]s, [`SortKey`]/[`SortDir`], a marker and a limit —
//!   data an engine can walk its indexes with or translate into `WHERE … ORDER BY … LIMIT`.
//! - Sharing: [`Member`] and [`MemberStatus`]; deleting an image deletes its members.
//! - Quotas: writes refuse, inside their transaction, what would exceed the given [`Limits`]
//!   ([`Error::QuotaExceeded`]); [`Usage`] is each owner's.
//! - Metadata definitions (Glance's metadefs catalog) live in [`metadefs`]: their own records,
//!   rules and tables, and their part of the API, [`metadefs::Metadefs`], which every
//!   [`Backend`] implements.
//! - [`Error`] says what happened (not found, invalid transition, ...), never which HTTP status
//!   applies.
//!
//! - Migration: [`Backend::adopt_image`] stores a record from another Image service as it
//!   was there ([`Adoption`]), idempotently.
//!
//! Deleted images leave a tombstone: their ids can never be used again, as in Glance
//! ([`Backend::was_deleted`] tells such an id from one never issued).
//!
//! # Example
//!
//! ```
//! use meta::{
//!     Backend, Image, ImageId, ImageStatus, Limits, ListFilter, Location, RedbBackend,
//!     Timestamp, UploadClaim, UploadOutcome,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let meta = RedbBackend::open(&dir.path().join("meta.redb"))?;
//! let unlimited = Limits::UNLIMITED;
//!
//! let id = ImageId::new_v4();
//! let mut image = Image::new(id, Timestamp::now());
//! image.name = Some("cirros".to_owned());
//! image.disk_format = Some("qcow2".to_owned());
//! image.container_format = Some("bare".to_owned());
//! meta.create_image(&image, &unlimited)?;
//!
//! // PUT /file: claim the upload for this node, stream the data elsewhere, then record what
//! // was received.
//! let claim = UploadClaim {
//!     to: ImageStatus::Saving,
//!     node: "gateway-1".parse()?,
//!     incoming_bytes: None,
//! };
//! meta.begin_upload(id, &claim, &unlimited)?;
//! let active = meta.complete_upload(
//!     id,
//!     UploadOutcome {
//!         size: 21_430_272,
//!         checksum: "443b7623e27ecf03dc9e01ee93f67afe".to_owned(),
//!         os_hash_algo: "sha512".to_owned(),
//!         os_hash_value: "6513f21e".repeat(16),
//!         virtual_size: Some(117_440_512),
//!         location: Location { url: format!("file:///images/{id}"), store: "file".to_owned() },
//!     },
//!     &unlimited,
//! )?;
//! assert_eq!(active.status, ImageStatus::Active);
//!
//! // GET /v2/images: newest first, 25 per page, every image visible.
//! let page = meta.list_images(&ListFilter::all().limit(25))?;
//! assert_eq!(page[0].id, id);
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod backend;
mod engine;
mod error;
mod filter;
mod members;
pub mod metadefs;
mod quota;
mod rules;
mod sort;
pub mod tasks;
mod types;

pub use backend::{
    Adopted, Adoption, Backend, BackendExt, ChangeFeed, Edit, ImageChange, Locality,
};
pub use engine::postgres::{
    redact_url, PgBackend, PgOptions, SyncReport, SCHEMA_VERSION as PG_SCHEMA_VERSION,
};
pub use engine::redb::{RedbBackend, SCHEMA_VERSION as REDB_SCHEMA_VERSION};
pub use error::{Error, Result, StorageError};
pub use filter::{
    Cmp, Condition, ListFilter, NumberField, Scope, TextField, TimeField, Viewer, VisibilityFilter,
};
pub use members::{Member, MemberStatus};
pub use quota::{Limits, QuotaResource, Usage, MIB};
pub use sort::{full_order, SortDir, SortKey};
pub use types::{
    Image, ImageId, ImageStatus, Location, NodeId, ParseError, Timestamp, UploadClaim,
    UploadOutcome, UploadStart, UploadState, Visibility,
};
