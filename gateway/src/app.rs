//! `App`: what every request needs (config, metadata, store, writer), and `handle`, which
//! turns one HTTP request into one response — request id, routing, body rules, dispatch,
//! error rendering, the access log.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tracing::Instrument;

use crate::body::Body;
use crate::config::Config;
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::handlers::{
    self, image_data, images, info, list, members, patch, schemas, tags, versions,
};
use crate::router::{route, Route};
use crate::store::fs::FsStore;
use crate::writer::Writer;

/// Largest JSON request body accepted (create, patch).
const MAX_JSON_BODY_BYTES: usize = 1 << 20;
const REQUEST_ID_HEADER: &str = "x-openstack-request-id";

/// Shared state of the gateway; one per process, shared by every core.
pub struct App {
    /// The effective configuration.
    pub config: Arc<Config>,
    /// Image metadata.
    pub meta: meta::Meta,
    /// Image data.
    pub store: FsStore,
    /// Where blocking work runs.
    pub writer: Writer,
    /// How uploads are inspected.
    pub format_policy: formats::Policy,
    /// Where uploads are hashed.
    pub hash_pool: crate::datapath::checksum::HashPool,
    /// Connection timeouts.
    pub timer: crate::timer::ThreadTimer,
    /// Who is asking.
    pub auth: crate::auth::Auth,
}

impl App {
    /// `scheme://host[:port]` for absolute links.
    pub fn base_url(&self, headers: &HeaderMap) -> String {
        match &self.config.public_endpoint {
            Some(endpoint) => endpoint.trim_end_matches('/').to_owned(),
            None => versions::request_base(headers),
        }
    }

