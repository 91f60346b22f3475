//! [`RedbBackend`]: the embedded engine, one [redb](https://docs.rs/redb) file for one gateway.
//!
//! Each [`Backend`] call is one redb transaction. Writes commit with redb's default immediate
//! durability (the commit is on disk when the call returns), set `updated_at` to the time the
//! transaction started, and keep the indexes, status counts, usage sums and upload owners in
//! step with the records. A write that fails for any reason writes nothing. Reads run in read
//! transactions and never wait for a writer.
//!
//! - `handle.rs`: the redb `Database`, closed and opened again after an I/O failure (a full
//!   disk);
//! - `schema.rs`: tables, index keys, the schema version and its migrations;
//! - `record.rs`: the versioned on-disk encoding of an image;
//! - `read.rs`: single-image reads, counts, usage, upload owners;
//! - `list.rs`: listing, as walks of the sort indexes;
//! - `write.rs`: the write transaction and every image write (status transitions);
//! - `members.rs`: the two member tables and the member operations;
//! - `tasks.rs`: the task tables, every [`Tasks`](crate::tasks::Tasks) call and the import lock;
//! - `metadefs/`: the metadef tables and every [`Metadefs`](crate::metadefs::Metadefs) call.

mod handle;
mod list;
mod members;
pub(crate) mod metadefs;
mod read;
mod record;
mod schema;
mod tasks;
mod write;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::ReadTransaction;

use self::handle::Handle;

use self::write::Writer;
use crate::backend::{Adopted, Adoption, Backend, Edit, Locality};
use crate::error::{Error, Result, StorageError};
use crate::filter::ListFilter;
use crate::members::{Member, MemberStatus};
use crate::quota::{Limits, Usage};
use crate::tasks::{ImportBegun, ImportEnd, ImportStart, Task, TaskFilter, TaskId, Tasks};
use crate::types::{
    Image, ImageId, ImageStatus, NodeId, Timestamp, UploadClaim, UploadOutcome, UploadStart,
    UploadState,
};

/// The schema version this build of the redb engine writes.
pub const SCHEMA_VERSION: u32 = schema::CURRENT_VERSION;

/// The embedded engine: a handle on one redb file. Cheap to clone; clones share one database.
///
/// Reads run in read transactions and never wait for a writer. Writes take redb's single write
/// lock for the length of one transaction, fsync included, so they belong on a thread that may
/// block.
#[derive(Clone)]
pub struct RedbBackend {
    inner: Arc<Inner>,
}

struct Inner {
    db: Handle,
    path: PathBuf,
    schema_version: u32,
}

impl fmt::Debug for RedbBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbBackend")
            .field("path", &self.inner.path)
            .field("schema_version", &self.inner.schema_version)
            .finish()
    }
}

impl RedbBackend {
    /// Opens the database at `path`, creating it when the file is missing or empty and
    /// migrating it when an older version of glint wrote it.
    ///
    /// The parent directory must exist. Fails with [`Error::AlreadyOpen`] when the file is open
    /// elsewhere and [`Error::SchemaTooNew`] when a newer glint wrote it.
    pub fn open(path: &Path) -> Result<RedbBackend> {
        RedbBackend::open_handle(Handle::open(path).storage()?, path)
    }

    fn open_handle(db: Handle, path: &Path) -> Result<RedbBackend> {
        let txn = db.begin_write().storage()?;
        // On error `txn` is dropped, which rolls back a half-done migration.
        let schema_version = schema::create_or_migrate(&txn)?;
        txn.commit().storage()?;
        Ok(RedbBackend {
            inner: Arc::new(Inner {
                db,
                path: path.to_owned(),
                schema_version,
            }),
        })
    }

