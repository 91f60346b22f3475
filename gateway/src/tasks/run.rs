//! One import from start to end: slot, heartbeat, source, stores, and the end that commits or
//! reverts it (see the module docs of `tasks`).

use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;

use meta::tasks::{
    merge_store_list, ImportEnd, TaskId, TaskStatus, FAILED_STORES_PROPERTY,
    IMPORTING_STORES_PROPERTY,
};
use meta::{Image, ImageId, ImageStatus, Location, Timestamp};

use super::quota::Caps;
use super::{
    expiry, glance_download, later, lease, plugins, staged, staged_location, Job, Shared, Slots,
};
use crate::datapath::checksum::{Checksums, Digests};
use crate::datapath::download;
use crate::datapath::ingest::{self, Checks, FrameSource, IngestError, Landed, StoreSource};
use crate::net::client::{ClientSettings, HttpClient};
use crate::net::fetch::{FetchError, FetchRequest, Fetcher};
use crate::store::{Store, StoreError};

/// Where an import's data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// The staging area (`PUT /stage` put it there).
    GlanceDirect,
    /// A URL, fetched under `[import_filtering_opts]`, staged, then imported.
    WebDownload {
        /// The URL.
        uri: String,
    },
    /// The image's own data, copied into more stores (the image stays `active`).
    CopyImage,
    /// Another region's Image service, found in the caller's service catalog.
    GlanceDownload(glance_download::Source),
}

impl Method {
    /// Glance's name.
    pub fn name(&self) -> &'static str {
        match self {
            Method::GlanceDirect => "glance-direct",
            Method::WebDownload { .. } => "web-download",
            Method::CopyImage => "copy-image",
            Method::GlanceDownload(_) => "glance-download",
        }
    }
}

/// Why an import failed: the message the task ends with (for people).
pub(super) struct Failure(pub(super) String);

impl<E: std::error::Error> From<IngestError<E>> for Failure {
    fn from(e: IngestError<E>) -> Failure {
        Failure(match e {
            IngestError::TooLarge { cap } => {
                format!(
                    "The image is larger than the {cap} bytes allowed (image_size_cap or quota)."
                )
            }
            IngestError::Refused(refusal) => {
                format!("Image data is not acceptable: {refusal}")
            }
            IngestError::Store(StoreError::Full { .. }) => {
                "Image storage media is full.".to_owned()
            }
            other => other.to_string(),
        })
    }
}

/// Runs `job` to its end; never panics the import thread.
pub(super) async fn run(shared: &Shared, slots: &Rc<Slots>, job: Job) {
    let image = job.image;
    let task = job.task;
    let renew = |until| async move {
        match shared.catalog.renew_import_lease(image, task, until).await {
            Ok(()) => Ok(true),
            Err(meta::Error::ImportLockLost(_)) => Ok(false),
            Err(e) => Err(e),
        }
    };
    match leased(shared, slots, task, renew, import(shared, &job)).await {
        Some(Ok(done)) => finish(shared, &job, done).await,
        Some(Err(failure)) => revert(shared, &job, &failure.0, &[]).await,
        None => {
            // The lock was taken over (this gateway's lease lapsed): the store writers
            // dropped with `work` removed their partial bytes; the new holder reverts the rest.
            tracing::warn!(task = %task, image_id = %image, "import stopped: its lock was taken over");
        }
    }
}

/// Runs `work` for task `task` once an import slot is free, the task marked `processing`,
/// while a heartbeat keeps the task's lease: every third of `import_lease_seconds`, from the
/// start (also while the task waits for a slot), `renew` is given the lease's new end and
/// says whether the task still holds it. `None` when the lease was lost (or the task is
/// gone) first, which drops `work`.
pub(super) async fn leased<T, R>(
    shared: &Shared,
    slots: &Rc<Slots>,
    task: TaskId,
    renew: impl Fn(Timestamp) -> R,
    work: impl Future<Output = T>,
) -> Option<T>
where
    R: Future<Output = Result<bool, meta::Error>>,
{
    let (lease_length, renew_every) = lease(&shared.config);
    let heartbeat = async {
        loop {
            monoio::time::sleep(renew_every).await;
            match renew(later(Timestamp::now(), lease_length)).await {
                Ok(true) => {}
                Ok(false) | Err(meta::Error::TaskNotFound(_)) => return,
                Err(e) => tracing::warn!(task = %task, error = %e, "cannot renew the task's lease"),
            }
        }
    };
    let work = async {
        let _slot = slots.acquire().await;
        let _ = shared
            .catalog
            .update_task(task, |t| {
                if t.status == TaskStatus::Pending {
                    t.status = TaskStatus::Processing;
                }
            })
            .await;
        work.await
    };
    let mut work = pin!(work);
    let mut heartbeat = pin!(heartbeat);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(value) = work.as_mut().poll(cx) {
            return Poll::Ready(Some(value));
        }
        if heartbeat.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}

