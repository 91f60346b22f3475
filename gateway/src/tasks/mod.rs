//! Image import tasks (Glance's `api_image_import`): the staging area, the import thread that
//! runs imports, their leases, and the revert of every import that fails or is interrupted.
//!
//! ```text
//! POST /import ─► begin_import (meta: lock + task + status, one transaction) ─► 202
//!                   └─► Imports::submit ─► import thread: wait for a slot (import_workers)
//!                        ├─ heartbeat: renew the lease every third of import_lease_seconds;
//!                        │  a lost lock stops the import (its store writers remove their bytes)
//!                        └─ source (staging file | URL through net::fetch's policy | a store)
//!                           ─► datapath::ingest into each target store (inspected, hashed)
//!                           ─► end_import (meta: locations, checksums, active, unlock, task
//!                              success — one transaction) ─► staging file removed
//! ```
//!
//! Every failure reverts, in `end_import`'s one transaction: the image goes back to `queued`
//! (a copy stays `active`, with the store in `os_glance_failed_import`), the task ends
//! `failure` with its message, and the data the import wrote (staging file, objects in the
//! target stores) is removed. After a crash, [`recover`] does the same at start-up for this
//! node's tasks, and the import thread's sweeper for any node's task whose lease lapsed.
//!
//! Imports run on their own thread (one monoio runtime), never on a request's core: bytes
//! are hashed on the hashing threads and written by the stores as for an upload.

pub mod glance_download;
mod legacy;
mod plugins;
pub(crate) mod quota;
mod run;
pub mod staged;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_channel::{mpsc, oneshot};
use meta::tasks::{
    merge_store_list, ImportEnd, Task, TaskFilter, TaskId, TaskRunner, TaskStatus, TaskType,
    FAILED_STORES_PROPERTY, IMPORTING_STORES_PROPERTY,
};
use meta::{ImageId, ImageStatus, Location, Timestamp};

use crate::auth::keystone::CatalogSource;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::context::RequestContext;
use crate::datapath::checksum::HashPool;
use crate::net::fetch::FetchPolicy;
use crate::store::fs::FsStore;
use crate::store::{Store, Stores};

pub use legacy::LegacyJob;
pub use run::Method;

/// The id of the staging area in logs and errors (Glance's internal staging store).
pub const STAGING_STORE: &str = "os_glance_staging_store";

/// One import, as the import thread runs it.
#[derive(Debug, Clone)]
pub struct Job {
    /// The image.
    pub image: ImageId,
    /// Its task (holding the image's lock).
    pub task: TaskId,
    /// Where the data comes from.
    pub method: Method,
    /// The stores to fill, in order.
    pub stores: Vec<String>,
    /// Whether one store failing fails the import (Glance `all_stores_must_succeed`).
    pub all_stores_must_succeed: bool,
    /// Properties the `inject_image_metadata` plugin sets (empty: none; decided by the
    /// caller's roles when the import was asked for).
    pub inject: std::collections::BTreeMap<String, String>,
    /// The caller's token, sent on to another region's Image service by glance-download
    /// (as Glance's task keeps its request context); `None` for the other methods.
    pub token: Option<crate::config::Secret>,
    /// Whether a name is a base attribute of the image schema, which glance-download never
    /// copies as a property (the handlers own the schema, so they hand it over).
    pub base_attribute: fn(&str) -> bool,
}

/// What the import thread needs; shared with it.
pub(crate) struct Shared {
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) stores: Stores,
    pub(crate) staging: Arc<FsStore>,
    pub(crate) hash_pool: Arc<HashPool>,
    pub(crate) config: Arc<Config>,
    pub(crate) format_policy: formats::Policy,
    pub(crate) fetch_policy: Arc<FetchPolicy>,
    /// Service catalogs for glance-download; `None` without Keystone auth.
    pub(crate) catalogs: Option<CatalogSource>,
}

/// What the import thread runs.
enum Work {
    /// An image import (`POST /import`).
    Import(Job),
    /// A legacy `import` task (`POST /v2/tasks`).
    Legacy(Box<LegacyJob>),
}

/// The import service of one gateway: the staging area and the import thread.
pub struct Imports {
    staging: Arc<FsStore>,
    jobs: mpsc::UnboundedSender<Work>,
}

impl std::fmt::Debug for Imports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Imports")
            .field("staging", &self.staging.dir())
            .finish_non_exhaustive()
    }
}

