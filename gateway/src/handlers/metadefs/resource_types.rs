//! Resource types (global) and a namespace's associations with them.

use http::{Response, StatusCode};
use meta::Timestamp;
use serde_json::json;

use super::access::{self, MetadefRule as Rule};
use super::json::{self, Source};
use super::{parse_body, schema_error};
use crate::app::App;
use crate::body::Body;
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::handlers::{empty_response, json_response};

/// `GET /v2/metadefs/resource_types`: every resource type, oldest first.
pub async fn list(app: &App, ctx: &RequestContext) -> Result<Response<Body>, ApiError> {
    access::require(ctx, Rule::ListResourceTypes, None)?;
    let types = app.catalog.metadef_resource_types().await?;
    let body = json!({
        "resource_types": types.iter().map(json::resource_type_to_json).collect::<Vec<_>>(),
    });
    Ok(json_response(StatusCode::OK, &body))
}

/// `GET /v2/metadefs/namespaces/{namespace}/resource_types`.
pub async fn list_associations(
    app: &App,
    ctx: &RequestContext,
    ns: &str,
) -> Result<Response<Body>, ApiError> {
    access::namespace(app, ctx, ns, Rule::ListResourceTypes).await?;
    let associations = app.catalog.metadef_associations(ns).await?;
    let body = json!({
        "resource_type_associations":
            associations.iter().map(json::association_to_json).collect::<Vec<_>>(),
    });
    Ok(json_response(StatusCode::OK, &body))
}

/// `POST /v2/metadefs/namespaces/{namespace}/resource_types`: `{"name", "prefix",
/// "properties_target"}`; the resource type is created if new.
pub async fn associate(
    app: &App,
    ctx: &RequestContext,
    ns: &str,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let value = parse_body(body, &["created_at", "updated_at"])?;
    let association = json::association_from_json(&value, Source::Api, true, Timestamp::now())
        .map_err(|e| schema_error("resource_type_association", e))?;
    access::namespace(app, ctx, ns, Rule::AddResourceTypeAssociation).await?;
    let stored = app
        .catalog
        .associate_metadef_resource_type(ns, association)
        .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json::association_to_json(&stored),
    ))
}

/// `DELETE /v2/metadefs/namespaces/{namespace}/resource_types/{resource_type}`: 403 when the
/// namespace is protected; the resource type itself stays.
pub async fn deassociate(
    app: &App,
    ctx: &RequestContext,
    ns: &str,
    name: &str,
) -> Result<Response<Body>, ApiError> {
    access::namespace(app, ctx, ns, Rule::RemoveResourceTypeAssociation).await?;
    app.catalog
        .deassociate_metadef_resource_type(ns, name)
        .await
        .map_err(|e| match ApiError::from(e) {
            e if e.status() == StatusCode::NOT_FOUND => {
                ApiError::not_found(format!("Failed to find resource type {name} to delete"))
            }
            e => e,
        })?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}
