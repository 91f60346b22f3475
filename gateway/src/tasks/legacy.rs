//! The legacy `import` task (`POST /v2/tasks`, Glance's `base_import` flow): the task creates
//! an image from `image_properties`, fetches `import_from` under `[import_filtering_opts]`
//! (`net::fetch`: every address checked, redirects too, the body capped), and streams it into
//! the default store as an upload: `begin_upload` (`saving`, the announced length reserved
//! against `image_size_total`), the ingest (inspection, checksums, `image_size_cap` and the
//! quota's room), `complete_upload` (`active`, the quota re-checked in its transaction).
//!
//! Any failure fails the task with its reason and deletes the image it created, as Glance's
//! `_CreateImage.revert` does; the store writer removes bytes it did not commit. A task whose
//! gateway died is failed by the sweeper (or at start-up), and its image deleted.

use std::rc::Rc;

use meta::tasks::{Task, TaskId, TaskStatus};
use meta::{Image, ImageId, ImageStatus, UploadOutcome, MIB};

use super::quota::Caps;
use super::run::Failure;
use super::{expiry, Shared, Slots};
use crate::datapath::ingest::{self, Checks, IngestError};
use crate::error::ApiError;
use crate::net::client::{ClientSettings, HttpClient};
use crate::net::fetch::Fetcher;

/// One legacy import task, as the import thread runs it.
#[derive(Debug, Clone)]
pub struct LegacyJob {
    /// The task (stored, `pending`).
    pub task: TaskId,
    /// `import_from`, checked against `[import_filtering_opts]` already.
    pub uri: String,
    /// The image to create (not stored yet; the task names it as its `image_id`), or why the
    /// task's input cannot make one.
    pub image: Result<Image, String>,
}

fn quota_failure(e: meta::Error) -> Failure {
    Failure(ApiError::from(e).explanation().to_owned())
}

/// Runs `job` to its end; never panics the import thread.
pub(super) async fn run(shared: &Shared, slots: &Rc<Slots>, job: LegacyJob) {
    let task = job.task;
    let renew = |until| async move {
        let renewed = shared
            .catalog
            .update_task(task, move |t| {
                if let (false, Some(runner)) = (t.status.is_final(), t.runner.as_mut()) {
                    runner.lease_until = until;
                }
            })
            .await;
        renewed.map(|t| !t.status.is_final())
    };
    let created = std::cell::Cell::new(None);
    let outcome =
        super::run::leased(shared, slots, task, renew, import(shared, &job, &created)).await;
    let result = match outcome {
        Some(Ok(image)) => Ok(image),
        Some(Err(failure)) => Err(failure.0),
        None => {
            // The task was ended elsewhere (its lease lapsed): whoever ended it cleans up.
            tracing::warn!(task = %task, "legacy import stopped: its task was ended elsewhere");
            return;
        }
    };
    if let Err(message) = &result {
        if let Some(image) = created.get() {
            delete_image(shared, image).await;
        }
        tracing::warn!(task = %task, reason = %message, "legacy import failed");
    }
    end(shared, task, result).await;
}

/// Ends task `task`: success with `{"image_id": …}`, or failure with the message.
async fn end(shared: &Shared, task: TaskId, result: Result<ImageId, String>) {
    let expires_at = expiry(&shared.config);
    let ended = shared
        .catalog
        .update_task(task, move |t| {
            match &result {
                Ok(image) => {
                    t.status = TaskStatus::Success;
                    t.result =
                        Some(serde_json::json!({ "image_id": image.to_string() }).to_string());
                    t.message = String::new();
                }
                Err(message) => {
                    t.status = TaskStatus::Failure;
                    t.message = message.clone();
                }
            }
            t.expires_at = Some(expires_at);
            t.runner = None;
        })
        .await;
    if let Err(e) = ended {
        tracing::error!(task = %task, error = %e, "cannot end a legacy import task");
    }
}

/// Deletes the image a failed task created (unprotected first: the task's own image).
async fn delete_image(shared: &Shared, id: ImageId) {
    let _ = shared
        .catalog
        .update_image(id, |image: &mut Image| -> Result<(), meta::Error> {
            image.protected = false;
            Ok(())
        })
        .await;
    match shared.catalog.delete_image(id).await {
        Ok(_) | Err(meta::Error::NotFound(_)) => {}
        Err(e) => {
            tracing::error!(image_id = %id, error = %e, "cannot delete the image of a failed task")
        }
    }
}

