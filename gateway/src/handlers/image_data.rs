//! `PUT /v2/images/{id}/file` (upload) and `GET /v2/images/{id}/file` (download).
//!
//! Upload order (spec §4.7): content type, announced size against the cap, image lookup and
//! policy, then `queued → saving` committed *before* the body is read (a compare-and-set in
//! `meta`, so two uploads cannot both win). From then on an `UploadGuard` owns the clean-up:
//! whatever ends the upload — an error, a refusal, the client vanishing and hyper dropping this
//! future — the partial file is removed and the image returns to `queued`. Only a body that is
//! complete, inspected, hashed and fdatasync'ed is renamed into place and committed `active`.

use std::future::Future;
use std::pin::Pin;

use http::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use meta::{ImageId, ImageStatus, UploadOutcome};

use super::images::{load_authorized, lookup};
use super::{empty_response, parse_image_id};
use crate::app::App;
use crate::body::Body;
use crate::body::ByteStream;
use crate::cache::{Expect, Leased, Lookup};
use crate::context::RequestContext;
use crate::datapath::download::{
    self, parse_legacy_content_range, parse_range, RangeError, StoreBody,
};
use crate::datapath::ingest::{self, Checks, Guard, IngestError, Requeue};
use crate::egress::Throttled;
use crate::error::ApiError;
use crate::metrics::UploadEnd;
use crate::policy::{self, Rule, Target};
use crate::store::FileStream;
use crate::store::{Store, StoreError};

/// The announced size: `x-openstack-image-size`, else `Content-Length`.
pub(crate) fn expected_size(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    if let Some(value) = headers.get("x-openstack-image-size") {
        let size = value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok());
        return size.map(Some).ok_or_else(|| {
            ApiError::bad_request("Invalid or missing image size in request headers.")
        });
    }
    Ok(headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok()))
}

/// Returns an image to `queued` through the writer thread (the upload guard's hook).
pub(crate) struct MetaRequeue<'a>(pub(crate) &'a App);

impl Requeue for MetaRequeue<'_> {
    fn requeue(&self, id: ImageId) -> Pin<Box<dyn Future<Output = ()> + '_>> {
        Box::pin(async move {
            // A deleted image is fine: abort_upload leaves it alone.
            if let Err(e) = self.0.catalog.abort_upload(id).await {
                tracing::error!(image_id = %id, error = %e, "cannot reset image to queued");
            }
        })
    }

    fn requeue_detached(&self, id: ImageId) {
        self.0.catalog.abort_upload_detached(id);
    }
}

/// 408: the client stopped sending the body (`client_socket_timeout`).
pub fn request_timeout(idle: std::time::Duration) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        format!(
            "The client sent no request body data for {} seconds.",
            idle.as_secs()
        ),
    )
}

pub(crate) fn too_large(cap: u64) -> ApiError {
    ApiError::too_large(format!(
        "The incoming image is too large. The image size cap is {cap} bytes."
    ))
}

fn upload_error(id: ImageId, err: IngestError<hyper::Error>) -> ApiError {
    match err {
        IngestError::TooLarge { cap } => too_large(cap),
        IngestError::SizeMismatch { expected, received } => ApiError::bad_request(format!(
            "Image size mismatch: the request announced {expected} bytes but {received} were sent."
        )),
        IngestError::Refused(refusal) => ApiError::unsupported_media_type(refusal.to_string()),
        IngestError::Source(e) => {
            tracing::info!(image_id = %id, error = %e, "upload body failed");
            ApiError::bad_request(format!(
                "Error reading the image data from the request: {e}"
            ))
        }
        IngestError::IdleTimeout(idle) => {
            tracing::info!(image_id = %id, "upload body stalled");
            request_timeout(idle)
        }
        IngestError::Store(e) => store_error(e),
        IngestError::Hashing(e) => ApiError::internal(format!("upload of {id}: {e}")),
    }
}

