//! A request's life from hyper's hands to its response: it is named (`x-openstack-request-id`),
//! routed through the table (`routes`), authenticated (unless its route is public), checked
//! against its route's body rule, handed to its handler; errors are rendered as Glance renders
//! them, one access-log line is written, and the response is metered on its way out.

use std::time::Instant;

use crate::body::RequestBody;
use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::request::Parts;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use tracing::Instrument;

use crate::app::App;
use crate::body::Body;
use crate::datapath::splice::SpliceQueue;
use crate::error::ApiError;
use crate::router::Params;
use crate::routes::{self, BodyRule, Call, CallBody, Handler, Route};

/// Largest JSON request body accepted (create, patch, members).
const MAX_JSON_BODY_BYTES: usize = 1 << 20;
const REQUEST_ID_HEADER: &str = "x-openstack-request-id";

/// Serves one request. Never fails: errors become Glance error responses.
///
/// With `splice_queue` (a connection that can splice), a file body is swapped for its
/// zero-copy form before it is metered, so metrics count spliced bytes too.
pub async fn handle(
    app: &App,
    request: Request<RequestBody>,
    splice_queue: Option<&SpliceQueue>,
) -> Response<Body> {
    let started = Instant::now();
    let request_id = format!("req-{}", uuid::Uuid::new_v4());
    let method = request.method().clone();
    let accept = request.headers().get(http::header::ACCEPT).cloned();
    let routed = routes::find(&method, request.uri().path());
    let template = routed
        .as_ref()
        .map_or(routes::UNMATCHED, |(_, route, _)| route.template);
    let label_slot = routes::label_slot(routed.as_ref().ok().map(|(index, ..)| *index));
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
        Ok((_, route, params)) => {
            dispatch(app, route, params, request, &request_id)
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
    let meter = crate::metrics::request_meter(label_slot, &method, response.status(), started);
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, body.metered(meter))
}

async fn dispatch(
    app: &App,
    route: &'static Route,
    params: Params,
    request: Request<RequestBody>,
    request_id: &str,
) -> Result<Response<Body>, ApiError> {
    if let Some(global) = request.headers().get(REQUEST_ID_HEADER) {
        if global.len() > app.config.max_request_id_length {
            return Err(ApiError::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "The request id header is too long.",
            ));
        }
    }
    let (parts, incoming) = request.into_parts();
    match route.handler {
        // Answered ahead of authentication, as Glance's pipeline does.
        Handler::Public(handler) => {
            refuse_body(route, &parts)?;
            handler(app, &parts).await
        }
        Handler::Authed(handler) => {
            let ctx = app.auth.context(&parts.headers, request_id).await?;
            // After authentication, as in Glance (its resource refuses the body, behind the
            // auth middleware): a request with a body and no token is 401.
            refuse_body(route, &parts)?;
            let body = match route.body {
                // An ignored body is left unread; hyper drains it.
                BodyRule::None | BodyRule::Ignored => CallBody::None,
                BodyRule::Json => CallBody::Json(
                    read_json_body(incoming, app.config.client_socket_timeout()).await?,
                ),
                BodyRule::Stream => CallBody::Stream(incoming),
            };
            let call = Call {
                ctx: &ctx,
                params,
                parts,
                body,
            };
            handler(app, call).await
        }
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

/// Glance's 400 for a request with a body on a route whose rule is [`BodyRule::None`].
fn refuse_body(route: &Route, parts: &Parts) -> Result<(), ApiError> {
    if route.body == BodyRule::None && has_body(parts) {
        return Err(ApiError::bad_request(
            "A body is not expected with this request.",
        ));
    }
    Ok(())
}

/// Whether a request carries a body: `Content-Length > 0`, or chunked on a method that
/// normally has one (Glance's rule).
fn has_body(parts: &Parts) -> bool {
    let headers = &parts.headers;
    let length = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if length.is_some_and(|n| n > 0) {
        return true;
    }
    let chunked = headers.get(TRANSFER_ENCODING).is_some();
    chunked && matches!(parts.method, Method::POST | Method::PUT | Method::PATCH)
}

/// Reads a JSON request body: at most [`MAX_JSON_BODY_BYTES`] (413 beyond), within
/// `client_socket_timeout` (408 when the client stalls).
async fn read_json_body(
    body: RequestBody,
    timeout: Option<std::time::Duration>,
) -> Result<Bytes, ApiError> {
    let limited = http_body_util::Limited::new(body, MAX_JSON_BODY_BYTES);
    let collected = match timeout {
        Some(timeout) => monoio::time::timeout(timeout, limited.collect())
            .await
            .map_err(|_| crate::handlers::image_data::request_timeout(timeout))?,
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
