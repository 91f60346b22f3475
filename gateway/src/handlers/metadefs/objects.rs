//! Objects of a namespace: list, create, show, update, delete.

use http::{Response, StatusCode};
use meta::Timestamp;
use serde_json::json;

use super::access::{self, MetadefRule as Rule};
use super::json::{self, Source};
use super::{param, parse_body, parse_limit, parse_sort_dir, schema_error};
use crate::app::App;
use crate::body::Body;
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::handlers::list::query::query_pairs;
use crate::handlers::{empty_response, json_response};

/// Attributes an object body may not set.
const READ_ONLY: [&str; 4] = ["self", "schema", "created_at", "updated_at"];

/// `GET /v2/metadefs/namespaces/{namespace}/objects`: every object, oldest first. Glance
/// checks `limit`, `sort_dir` and `marker` here but lists everything regardless; so does glint.
pub async fn list(
    app: &App,
    ctx: &RequestContext,
    ns: &str,
    raw_query: &str,
) -> Result<Response<Body>, ApiError> {
    let pairs = query_pairs(raw_query);
    parse_sort_dir(param(&pairs, "sort_dir"))?;
    if let Some(limit) = param(&pairs, "limit") {
        if parse_limit(limit)? == 0 {
            return Err(ApiError::bad_request("limit param must be positive"));
        }
    }
    access::namespace(app, ctx, ns, Rule::GetObjects).await?;
    let objects = app.catalog.metadef_objects(ns).await?;
    let body = json!({
        "objects": objects.iter().map(|o| json::object_to_json(ns, o, "")).collect::<Vec<_>>(),
        // Sic: Glance's answer has no leading slash here.
        "schema": "v2/schemas/metadefs/objects",
    });
    Ok(json_response(StatusCode::OK, &body))
}

/// `POST /v2/metadefs/namespaces/{namespace}/objects`: each property is checked against the
/// property schema.
pub async fn create(
    app: &App,
    ctx: &RequestContext,
    ns: &str,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let value = parse_body(body, &READ_ONLY)?;
    let object = json::object_from_json(&value, Source::Api, true, true, Timestamp::now())
        .map_err(|e| schema_error("object", e))?;
    access::namespace(app, ctx, ns, Rule::AddObject).await?;
    let stored = app.catalog.create_metadef_object(ns, object).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json::object_to_json(ns, &stored, ""),
    ))
}

/// `GET /v2/metadefs/namespaces/{namespace}/objects/{object_name}`.
pub async fn show(
    app: &App,
    ctx: &RequestContext,
    ns: &str,
    name: &str,
) -> Result<Response<Body>, ApiError> {
    access::namespace(app, ctx, ns, Rule::GetObject).await?;
    let object = app.catalog.metadef_object(ns, name).await?;
    Ok(json_response(
        StatusCode::OK,
        &json::object_to_json(ns, &object, ""),
    ))
}

/// `PUT /v2/metadefs/namespaces/{namespace}/objects/{object_name}`: full replacement; a
/// different `name` renames it.
pub async fn update(
    app: &App,
    ctx: &RequestContext,
    ns: &str,
    name: &str,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let value = parse_body(body, &READ_ONLY)?;
    let object = json::object_from_json(&value, Source::Api, true, false, Timestamp::now())
        .map_err(|e| schema_error("object", e))?;
    access::namespace(app, ctx, ns, Rule::ModifyObject).await?;
    let stored = app.catalog.update_metadef_object(ns, name, object).await?;
    Ok(json_response(
        StatusCode::OK,
        &json::object_to_json(ns, &stored, ""),
    ))
}

/// `DELETE /v2/metadefs/namespaces/{namespace}/objects/{object_name}`: 403 when the namespace
/// is protected.
pub async fn delete(
    app: &App,
    ctx: &RequestContext,
    ns: &str,
    name: &str,
) -> Result<Response<Body>, ApiError> {
    access::namespace(app, ctx, ns, Rule::DeleteObject).await?;
    app.catalog.delete_metadef_object(ns, name).await?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}