/// A store's failure as Glance answers it: full → 413, unreachable or refusing → 503.
pub(crate) fn store_error(e: StoreError) -> ApiError {
    match e {
        // Glance: "Image storage media is full: " and glance_store's StorageFull text.
        StoreError::Full { .. } => ApiError::too_large(
            "Image storage media is full: There is not enough disk space on the image storage \
             media.",
        ),
        StoreError::TooLarge { ref message, .. } => {
            ApiError::too_large(format!("The image is too large for its store: {message}"))
        }
        StoreError::Unavailable { .. } | StoreError::Denied { .. } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Image store {} is not available.", e.store()),
        )
        .with_header(http::header::RETRY_AFTER, "1")
        .log_cause(e),
        other => ApiError::internal(other.to_string()),
    }
}

/// The store an upload goes to: `X-Image-Meta-Store` in multi-store mode (an unknown id is
/// 400, as Glance), else the default store.
fn upload_store<'a>(
    app: &'a App,
    headers: &HeaderMap,
) -> Result<&'a std::sync::Arc<dyn Store>, ApiError> {
    let asked = headers
        .get("x-image-meta-store")
        .map(|v| v.to_str().unwrap_or("").trim());
    match asked {
        Some(id) if app.stores.is_multi() => app
            .stores
            .get(id)
            .ok_or_else(|| ApiError::bad_request(format!("Store for identifier {id} not found"))),
        _ => Ok(app.stores.default()),
    }
}

/// `PUT /v2/images/{id}/file`.
pub async fn upload(
    app: &App,
    ctx: &RequestContext,
    id: &str,
    request: Request<crate::body::RequestBody>,
) -> Result<Response<Body>, ApiError> {
    let mut tracker = crate::metrics::upload_started();
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if content_type.map(|t| t.split(';').next().unwrap_or("").trim())
        != Some("application/octet-stream")
    {
        tracker.finish(UploadEnd::RefusedContentType, None);
        return Err(ApiError::unsupported_media_type(format!(
            "Invalid content type {}",
            content_type.unwrap_or("")
        )));
    }
    let expected_bytes = expected_size(request.headers())?;
    let cap_bytes = app.config.image_size_cap;
    if expected_bytes.is_some_and(|n| n > cap_bytes) {
        tracker.finish(UploadEnd::RefusedTooLarge, None);
        return Err(too_large(cap_bytes));
    }
    let store = upload_store(app, request.headers())?;
    let id = parse_image_id(id)?;
    let image = load_authorized(app, ctx, id, Rule::UploadImage).await?;
    if store.is_read_only() {
        return Err(ApiError::new(
            StatusCode::GONE,
            "Error in store configuration. Adding images to store is disabled.",
        ));
    }
    // Quotas charge the image's owner, whoever uploads.
    let limits = app.config.quotas.limits_for(image.owner.as_deref());
    // `size_left`: what the owner's image_size_total leaves, so that the stream stops there
    // rather than after the whole body (complete_upload re-checks in its transaction).
    let meta::UploadStart {
        image,
        size_left: quota_left_bytes,
    } = app
        .catalog
        .begin_upload(id, ImageStatus::Saving, expected_bytes, limits)
        .await?;
    let guard = Guard::new(id, MetaRequeue(app));
    tracker.body_started();
    tracing::debug!(image_id = %id, "upload started");

    let store: &dyn Store = &**store;
    let checksums = match app.hash_pool.checksums(&app.config.hashing_algorithm) {
        Ok(checksums) => checksums,
        Err(e) => {
            guard.undo().await;
            tracker.finish(UploadEnd::FailedIo, None);
            return Err(ApiError::internal(e));
        }
    };
    let checks = Checks {
        cap_bytes: quota_left_bytes.map_or(cap_bytes, |left| left.min(cap_bytes)),
        expected_bytes,
        inspector: (image.container_format.as_deref() == Some("bare"))
            .then(|| formats::Inspector::new(image.disk_format.as_deref(), &app.format_policy)),
        checksums,
        idle_timeout: app.config.client_socket_timeout(),
    };
    let landed = match ingest::land(request.into_body(), store, id, checks).await {
        Ok(landed) => landed,
        Err(e) => {
            guard.undo().await;
            tracker.finish(e.upload_end(), None);
            return Err(match (e, quota_left_bytes) {
                (IngestError::TooLarge { cap }, Some(left)) if cap == left && left < cap_bytes => {
                    ApiError::too_large(format!(
                        "The incoming image is over its owner's image_size_total quota: \
                         {left} bytes remaining."
                    ))
                }
                (e, _) => upload_error(id, e),
            });
        }
    };

    let size = landed.size;
    let location = landed.location.clone();
    let outcome = UploadOutcome {
        size,
        checksum: landed.digests.checksum,
        os_hash_algo: landed.digests.os_hash_algo,
        os_hash_value: landed.digests.os_hash_value,
        virtual_size: landed.inspection.as_ref().and_then(|i| i.virtual_size),
        location: landed.location,
    };
    let committed = app.catalog.complete_upload(id, outcome, limits).await;
    if let Err(e) = committed {
        tracker.finish(UploadEnd::FailedCommit, None);
        if let Err(e) = store.delete(&location).await {
            tracing::error!(image_id = %id, error = %e, "cannot remove the data of a failed upload");
        }
        guard.undo().await;
        return Err(match e {
            meta::Error::NotFound(_) => ApiError::new(
                StatusCode::GONE,
                format!(
                    "Image {id} could not be found after upload. The image may have been \
                     deleted during the upload, cleaning up the chunks uploaded."
                ),
            ),
            e => e.into(),
        });
    }
    guard.disarm();
    tracker.finish(UploadEnd::Active, Some(size));
    tracing::info!(image_id = %id, size_bytes = size, "image active");
    Ok(empty_response(StatusCode::NO_CONTENT))
}