/// What landed where.
struct Done {
    /// The owner's limits (`end_import` checks `image_size_total` with them).
    limits: meta::Limits,
    landed: Vec<(String, Landed)>,
    failed: Vec<String>,
    messages: Vec<String>,
    converted: Option<plugins::Converted>,
    /// glance-download: the remote image's formats and properties, for the local image.
    remote: Option<glance_download::RemoteImage>,
}

impl Done {
    /// Nothing landed yet; `limits` for `end_import`.
    fn new(limits: meta::Limits) -> Done {
        Done {
            limits,
            landed: Vec::new(),
            failed: Vec::new(),
            messages: Vec::new(),
            converted: None,
            remote: None,
        }
    }
}

async fn import(shared: &Shared, job: &Job) -> Result<Done, Failure> {
    let image = shared
        .catalog
        .get_image(job.image)
        .await
        .map_err(|e| Failure(format!("Image {} is gone: {e}", job.image)))?;
    match &job.method {
        Method::WebDownload { uri } => {
            let request = FetchRequest::get(uri.as_str());
            let landed = download_to_staging(shared, job, &image, request, None, |e| {
                format!("Cannot download the image data: {e}")
            })
            .await?;
            // Staged: charged to the owner from now on, as a finished stage is.
            let mut image = image;
            image.size = Some(landed.size);
            let (image, converted) = run_plugins(shared, image).await?;
            let hashed = Some((landed.size, landed.digests)).filter(|_| converted.is_none());
            let mut done = import_from_staging(shared, job, &image, hashed).await?;
            done.converted = converted;
            Ok(done)
        }
        Method::GlanceDirect => {
            let recorded = staged::recorded(&image);
            let (image, converted) = run_plugins(shared, image).await?;
            let hashed = recorded.filter(|_| converted.is_none());
            let mut done = import_from_staging(shared, job, &image, hashed).await?;
            done.converted = converted;
            Ok(done)
        }
        Method::CopyImage => copy(shared, job, &image).await,
        Method::GlanceDownload(source) => {
            let token = job.token.as_ref();
            let remote = glance_download::remote_image(shared, source, token, job.base_attribute)
                .await
                .map_err(Failure)?;
            glance_download::check_property_quota(
                &image.properties,
                &remote,
                shared.config.image_property_quota,
            )
            .map_err(Failure)?;
            // The remote's formats are the image's from here on: the inspector, the
            // conversion and the stores see them (end_import writes them).
            let mut image = image;
            image.disk_format = Some(remote.disk_format.clone());
            image.container_format = Some(remote.container_format.clone());
            let request = glance_download::file_request(&remote, token).map_err(Failure)?;
            let url = remote.file_url.clone();
            tracing::info!(image_id = %image.id, url = %url, "downloading the remote image");
            let expected = Some(remote.size);
            let landed = download_to_staging(shared, job, &image, request, expected, |e| {
                glance_download::fetch_failure(&url, "download the image data", e)
            })
            .await?;
            glance_download::check_digests(&remote, &landed.digests).map_err(Failure)?;
            image.size = Some(landed.size);
            let (image, converted) = run_plugins(shared, image).await?;
            let hashed = Some((landed.size, landed.digests)).filter(|_| converted.is_none());
            let mut done = import_from_staging(shared, job, &image, hashed).await?;
            done.converted = converted;
            done.remote = Some(remote);
            Ok(done)
        }
    }
}

