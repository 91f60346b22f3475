//! [`Catalog`]: the gateway's one door to the metadata store. Handlers call `meta` only through
//! it, as `async` methods, and it decides where each call runs:
//!
//! - **writes** (every status change, edit, member change) go to the writer thread, one at a
//!   time and in order with the file operations queued there (renames, removals): a commit's
//!   fsync never stalls a core's event loop;
//! - **reads** of an embedded engine ([`meta::Locality::Embedded`], redb) run inline on the
//!   calling core — they are page lookups that never wait for a writer — while reads of a
//!   networked engine ([`meta::Locality::Networked`]) run on a small pool of blocking threads,
//!   so that no I/O core ever waits on a database round trip.
//!
//! The catalog also knows this gateway's [`NodeId`]: uploads are claimed in its name, and
//! start-up recovery resets only its uploads ([`node_id`] says where the id comes from). What
//! a call means (status rules, quotas, visibility) is `meta`'s; what it looks like over HTTP is
//! the handlers'.

mod metadefs;

use std::io;
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

use meta::{
    Backend, BackendExt, Image, ImageId, ImageStatus, Limits, ListFilter, Locality, Member,
    MemberStatus, NodeId, StorageError, UploadClaim, UploadOutcome, UploadStart, Usage,
};

use meta::tasks::{ImportBegun, ImportEnd, ImportStart, Task, TaskFilter, TaskId};

use crate::config::Config;
use crate::writer::Writer;

/// Threads that run a networked engine's reads.
const READ_THREADS: usize = 4;

/// The metadata store as handlers see it: async calls, run where they belong.
pub struct Catalog {
    backend: Arc<dyn Backend>,
    node: NodeId,
    writer: Writer,
    reads: Reads,
}

/// Where reads run.
enum Reads {
    /// On the calling thread.
    Inline,
    /// On a blocking pool.
    Pool(ReadPool),
}

impl Catalog {
    /// A catalog on `backend` for node `node`, writing through `writer`. Starts a read pool
    /// when the engine is networked.
    pub fn new(backend: Arc<dyn Backend>, node: NodeId, writer: Writer) -> io::Result<Catalog> {
        let reads = match backend.locality() {
            Locality::Embedded => Reads::Inline,
            _ => Reads::Pool(ReadPool::start(READ_THREADS)?),
        };
        Ok(Catalog {
            backend,
            node,
            writer,
            reads,
        })
    }

    /// This gateway's node id.
    pub fn node(&self) -> &NodeId {
        &self.node
    }

