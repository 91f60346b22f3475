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
    pub async fn handle(&self, request: Request<Incoming>) -> Response<Body> {
        let started = Instant::now();
        let request_id = format!("req-{}", uuid::Uuid::new_v4());
        let method = request.method().clone();
        let accept = request.headers().get(http::header::ACCEPT).cloned();
        let routed = route(&method, request.uri().path());
        let template = routed.as_ref().map_or("unmatched", Route::template);
        let span = tracing::info_span!("request", request_id = %request_id, route = template);
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
            duration_ms = started.elapsed().as_secs_f64() * 1e3,
            "request"
        );
        response
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
        let ctx = RequestContext::noauth(request_id.to_owned());
        let ctx = &ctx;
        match route {
            Route::VersionsChoice => {
                Ok(self.versions(request.headers(), StatusCode::MULTIPLE_CHOICES))
            }
            Route::Versions => Ok(self.versions(request.headers(), StatusCode::OK)),
            Route::Healthcheck => Ok(self.healthcheck()),
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
                let body = read_json_body(body).await?;
                images::create(self, ctx, &parts.headers, &body).await
            }
            Route::ShowImage { id } => images::show(self, ctx, &id),
            Route::UpdateImage { id } => {
                let (parts, body) = request.into_parts();
                let body = read_json_body(body).await?;
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
                let body = read_json_body(request.into_body()).await?;
                members::create(self, ctx, &id, &body).await
            }
            Route::ShowMember { id, member } => members::show(self, ctx, &id, &member),
            Route::UpdateMember { id, member } => {
                let body = read_json_body(request.into_body()).await?;
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

    /// oslo.middleware's healthcheck: `200 OK`, or 503 when the metadata store cannot be
    /// read or the store folder is not writable.
    fn healthcheck(&self) -> Response<Body> {
        let healthy = self.meta.count_images().is_ok() && self.store.is_writable();
        let (status, text) = if healthy {
            (StatusCode::OK, "OK")
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE")
        };
        let mut response = Response::new(Body::full(Bytes::from_static(text.as_bytes())));
        *response.status_mut() = status;
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        );
        response
    }
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

async fn read_json_body(body: Incoming) -> Result<Bytes, ApiError> {
    let limited = http_body_util::Limited::new(body, MAX_JSON_BODY_BYTES);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
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