impl Imports {
    /// Opens the staging folder and starts the import thread. `catalogs`: where
    /// glance-download finds other regions (none without Keystone auth).
    pub fn start(
        config: Arc<Config>,
        catalog: Arc<Catalog>,
        stores: Stores,
        hash_pool: Arc<HashPool>,
        catalogs: Option<CatalogSource>,
    ) -> std::io::Result<Imports> {
        if catalogs.is_none()
            && config
                .enabled_import_methods
                .iter()
                .any(|m| m == "glance-download")
        {
            tracing::warn!(
                "glance-download is enabled but auth is noauth: there is no service catalog, \
                 so every glance-download import will fail"
            );
        }
        let staging = Arc::new(FsStore::open_named(
            STAGING_STORE,
            &config.staging_dir(),
            Default::default(),
        )?);
        let fetch_policy = FetchPolicy::new(&config.import_filtering_opts)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let shared = Arc::new(Shared {
            catalog,
            stores,
            staging: Arc::clone(&staging),
            hash_pool,
            format_policy: config.format_policy(),
            fetch_policy: Arc::new(fetch_policy),
            catalogs,
            config,
        });
        let (jobs, receiver) = mpsc::unbounded();
        std::thread::Builder::new()
            .name("glint-imports".into())
            .spawn(move || import_thread(shared, receiver))?;
        Ok(Imports { staging, jobs })
    }

    /// The staging area (`PUT /stage` writes there).
    pub fn staging(&self) -> &Arc<FsStore> {
        &self.staging
    }

    /// Where image `id`'s staged data is.
    pub fn staged_location(&self, id: ImageId) -> Location {
        staged_location(&self.staging, id)
    }

    /// Hands `job` to the import thread (its task and lock exist already).
    pub fn submit(&self, job: Job) {
        self.send(Work::Import(job));
    }

    /// Hands a legacy import task (stored `pending`, with a lease) to the import thread.
    pub fn submit_legacy(&self, job: LegacyJob) {
        self.send(Work::Legacy(Box::new(job)));
    }

    fn send(&self, work: Work) {
        if let Err(e) = self.jobs.unbounded_send(work) {
            // The thread is gone: the lease lapses and the sweeper of a gateway reverts it.
            tracing::error!(error = %e, "import thread gone; import not started");
        }
    }
}

fn staged_location(staging: &FsStore, id: ImageId) -> Location {
    Location {
        url: format!("file://{}", staging.image_path(id).display()),
        store: STAGING_STORE.to_owned(),
    }
}

/// A lease's length and how often it is renewed.
pub(crate) fn lease(config: &Config) -> (Duration, Duration) {
    let lease = Duration::from_secs(config.import_lease_seconds);
    (lease, lease / 3)
}

/// A new task of the caller's, `pending`, to be run by this gateway: its lease starts at `now`.
pub(crate) fn new_task(
    catalog: &Catalog,
    config: &Config,
    ctx: &RequestContext,
    kind: TaskType,
    image_id: Option<ImageId>,
    input: String,
    now: Timestamp,
) -> Task {
    let (lease_length, _) = lease(config);
    Task {
        id: TaskId::new_v4(),
        kind,
        status: TaskStatus::Pending,
        owner: ctx.project_id.clone(),
        image_id,
        request_id: Some(ctx.request_id.clone()),
        user_id: ctx.user_id.clone(),
        input,
        result: None,
        message: String::new(),
        expires_at: None,
        created_at: now,
        updated_at: now,
        runner: Some(TaskRunner {
            node: catalog.node().clone(),
            lease_until: later(now, lease_length),
        }),
    }
}

/// `now` + `after`.
pub(crate) fn later(now: Timestamp, after: Duration) -> Timestamp {
    let micros = i64::try_from(after.as_micros()).unwrap_or(i64::MAX);
    Timestamp::from_unix_micros(now.as_unix_micros().saturating_add(micros))
}

/// When a task that ends now expires (`task_time_to_live` hours).
pub(crate) fn expiry(config: &Config) -> Timestamp {
    later(
        Timestamp::now(),
        Duration::from_secs(config.task_time_to_live.saturating_mul(3600)),
    )
}

/// Slots of the import thread: at most `import_workers` imports move data at once.
struct Slots {
    free: Cell<usize>,
    waiting: RefCell<VecDeque<oneshot::Sender<()>>>,
}

struct Slot(Rc<Slots>);