    /// Runs a read where reads of this engine belong.
    async fn read<T, F>(&self, call: F) -> meta::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Backend) -> meta::Result<T> + Send + 'static,
    {
        match &self.reads {
            Reads::Inline => call(&*self.backend),
            Reads::Pool(pool) => {
                let backend = Arc::clone(&self.backend);
                pool.run(move || call(&*backend)).await.map_err(gone)?
            }
        }
    }

    /// Runs a write on the writer thread.
    async fn write<T, E, F>(&self, call: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<meta::Error> + Send + 'static,
        F: FnOnce(&dyn Backend) -> Result<T, E> + Send + 'static,
    {
        let backend = Arc::clone(&self.backend);
        self.writer
            .run(move || call(&*backend))
            .await
            .map_err(|err| E::from(gone(err)))?
    }

    // ---- reads

    /// The live image `id`.
    pub async fn get_image(&self, id: ImageId) -> meta::Result<Image> {
        self.read(move |meta| meta.get_image(id)).await
    }

    /// One page of images (see [`meta::Backend::list_images`]).
    pub async fn list_images(&self, filter: ListFilter) -> meta::Result<Vec<Image>> {
        self.read(move |meta| meta.list_images(&filter)).await
    }

    /// The number of live images.
    pub async fn count_images(&self) -> meta::Result<u64> {
        self.read(|meta| meta.count_images()).await
    }

    /// The number of live images in each status.
    pub async fn images_by_status(&self) -> meta::Result<Vec<(ImageStatus, u64)>> {
        self.read(|meta| meta.images_by_status()).await
    }

    /// Who runs the upload (or holds the stage) of image `id`.
    pub async fn upload_state(&self, id: ImageId) -> meta::Result<Option<meta::UploadState>> {
        self.read(move |meta| meta.upload_state(id)).await
    }

    /// The usage of `project`.
    pub async fn usage(&self, project: &str) -> meta::Result<Usage> {
        let project = project.to_owned();
        self.read(move |meta| meta.usage(&project)).await
    }

    /// `project`'s membership of image `id`.
    pub async fn get_member(&self, id: ImageId, project: &str) -> meta::Result<Option<Member>> {
        let project = project.to_owned();
        self.read(move |meta| meta.get_member(id, &project)).await
    }

    /// Every member of image `id`.
    pub async fn list_members(&self, id: ImageId) -> meta::Result<Vec<Member>> {
        self.read(move |meta| meta.list_members(id)).await
    }

    /// The images `project` is a member of.
    pub async fn images_shared_with(
        &self,
        project: &str,
    ) -> meta::Result<Vec<(ImageId, MemberStatus)>> {
        let project = project.to_owned();
        self.read(move |meta| meta.images_shared_with(&project))
            .await
    }

    // ---- writes

    /// Stores a new image, within the owner's `limits`.
    pub async fn create_image(&self, image: Image, limits: Limits) -> meta::Result<()> {
        self.write(move |meta| meta.create_image(&image, &limits))
            .await
    }

    /// Edits image `id` in one transaction; `edit`'s own error comes back as it was. `edit`
    /// runs on the writer thread, inside the transaction: validation and assignment only.
    pub async fn update_image<E, F>(&self, id: ImageId, edit: F) -> Result<Image, E>
    where
        E: From<meta::Error> + Send + 'static,
        F: FnMut(&mut Image) -> Result<(), E> + Send + 'static,
    {
        self.write(move |meta| meta.update_image_with(id, edit))
            .await
    }

    /// Edits image `id` and moves it to status `to` in one transaction (a location's data
    /// arriving without an upload); `edit`'s own error comes back as it was.
    pub async fn update_image_to<E, F>(
        &self,
        id: ImageId,
        to: ImageStatus,
        edit: F,
    ) -> Result<Image, E>
    where
        E: From<meta::Error> + Send + 'static,
        F: FnMut(&mut Image) -> Result<(), E> + Send + 'static,
    {
        self.write(move |meta| meta.update_image_to_with(id, to, edit))
            .await
    }

    /// Claims the upload of image `id` for this node: `queued` → `to`, within `limits`
    /// counting `incoming_bytes` when announced.
    pub async fn begin_upload(
        &self,
        id: ImageId,
        to: ImageStatus,
        incoming_bytes: Option<u64>,
        limits: Limits,
    ) -> meta::Result<UploadStart> {
        let claim = UploadClaim {
            to,
            node: self.node.clone(),
            incoming_bytes,
        };
        self.write(move |meta| meta.begin_upload(id, &claim, &limits))
            .await
    }

    /// Records a finished upload: `saving` → `active`.
    pub async fn complete_upload(
        &self,
        id: ImageId,
        outcome: UploadOutcome,
        limits: Limits,
    ) -> meta::Result<Image> {
        self.write(move |meta| meta.complete_upload(id, outcome, &limits))
            .await
    }

    /// Gives up on an upload: back to `queued`.
    pub async fn abort_upload(&self, id: ImageId) -> meta::Result<()> {
        self.write(move |meta| meta.abort_upload(id)).await
    }

    /// [`Catalog::abort_upload`] without waiting, for clean-up from `Drop` (which cannot
    /// await); a failure is logged.
    pub fn abort_upload_detached(&self, id: ImageId) {
        let backend = Arc::clone(&self.backend);
        self.writer.spawn(move || {
            // A deleted image is fine: abort_upload leaves it alone.
            if let Err(e) = backend.abort_upload(id) {
                tracing::error!(image_id = %id, error = %e, "cannot reset image to queued");
            }
        });
    }

    /// Moves image `id` to status `to`.
    pub async fn set_status(&self, id: ImageId, to: ImageStatus) -> meta::Result<Image> {
        self.write(move |meta| meta.set_status(id, to)).await
    }

    /// Deletes image `id`; returns it as it was (its locations: data to remove).
    pub async fn delete_image(&self, id: ImageId) -> meta::Result<Image> {
        self.write(move |meta| meta.delete_image(id)).await
    }

    /// Shares image `id` with `project`.
    pub async fn add_member(
        &self,
        id: ImageId,
        project: &str,
        max_members: Option<u64>,
    ) -> meta::Result<Member> {
        let project = project.to_owned();
        self.write(move |meta| meta.add_member(id, &project, max_members))
            .await
    }

    /// Sets `project`'s membership status of image `id`.
    pub async fn update_member(
        &self,
        id: ImageId,
        project: &str,
        status: MemberStatus,
    ) -> meta::Result<Member> {
        let project = project.to_owned();
        self.write(move |meta| meta.update_member(id, &project, status))
            .await
    }

    /// Ends `project`'s membership of image `id`.
    pub async fn delete_member(&self, id: ImageId, project: &str) -> meta::Result<()> {
        let project = project.to_owned();
        self.write(move |meta| meta.delete_member(id, &project))
            .await
    }

    // ---- tasks and imports

    /// Task `id`.
    pub async fn get_task(&self, id: TaskId) -> meta::Result<Task> {
        self.read(move |meta| meta.get_task(id)).await
    }

    /// The tasks `filter` admits.
    pub async fn list_tasks(&self, filter: TaskFilter) -> meta::Result<Vec<Task>> {
        self.read(move |meta| meta.list_tasks(&filter)).await
    }

    /// The tasks of image `image`.
    pub async fn image_tasks(&self, image: ImageId) -> meta::Result<Vec<Task>> {
        self.read(move |meta| meta.image_tasks(image)).await
    }

    /// Stores a new task.
    pub async fn create_task(&self, task: Task) -> meta::Result<()> {
        self.write(move |meta| meta.create_task(&task)).await
    }

    /// Edits task `id`.
    pub async fn update_task<F>(&self, id: TaskId, mut edit: F) -> meta::Result<Task>
    where
        F: FnMut(&mut Task) + Send + 'static,
    {
        self.write(move |meta| {
            meta.update_task(id, &mut |task| {
                edit(task);
                Ok(())
            })
        })
        .await
    }

    /// Removes the tasks expired at `now`.
    pub async fn purge_expired_tasks(&self, now: meta::Timestamp) -> meta::Result<u64> {
        self.write(move |meta| meta.purge_expired_tasks(now)).await
    }

    /// Takes an image's import lock and starts its import (see
    /// [`meta::tasks::Tasks::begin_import`]).
    pub async fn begin_import(&self, start: ImportStart) -> meta::Result<ImportBegun> {
        self.write(move |meta| meta.begin_import(&start)).await
    }

    /// Renews an import's lease.
    pub async fn renew_import_lease(
        &self,
        image: ImageId,
        task: TaskId,
        until: meta::Timestamp,
    ) -> meta::Result<()> {
        self.write(move |meta| meta.renew_import_lease(image, task, until))
            .await
    }

    /// Ends an import: `edit` changes the image, the lock goes, the task ends.
    pub async fn end_import<F>(
        &self,
        image: ImageId,
        end: ImportEnd,
        mut edit: F,
    ) -> meta::Result<Option<Image>>
    where
        F: FnMut(&mut Image) + Send + 'static,
    {
        self.write(move |meta| {
            meta.end_import(image, &end, &mut |image| {
                edit(image);
                Ok(())
            })
        })
        .await
    }

    // ---- several gateways

    /// The database's feed of status changes (`None` for an embedded engine). Blocking: call
    /// it off the cores.
    pub fn watch_changes(&self) -> meta::Result<Option<Box<dyn meta::ChangeFeed>>> {
        self.backend.watch_changes()
    }

    /// The engine itself, for threads of the gateway's own that may block (the cache's
    /// change watcher).
    pub fn backend(&self) -> Arc<dyn Backend> {
        Arc::clone(&self.backend)
    }

    // ---- start-up

    /// Start-up recovery of this node's uploads (see [`meta::Backend::recover_interrupted`]).
    /// Blocks: call it before the workers start.
    pub fn recover_interrupted(&self) -> meta::Result<Vec<ImageId>> {
        self.backend.recover_interrupted(&self.node)
    }

    /// Runs start-up work that reads the engine directly, on the calling thread (the file
    /// store's reconciliation walks every image so). Blocks: call it before the workers start;
    /// requests go through the async calls above.
    pub fn at_start_up<T>(&self, work: impl FnOnce(&dyn Backend) -> T) -> T {
        work(&*self.backend)
    }
}

