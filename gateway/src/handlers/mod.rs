//! One module per Glance resource. Handlers parse the request, call the metadata store through
//! `catalog` (never `meta` directly), the file store or the data path, and build the response;
//! status rules and quotas live in `meta`, authorization in `policy`, HTTP mapping in `error`.

pub mod cache;
pub mod image_data;
pub mod images;
pub mod import;
pub mod info;
pub mod list;
pub mod locations;
pub mod members;
pub mod metadefs;
pub mod patch;
pub mod schemas;
pub mod stage_host;
pub mod stores;
pub mod tags;
pub mod tasks;
pub mod versions;

#[cfg(test)]
mod authz_tests;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};

use crate::body::Body;
use crate::error::ApiError;

/// A JSON response.
pub fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    let body = match serde_json::to_vec(value) {
        Ok(body) => body,
        Err(e) => return ApiError::internal(e).into_response(&http::HeaderMap::new()),
    };
    let mut response = Response::new(Body::full(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// An empty response (204 and friends).
pub fn empty_response(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = status;
    response
}

/// Parses an image id from a path; anything that is not a UUID is an image that does not
/// exist (404, as Glance — `openstack image show NAME` relies on it to fall back to a search).
pub fn parse_image_id(id: &str) -> Result<meta::ImageId, ApiError> {
    id.parse().map_err(|_| ApiError::image_not_found(id))
}