/// The store's bytes `[start, end)` of the image, from the first of its locations that
/// answers, counted as read from that store.
async fn store_stream(
    app: &App,
    image: &meta::Image,
    start: u64,
    end: u64,
) -> Result<Pin<Box<dyn ByteStream>>, ApiError> {
    let stream = download::open_counted(&app.stores, &image.locations, start..end)
        .await
        .map_err(|e| {
            // Data that cannot be found or reached anywhere: 503, as a store outage (Glance
            // answers a lost object with an empty 204, which a client takes for success).
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Image data is not available.",
            )
            .with_header(http::header::RETRY_AFTER, "1")
            .log_cause(e)
        })?;
    Ok(Box::pin(stream))
}

/// The bytes a download sends: from the image cache when it has them (a hit, or a fill in
/// progress to join), else from the store — starting a fill on a miss. `range` is `[start,
/// end)` of a range request, `None` for the whole image. The handler has already checked the
/// image's status and the caller's rights, on this request: a cached copy is never served for
/// an image the caller may not download now.
async fn data_stream(
    app: &App,
    image: &meta::Image,
    size: u64,
    range: Option<(u64, u64)>,
) -> Result<Pin<Box<dyn ByteStream>>, ApiError> {
    let id = image.id;
    let (start, end) = range.unwrap_or((0, size));
    let (Some(cache), Some(expect)) = (&app.cache, Expect::of(image)) else {
        return store_stream(app, image, start, end).await;
    };
    match cache.lookup(id, &expect, range) {
        Lookup::Hit { path, lease } => {
            let opened = match monoio::fs::File::open(&path).await {
                Ok(file) => Some(file),
                Err(e) => {
                    tracing::warn!(image_id = %id, error = %e, "image cache: cannot open an entry");
                    None
                }
            };
            let len = std::fs::metadata(&path)
                .map(|m| m.len())
                .unwrap_or(u64::MAX);
            match opened {
                Some(file) if cache.check_size(id, len) => Ok(Box::pin(Leased::new(
                    StoreBody::new(Box::pin(FileStream::new(file, start, end))),
                    lease,
                ))),
                _ => {
                    cache.invalidate(id);
                    store_stream(app, image, start, end).await
                }
            }
        }
        Lookup::Join(joiner) => Ok(Box::pin(joiner)),
        Lookup::Fill(job, joiner) => {
            match store_stream(app, image, 0, size).await {
                Ok(source) => {
                    monoio::spawn(job.run(source));
                }
                Err(e) => {
                    job.fail("the store cannot be read");
                    return Err(e);
                }
            }
            match joiner {
                Some(joiner) => Ok(Box::pin(joiner)),
                None => store_stream(app, image, start, end).await,
            }
        }
        Lookup::Bypass => store_stream(app, image, start, end).await,
    }
}

