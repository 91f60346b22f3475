//! meta is glint's metadata store: the embedded database of images and their status.
//!
//! It owns the image records, their lifecycle and their ordering, on one
//! [redb](https://docs.rs/redb) file. The API is typed and synchronous; redb types never appear
//! in it.
//!
//! - [`Meta`] is the handle: [`Meta::open`] creates or migrates the file, and each operation is
//!   one transaction. Writes are durable (fsynced) when they return, so callers run them off
//!   latency-sensitive threads; reads never wait for writes.
//! - [`Image`] is the record, with [`ImageId`], [`ImageStatus`], [`Visibility`], [`Timestamp`]
//!   and [`Location`] spelled as Glance spells them.
//! - Every status change is checked here, against the spec's transition table and its formats
//!   rule: [`Meta::begin_upload`], [`Meta::complete_upload`], [`Meta::abort_upload`],
//!   [`Meta::set_status`], [`Meta::delete_image`] and [`Meta::recover_interrupted`]. Field edits
//!   go through [`Meta::update_image`], which cannot change the status.
//! - [`Meta::list_images`] orders and pages with [`SortKey`]/[`SortDir`] and a marker, walking
//!   secondary indexes so that a page reads about `limit` records, not every image. Filtering
//!   and visibility are the caller's predicate.
//! - Sharing: [`Meta::add_member`], [`Meta::update_member`], [`Meta::delete_member`],
//!   [`Meta::list_members`], and [`Meta::images_shared_with`] for listings (an index by member
//!   project). Deleting an image deletes its members.
//! - Quotas: every write keeps a per-owner [`Usage`] in step; [`Meta::create_image_within`],
//!   [`Meta::begin_upload_within`] and [`Meta::complete_upload_within`] refuse, inside their
//!   transaction, what would exceed the given [`Limits`] ([`Error::QuotaExceeded`]).
//! - [`Error`] says what happened (not found, invalid transition, ...), never which HTTP status
//!   applies.
//!
//! Deleted images leave a tombstone: their ids can never be used again, as in Glance.
//!
//! # Example
//!
//! ```
//! use meta::{Image, ImageId, ImageStatus, Location, Meta, Timestamp, UploadOutcome};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let meta = Meta::open(&dir.path().join("meta.redb"))?;
//!
//! let id = ImageId::new_v4();
//! let mut image = Image::new(id, Timestamp::now());
//! image.name = Some("cirros".to_owned());
//! image.disk_format = Some("qcow2".to_owned());
//! image.container_format = Some("bare".to_owned());
//! meta.create_image(&image)?;
//!
//! // PUT /file: claim the upload, stream the data elsewhere, then record what was received.
//! meta.begin_upload(id, ImageStatus::Saving)?;
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
//! )?;
//! assert_eq!(active.status, ImageStatus::Active);
//!
//! // GET /v2/images: newest first, 25 per page, every image visible.
//! let page = meta.list_images(&[], None, 25, |_| true)?;
//! assert_eq!(page[0].id, id);
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod error;
mod handle;
mod list;
mod members;
mod quota;
mod record;
mod schema;
mod store;
mod types;

pub use error::{Error, Result, StorageError};
pub use list::{SortDir, SortKey};
pub use members::{Member, MemberStatus};
pub use quota::{Limits, QuotaResource, Usage, MIB};
pub use store::Meta;
pub use types::{
    Image, ImageId, ImageStatus, Location, ParseError, Timestamp, UploadOutcome, UploadStart,
    Visibility,
};