/// The `image_conversion` plugin on the staged data, when enabled: returns the image as the
/// stores will see it (its new `disk_format`) and what the conversion did.
async fn run_plugins(
    shared: &Shared,
    mut image: Image,
) -> Result<(Image, Option<plugins::Converted>), Failure> {
    let enabled = shared
        .config
        .image_import_plugins
        .iter()
        .any(|p| p == "image_conversion");
    let Some(source) = image.disk_format.clone().filter(|_| enabled) else {
        return Ok((image, None));
    };
    let converted = plugins::convert(
        shared.staging.image_path(image.id),
        source,
        shared.config.image_conversion.output_format.clone(),
        shared.format_policy.clone(),
    )
    .await
    .map_err(|e| Failure(format!("Image conversion failed: {e}")))?;
    if let Some(converted) = &converted {
        image.disk_format = Some(converted.disk_format.clone());
    }
    Ok((image, converted))
}

/// The `Checks` of an import into a store: the cap, the inspector unless copying; `known`:
/// the digests of exactly the source's bytes, computed before (then they are not hashed
/// again).
fn checks(
    shared: &Shared,
    image: &Image,
    cap_bytes: u64,
    expected: Option<u64>,
    inspect: bool,
    known: Option<Digests>,
) -> Result<Checks, Failure> {
    let checksums = match known {
        Some(digests) => Checksums::precomputed(digests),
        None => shared
            .hash_pool
            .checksums(&shared.config.hashing_algorithm)
            .map_err(|e| Failure(e.to_string()))?,
    };
    Ok(Checks {
        cap_bytes,
        expected_bytes: expected,
        inspector: (inspect && image.container_format.as_deref() == Some("bare"))
            .then(|| formats::Inspector::new(image.disk_format.as_deref(), &shared.format_policy)),
        checksums,
        // Sources here are glint's own reads (staging, stores) and web-download's client,
        // which has its own timeouts.
        idle_timeout: None,
    })
}

/// web-download's and glance-download's first step: the bytes of `request` into the staging
/// area, through the fetch policy (a refused URL stages nothing), within `image_size_cap` and
/// the owner's `image_stage_total` and `image_size_total`. `expected`: the size the data must
/// have (else the response's `Content-Length`, if any); `refused` words a failed fetch. The
/// bytes staged are recorded as the image's `size` (staged data counts against the quotas, as
/// a stage's does).
async fn download_to_staging(
    shared: &Shared,
    job: &Job,
    image: &Image,
    request: FetchRequest,
    expected: Option<u64>,
    refused: impl FnOnce(FetchError) -> String,
) -> Result<Landed, Failure> {
    let caps = Caps::for_staging(shared, image).await?;
    let cap = shared.config.image_size_cap;
    let policy = (*shared.fetch_policy).clone().with_max_bytes(cap);
    let fetcher = Fetcher::new(
        HttpClient::new(ClientSettings::default()),
        std::sync::Arc::new(policy),
    );
    let fetched = fetcher
        .fetch(request)
        .await
        .map_err(|e| Failure(refused(e)))?;
    let expected = expected.or_else(|| {
        fetched
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
    });
    if let Some(announced) = expected {
        caps.check(announced)?;
    }
    let checks = checks(shared, image, caps.bytes(), expected, false, None)?;
    let landed = ingest::land(fetched.body, &*shared.staging, image.id, checks)
        .await
        .map_err(|e| match e {
            IngestError::Source(e) => Failure(format!(
                "Cannot download the image data: the origin stopped sending: {e}"
            )),
            IngestError::TooLarge { cap } => caps
                .explain(cap)
                .unwrap_or_else(|| IngestError::<std::io::Error>::TooLarge { cap }.into()),
            // Glance's words (glance-download checks the size the remote announced).
            IngestError::SizeMismatch { expected, received } => Failure(format!(
                "The downloaded data size {received} is different from the expected {expected}."
            )),
            e => e.into(),
        })?;
    let size = landed.size;
    let task = job.task;
    let recorded = shared
        .catalog
        .update_image(
            image.id,
            move |image: &mut Image| -> Result<(), meta::Error> {
                let lock = image.properties.get(meta::tasks::IMPORT_TASK_PROPERTY);
                if lock == Some(&task.to_string()) {
                    image.size = Some(size);
                }
                Ok(())
            },
        )
        .await;
    if let Err(e) = recorded {
        return Err(Failure(format!("Cannot record the staged data: {e}")));
    }
    Ok(landed)
}