impl Slots {
    async fn acquire(self: &Rc<Slots>) -> Slot {
        if self.free.get() > 0 {
            self.free.set(self.free.get() - 1);
            return Slot(Rc::clone(self));
        }
        let (sender, receiver) = oneshot::channel();
        self.waiting.borrow_mut().push_back(sender);
        // The sender is dropped only when handed a slot, so this cannot fail in practice.
        let _ = receiver.await;
        Slot(Rc::clone(self))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // Hand the slot to the next waiter still waiting, else free it.
        loop {
            let next = self.0.waiting.borrow_mut().pop_front();
            match next {
                Some(waiter) => {
                    if waiter.send(()).is_ok() {
                        return;
                    }
                }
                None => {
                    self.0.free.set(self.0.free.get() + 1);
                    return;
                }
            }
        }
    }
}

fn import_thread(shared: Arc<Shared>, jobs: mpsc::UnboundedReceiver<Work>) {
    let runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build();
    let mut runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the import runtime; imports will not run");
            return;
        }
    };
    runtime.block_on(async move {
        let slots = Rc::new(Slots {
            free: Cell::new(shared.config.import_workers),
            waiting: RefCell::new(VecDeque::new()),
        });
        monoio::spawn(sweep(Arc::clone(&shared)));
        let mut jobs = jobs;
        while let Some(job) = next(&mut jobs).await {
            let shared = Arc::clone(&shared);
            let slots = Rc::clone(&slots);
            monoio::spawn(async move {
                match job {
                    Work::Import(job) => run::run(&shared, &slots, job).await,
                    Work::Legacy(job) => legacy::run(&shared, &slots, *job).await,
                }
            });
        }
    });
}

async fn next(jobs: &mut mpsc::UnboundedReceiver<Work>) -> Option<Work> {
    use futures_core::Stream;
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *jobs).poll_next(cx)).await
}

/// Every lease period: tasks whose lease lapsed (their gateway died or hung) are reverted,
/// and tasks past `expires_at` removed.
async fn sweep(shared: Arc<Shared>) {
    let (lease, _) = lease(&shared.config);
    loop {
        monoio::time::sleep(lease).await;
        if let Err(e) = shared.catalog.purge_expired_tasks(Timestamp::now()).await {
            tracing::warn!(error = %e, "cannot remove expired tasks");
        }
        let now = Timestamp::now();
        for task in unfinished(&shared.catalog).await {
            if !task.is_alive(now) {
                revert_abandoned(&shared, task, "its gateway stopped renewing its lease").await;
            }
        }
    }
}

/// The tasks that have not ended.
async fn unfinished(catalog: &Catalog) -> Vec<Task> {
    let mut tasks = Vec::new();
    for status in [TaskStatus::Pending, TaskStatus::Processing] {
        let filter = TaskFilter {
            status: Some(status),
            limit: usize::MAX,
            ..TaskFilter::default()
        };
        match catalog.list_tasks(filter).await {
            Ok(found) => tasks.extend(found),
            Err(e) => tracing::warn!(error = %e, "cannot list running tasks"),
        }
    }
    tasks
}

