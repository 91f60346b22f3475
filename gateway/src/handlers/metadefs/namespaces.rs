//! Namespaces: list, create (with embedded content), show, update, delete, and the three
//! "delete all of one kind" routes.

use http::header::{HeaderValue, LOCATION};
use http::{HeaderMap, Response, StatusCode};
use meta::metadefs::{NamespaceQuery, NamespaceSortKey, NamespaceVisibility};
use meta::Timestamp;
use serde_json::{json, Value};

use super::access::{self, MetadefRule as Rule};
use super::json::{self, Source};
use super::{param, parse_body, parse_limit, parse_sort_dir, quote_plus, schema_error, Content};
use crate::app::App;
use crate::body::Body;
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::handlers::list::query::query_pairs;
use crate::handlers::{empty_response, json_response};

/// Attributes a namespace body may not set.
const READ_ONLY: [&str; 4] = ["self", "schema", "created_at", "updated_at"];

/// Glance's `visibility` filter check.
fn parse_visibility(value: Option<&str>) -> Result<Option<NamespaceVisibility>, ApiError> {
    match value {
        None | Some("") => Ok(None),
        Some(text) => text
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("Invalid visibility value: {text}"))),
    }
}

/// `GET /v2/metadefs/namespaces`: visible namespaces, filtered by `visibility` and
/// `resource_types`, sorted, paged with `limit` and `marker` (a namespace name).
pub async fn list(
    app: &App,
    ctx: &RequestContext,
    raw_query: &str,
) -> Result<Response<Body>, ApiError> {
    access::require(ctx, Rule::GetNamespaces, None)?;
    access::require(ctx, Rule::ListResourceTypes, None)?;
    let pairs = query_pairs(raw_query);
    let limit = match param(&pairs, "limit") {
        Some(text) => parse_limit(text)?.min(app.config.api_limit_max),
        None => app.config.limit_param_default,
    };
    let sort_key = match param(&pairs, "sort_key") {
        None | Some("created_at") => NamespaceSortKey::CreatedAt,
        Some("namespace") => NamespaceSortKey::Namespace,
        Some("updated_at") => NamespaceSortKey::UpdatedAt,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid sort key: {other}. It must be one of the following: namespace, \
                 created_at, updated_at."
            )))
        }
    };
    let query = NamespaceQuery {
        viewer: access::viewer(ctx),
        visibility: parse_visibility(param(&pairs, "visibility"))?,
        resource_types: param(&pairs, "resource_types")
            .filter(|types| !types.is_empty())
            .map(|types| types.split(',').map(str::to_owned).collect()),
        sort_key,
        descending: parse_sort_dir(param(&pairs, "sort_dir"))?,
        marker: param(&pairs, "marker").map(str::to_owned),
        limit,
    };
    let page = app.catalog.list_metadef_namespaces(query).await?;
    // Links repeat the request's parameters, minus the marker, re-encoded as Glance does.
    let kept: Vec<String> = pairs
        .iter()
        .filter(|(key, _)| key != "marker")
        .map(|(key, value)| format!("{}={}", quote_plus(key), quote_plus(value)))
        .collect();
    let first = if kept.is_empty() {
        "/v2/metadefs/namespaces".to_owned()
    } else {
        format!("/v2/metadefs/namespaces?{}", kept.join("&"))
    };
    let mut body = json!({
        "namespaces": page
            .iter()
            .map(|(namespace, associations)| Value::Object(json::namespace_to_json(namespace, associations)))
            .collect::<Vec<_>>(),
        "first": first,
        "schema": "/v2/schemas/metadefs/namespaces",
    });
    if let Some((last, _)) = page.last().filter(|_| page.len() == limit) {
        let mut next = kept.clone();
        next.push(format!("marker={}", quote_plus(&last.namespace)));
        body["next"] = json!(format!("/v2/metadefs/namespaces?{}", next.join("&")));
    }
    Ok(json_response(StatusCode::OK, &body))
}

