//! Tags of a namespace: list, create one, create many (replacing or appending), show, rename,
//! delete.

use http::{HeaderMap, Response, StatusCode};
use meta::metadefs::{TagQuery, TagSortKey, MAX_NAME_CHARS};
use serde_json::{json, Value};

use super::access::{self, MetadefRule as Rule};
use super::json::{self, SchemaViolation};
use super::{param, parse_body, parse_limit, parse_sort_dir, schema_error};
use crate::app::App;
use crate::body::Body;
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::handlers::list::query::query_pairs;
use crate::handlers::{empty_response, json_response};

/// Attributes a tag body may not set.
const READ_ONLY: [&str; 2] = ["created_at", "updated_at"];

/// A tag name as the tag schema allows it: a string of at most 80 characters.
fn tag_name(value: &Value) -> Result<String, SchemaViolation> {
    let name = value
        .as_str()
        .ok_or_else(|| SchemaViolation(format!("{value} is not of type 'string'")))?;
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(SchemaViolation(format!("{value} is too long")));
    }
    Ok(name.to_owned())
}

/// oslo's `bool_from_string`: what counts as true in a header.
fn is_true(value: Option<&str>) -> bool {
    value.is_some_and(|v| {
        ["1", "t", "true", "on", "y", "yes"]
            .iter()
            .any(|t| v.trim().eq_ignore_ascii_case(t))
    })
}

fn names_only(tags: &[meta::metadefs::MetadefTag]) -> Value {
    json!({ "tags": tags.iter().map(|t| json!({ "name": t.name })).collect::<Vec<_>>() })
}

/// `GET /v2/metadefs/namespaces/{namespace}/tags`: names only; `limit`, `marker` (a tag
/// name), `sort_key` (`name`, `created_at`, `updated_at`), `sort_dir`.
pub async fn list(
    app: &App,
    ctx: &RequestContext,
    ns: &str,
    raw_query: &str,
) -> Result<Response<Body>, ApiError> {
    let pairs = query_pairs(raw_query);
    let descending = parse_sort_dir(param(&pairs, "sort_dir"))?;
    let limit = param(&pairs, "limit")
        .filter(|text| !text.is_empty())
        .map(parse_limit)
        .transpose()?;
    let sort_key = match param(&pairs, "sort_key") {
        None | Some("created_at") => TagSortKey::CreatedAt,
        Some("name") => TagSortKey::Name,
        Some("updated_at") => TagSortKey::UpdatedAt,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid sort key: {other}. It must be one of the following: name, created_at, \
                 updated_at."
            )))
        }
    };
    access::namespace(app, ctx, ns, Rule::GetTags).await?;
    let query = TagQuery {
        sort_key,
        descending,
        marker: param(&pairs, "marker")
            .filter(|m| !m.is_empty())
            .map(str::to_owned),
        limit,
    };
    let tags = app.catalog.metadef_tags(ns, query).await?;
    Ok(json_response(StatusCode::OK, &names_only(&tags)))
}

/// `POST /v2/metadefs/namespaces/{namespace}/tags/{tag_name}`: no body.
pub async fn create(
    app: &App,
    ctx: &RequestContext,
    ns: &str,
    name: &str,
) -> Result<Response<Body>, ApiError> {
    let namespace = access::namespace(app, ctx, ns, Rule::GetNamespace).await?;
    let name = tag_name(&json!(name)).map_err(|e| schema_error("tag", e))?;
    access::require(ctx, Rule::AddTag, Some(&namespace))?;
    let stored = app.catalog.create_metadef_tag(ns, &name).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json::tag_to_json(&stored),
    ))
}