async fn import(
    shared: &Shared,
    job: &LegacyJob,
    created: &std::cell::Cell<Option<ImageId>>,
) -> Result<ImageId, Failure> {
    let image = job.image.clone().map_err(Failure)?;
    let id = image.id;
    let limits = shared.config.quotas.limits_for(image.owner.as_deref());
    shared
        .catalog
        .create_image(image.clone(), limits)
        .await
        .map_err(|e| match e {
            e @ meta::Error::QuotaExceeded { .. } => quota_failure(e),
            e => Failure(format!("Cannot create the image: {e}")),
        })?;
    created.set(Some(id));
    let task = job.task;
    tracing::info!(task = %task, image_id = %id, "legacy import created its image");

    let size_cap = shared.config.image_size_cap;
    let policy = (*shared.fetch_policy).clone().with_max_bytes(size_cap);
    let fetcher = Fetcher::new(
        HttpClient::new(ClientSettings::default()),
        std::sync::Arc::new(policy),
    );
    let fetched = fetcher
        .get(&job.uri)
        .await
        .map_err(|e| Failure(format!("Cannot download the image data: {e}")))?;
    let expected = fetched
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());

    // As `PUT /file`: saving, the announced length reserved against image_size_total.
    let start = shared
        .catalog
        .begin_upload(id, ImageStatus::Saving, expected, limits)
        .await
        .map_err(|e| match e {
            e @ meta::Error::QuotaExceeded { .. } => quota_failure(e),
            meta::Error::FormatsNotSet(_) => Failure(
                "The image needs 'disk_format' and 'container_format' in image_properties."
                    .to_owned(),
            ),
            e => Failure(format!("Cannot start receiving the image data: {e}")),
        })?;
    let image = start.image;
    let room = start.size_left;
    let cap = room.map_or(size_cap, |left| left.min(size_cap));
    let store = shared.stores.default();
    let checksums = shared
        .hash_pool
        .checksums(&shared.config.hashing_algorithm)
        .map_err(|e| Failure(e.to_string()))?;
    let checks = Checks {
        cap_bytes: cap,
        expected_bytes: expected,
        inspector: (image.container_format.as_deref() == Some("bare"))
            .then(|| formats::Inspector::new(image.disk_format.as_deref(), &shared.format_policy)),
        checksums,
        idle_timeout: None,
    };
    let landed = ingest::land(fetched.body, &**store, id, checks)
        .await
        .map_err(|e| match e {
            IngestError::TooLarge { cap } if room == Some(cap) && cap < size_cap => {
                let owner = image.owner.as_deref().unwrap_or("");
                let limit = limits.image_size_total_mib.unwrap_or(0);
                Caps::size_total_exceeded(owner, limit, limit.saturating_mul(MIB) - cap, cap + 1)
            }
            IngestError::Source(e) => Failure(format!(
                "Cannot download the image data: the origin stopped sending: {e}"
            )),
            e => e.into(),
        })?;
    let location = landed.location.clone();
    let outcome = UploadOutcome {
        size: landed.size,
        checksum: landed.digests.checksum,
        os_hash_algo: landed.digests.os_hash_algo,
        os_hash_value: landed.digests.os_hash_value,
        virtual_size: landed.inspection.as_ref().and_then(|i| i.virtual_size),
        location: landed.location,
    };
    if let Err(e) = shared.catalog.complete_upload(id, outcome, limits).await {
        if let Err(e) = store.delete(&location).await {
            tracing::error!(image_id = %id, error = %e, "cannot remove the data of a failed task");
        }
        return Err(match e {
            e @ meta::Error::QuotaExceeded { .. } => quota_failure(e),
            e => Failure(format!("The image data could not be recorded: {e}")),
        });
    }
    tracing::info!(task = %task, image_id = %id, "legacy import finished");
    Ok(id)
}

/// Fails a legacy task nobody runs any more (its gateway died or restarted), deleting the
/// image it created.
pub(super) async fn abandon(shared: &Shared, task: Task, why: &str) {
    // The task names the image it creates from the start; it is the task's only when it was
    // created after the task (ids are never reused) and never finished.
    if let Some(id) = task.image_id {
        if let Ok(image) = shared.catalog.get_image(id).await {
            if image.status != ImageStatus::Active && image.created_at >= task.created_at {
                delete_image(shared, id).await;
            }
        }
    }
    let message = format!("The import task was interrupted: {why}. Please retry it.");
    end(shared, task.id, Err(message)).await;
    tracing::warn!(task = %task.id, "failed an interrupted legacy import");
}