    /// Serves one request. Never fails: errors become Glance error responses.
    ///
    /// With `splice_queue` (a connection that can splice), a file body is swapped for its
    /// zero-copy form before it is metered, so metrics count spliced bytes too.
    pub async fn handle(
        &self,
        request: Request<Incoming>,
        splice_queue: Option<&crate::datapath::splice::SpliceQueue>,
    ) -> Response<Body> {
        let started = Instant::now();
        let request_id = format!("req-{}", uuid::Uuid::new_v4());
        let method = request.method().clone();
        let accept = request.headers().get(http::header::ACCEPT).cloned();
        let routed = route(&method, request.uri().path());
        let template = routed.as_ref().map_or("unmatched", Route::template);
        let span = tracing::info_span!(
            "request",
            request_id = %request_id,
            global_request_id = tracing::field::Empty,
            route = template
        );
        if let Some(global) = global_request_id(request.headers()) {
            span.record("global_request_id", global);
        }
        let bytes_in = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
        let result = match routed {
            Ok(route) => {
                self.dispatch(route, request, &request_id)
                    .instrument(span.clone())
                    .await
            }
            Err(e) => Err(e),
        };
        let _enter = span.enter();
        let mut response = result.unwrap_or_else(|e| {
            let mut headers = HeaderMap::new();
            if let Some(accept) = accept {
                headers.insert(http::header::ACCEPT, accept);
            }
            e.into_response(&headers)
        });
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(REQUEST_ID_HEADER, v);
        }
        tracing::info!(
            target: "glint::access",
            %method,
            route = template,
            status = response.status().as_u16(),
            bytes_in,
            bytes_out = http_body::Body::size_hint(response.body()).exact(),
            duration_ms = started.elapsed().as_secs_f64() * 1e3,
            "request"
        );
        if let Some(queue) = splice_queue {
            crate::datapath::splice::convert(&mut response, queue);
        }
        crate::metrics::meter_response(response, template, &method, started)
    }

    async fn dispatch(
        &self,
        route: Route,
        request: Request<Incoming>,
        request_id: &str,
    ) -> Result<Response<Body>, ApiError> {
        if let Some(global) = request.headers().get(REQUEST_ID_HEADER) {
            if global.len() > self.config.max_request_id_length {
                return Err(ApiError::new(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "The request id header is too long.",
                ));
            }
        }
        if route.forbids_body() && has_body(&request) {
            return Err(ApiError::bad_request(
                "A body is not expected with this request.",
            ));
        }
        // Answered ahead of authentication, as Glance's pipeline does.
        match route {
            Route::VersionsChoice => {
                return Ok(self.versions(request.headers(), StatusCode::MULTIPLE_CHOICES))
            }
            Route::Versions => return Ok(self.versions(request.headers(), StatusCode::OK)),
            Route::Healthcheck => return Ok(self.healthcheck(request.method())),
            Route::Metrics => return self.metrics(),
            _ => {}
        }
        let ctx: RequestContext = self.auth.context(request.headers(), request_id).await?;
        let ctx = &ctx;
        match route {
            Route::VersionsChoice | Route::Versions | Route::Healthcheck | Route::Metrics => Err(
                ApiError::internal("an unauthenticated route reached dispatch"),
            ),
            Route::SchemaImage => Ok(handlers::json_response(
                StatusCode::OK,
                &schemas::image(&self.config),
            )),
            Route::SchemaImages => Ok(handlers::json_response(
                StatusCode::OK,
                &schemas::images(&self.config),
            )),
            Route::ListImages => list::list(self, ctx, request.uri().query().unwrap_or("")),
            Route::CreateImage => {
                let (parts, body) = request.into_parts();
                let body = read_json_body(body, self.config.client_socket_timeout()).await?;
                images::create(self, ctx, &parts.headers, &body).await
            }
            Route::ShowImage { id } => images::show(self, ctx, &id),
            Route::UpdateImage { id } => {
                let (parts, body) = request.into_parts();
                let body = read_json_body(body, self.config.client_socket_timeout()).await?;
                patch::update(self, ctx, &id, &parts.headers, &body).await
            }
            Route::DeleteImage { id } => images::delete(self, ctx, &id).await,
            Route::DeactivateImage { id } => images::set_active(self, ctx, &id, false).await,
            Route::ReactivateImage { id } => images::set_active(self, ctx, &id, true).await,
            Route::UploadImageData { id } => image_data::upload(self, ctx, &id, request).await,
            Route::DownloadImageData { id } => {
                image_data::download(self, ctx, &id, request.headers()).await
            }
            Route::AddTag { id, tag } => tags::add(self, ctx, &id, tag).await,
            Route::DeleteTag { id, tag } => tags::delete(self, ctx, &id, tag).await,
            Route::ListMembers { id } => members::list(self, ctx, &id),
            Route::CreateMember { id } => {
                let body = read_json_body(request.into_body(), self.config.client_socket_timeout())
                    .await?;
                members::create(self, ctx, &id, &body).await
            }
            Route::ShowMember { id, member } => members::show(self, ctx, &id, &member),
            Route::UpdateMember { id, member } => {
                let body = read_json_body(request.into_body(), self.config.client_socket_timeout())
                    .await?;
                members::update(self, ctx, &id, &member, &body).await
            }
            Route::DeleteMember { id, member } => members::delete(self, ctx, &id, &member).await,
            Route::SchemaMember => Ok(handlers::json_response(StatusCode::OK, &schemas::member())),
            Route::SchemaMembers => {
                Ok(handlers::json_response(StatusCode::OK, &schemas::members()))
            }
            Route::InfoUsage => info::usage(self, ctx),
        }
    }

    fn versions(&self, headers: &HeaderMap, status: StatusCode) -> Response<Body> {
        let doc = versions::document(self.config.public_endpoint.as_deref(), headers);
        handlers::json_response(status, &doc)
    }

    /// oslo.middleware's healthcheck: `200 OK` (`HEAD`: 204), or 503 when the metadata store
    /// cannot be read or the store folder is not writable.
    fn healthcheck(&self, method: &Method) -> Response<Body> {
        let healthy = self.meta.count_images().is_ok() && self.store.is_writable();
        let (status, text) = match (healthy, method == Method::HEAD) {
            (true, false) => (StatusCode::OK, "OK"),
            (true, true) => (StatusCode::NO_CONTENT, ""),
            (false, false) => (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
            (false, true) => (StatusCode::SERVICE_UNAVAILABLE, ""),
        };
        let body = if text.is_empty() {
            Body::Empty
        } else {
            Body::full(Bytes::from_static(text.as_bytes()))
        };
        let mut response = Response::new(body);
        *response.status_mut() = status;
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        );
        response
    }
}