/// The writer thread or the read pool has stopped: a storage failure as far as callers go.
fn gone(err: impl std::error::Error + Send + Sync + 'static) -> meta::Error {
    meta::Error::Storage(StorageError::new(err))
}

/// The read pool's threads have stopped (one panicked); nothing more can be read.
#[derive(Debug, thiserror::Error)]
#[error("the metadata read threads have stopped")]
struct ReadPoolGone;

/// The name of the file in the data folder that keeps a generated node id.
pub const NODE_ID_FILE: &str = "node_id";

/// This gateway's node id: `node_id` from the configuration when set, else the id kept in
/// `<data_dir>/node_id`, generated (`glint-<random uuid>`) and written there on first start.
///
/// The data folder holds what is node-local (partial uploads, the file store), so an id kept
/// there is stable across restarts and distinct for every gateway, even several on one host.
pub fn node_id(config: &Config) -> io::Result<NodeId> {
    if let Some(id) = &config.node_id {
        return id.parse().map_err(io::Error::other);
    }
    read_or_create_node_id(&config.data_dir.join(NODE_ID_FILE))
}

fn read_or_create_node_id(path: &Path) -> io::Result<NodeId> {
    use std::io::Write;
    let parse = |text: &str| -> io::Result<NodeId> {
        text.trim().parse().map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })
    };
    match std::fs::read_to_string(path) {
        Ok(text) => return parse(&text),
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    let generated = format!("glint-{}", uuid::Uuid::new_v4());
    // create_new: if another process won the race, its id is the one to use.
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(mut file) => {
            file.write_all(format!("{generated}\n").as_bytes())?;
            file.sync_all()?;
            if let Some(dir) = path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            tracing::info!(node_id = %generated, path = %path.display(), "generated this node's id");
            parse(&generated)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            parse(&std::fs::read_to_string(path)?)
        }
        Err(e) => Err(e),
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// A few threads that run blocking reads; cores submit a closure and await its result.
struct ReadPool {
    jobs: mpsc::Sender<Job>,
}

impl ReadPool {
    /// Starts `threads` threads; they end when the pool is dropped.
    fn start(threads: usize) -> io::Result<ReadPool> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads.max(1) {
            let queue = Arc::clone(&queue);
            thread::Builder::new()
                .name(format!("glint-meta-read-{n}"))
                .spawn(move || loop {
                    // The lock is held only while waiting for the next job, not while running it.
                    let job = match queue.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                })?;
        }
        Ok(ReadPool { jobs })
    }

    async fn run<T, F>(&self, f: F) -> Result<T, ReadPoolGone>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = futures_channel::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                // The receiver may be gone (the request was cancelled): nothing to hand back.
                let _ = tx.send(f());
            }))
            .map_err(|_| ReadPoolGone)?;
        rx.await.map_err(|_| ReadPoolGone)
    }
}