/// The staged data into each of the job's stores. `hashed`: the size and digests the staged
/// bytes had when they were staged, when they are unchanged since (no conversion); used
/// instead of hashing them again when the size is the staged file's and the algorithm is
/// `hashing_algorithm`.
async fn import_from_staging(
    shared: &Shared,
    job: &Job,
    image: &Image,
    hashed: Option<(u64, Digests)>,
) -> Result<Done, Failure> {
    let staged = staged_location(&shared.staging, job.image);
    let size = shared
        .staging
        .size(&staged)
        .await
        .map_err(|e| Failure(format!("The staged data is gone: {e}")))?;
    let known = hashed
        .filter(|(n, d)| *n == size && d.os_hash_algo == shared.config.hashing_algorithm)
        .map(|(_, digests)| digests);
    if known.is_none() {
        tracing::debug!(image_id = %job.image, "hashing the staged data again");
    }
    // image_size_total: the staged size is known; each store's stream is capped too.
    let caps = Caps::for_data(shared, image).await?;
    caps.check(size)?;
    let mut done = Done::new(shared.config.quotas.limits_for(image.owner.as_deref()));
    for store_id in &job.stores {
        let outcome = async {
            let store = store(shared, store_id)?;
            let stream = shared
                .staging
                .read(&staged, 0..size)
                .await
                .map_err(|e| Failure(format!("The staged data is not readable: {e}")))?;
            land_into(
                shared,
                image,
                StoreSource(stream),
                &**store,
                (caps.bytes(), Some(size)),
                true,
                known.clone(),
            )
            .await
        }
        .await;
        record(shared, job, &mut done, store_id, outcome).await?;
    }
    Ok(done)
}

async fn copy(shared: &Shared, job: &Job, image: &Image) -> Result<Done, Failure> {
    let size = image
        .size
        .ok_or_else(|| Failure("The image has no data to copy.".to_owned()))?;
    // A copy adds no data to the image: no size quota at its end.
    let mut done = Done::new(meta::Limits::UNLIMITED);
    for store_id in &job.stores {
        let outcome = async {
            let store = store(shared, store_id)?;
            let (stream, _from) = download::open_first(&shared.stores, &image.locations, 0..size)
                .await
                .map_err(|e| Failure(format!("The image's data is not readable: {e}")))?;
            let landed = land_into(
                shared,
                image,
                StoreSource(stream),
                &**store,
                (shared.config.image_size_cap, Some(size)),
                false,
                None,
            )
            .await?;
            let same = image.checksum.as_deref() == Some(landed.digests.checksum.as_str())
                && image
                    .os_hash_value
                    .as_deref()
                    .is_none_or(|v| v == landed.digests.os_hash_value);
            if !same {
                let _ = store.delete(&landed.location).await;
                return Err(Failure(
                    "The copy's checksum differs from the image's: the source data is corrupt."
                        .to_owned(),
                ));
            }
            Ok(landed)
        }
        .await;
        record(shared, job, &mut done, store_id, outcome).await?;
    }
    Ok(done)
}

fn store<'a>(shared: &'a Shared, id: &str) -> Result<&'a std::sync::Arc<dyn Store>, Failure> {
    shared
        .stores
        .get(id)
        .ok_or_else(|| Failure(format!("Store {id} is not configured.")))
}

async fn land_into<S: FrameSource>(
    shared: &Shared,
    image: &Image,
    source: S,
    store: &dyn Store,
    (cap, expected): (u64, Option<u64>),
    inspect: bool,
    known: Option<Digests>,
) -> Result<Landed, Failure> {
    let checks = checks(shared, image, cap, expected, inspect, known)?;
    ingest::land(source, store, image.id, checks)
        .await
        .map_err(Failure::from)
}