/// `POST /v2/metadefs/namespaces`: a namespace, and whatever it embeds, in one transaction.
pub async fn create(
    app: &App,
    ctx: &RequestContext,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let value = parse_body(body, &READ_ONLY)?;
    let owner = ctx.project_id.clone().unwrap_or_default();
    let document = json::document_from_json(&value, Source::Api, &owner, Timestamp::now())
        .map_err(|e| schema_error("namespace", e))?;
    access::require(ctx, Rule::AddNamespace, None)?;
    for (present, rule) in [
        (
            !document.resource_type_associations.is_empty(),
            Rule::AddResourceTypeAssociation,
        ),
        (!document.objects.is_empty(), Rule::AddObject),
        (!document.properties.is_empty(), Rule::AddProperty),
        (!document.tags.is_empty(), Rule::AddTag),
    ] {
        if present {
            access::require(ctx, rule, None)?;
        }
    }
    let stored = document.clone();
    app.catalog.create_metadef_namespace(stored).await?;
    let href = json::namespace_href(&document.namespace.namespace);
    let mut response = json_response(StatusCode::CREATED, &json::document_to_json(&document, ""));
    if let Ok(location) = HeaderValue::from_str(&format!("{}{href}", app.base_url(headers))) {
        response.headers_mut().insert(LOCATION, location);
    }
    Ok(response)
}

/// `GET /v2/metadefs/namespaces/{namespace}`: the namespace with its content; with
/// `?resource_type=`, property names carry that association's prefix.
pub async fn show(
    app: &App,
    ctx: &RequestContext,
    name: &str,
    raw_query: &str,
) -> Result<Response<Body>, ApiError> {
    let pairs = query_pairs(raw_query);
    parse_visibility(param(&pairs, "visibility"))?;
    access::namespace(app, ctx, name, Rule::GetNamespace).await?;
    let document = app
        .catalog
        .metadef_namespace_document(name)
        .await?
        .ok_or_else(|| access::namespace_not_found(name))?;
    let prefix = param(&pairs, "resource_type")
        .and_then(|wanted| {
            document
                .resource_type_associations
                .iter()
                .find(|association| association.name == wanted)
        })
        .and_then(|association| association.prefix.clone())
        .unwrap_or_default();
    Ok(json_response(
        StatusCode::OK,
        &json::document_to_json(&document, &prefix),
    ))
}

/// `PUT /v2/metadefs/namespaces/{namespace}`: replaces the namespace's own fields (what the
/// body leaves out gets its default), renaming it when `namespace` differs. Embedded content
/// in the body is checked against the schema and otherwise ignored, as in Glance (clients send
/// back what `GET` gave them).
pub async fn update(
    app: &App,
    ctx: &RequestContext,
    name: &str,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let value = parse_body(body, &READ_ONLY)?;
    let owner = ctx.project_id.clone().unwrap_or_default();
    let document = json::document_from_json(&value, Source::Api, &owner, Timestamp::now())
        .map_err(|e| schema_error("namespace", e))?;
    access::namespace(app, ctx, name, Rule::ModifyNamespace).await?;
    let stored = app
        .catalog
        .update_metadef_namespace(name, document.namespace)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &Value::Object(json::namespace_to_json(&stored, &[])),
    ))
}

/// `DELETE /v2/metadefs/namespaces/{namespace}`: the namespace and everything in it; 403
/// when protected.
pub async fn delete(
    app: &App,
    ctx: &RequestContext,
    name: &str,
) -> Result<Response<Body>, ApiError> {
    access::namespace(app, ctx, name, Rule::DeleteNamespace).await?;
    app.catalog.delete_metadef_namespace(name).await?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

/// `DELETE /v2/metadefs/namespaces/{namespace}/{objects,properties,tags}`: all of one kind;
/// 403 when the namespace is protected.
pub async fn delete_content(
    app: &App,
    ctx: &RequestContext,
    name: &str,
    kind: Content,
) -> Result<Response<Body>, ApiError> {
    let namespace = access::namespace(app, ctx, name, Rule::DeleteNamespace).await?;
    if kind == Content::Tags {
        access::require(ctx, Rule::DeleteTags, Some(&namespace))?;
    }
    app.catalog.delete_metadef_content(name, kind).await?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}
