//! Staged data is node-local: it lives in the staging folder of the gateway that staged it.
//! With several gateways behind one load balancer, an import (`glance-direct`) or a delete of a
//! staged image may reach another gateway. As Glance, a gateway configured with its own
//! reachable URL (`worker_self_reference_url`) records that URL as the image's
//! `os_glance_stage_host` when a stage finishes; a gateway that receives such a request for an
//! image staged elsewhere replays it against that URL with the caller's headers (its token) and
//! returns the answer. A replayed request carries [`PROXIED_HEADER`] and is never replayed
//! again, so a misconfigured URL cannot make gateways bounce a request between them.

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::{Method, Response, StatusCode};
use meta::tasks::STAGE_HOST_PROPERTY;
use meta::{Image, ImageId};

use crate::app::App;
use crate::body::Body;
use crate::error::ApiError;
use crate::net::client::{ClientError, ClientSettings, HttpClient, RequestBody, Target};
use crate::net::url::FetchUrl;

/// Marks a request one gateway replayed to the stage host: it is never replayed again.
pub const PROXIED_HEADER: &str = "x-glint-stage-proxied";

/// The largest answer relayed from the stage host (an error document; a success is empty).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Where an image's staged data is, seen from this gateway.
#[derive(Debug, PartialEq, Eq)]
pub enum StageHost {
    /// Here (or the image has no finished stage).
    Here,
    /// On the gateway at this URL (its `worker_self_reference_url`).
    Peer(String),
    /// On another gateway that recorded no URL (its node id): it cannot be reached from here.
    Unreachable(String),
}

/// What this gateway records as `os_glance_stage_host` when a stage finishes here: its
/// `worker_self_reference_url`, else its node id.
pub fn own_mark(app: &App) -> String {
    match &app.config.worker_self_reference_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => app.catalog.node().to_string(),
    }
}

/// Where `image`'s staged data is.
pub fn locate(app: &App, image: &Image) -> StageHost {
    let Some(host) = image.properties.get(STAGE_HOST_PROPERTY) else {
        return StageHost::Here;
    };
    let host = host.trim_end_matches('/');
    let mine = host == own_mark(app) || host == app.catalog.node().to_string();
    // The data here under another name of this gateway (its URL changed since): still here.
    if mine || std::fs::metadata(app.imports.staging().image_path(image.id)).is_ok() {
        StageHost::Here
    } else if host.starts_with("http://") || host.starts_with("https://") {
        StageHost::Peer(host.to_owned())
    } else {
        StageHost::Unreachable(host.to_owned())
    }
}

/// Whether `headers` are those of a request another gateway replayed here.
pub fn was_proxied(headers: &HeaderMap) -> bool {
    headers.contains_key(PROXIED_HEADER)
}

/// The error of a request for data staged on a gateway this one cannot (or must not) replay
/// it to.
pub fn not_here(app: &App, id: ImageId, host: &StageHost, proxied: bool) -> ApiError {
    let own = app
        .config
        .worker_self_reference_url
        .as_deref()
        .unwrap_or("unset");
    let message = match host {
        StageHost::Peer(url) if proxied => format!(
            "Image {id} is staged on the gateway at {url}, not on this one \
             (worker_self_reference_url {own}), and this request was already proxied once: \
             check that each gateway's worker_self_reference_url is its own URL."
        ),
        StageHost::Unreachable(node) | StageHost::Peer(node) => format!(
            "Image {id} was staged on another gateway (node {node}), which recorded no \
             worker_self_reference_url: import it through that gateway, or set \
             worker_self_reference_url on every gateway so that requests are proxied to the \
             gateway holding the staged data."
        ),
        StageHost::Here => format!("Image {id} is staged on this gateway."),
    };
    ApiError::conflict(message)
}

/// Headers that belong to one connection, not to the request (RFC 9110 §7.6.1), plus those
/// the replay sets itself.
fn forwarded(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "expect"
    ) && name != HOST
        && name != CONTENT_LENGTH
        && name.as_str() != PROXIED_HEADER
}

/// Replays `method path` with the caller's `headers` and `body` against the stage host at
/// `base` and returns its answer (status, content type, body). The stage host unreachable is
/// 504 and any other failure of the exchange 502, both "Stage host is unavailable" (Glance).
pub async fn replay(
    base: &str,
    method: Method,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response<Body>, ApiError> {
    let unavailable = |status: StatusCode, why: &dyn std::fmt::Display| {
        tracing::error!(stage_host = %base, error = %why, "cannot proxy to the stage host");
        ApiError::new(status, "Stage host is unavailable")
    };
    let url = FetchUrl::parse(base).map_err(|e| unavailable(StatusCode::BAD_GATEWAY, &e))?;
    let target = Target::from_url(&url).ok_or_else(|| {
        unavailable(
            StatusCode::BAD_GATEWAY,
            &"the stage host's URL is not http(s)",
        )
    })?;
    let uri = format!("{}{path}", url.path().trim_end_matches('/'));
    let mut request = http::Request::builder().method(method.clone()).uri(&uri);
    for (name, value) in headers {
        if forwarded(name) {
            request = request.header(name, value);
        }
    }
    let request = request
        .header(PROXIED_HEADER, "1")
        .body(RequestBody::full(body))
        .map_err(|e| unavailable(StatusCode::BAD_GATEWAY, &e))?;
    tracing::info!(stage_host = %base, %method, path, "proxying to the gateway holding the staged data");
    let client = HttpClient::new(ClientSettings::default());
    let answer = client.send(&target, request).await.map_err(|e| {
        let status = match e {
            ClientError::Resolve(_)
            | ClientError::Connect { .. }
            | ClientError::ConnectTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        };
        unavailable(status, &e)
    })?;
    let status = answer.status;
    let content_type = answer.headers.get(CONTENT_TYPE).cloned();
    let bytes = answer
        .body
        .bytes(MAX_ANSWER_BYTES)
        .await
        .map_err(|e| unavailable(StatusCode::BAD_GATEWAY, &e))?;
    let mut response = Response::new(Body::full(bytes));
    *response.status_mut() = status;
    if let Some(content_type) = content_type {
        response.headers_mut().insert(CONTENT_TYPE, content_type);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_headers_and_the_mark_are_not_replayed() {
        for name in [
            "connection",
            "transfer-encoding",
            "host",
            "content-length",
            PROXIED_HEADER,
        ] {
            assert!(!forwarded(&HeaderName::from_static(name)), "{name}");
        }
        for name in [
            "x-auth-token",
            "content-type",
            "x-image-meta-store",
            "x-roles",
        ] {
            assert!(forwarded(&HeaderName::from_static(name)), "{name}");
        }
    }
}