/// What a task's input says about its import: the method name and the stores.
fn task_plan(task: &Task) -> (String, Vec<String>) {
    let input: serde_json::Value = serde_json::from_str(&task.input).unwrap_or_default();
    let method = input["import_req"]["method"]["name"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let stores = input["backend"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    (method, stores)
}

/// Reverts the import of a task nobody runs any more (its gateway crashed): the image back to
/// `queued` (a copy stays `active`, its stores failed), the lock dropped, the task failed; the
/// staging file removed when it is here.
async fn revert_abandoned(shared: &Shared, task: Task, why: &str) {
    if task.kind == meta::tasks::TaskType::Import {
        return legacy::abandon(shared, task, why).await;
    }
    let Some(image) = task.image_id else {
        return;
    };
    let (method, stores) = task_plan(&task);
    let copy = method == "copy-image";
    let message = format!("Import of image {image} was interrupted: {why}. Please retry it.");
    let end = ImportEnd {
        task: task.id,
        status: TaskStatus::Failure,
        result: None,
        message: message.clone(),
        expires_at: expiry(&shared.config),
        to: (!copy).then_some(ImageStatus::Queued),
        limits: meta::Limits::UNLIMITED,
    };
    // What the dead import may have committed into its stores without recording it goes
    // first, while its lock still keeps new imports of the image out.
    match shared.catalog.get_image(image).await {
        Ok(current) if lock_holder(&current) == Some(task.id) => {
            remove_leftovers(&shared.stores, image, &current.locations, &stores).await;
        }
        // Deleted meanwhile: nothing can import it again, and no location names that data.
        Err(meta::Error::NotFound(_)) => {
            remove_leftovers(&shared.stores, image, &[], &stores).await;
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(task = %task.id, image_id = %image, error = %e,
                "cannot read the image of an interrupted import");
        }
    }
    let failed = stores.clone();
    let ended = shared
        .catalog
        .end_import(image, end, move |image| {
            staged::forget(image);
            merge_store_list(image, IMPORTING_STORES_PROPERTY, &failed, true);
            if copy {
                merge_store_list(image, FAILED_STORES_PROPERTY, &failed, false);
            }
        })
        .await;
    match ended {
        Ok(_) => {}
        Err(meta::Error::ImportLockLost(_)) => {
            // Another task holds the image now: only this task ends.
            let end_message = message.clone();
            let expires_at = expiry(&shared.config);
            let _ = shared
                .catalog
                .update_task(task.id, move |t| {
                    t.status = TaskStatus::Failure;
                    t.message = end_message.clone();
                    t.expires_at = Some(expires_at);
                    t.runner = None;
                })
                .await;
        }
        Err(e) => {
            tracing::error!(task = %task.id, image_id = %image, error = %e, "cannot revert import");
            return;
        }
    }
    if !copy {
        let _ = Store::delete(&*shared.staging, &staged_location(&shared.staging, image)).await;
    }
    tracing::warn!(task = %task.id, image_id = %image, "reverted an interrupted import");
}

/// The task holding `image`'s import lock.
fn lock_holder(image: &meta::Image) -> Option<TaskId> {
    image
        .properties
        .get(meta::tasks::IMPORT_TASK_PROPERTY)
        .and_then(|t| t.parse().ok())
}

/// Removes what an import that died (its gateway killed between a store's commit and
/// `end_import`) left in `targets`, the stores it was importing into: a writer names the data
/// after the image ([`Store::data_location`]), so it is found without a record. Data a
/// of `locations` (the image's, read after the import died) names is never touched. Called
/// while no import of `image` can write (the dead import's lock still held, or just taken
/// over and the new import not started).
pub(crate) async fn remove_leftovers(
    stores: &Stores,
    image: ImageId,
    locations: &[Location],
    targets: &[String],
) {
    for store_id in targets {
        let Some(store) = stores.get(store_id) else {
            continue;
        };
        let Some(location) = store.data_location(image) else {
            continue;
        };
        if locations
            .iter()
            .any(|l| store.is_data_location(&l.url, image))
        {
            continue;
        }
        match store.delete(&location).await {
            Ok(()) => tracing::info!(image_id = %image, store = %store_id,
                "removed what an interrupted import may have left in the store"),
            Err(e) => tracing::error!(image_id = %image, store = %store_id, error = %e,
                "cannot remove what an interrupted import left in the store"),
        }
    }
}

/// After a take-over of `image`'s import lock (the import that held it died): removes what
/// that import may have left in its stores (data named after the image that no location of
/// the image names). Called before the new import is submitted.
pub async fn clear_taken_over(catalog: &Catalog, stores: &Stores, image: ImageId, old: &Task) {
    let (_, targets) = task_plan(old);
    match catalog.get_image(image).await {
        Ok(current) => remove_leftovers(stores, image, &current.locations, &targets).await,
        Err(e) => tracing::warn!(image_id = %image, error = %e,
            "cannot read the image whose import lock was taken over"),
    }
}

/// Start-up recovery of this node's imports (blocking; before the workers start): every task
/// this node was running is reverted, then staging files that belong to no finished stage of
/// this node are removed. Returns how many imports were reverted.
pub fn recover(
    imports: &Imports,
    catalog: &Arc<Catalog>,
    config: &Arc<Config>,
    stores: &Stores,
    hash_pool: &Arc<HashPool>,
) -> Result<usize, meta::Error> {
    let shared = Shared {
        catalog: Arc::clone(catalog),
        stores: stores.clone(),
        staging: Arc::clone(&imports.staging),
        hash_pool: Arc::clone(hash_pool),
        config: Arc::clone(config),
        format_policy: config.format_policy(),
        fetch_policy: Arc::new(
            FetchPolicy::new(&config.import_filtering_opts)
                .map_err(|e| meta::Error::Corrupt(e.to_string()))?,
        ),
        // Recovery reverts; it never starts a download.
        catalogs: None,
    };
    let mut runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .map_err(|e| meta::Error::Storage(meta::StorageError::new(e)))?;
    runtime.block_on(async {
        let node = catalog.node().clone();
        let mut reverted = 0;
        for task in unfinished(catalog).await {
            let mine = task.runner.as_ref().is_some_and(|r| r.node == node);
            if mine {
                revert_abandoned(&shared, task, "glint restarted while it ran").await;
                reverted += 1;
            }
        }
        remove_stray_staging(&shared).await;
        Ok(reverted)
    })
}

/// Removes staging files that are no finished stage of this node's, and finished stages
/// whose file is missing or short go back to `queued`.
async fn remove_stray_staging(shared: &Shared) {
    let staged: Vec<(ImageId, u64)> = {
        let filter = meta::ListFilter::all().with(meta::Condition::Text {
            field: meta::TextField::Status,
            values: vec!["uploading".into()],
        });
        match shared.catalog.list_images(filter).await {
            Ok(images) => images
                .into_iter()
                .filter_map(|image| Some((image.id, image.size?)))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list staged images");
                return;
            }
        }
    };
    let dir = shared.staging.dir().to_owned();
    let mut keep = std::collections::HashSet::new();
    for (id, size) in staged {
        let path = shared.staging.image_path(id);
        let here = std::fs::metadata(&path).is_ok_and(|m| m.len() == size);
        let mine = matches!(
            shared.catalog.upload_state(id).await,
            Ok(Some(state)) if state.node == *shared.catalog.node()
        );
        if here {
            keep.insert(path);
        } else if mine {
            // This node staged it and the data is gone: the stage is lost.
            if let Err(e) = shared.catalog.abort_upload(id).await {
                tracing::warn!(image_id = %id, error = %e, "cannot requeue a lost stage");
            }
            // Its digests describe data that is gone.
            let forgotten = shared
                .catalog
                .update_image(id, |image: &mut meta::Image| -> Result<(), meta::Error> {
                    staged::forget(image);
                    Ok(())
                })
                .await;
            if let Err(e) = forgotten {
                tracing::warn!(image_id = %id, error = %e, "cannot forget a lost stage's digests");
            }
        }
    }
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path: PathBuf = entry.path();
        if !keep.contains(&path) {
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove staging file");
            } else {
                tracing::warn!(path = %path.display(), "removed a stray staging file");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gives the other tasks on this runtime one turn.
    async fn yield_once() {
        let mut yielded = false;
        std::future::poll_fn(|cx| {
            if yielded {
                std::task::Poll::Ready(())
            } else {
                yielded = true;
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        })
        .await
    }

    #[test]
    fn slots_bound_imports_and_hand_over_in_order() {
        let mut runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        runtime.block_on(async {
            let slots = Rc::new(Slots {
                free: Cell::new(1),
                waiting: RefCell::new(VecDeque::new()),
            });
            let order = Rc::new(RefCell::new(Vec::new()));
            let first = slots.acquire().await;
            assert_eq!(slots.free.get(), 0);
            let mut waiters = Vec::new();
            for n in 0..2 {
                let (slots, order) = (Rc::clone(&slots), Rc::clone(&order));
                waiters.push(monoio::spawn(async move {
                    let _slot = slots.acquire().await;
                    order.borrow_mut().push(n);
                }));
            }
            // Let both run up to their wait while the first slot is held.
            for _ in 0..4 {
                yield_once().await;
            }
            assert!(order.borrow().is_empty());
            drop(first);
            for waiter in waiters {
                waiter.await;
            }
            assert_eq!(*order.borrow(), [0, 1]);
            assert_eq!(slots.free.get(), 1);
        });
    }

    #[test]
    fn a_task_input_names_its_method_and_stores() {
        let now = Timestamp::from_unix_micros(0);
        let task = Task {
            id: TaskId::new_v4(),
            kind: meta::tasks::TaskType::ApiImageImport,
            status: TaskStatus::Processing,
            owner: None,
            image_id: None,
            request_id: None,
            user_id: None,
            input: r#"{"image_id":"x","import_req":{"method":{"name":"copy-image"}},"backend":["a","b"]}"#
                .to_owned(),
            result: None,
            message: String::new(),
            expires_at: None,
            created_at: now,
            updated_at: now,
            runner: None,
        };
        assert_eq!(
            task_plan(&task),
            (
                "copy-image".to_owned(),
                vec!["a".to_owned(), "b".to_owned()]
            )
        );
    }
}