/// Records one store's outcome: a failure fails the import when every store must succeed,
/// else the store is marked failed (`os_glance_failed_import`) and the import goes on.
async fn record(
    shared: &Shared,
    job: &Job,
    done: &mut Done,
    store_id: &str,
    outcome: Result<Landed, Failure>,
) -> Result<(), Failure> {
    match outcome {
        Ok(landed) => {
            if let Some((_, first)) = done.landed.first() {
                if !same_digests(&first.digests, &landed.digests) {
                    cleanup(shared, &[(store_id.to_owned(), landed)]).await;
                    return Err(Failure(
                        "The data read back differs between stores.".to_owned(),
                    ));
                }
            }
            done.landed.push((store_id.to_owned(), landed));
            Ok(())
        }
        Err(failure) => {
            tracing::warn!(image_id = %job.image, store = %store_id, reason = %failure.0, "import into a store failed");
            if job.all_stores_must_succeed {
                cleanup(shared, &done.landed).await;
                done.landed.clear();
                return Err(Failure(format!(
                    "Import into store {store_id} failed: {}",
                    failure.0
                )));
            }
            done.failed.push(store_id.to_owned());
            done.messages.push(format!("{store_id}: {}", failure.0));
            Ok(())
        }
    }
}

fn same_digests(a: &Digests, b: &Digests) -> bool {
    a.checksum == b.checksum && a.os_hash_value == b.os_hash_value
}

/// Removes data an import wrote.
async fn cleanup(shared: &Shared, landed: &[(String, Landed)]) {
    for (store_id, landed) in landed {
        if let Some(store) = shared.stores.get(store_id) {
            if let Err(e) = store.delete(&landed.location).await {
                tracing::error!(store = %store_id, error = %e, "cannot remove the data of a failed import");
            }
        }
    }
}

/// The end of an import whose stores were tried: active with the landed data, or a revert
/// when nothing landed.
async fn finish(shared: &Shared, job: &Job, done: Done) {
    let Done {
        limits,
        landed,
        failed,
        messages,
        converted,
        remote,
    } = done;
    if landed.is_empty() {
        let message = if messages.is_empty() {
            "None of the uploads finished!".to_owned()
        } else {
            format!("None of the uploads finished! {}", messages.join("; "))
        };
        return revert(shared, job, &message, &failed).await;
    }
    let copy = job.method == Method::CopyImage;
    let locations: Vec<Location> = landed.iter().map(|(_, l)| l.location.clone()).collect();
    let done_stores: Vec<String> = landed.iter().map(|(s, _)| s.clone()).collect();
    let first = &landed[0].1;
    let (size, digests, virtual_size) = (
        first.size,
        first.digests.clone(),
        first.inspection.as_ref().and_then(|i| i.virtual_size),
    );
    let end = ImportEnd {
        task: job.task,
        status: TaskStatus::Success,
        result: Some(serde_json::json!({ "image_id": job.image.to_string() }).to_string()),
        message: messages.join("; "),
        expires_at: expiry(&shared.config),
        to: (!copy).then_some(ImageStatus::Active),
        // image_size_total, checked in end_import's transaction as complete_upload does.
        limits,
    };
    crash_point("import-before-end");
    let failed_stores = failed.clone();
    let inject = job.inject.clone();
    let ended = shared
        .catalog
        .end_import(job.image, end, move |image| {
            if let Some(remote) = &remote {
                image.disk_format = Some(remote.disk_format.clone());
                image.container_format = Some(remote.container_format.clone());
                for (key, value) in &remote.properties {
                    image.properties.insert(key.clone(), value.clone());
                }
            }
            if let Some(converted) = &converted {
                image.disk_format = Some(converted.disk_format.clone());
            }
            for (key, value) in &inject {
                image.properties.insert(key.clone(), value.clone());
            }
            staged::forget(image);
            merge_store_list(image, IMPORTING_STORES_PROPERTY, &done_stores, true);
            merge_store_list(image, IMPORTING_STORES_PROPERTY, &failed_stores, true);
            merge_store_list(image, FAILED_STORES_PROPERTY, &failed_stores, false);
            image.locations.extend(locations.iter().cloned());
            if !copy {
                image.size = Some(size);
                image.checksum = Some(digests.checksum.clone());
                image.os_hash_algo = Some(digests.os_hash_algo.clone());
                image.os_hash_value = Some(digests.os_hash_value.clone());
                image.virtual_size = virtual_size;
            }
        })
        .await;
    match ended {
        Ok(Some(_)) => {
            tracing::info!(image_id = %job.image, method = job.method.name(), "import finished");
            if !copy {
                remove_staged(shared, job.image).await;
            }
        }
        Ok(None) => {
            // Deleted during the import: its data must not stay.
            cleanup(shared, &landed).await;
            remove_staged(shared, job.image).await;
        }
        Err(e) => {
            tracing::error!(image_id = %job.image, error = %e, "cannot commit the import");
            if matches!(e, meta::Error::ImportLockLost(_)) {
                // Taken over while this gateway stalled: a newer import of the image may have
                // recorded data under the same name since; only what no location names goes.
                let locations = match shared.catalog.get_image(job.image).await {
                    Ok(image) => Some(image.locations),
                    Err(meta::Error::NotFound(_)) => Some(Vec::new()),
                    Err(e) => {
                        tracing::error!(image_id = %job.image, error = %e,
                            "cannot read the image; the data of the lost import stays");
                        None
                    }
                };
                if let Some(locations) = locations {
                    let stores: Vec<String> = landed.iter().map(|(s, _)| s.clone()).collect();
                    super::remove_leftovers(&shared.stores, job.image, &locations, &stores).await;
                }
                return;
            }
            cleanup(shared, &landed).await;
            let message = match e {
                // image_size_total, over at the end (other data landed meanwhile).
                quota @ meta::Error::QuotaExceeded { .. } => {
                    crate::error::ApiError::from(quota).explanation().to_owned()
                }
                e => format!("The import could not be recorded: {e}"),
            };
            revert(shared, job, &message, &failed).await;
        }
    }
}