impl App {
    /// `GET /metrics`, or 404 when metrics are switched off.
    fn metrics(&self) -> Result<Response<Body>, ApiError> {
        if !crate::metrics::is_enabled() {
            return Err(ApiError::not_found("The resource could not be found."));
        }
        let images_by_status = self
            .meta
            .images_by_status()
            .map_err(|e| tracing::warn!(error = %e, "metrics: cannot count images"))
            .ok();
        let store_dir = self.config.images_dir();
        Ok(crate::metrics::response(crate::metrics::Sources {
            images_by_status,
            store_dir: &store_dir,
        }))
    }
}

/// A client's `x-openstack-request-id` when it is well formed (`req-` and a lower-case
/// hyphenated UUID, oslo's rule): logged as the global request id. Glint always answers with
/// its own id.
fn global_request_id(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(REQUEST_ID_HEADER)?.to_str().ok()?;
    let uuid = value.strip_prefix("req-")?;
    let parsed = uuid::Uuid::try_parse(uuid).ok()?;
    (parsed.hyphenated().to_string() == uuid).then_some(value)
}

/// Whether a request carries a body: `Content-Length > 0`, or chunked on a method that
/// normally has one (Glance's rule).
fn has_body(request: &Request<Incoming>) -> bool {
    let headers = request.headers();
    let length = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if length.is_some_and(|n| n > 0) {
        return true;
    }
    let chunked = headers.get(TRANSFER_ENCODING).is_some();
    chunked
        && matches!(
            *request.method(),
            Method::POST | Method::PUT | Method::PATCH
        )
}

/// Reads a JSON request body: at most [`MAX_JSON_BODY_BYTES`] (413 beyond), within
/// `client_socket_timeout` (408 when the client stalls).
async fn read_json_body(
    body: Incoming,
    timeout: Option<std::time::Duration>,
) -> Result<Bytes, ApiError> {
    let limited = http_body_util::Limited::new(body, MAX_JSON_BODY_BYTES);
    let collected = match timeout {
        Some(timeout) => monoio::time::timeout(timeout, limited.collect())
            .await
            .map_err(|_| image_data::request_timeout(timeout))?,
        None => limited.collect().await,
    };
    match collected {
        Ok(collected) => {
            let bytes = collected.to_bytes();
            crate::metrics::received(bytes.len());
            Ok(bytes)
        }
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ApiError::too_large("The request body is too large."))
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "Error reading the request body: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_id(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn global_request_id_must_be_req_and_a_canonical_uuid() {
        let good = "req-0b5e7f3c-2d41-4c1e-9a7b-5f6e8d9c0a1b";
        assert_eq!(global_request_id(&with_id(good)), Some(good));
        for bad in [
            "0b5e7f3c-2d41-4c1e-9a7b-5f6e8d9c0a1b",
            "req-0B5E7F3C-2D41-4C1E-9A7B-5F6E8D9C0A1B",
            "req-0b5e7f3c2d414c1e9a7b5f6e8d9c0a1b",
            "req-",
            "req-0b5e7f3c-2d41-4c1e-9a7b-5f6e8d9c0a1b-x",
        ] {
            assert_eq!(global_request_id(&with_id(bad)), None, "{bad}");
        }
        assert_eq!(global_request_id(&HeaderMap::new()), None);
    }
}
