//! `PUT /v2/images/{id}/file` (upload) and `GET /v2/images/{id}/file` (download).
//!
//! Upload order (spec §4.7): content type, announced size against the cap, image lookup and
//! policy, then `queued → saving` committed *before* the body is read (a compare-and-set in
//! `meta`, so two uploads cannot both win). From then on an `UploadGuard` owns the clean-up:
//! whatever ends the upload — an error, a refusal, the client vanishing and hyper dropping this
//! future — the partial file is removed and the image returns to `queued`. Only a body that is
//! complete, inspected, hashed and fdatasync'ed is renamed into place and committed `active`.

use std::pin::Pin;

use http::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use meta::{ImageId, ImageStatus, UploadOutcome};

use super::images::load_authorized;
use super::{empty_response, parse_image_id};
use crate::app::App;
use crate::body::Body;
use crate::body::ByteStream;
use crate::cache::{Expect, Leased, Lookup};
use crate::context::RequestContext;
use crate::datapath::download::{
    parse_legacy_content_range, parse_range, Counted, FileStream, RangeError,
};
use crate::datapath::upload::{self, Limits, UploadError};
use crate::egress::Throttled;
use crate::error::ApiError;
use crate::metrics::UploadEnd;
use crate::policy::Rule;

/// The announced size: `x-openstack-image-size`, else `Content-Length`.
fn expected_size(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
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

/// Returns the image to `queued` and removes its partial file unless disarmed.
struct UploadGuard<'a> {
    app: &'a App,
    id: ImageId,
    armed: bool,
}

impl UploadGuard<'_> {
    /// Removing the partial file, as a job for the writer thread (queued there ahead of the
    /// catalog's reset, which runs on the same thread).
    fn remove_part_job(&self) -> impl FnOnce() + Send + 'static {
        let (store, id) = (self.app.store.clone(), self.id);
        move || store.remove_part(id)
    }

    /// Cleans up now and waits for it (the error path, where we can await).
    async fn abort(mut self) {
        self.armed = false;
        if let Err(e) = self.app.writer.run(self.remove_part_job()).await {
            tracing::error!(image_id = %self.id, error = %e, "cannot remove the partial file");
        }
        // A deleted image is fine: abort_upload leaves it alone.
        if let Err(e) = self.app.catalog.abort_upload(self.id).await {
            tracing::error!(image_id = %self.id, error = %e, "cannot reset image to queued");
        }
    }

    /// The upload is committed: nothing to clean up.
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for UploadGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            // Dropped mid-upload (the connection died and hyper dropped the request future):
            // clean up on the writer thread, since Drop cannot await.
            tracing::warn!(image_id = %self.id, "upload abandoned; resetting image to queued");
            self.app.writer.spawn(self.remove_part_job());
            self.app.catalog.abort_upload_detached(self.id);
        }
    }
}

fn too_large(cap: u64) -> ApiError {
    ApiError::too_large(format!(
        "The incoming image is too large. The image size cap is {cap} bytes."
    ))
}