/// `GET /v2/images/{id}/file`.
pub async fn download(
    app: &App,
    ctx: &RequestContext,
    id: &str,
    headers: &HeaderMap,
) -> Result<Response<Body>, ApiError> {
    let id = parse_image_id(id)?;
    // Glance refuses a deactivated image to non-admins before it asks download_image.
    let (image, membership) = lookup(app, ctx, id).await?;
    if image.status == ImageStatus::Deactivated && !ctx.is_admin_role() {
        return Err(ApiError::forbidden(
            "The requested image has been deactivated. Image data download is forbidden.",
        ));
    }
    policy::enforce(
        ctx,
        Rule::DownloadImage,
        &Target::image(&image, membership),
        id,
    )?;
    let has_data = matches!(image.status, ImageStatus::Active | ImageStatus::Deactivated);
    let (false, Some(size), true) = (image.locations.is_empty(), image.size, has_data) else {
        return Ok(empty_response(StatusCode::NO_CONTENT));
    };
    let range = if let Some(value) = headers.get(http::header::RANGE) {
        Some(parse_range(value.to_str().unwrap_or(""), size))
    } else {
        headers
            .get(http::header::CONTENT_RANGE)
            .map(|value| parse_legacy_content_range(value.to_str().unwrap_or(""), size))
    };
    let range = match range {
        None => None,
        Some(Ok(range)) => Some(range),
        Some(Err(RangeError::Multiple)) => {
            return Err(ApiError::bad_request(
                "Requests with multiple ranges are not supported in Glance. You may make \
                 multiple single-range requests instead.",
            ))
        }
        Some(Err(RangeError::Unsatisfiable)) => {
            return Err(
                ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, "Invalid Range header.")
                    .with_header(http::header::CONTENT_RANGE, &format!("bytes */{size}")),
            )
        }
    };
    let (start, end, status) = match range {
        Some(r) => (r.first, r.last + 1, StatusCode::PARTIAL_CONTENT),
        None => (0, size, StatusCode::OK),
    };
    let slot = app.egress.acquire().await.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many image downloads in progress on this server; try again shortly.",
        )
        .with_header(http::header::RETRY_AFTER, "1")
    })?;
    let stream = data_stream(app, &image, size, range.map(|_| (start, end))).await?;
    let stream = Box::pin(Throttled::new(stream, app.egress, Some(slot)));
    let mut response = Response::new(Body::Stream(stream));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(CONTENT_LENGTH, HeaderValue::from(end - start));
    h.insert(
        http::header::ACCEPT_RANGES,
        HeaderValue::from_static("bytes"),
    );
    if let Some(checksum) = image
        .checksum
        .as_deref()
        .and_then(|c| HeaderValue::from_str(c).ok())
    {
        h.insert("content-md5", checksum);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        let value = format!("bytes {start}-{}/{size}", end - 1);
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(http::header::CONTENT_RANGE, v);
        }
    }
    Ok(response)
}
