//! Metadata definitions (spec §9): `/v2/metadefs/...` and `/v2/schemas/metadefs/...`.
//!
//! One module per resource (`namespaces`, `objects`, `properties`, `tags`, `resource_types`),
//! with the JSON both ways in `json` and the schemas in `schemas`. Every handler follows
//! Glance's order: parse and check the body (400, read-only attributes 403), find the
//! namespace and check that the caller may see it (404 otherwise, never 403), check the
//! operation's policy rule (403), then one `meta` transaction, run on the writer thread for
//! writes. `meta` refuses duplicates (409), deletes in protected namespaces (403) and invalid
//! records (400); `error.rs` maps those once.
//!
//! Policy (`access`): Glance's defaults — reads for admins and for readers of the owner
//! project or of a public namespace; every write for admins only (`metadef_admin`).

pub mod access;
pub mod json;
pub mod namespaces;
pub mod objects;
pub mod properties;
pub mod resource_types;
pub mod schemas;
pub mod tags;

use http::{Response, StatusCode};
use serde_json::Value;

use crate::body::Body;
use crate::error::ApiError;

/// `GET /v2/schemas/metadefs/{name}`.
pub fn schema(name: &str) -> Result<Response<Body>, ApiError> {
    let schema = schemas::schema(name)
        .ok_or_else(|| ApiError::not_found("The resource could not be found."))?;
    Ok(super::json_response(StatusCode::OK, &schema))
}

pub use meta::metadefs::ContentKind as Content;

/// A JSON request body: 400 when empty or malformed, 403 when it sets one of `read_only`
/// (Glance checks these before its schema).
pub(crate) fn parse_body(body: &[u8], read_only: &[&str]) -> Result<Value, ApiError> {
    let value = super::images::parse_json_body(body)?;
    if let Value::Object(fields) = &value {
        if let Some(key) = read_only.iter().find(|key| fields.contains_key(**key)) {
            return Err(ApiError::forbidden(format!(
                "Attribute '{key}' is read-only."
            )));
        }
    }
    Ok(value)
}

/// 400 for a body that breaks schema `schema`, in Glance's words.
pub(crate) fn schema_error(schema: &str, violation: json::SchemaViolation) -> ApiError {
    ApiError::bad_request(format!(
        "Provided object does not match schema '{schema}': {}",
        violation.0
    ))
}

/// Glance's `sort_dir` check: `asc` or `desc` (the default), else 400.
pub(crate) fn parse_sort_dir(value: Option<&str>) -> Result<bool, ApiError> {
    match value {
        None | Some("desc") => Ok(true),
        Some("asc") => Ok(false),
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid sort direction: {other}"
        ))),
    }
}

/// Glance's `limit` check: an integer, not negative.
pub(crate) fn parse_limit(value: &str) -> Result<usize, ApiError> {
    let limit: i64 = value
        .parse()
        .map_err(|_| ApiError::bad_request("limit param must be an integer"))?;
    usize::try_from(limit).map_err(|_| ApiError::bad_request("limit param must be positive"))
}

/// The first value of `key` in decoded query pairs.
pub(crate) fn param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Percent-encodes a query value as Python's `urlencode` does (`quote_plus`).
pub(crate) fn quote_plus(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_quoted_as_python_does() {
        assert_eq!(
            quote_plus("OS::Compute::Libvirt"),
            "OS%3A%3ACompute%3A%3ALibvirt"
        );
        assert_eq!(quote_plus("a b/é"), "a+b%2F%C3%A9");
    }

    #[test]
    fn paging_parameters() {
        assert!(parse_sort_dir(Some("asc")).is_ok_and(|desc| !desc));
        assert!(parse_sort_dir(None).is_ok_and(|desc| desc));
        assert!(parse_sort_dir(Some("up")).is_err());
        assert_eq!(parse_limit("0").unwrap(), 0);
        assert!(parse_limit("-1").is_err());
        assert!(parse_limit("ten").is_err());
    }
}