/// `POST /v2/metadefs/namespaces/{namespace}/tags`: `{"tags": [{"name": …}, …]}` replaces
/// every tag, or, with `X-Openstack-Append: true`, adds to them. An empty list changes
/// nothing (as in Glance).
pub async fn create_many(
    app: &App,
    ctx: &RequestContext,
    ns: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let value = parse_body(body, &READ_ONLY)?;
    let names = parse_tag_list(&value).map_err(|e| schema_error("tags", e))?;
    access::namespace(app, ctx, ns, Rule::AddTags).await?;
    let append = is_true(
        headers
            .get("x-openstack-append")
            .and_then(|v| v.to_str().ok()),
    );
    if names.is_empty() {
        return Ok(json_response(StatusCode::CREATED, &json!({ "tags": [] })));
    }
    let stored = app.catalog.create_metadef_tags(ns, names, append).await?;
    Ok(json_response(StatusCode::CREATED, &names_only(&stored)))
}

fn parse_tag_list(value: &Value) -> Result<Vec<String>, SchemaViolation> {
    let fields = json::as_object(value)?;
    json::refuse_unknown(fields, &["tags"])?;
    let Some(tags) = fields.get("tags") else {
        return Ok(Vec::new());
    };
    let tags = tags
        .as_array()
        .ok_or_else(|| SchemaViolation(format!("{tags} is not of type 'array'")))?;
    tags.iter()
        .map(|tag| {
            let fields = json::as_object(tag)?;
            json::refuse_unknown(fields, &["name"])?;
            let name = fields
                .get("name")
                .ok_or_else(|| SchemaViolation("'name' is a required property".into()))?;
            tag_name(name)
        })
        .collect()
}

/// `GET /v2/metadefs/namespaces/{namespace}/tags/{tag_name}`.
pub async fn show(
    app: &App,
    ctx: &RequestContext,
    ns: &str,
    name: &str,
) -> Result<Response<Body>, ApiError> {
    access::namespace(app, ctx, ns, Rule::GetTag).await?;
    let tag = app.catalog.metadef_tag(ns, name).await?;
    Ok(json_response(StatusCode::OK, &json::tag_to_json(&tag)))
}

/// `PUT /v2/metadefs/namespaces/{namespace}/tags/{tag_name}`: `{"name": "new"}` renames it.
pub async fn update(
    app: &App,
    ctx: &RequestContext,
    ns: &str,
    name: &str,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let value = parse_body(body, &READ_ONLY)?;
    let new_name = (|| {
        let fields = json::as_object(&value)?;
        json::refuse_unknown(fields, &["name", "created_at", "updated_at"])?;
        let name = fields
            .get("name")
            .ok_or_else(|| SchemaViolation("'name' is a required property".into()))?;
        tag_name(name)
    })()
    .map_err(|e| schema_error("tag", e))?;
    access::namespace(app, ctx, ns, Rule::ModifyTag).await?;
    let stored = app.catalog.rename_metadef_tag(ns, name, &new_name).await?;
    Ok(json_response(StatusCode::OK, &json::tag_to_json(&stored)))
}

/// `DELETE /v2/metadefs/namespaces/{namespace}/tags/{tag_name}`: 403 when the namespace is
/// protected.
pub async fn delete(
    app: &App,
    ctx: &RequestContext,
    ns: &str,
    name: &str,
) -> Result<Response<Body>, ApiError> {
    access::namespace(app, ctx, ns, Rule::DeleteTag).await?;
    app.catalog.delete_metadef_tag(ns, name).await?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_lists_are_closed_and_bounded() {
        assert_eq!(
            parse_tag_list(&json!({"tags": [{"name": "a"}, {"name": "b"}]})).unwrap(),
            ["a", "b"]
        );
        assert!(parse_tag_list(&json!({"tags": [{"name": "a", "x": 1}]})).is_err());
        assert!(parse_tag_list(&json!({"tags": [{}]})).is_err());
        assert!(parse_tag_list(&json!({"tags": [{"name": "t".repeat(81)}]})).is_err());
        assert!(parse_tag_list(&json!({"other": []})).is_err());
        assert!(is_true(Some("True")) && is_true(Some("yes")) && !is_true(Some("no")));
        assert!(!is_true(None));
    }
}