fn upload_error(id: ImageId, err: UploadError) -> ApiError {
    match err {
        UploadError::TooLarge { cap } => too_large(cap),
        UploadError::SizeMismatch { expected, received } => ApiError::bad_request(format!(
            "Image size mismatch: the request announced {expected} bytes but {received} were sent."
        )),
        UploadError::Refused(refusal) => ApiError::unsupported_media_type(refusal.to_string()),
        UploadError::Client(e) => {
            tracing::info!(image_id = %id, error = %e, "upload body failed");
            ApiError::bad_request(format!(
                "Error reading the image data from the request: {e}"
            ))
        }
        UploadError::Io(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
            ApiError::too_large("Image storage media is full.")
        }
        UploadError::Io(e) => ApiError::internal(format!("upload of {id}: {e}")),
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
    let id = parse_image_id(id)?;
    let image = load_authorized(app, ctx, id, Rule::UploadImage).await?;
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
    let guard = UploadGuard {
        app,
        id,
        armed: true,
    };
    tracker.body_started();
    tracing::debug!(image_id = %id, "upload started");

    let result = async {
        let file = std::rc::Rc::new(monoio::fs::File::create(app.store.part_path(id)).await?);
        let inspector = (image.container_format.as_deref() == Some("bare"))
            .then(|| formats::Inspector::new(image.disk_format.as_deref(), &app.format_policy));
        let checksums = app
            .hash_pool
            .checksums(&app.config.hashing_algorithm)
            .map_err(|e| UploadError::Io(std::io::Error::other(e)))?;
        let limits = Limits {
            cap_bytes: quota_left_bytes.map_or(cap_bytes, |left| left.min(cap_bytes)),
            expected_bytes,
            direct_io: app.config.direct_io_upload,
        };
        let received =
            upload::receive(request.into_body(), &file, checksums, inspector, limits).await;
        // A write task still holding the file ends with the upload; close when we are last.
        if let Ok(file) = std::rc::Rc::try_unwrap(file) {
            file.close().await?;
        }
        received
    }
    .await;
    let received = match result {
        Ok(received) => received,
        Err(e) => {
            guard.abort().await;
            tracker.finish(UploadEnd::from(&e), None);
            return Err(match (e, quota_left_bytes) {
                (UploadError::TooLarge { cap }, Some(left)) if cap == left && left < cap_bytes => {
                    ApiError::too_large(format!(
                        "The incoming image is over its owner's image_size_total quota: \
                         {left} bytes remaining."
                    ))
                }
                (e, _) => upload_error(id, e),
            });
        }
    };

    let digests = received.digests;
    let virtual_size = received.inspection.as_ref().and_then(|i| i.virtual_size);
    let size = received.size;
    let committed = async {
        let store = app.store.clone();
        let location = app
            .writer
            .run(move || store.commit(id))
            .await
            .map_err(ApiError::internal)??;
        let outcome = UploadOutcome {
            size,
            checksum: digests.checksum,
            os_hash_algo: digests.os_hash_algo,
            os_hash_value: digests.os_hash_value,
            virtual_size,
            location: location.clone(),
        };
        let refused = match app.catalog.complete_upload(id, outcome, limits).await {
            Ok(_) => return Ok(()),
            Err(meta::Error::NotFound(_)) => ApiError::new(
                StatusCode::GONE,
                format!(
                    "Image {id} could not be found after upload. The image may have been \
                     deleted during the upload, cleaning up the chunks uploaded."
                ),
            ),
            Err(e) => e.into(),
        };
        // Not recorded: the data just renamed into place goes too.
        let store = app.store.clone();
        if let Err(e) = app.writer.run(move || store.delete(&location)).await {
            tracing::error!(image_id = %id, error = %e, "cannot remove refused image data");
        }
        Err(refused)
    }
    .await;
    if let Err(e) = committed {
        tracker.finish(UploadEnd::FailedCommit, None);
        guard.abort().await;
        return Err(e);
    }
    guard.disarm();
    tracker.finish(UploadEnd::Active, Some(size));
    tracing::info!(image_id = %id, size_bytes = size, "image active");
    Ok(empty_response(StatusCode::NO_CONTENT))
}

/// The store's bytes `[start, end)` of `location`, counted as read from the store.
async fn store_stream(
    app: &App,
    id: ImageId,
    location: &meta::Location,
    start: u64,
    end: u64,
) -> Result<Pin<Box<dyn ByteStream>>, ApiError> {
    let path = app
        .store
        .path_of(location)
        .ok_or_else(|| ApiError::internal(format!("image {id} has a foreign location")))?;
    let file = monoio::fs::File::open(&path).await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Image data is not available.",
        )
        .with_header(http::header::RETRY_AFTER, "1")
        .log_cause(e)
    })?;
    Ok(Box::pin(Counted::new(
        FileStream::new(file, start, end),
        crate::store::fs::STORE_NAME,
    )))
}

/// The bytes a download sends: from the image cache when it has them (a hit, or a fill in
/// progress to join), else from the store — starting a fill on a miss. `range` is `[start,
/// end)` of a range request, `None` for the whole image. The handler has already checked the
/// image's status and the caller's rights, on this request: a cached copy is never served for
/// an image the caller may not download now.
async fn data_stream(
    app: &App,
    image: &meta::Image,
    location: &meta::Location,
    size: u64,
    range: Option<(u64, u64)>,
) -> Result<Pin<Box<dyn ByteStream>>, ApiError> {
    let id = image.id;
    let (start, end) = range.unwrap_or((0, size));
    let (Some(cache), Some(expect)) = (&app.cache, Expect::of(image)) else {
        return store_stream(app, id, location, start, end).await;
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
                    FileStream::new(file, start, end),
                    lease,
                ))),
                _ => {
                    cache.invalidate(id);
                    store_stream(app, id, location, start, end).await
                }
            }
        }
        Lookup::Join(joiner) => Ok(Box::pin(joiner)),
        Lookup::Fill(job, joiner) => {
            match store_stream(app, id, location, 0, size).await {
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
                None => store_stream(app, id, location, start, end).await,
            }
        }
        Lookup::Bypass => store_stream(app, id, location, start, end).await,
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
    let image = load_authorized(app, ctx, id, Rule::DownloadImage).await?;
    if image.status == ImageStatus::Deactivated && !ctx.is_admin_role() {
        return Err(ApiError::forbidden(
            "The requested image has been deactivated. Image data download is forbidden.",
        ));
    }
    let has_data = matches!(image.status, ImageStatus::Active | ImageStatus::Deactivated);
    let (Some(location), Some(size), true) = (image.locations.first(), image.size, has_data) else {
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
    let stream = data_stream(app, &image, location, size, range.map(|_| (start, end))).await?;
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