/// Reverts a failed import: image back to `queued` (a copy stays `active`), its stores out of
/// `os_glance_importing_to_stores` (a copy's into `os_glance_failed_import`), staged data
/// removed, the task failed with `message`.
pub(super) async fn revert(shared: &Shared, job: &Job, message: &str, failed: &[String]) {
    let copy = job.method == Method::CopyImage;
    let end = ImportEnd {
        task: job.task,
        status: TaskStatus::Failure,
        result: None,
        message: message.to_owned(),
        expires_at: expiry(&shared.config),
        to: (!copy).then_some(ImageStatus::Queued),
        limits: meta::Limits::UNLIMITED,
    };
    let stores = job.stores.clone();
    let mut failed_stores = failed.to_vec();
    if copy || job.all_stores_must_succeed {
        failed_stores = stores.clone();
    }
    let ended = shared
        .catalog
        .end_import(job.image, end, move |image| {
            staged::forget(image);
            merge_store_list(image, IMPORTING_STORES_PROPERTY, &stores, true);
            if copy {
                merge_store_list(image, FAILED_STORES_PROPERTY, &failed_stores, false);
            }
        })
        .await;
    if let Err(e) = ended {
        tracing::error!(image_id = %job.image, task = %job.task, error = %e, "cannot revert the import");
    }
    if !copy {
        remove_staged(shared, job.image).await;
    }
    tracing::warn!(image_id = %job.image, task = %job.task, reason = %message, "import failed; reverted");
}

async fn remove_staged(shared: &Shared, id: ImageId) {
    let staged = staged_location(&shared.staging, id);
    if let Err(e) = Store::delete(&*shared.staging, &staged).await {
        tracing::error!(image_id = %id, error = %e, "cannot remove staged data");
    }
}

/// The crash tests' hook: with `GLINT_CRASH_AT=<point>` in its environment (a test tool's
/// variable, never a setting) the process aborts at that point, as if killed there, e.g.
/// `import-before-end`: after the stores committed an import's data, before `end_import`.
fn crash_point(point: &str) {
    if std::env::var_os("GLINT_CRASH_AT").is_some_and(|v| v == point) {
        tracing::error!(point, "GLINT_CRASH_AT: aborting here");
        std::process::abort();
    }
}