/// A test engine for code above the catalog: redb, claiming to be networked.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use meta::metadefs::{
        ContentKind, LoadMode, LoadReport, MetadefObject, MetadefTag, Namespace, NamespaceDocument,
        NamespaceQuery, PropertyDefinition, ResourceType, ResourceTypeAssociation, TagQuery,
    };
    use meta::{Edit, RedbBackend, UploadState};
    use std::collections::BTreeMap;

    /// A redb engine that says it is networked and records the thread of every call.
    pub(crate) struct Remote {
        inner: RedbBackend,
        /// Each recorded call, with the name of the thread it ran on.
        pub(crate) threads: Mutex<Vec<(&'static str, String)>>,
    }

    impl Remote {
        /// The engine on a new `meta.redb` in `dir`.
        pub(crate) fn open(dir: &Path) -> Remote {
            Remote {
                inner: RedbBackend::open(&dir.join("meta.redb")).expect("open meta"),
                threads: Mutex::new(Vec::new()),
            }
        }

        fn record(&self, call: &'static str) {
            let name = thread::current().name().unwrap_or("").to_owned();
            self.threads.lock().unwrap().push((call, name));
        }
    }

    impl meta::metadefs::Metadefs for Remote {
        fn list_metadef_namespaces(
            &self,
            query: &NamespaceQuery,
        ) -> meta::Result<Vec<(Namespace, Vec<ResourceTypeAssociation>)>> {
            self.record("list_metadef_namespaces");
            self.inner.list_metadef_namespaces(query)
        }
        fn metadef_namespace(&self, name: &str) -> meta::Result<Option<Namespace>> {
            self.record("metadef_namespace");
            self.inner.metadef_namespace(name)
        }
        fn metadef_namespace_document(
            &self,
            name: &str,
        ) -> meta::Result<Option<NamespaceDocument>> {
            self.record("metadef_namespace_document");
            self.inner.metadef_namespace_document(name)
        }
        fn export_metadefs(&self) -> meta::Result<Vec<NamespaceDocument>> {
            self.record("export_metadefs");
            self.inner.export_metadefs()
        }
        fn metadef_resource_types(&self) -> meta::Result<Vec<ResourceType>> {
            self.record("metadef_resource_types");
            self.inner.metadef_resource_types()
        }
        fn metadef_associations(&self, ns: &str) -> meta::Result<Vec<ResourceTypeAssociation>> {
            self.record("metadef_associations");
            self.inner.metadef_associations(ns)
        }
        fn metadef_objects(&self, ns: &str) -> meta::Result<Vec<MetadefObject>> {
            self.record("metadef_objects");
            self.inner.metadef_objects(ns)
        }
        fn metadef_object(&self, ns: &str, name: &str) -> meta::Result<MetadefObject> {
            self.record("metadef_object");
            self.inner.metadef_object(ns, name)
        }
        fn metadef_properties(
            &self,
            ns: &str,
        ) -> meta::Result<BTreeMap<String, PropertyDefinition>> {
            self.record("metadef_properties");
            self.inner.metadef_properties(ns)
        }
        fn metadef_property(&self, ns: &str, name: &str) -> meta::Result<PropertyDefinition> {
            self.record("metadef_property");
            self.inner.metadef_property(ns, name)
        }
        fn metadef_tags(&self, ns: &str, query: &TagQuery) -> meta::Result<Vec<MetadefTag>> {
            self.record("metadef_tags");
            self.inner.metadef_tags(ns, query)
        }
        fn metadef_tag(&self, ns: &str, name: &str) -> meta::Result<MetadefTag> {
            self.record("metadef_tag");
            self.inner.metadef_tag(ns, name)
        }
        fn create_metadef_namespace(&self, document: &NamespaceDocument) -> meta::Result<()> {
            self.record("create_metadef_namespace");
            self.inner.create_metadef_namespace(document)
        }
        fn update_metadef_namespace(&self, name: &str, new: &Namespace) -> meta::Result<Namespace> {
            self.record("update_metadef_namespace");
            self.inner.update_metadef_namespace(name, new)
        }
        fn delete_metadef_namespace(&self, name: &str) -> meta::Result<()> {
            self.record("delete_metadef_namespace");
            self.inner.delete_metadef_namespace(name)
        }
        fn delete_metadef_content(&self, name: &str, kind: ContentKind) -> meta::Result<()> {
            self.record("delete_metadef_content");
            self.inner.delete_metadef_content(name, kind)
        }
        fn create_metadef_object(
            &self,
            ns: &str,
            object: &MetadefObject,
        ) -> meta::Result<MetadefObject> {
            self.record("create_metadef_object");
            self.inner.create_metadef_object(ns, object)
        }
        fn update_metadef_object(
            &self,
            ns: &str,
            name: &str,
            object: &MetadefObject,
        ) -> meta::Result<MetadefObject> {
            self.record("update_metadef_object");
            self.inner.update_metadef_object(ns, name, object)
        }
        fn delete_metadef_object(&self, ns: &str, name: &str) -> meta::Result<()> {
            self.record("delete_metadef_object");
            self.inner.delete_metadef_object(ns, name)
        }
        fn create_metadef_property(
            &self,
            ns: &str,
            name: &str,
            definition: &PropertyDefinition,
        ) -> meta::Result<()> {
            self.record("create_metadef_property");
            self.inner.create_metadef_property(ns, name, definition)
        }
        fn update_metadef_property(
            &self,
            ns: &str,
            name: &str,
            new_name: &str,
            definition: &PropertyDefinition,
        ) -> meta::Result<()> {
            self.record("update_metadef_property");
            self.inner
                .update_metadef_property(ns, name, new_name, definition)
        }
        fn delete_metadef_property(&self, ns: &str, name: &str) -> meta::Result<()> {
            self.record("delete_metadef_property");
            self.inner.delete_metadef_property(ns, name)
        }
        fn create_metadef_tag(&self, ns: &str, name: &str) -> meta::Result<MetadefTag> {
            self.record("create_metadef_tag");
            self.inner.create_metadef_tag(ns, name)
        }
        fn create_metadef_tags(
            &self,
            ns: &str,
            names: &[String],
            append: bool,
        ) -> meta::Result<Vec<MetadefTag>> {
            self.record("create_metadef_tags");
            self.inner.create_metadef_tags(ns, names, append)
        }
        fn rename_metadef_tag(
            &self,
            ns: &str,
            name: &str,
            new_name: &str,
        ) -> meta::Result<MetadefTag> {
            self.record("rename_metadef_tag");
            self.inner.rename_metadef_tag(ns, name, new_name)
        }
        fn delete_metadef_tag(&self, ns: &str, name: &str) -> meta::Result<()> {
            self.record("delete_metadef_tag");
            self.inner.delete_metadef_tag(ns, name)
        }
        fn associate_metadef_resource_type(
            &self,
            ns: &str,
            association: &ResourceTypeAssociation,
        ) -> meta::Result<ResourceTypeAssociation> {
            self.record("associate_metadef_resource_type");
            self.inner.associate_metadef_resource_type(ns, association)
        }
        fn deassociate_metadef_resource_type(&self, ns: &str, name: &str) -> meta::Result<()> {
            self.record("deassociate_metadef_resource_type");
            self.inner.deassociate_metadef_resource_type(ns, name)
        }
        fn load_metadefs(
            &self,
            documents: &[NamespaceDocument],
            mode: LoadMode,
        ) -> meta::Result<LoadReport> {
            self.record("load_metadefs");
            self.inner.load_metadefs(documents, mode)
        }
    }

    impl meta::tasks::Tasks for Remote {
        fn create_task(&self, task: &meta::tasks::Task) -> meta::Result<()> {
            self.inner.create_task(task)
        }
        fn get_task(&self, id: meta::tasks::TaskId) -> meta::Result<meta::tasks::Task> {
            self.inner.get_task(id)
        }
        fn update_task(
            &self,
            id: meta::tasks::TaskId,
            edit: &mut dyn FnMut(&mut meta::tasks::Task) -> meta::Result<()>,
        ) -> meta::Result<meta::tasks::Task> {
            self.inner.update_task(id, edit)
        }
        fn list_tasks(
            &self,
            filter: &meta::tasks::TaskFilter,
        ) -> meta::Result<Vec<meta::tasks::Task>> {
            self.inner.list_tasks(filter)
        }
        fn image_tasks(&self, image: ImageId) -> meta::Result<Vec<meta::tasks::Task>> {
            self.inner.image_tasks(image)
        }
        fn purge_expired_tasks(&self, now: meta::Timestamp) -> meta::Result<u64> {
            self.inner.purge_expired_tasks(now)
        }
        fn begin_import(
            &self,
            start: &meta::tasks::ImportStart,
        ) -> meta::Result<meta::tasks::ImportBegun> {
            self.inner.begin_import(start)
        }
        fn renew_import_lease(
            &self,
            image: ImageId,
            task: meta::tasks::TaskId,
            until: meta::Timestamp,
        ) -> meta::Result<()> {
            self.inner.renew_import_lease(image, task, until)
        }
        fn end_import(
            &self,
            image: ImageId,
            end: &meta::tasks::ImportEnd,
            edit: &mut Edit<'_>,
        ) -> meta::Result<Option<Image>> {
            self.inner.end_import(image, end, edit)
        }
    }

    impl Backend for Remote {
        fn locality(&self) -> Locality {
            Locality::Networked
        }
        fn schema_version(&self) -> u32 {
            self.inner.schema_version()
        }
        fn get_image(&self, id: ImageId) -> meta::Result<Image> {
            self.record("get_image");
            self.inner.get_image(id)
        }
        fn was_deleted(&self, id: ImageId) -> meta::Result<bool> {
            self.inner.was_deleted(id)
        }
        fn list_images(&self, filter: &ListFilter) -> meta::Result<Vec<Image>> {
            self.record("list_images");
            self.inner.list_images(filter)
        }
        fn count_images(&self) -> meta::Result<u64> {
            self.record("count_images");
            self.inner.count_images()
        }
        fn update_image_to(
            &self,
            id: ImageId,
            to: ImageStatus,
            edit: &mut meta::Edit<'_>,
        ) -> meta::Result<Image> {
            self.record("update_image_to");
            self.inner.update_image_to(id, to, edit)
        }
        fn images_by_status(&self) -> meta::Result<Vec<(ImageStatus, u64)>> {
            self.inner.images_by_status()
        }
        fn usage(&self, project: &str) -> meta::Result<Usage> {
            self.inner.usage(project)
        }
        fn upload_state(&self, id: ImageId) -> meta::Result<Option<UploadState>> {
            self.inner.upload_state(id)
        }
        fn create_image(&self, image: &Image, limits: &Limits) -> meta::Result<()> {
            self.record("create_image");
            self.inner.create_image(image, limits)
        }
        fn update_image(&self, id: ImageId, edit: &mut Edit<'_>) -> meta::Result<Image> {
            self.record("update_image");
            self.inner.update_image(id, edit)
        }
        fn begin_upload(
            &self,
            id: ImageId,
            claim: &UploadClaim,
            limits: &Limits,
        ) -> meta::Result<UploadStart> {
            self.inner.begin_upload(id, claim, limits)
        }
        fn complete_upload(
            &self,
            id: ImageId,
            outcome: UploadOutcome,
            limits: &Limits,
        ) -> meta::Result<Image> {
            self.inner.complete_upload(id, outcome, limits)
        }
        fn abort_upload(&self, id: ImageId) -> meta::Result<()> {
            self.inner.abort_upload(id)
        }
        fn set_status(&self, id: ImageId, to: ImageStatus) -> meta::Result<Image> {
            self.inner.set_status(id, to)
        }
        fn delete_image(&self, id: ImageId) -> meta::Result<Image> {
            self.inner.delete_image(id)
        }
        fn recover_interrupted(&self, node: &NodeId) -> meta::Result<Vec<ImageId>> {
            self.inner.recover_interrupted(node)
        }
        fn adopt_image(
            &self,
            record: &meta::Adoption,
            replace: bool,
        ) -> meta::Result<meta::Adopted> {
            self.inner.adopt_image(record, replace)
        }
        fn get_member(&self, id: ImageId, project: &str) -> meta::Result<Option<Member>> {
            self.inner.get_member(id, project)
        }
        fn list_members(&self, id: ImageId) -> meta::Result<Vec<Member>> {
            self.inner.list_members(id)
        }
        fn images_shared_with(&self, project: &str) -> meta::Result<Vec<(ImageId, MemberStatus)>> {
            self.inner.images_shared_with(project)
        }
        fn add_member(
            &self,
            id: ImageId,
            project: &str,
            max_members: Option<u64>,
        ) -> meta::Result<Member> {
            self.inner.add_member(id, project, max_members)
        }
        fn update_member(
            &self,
            id: ImageId,
            project: &str,
            status: MemberStatus,
        ) -> meta::Result<Member> {
            self.inner.update_member(id, project, status)
        }
        fn delete_member(&self, id: ImageId, project: &str) -> meta::Result<()> {
            self.inner.delete_member(id, project)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::Remote;
    use super::*;
    use crate::test_util::block_on;
    use meta::RedbBackend;

    fn image() -> Image {
        let mut image = Image::new(ImageId::new_v4(), meta::Timestamp::now());
        image.disk_format = Some("raw".into());
        image.container_format = Some("bare".into());
        image
    }

    fn node() -> NodeId {
        "test-node".parse().unwrap()
    }

    #[test]
    fn embedded_reads_run_inline_and_writes_on_the_writer_thread() {
        let dir = tempfile::tempdir().unwrap();
        let backend = RedbBackend::open(&dir.path().join("meta.redb")).unwrap();
        let catalog = Catalog::new(Arc::new(backend), node(), Writer::start().unwrap()).unwrap();
        assert!(matches!(catalog.reads, Reads::Inline));
        let image = image();
        block_on(catalog.create_image(image.clone(), Limits::UNLIMITED)).unwrap();
        assert_eq!(block_on(catalog.get_image(image.id)).unwrap(), image);
        assert_eq!(block_on(catalog.count_images()).unwrap(), 1);
    }

    #[test]
    fn networked_reads_run_on_the_read_pool_never_on_the_caller() {
        let dir = tempfile::tempdir().unwrap();
        let remote = Arc::new(Remote::open(dir.path()));
        let catalog = Catalog::new(remote.clone(), node(), Writer::start().unwrap()).unwrap();
        assert!(matches!(catalog.reads, Reads::Pool(_)));
        let image = image();
        block_on(catalog.create_image(image.clone(), Limits::UNLIMITED)).unwrap();
        let renamed = block_on(catalog.update_image(image.id, |image: &mut Image| {
            image.name = Some("renamed".into());
            Ok::<(), meta::Error>(())
        }))
        .unwrap();
        assert_eq!(block_on(catalog.get_image(image.id)).unwrap(), renamed);
        let page = block_on(catalog.list_images(ListFilter::all())).unwrap();
        assert_eq!(page, vec![renamed]);
        assert_eq!(block_on(catalog.count_images()).unwrap(), 1);
        let calls = remote.threads.lock().unwrap().clone();
        assert_eq!(calls.len(), 5, "{calls:?}");
        for (call, thread) in calls {
            let expected = match call {
                "create_image" | "update_image" => "glint-writer",
                _ => "glint-meta-read-",
            };
            assert!(thread.starts_with(expected), "{call} ran on {thread:?}");
        }
    }

    #[test]
    fn metadef_reads_run_on_the_read_pool_and_writes_on_the_writer_thread() {
        use meta::metadefs::{Namespace, NamespaceDocument, NamespaceVisibility};
        let dir = tempfile::tempdir().unwrap();
        let remote = Arc::new(Remote::open(dir.path()));
        let catalog = Catalog::new(remote.clone(), node(), Writer::start().unwrap()).unwrap();
        let now = meta::Timestamp::now();
        let document = NamespaceDocument::new(Namespace {
            namespace: "OS::Test".into(),
            display_name: None,
            description: None,
            visibility: NamespaceVisibility::Public,
            protected: false,
            owner: "p".into(),
            created_at: now,
            updated_at: now,
        });
        block_on(catalog.create_metadef_namespace(document.clone())).unwrap();
        block_on(catalog.create_metadef_tag("OS::Test", "t")).unwrap();
        let shown = block_on(catalog.metadef_namespace_document("OS::Test")).unwrap();
        assert_eq!(shown.unwrap().tags[0].name, "t");
        let report = std::thread::spawn({
            let remote = remote.clone();
            move || {
                let catalog = Catalog::new(remote, node(), Writer::start().unwrap()).unwrap();
                catalog.load_metadefs_blocking(vec![document], meta::metadefs::LoadMode::Merge)
            }
        })
        .join()
        .unwrap()
        .unwrap();
        assert_eq!(report.unchanged, ["OS::Test"]);
        let calls = remote.threads.lock().unwrap().clone();
        assert_eq!(calls.len(), 4, "{calls:?}");
        for (call, thread) in calls {
            let expected = if call.starts_with("metadef_") {
                "glint-meta-read-"
            } else {
                "glint-writer"
            };
            assert!(thread.starts_with(expected), "{call} ran on {thread:?}");
        }
    }

    #[test]
    fn uploads_are_claimed_for_this_node() {
        let dir = tempfile::tempdir().unwrap();
        let backend = Arc::new(RedbBackend::open(&dir.path().join("meta.redb")).unwrap());
        let catalog = Catalog::new(backend.clone(), node(), Writer::start().unwrap()).unwrap();
        let image = image();
        block_on(catalog.create_image(image.clone(), Limits::UNLIMITED)).unwrap();
        block_on(catalog.begin_upload(image.id, ImageStatus::Saving, None, Limits::UNLIMITED))
            .unwrap();
        assert_eq!(
            backend.upload_state(image.id).unwrap().unwrap().node,
            node()
        );
        // Another node's recovery leaves it; this node's takes it.
        assert!(backend
            .recover_interrupted(&"elsewhere".parse().unwrap())
            .unwrap()
            .is_empty());
        assert_eq!(catalog.recover_interrupted().unwrap(), vec![image.id]);
    }

    #[test]
    fn edits_refusing_with_their_own_error_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let backend = RedbBackend::open(&dir.path().join("meta.redb")).unwrap();
        let catalog = Catalog::new(Arc::new(backend), node(), Writer::start().unwrap()).unwrap();
        let image = image();
        block_on(catalog.create_image(image.clone(), Limits::UNLIMITED)).unwrap();
        let refused = block_on(catalog.update_image(image.id, |image: &mut Image| {
            image.name = Some("half-done".into());
            Err(crate::error::ApiError::not_found("Tag x not found"))
        }));
        assert_eq!(refused.unwrap_err().status(), http::StatusCode::NOT_FOUND);
        assert_eq!(block_on(catalog.get_image(image.id)).unwrap(), image);
    }

    #[test]
    fn node_id_is_configured_or_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().to_owned(),
            ..Config::default()
        };
        let first = node_id(&config).unwrap();
        assert!(first.as_str().starts_with("glint-"), "{first}");
        assert_eq!(node_id(&config).unwrap(), first);
        let kept = std::fs::read_to_string(dir.path().join(NODE_ID_FILE)).unwrap();
        assert_eq!(kept.trim(), first.as_str());
        let configured = Config {
            node_id: Some("gw-2".into()),
            ..config.clone()
        };
        assert_eq!(node_id(&configured).unwrap().as_str(), "gw-2");
        std::fs::write(dir.path().join(NODE_ID_FILE), "not valid\n").unwrap();
        assert_eq!(
            node_id(&config).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }
}