    fn read(&self) -> Result<ReadTransaction> {
        self.inner.db.begin_read().storage()
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

    /// Runs `op` in one write transaction with the task tables open too.
    fn write_tasks<T>(
        &self,
        op: impl FnOnce(&mut Writer<'_>, &mut tasks::TaskTables<'_>) -> Result<T>,
    ) -> Result<T> {
        let txn = self.inner.db.begin_write().storage()?;
        let outcome = {
            let mut writer = Writer::open(&txn)?;
            let mut tables = tasks::TaskTables::open(&txn)?;
            op(&mut writer, &mut tables)
        };
        match outcome {
            Ok(value) => {
                txn.commit().storage()?;
                Ok(value)
            }
            Err(err) => {
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

    /// An engine on a file whose disk is full while the returned flag is set.
    #[cfg(test)]
    pub(crate) fn open_on_full_disk(
        path: &Path,
    ) -> Result<(RedbBackend, Arc<std::sync::atomic::AtomicBool>)> {
        let (handle, full) = handle::tests::full_disk_handle(path);
        Ok((RedbBackend::open_handle(handle, path)?, full))
    }
}

impl Backend for RedbBackend {
    fn locality(&self) -> Locality {
        Locality::Embedded
    }

    fn schema_version(&self) -> u32 {
        self.inner.schema_version
    }

    fn get_image(&self, id: ImageId) -> Result<Image> {
        read::get_image(&self.read()?, id)
    }

    fn was_deleted(&self, id: ImageId) -> Result<bool> {
        read::was_deleted(&self.read()?, id)
    }

    fn list_images(&self, filter: &ListFilter) -> Result<Vec<Image>> {
        list::list(&self.read()?, filter)
    }

    fn count_images(&self) -> Result<u64> {
        read::count_images(&self.read()?)
    }

    fn images_by_status(&self) -> Result<Vec<(ImageStatus, u64)>> {
        read::images_by_status(&self.read()?)
    }

    fn usage(&self, project: &str) -> Result<Usage> {
        read::usage(&self.read()?, project)
    }

    fn upload_state(&self, id: ImageId) -> Result<Option<UploadState>> {
        read::upload_state(&self.read()?, id)
    }

    fn create_image(&self, image: &Image, limits: &Limits) -> Result<()> {
        self.write(|writer| writer.create(image, limits))
    }

    fn update_image(&self, id: ImageId, edit: &mut Edit<'_>) -> Result<Image> {
        self.write(|writer| writer.update(id, edit))
    }

    fn update_image_to(&self, id: ImageId, to: ImageStatus, edit: &mut Edit<'_>) -> Result<Image> {
        self.write(|writer| writer.update_to(id, to, edit))
    }

    fn begin_upload(
        &self,
        id: ImageId,
        claim: &UploadClaim,
        limits: &Limits,
    ) -> Result<UploadStart> {
        self.write(|writer| writer.begin_upload(id, claim, limits))
    }

    fn complete_upload(
        &self,
        id: ImageId,
        outcome: UploadOutcome,
        limits: &Limits,
    ) -> Result<Image> {
        self.write(|writer| writer.complete_upload(id, outcome, limits))
    }

    fn abort_upload(&self, id: ImageId) -> Result<()> {
        self.write(|writer| writer.abort_upload(id))
    }

    fn set_status(&self, id: ImageId, to: ImageStatus) -> Result<Image> {
        self.write(|writer| writer.set_status(id, to))
    }

    fn delete_image(&self, id: ImageId) -> Result<Image> {
        self.write(|writer| {
            let image = writer.require(id)?;
            writer.delete(image)
        })
    }

    fn recover_interrupted(&self, node: &NodeId) -> Result<Vec<ImageId>> {
        self.write(|writer| writer.recover_interrupted(node))
    }

    fn adopt_image(&self, record: &Adoption, replace: bool) -> Result<Adopted> {
        self.write(|writer| writer.adopt(record, replace))
    }

    fn get_member(&self, id: ImageId, project: &str) -> Result<Option<Member>> {
        members::get_member(&self.read()?, id, project)
    }

    fn list_members(&self, id: ImageId) -> Result<Vec<Member>> {
        members::list_members(&self.read()?, id)
    }

    fn images_shared_with(&self, project: &str) -> Result<Vec<(ImageId, MemberStatus)>> {
        members::images_shared_with(&self.read()?, project)
    }

    fn add_member(&self, id: ImageId, project: &str, max_members: Option<u64>) -> Result<Member> {
        self.write(|writer| writer.add_member(id, project, max_members))
    }

    fn update_member(&self, id: ImageId, project: &str, status: MemberStatus) -> Result<Member> {
        self.write(|writer| writer.update_member(id, project, status))
    }

    fn delete_member(&self, id: ImageId, project: &str) -> Result<()> {
        self.write(|writer| writer.delete_member(id, project))
    }
}

impl Tasks for RedbBackend {
    fn create_task(&self, task: &Task) -> Result<()> {
        self.write_tasks(|_, tables| tables.create(task))
    }

    fn get_task(&self, id: TaskId) -> Result<Task> {
        tasks::get_task(&self.read()?, id)
    }

    fn update_task(
        &self,
        id: TaskId,
        edit: &mut dyn FnMut(&mut Task) -> Result<()>,
    ) -> Result<Task> {
        self.write_tasks(|writer, tables| tables.update(id, writer.now, edit))
    }

    fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<Task>> {
        tasks::list_tasks(&self.read()?, filter)
    }

    fn image_tasks(&self, image: ImageId) -> Result<Vec<Task>> {
        tasks::image_tasks(&self.read()?, image)
    }

    fn purge_expired_tasks(&self, now: Timestamp) -> Result<u64> {
        self.write_tasks(|_, tables| tables.purge_expired(now))
    }

    fn begin_import(&self, start: &ImportStart) -> Result<ImportBegun> {
        self.write_tasks(|writer, tables| tables.begin_import(writer, start))
    }

    fn renew_import_lease(&self, image: ImageId, task: TaskId, until: Timestamp) -> Result<()> {
        self.write_tasks(|writer, tables| tables.renew_lease(writer, image, task, until))
    }

    fn end_import(
        &self,
        image: ImageId,
        end: &ImportEnd,
        edit: &mut Edit<'_>,
    ) -> Result<Option<Image>> {
        self.write_tasks(|writer, tables| tables.end_import(writer, image, end, edit))
    }
}

/// Turns any redb error into [`Error::Storage`] (or [`Error::AlreadyOpen`]). A private extension
/// trait rather than `From` impls, so that redb types stay out of the public API.
pub(crate) trait StorageResultExt<T> {
    fn storage(self) -> Result<T>;
}

impl<T, E: Into<redb::Error>> StorageResultExt<T> for std::result::Result<T, E> {
    fn storage(self) -> Result<T> {
        self.map_err(|err| match err.into() {
            redb::Error::DatabaseAlreadyOpen => Error::AlreadyOpen,
            other => Error::Storage(StorageError::new(other)),
        })
    }
}
