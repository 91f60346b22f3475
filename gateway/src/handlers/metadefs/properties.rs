//! Property definitions of a namespace: list, create, show (optionally through a resource
//! type's prefix), update, delete.

use http::{Response, StatusCode};
use meta::metadefs::{MetadefError, PropertyDefinition};
use serde_json::{json, Value};

use super::access::{self, MetadefRule as Rule};
use super::json::{self, Source};
use super::{param, parse_body, schema_error};
use crate::app::App;
use crate::body::Body;
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::handlers::list::query::query_pairs;
use crate::handlers::{empty_response, json_response};

/// Attributes a property body may not set.
const READ_ONLY: [&str; 2] = ["created_at", "updated_at"];

/// A property body: the property schema, `name` required.
fn parse(body: &[u8]) -> Result<(String, PropertyDefinition), ApiError> {
    let value = parse_body(body, &READ_ONLY)?;
    let (name, definition) = json::property_from_json(&value, true, Source::Api)
        .map_err(|e| schema_error("property", e))?;
    let name = name.ok_or_else(|| {
        schema_error(
            "property",
            json::SchemaViolation("'name' is a required property".into()),
        )
    })?;
    Ok((name, definition))
}

/// `GET /v2/metadefs/namespaces/{namespace}/properties`.
pub async fn list(app: &App, ctx: &RequestContext, ns: &str) -> Result<Response<Body>, ApiError> {
    access::namespace(app, ctx, ns, Rule::GetProperties).await?;
    let properties = app.catalog.metadef_properties(ns).await?;
    let body = json!({ "properties": json::properties_to_json(&properties, "") });
    Ok(json_response(StatusCode::OK, &body))
}

/// `POST /v2/metadefs/namespaces/{namespace}/properties`.
pub async fn create(
    app: &App,
    ctx: &RequestContext,
    ns: &str,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let (name, definition) = parse(body)?;
    access::namespace(app, ctx, ns, Rule::AddProperty).await?;
    let answer = json::property_to_json(&definition, Some(&name));
    app.catalog
        .create_metadef_property(ns, &name, definition)
        .await?;
    Ok(json_response(StatusCode::CREATED, &answer))
}

/// `GET /v2/metadefs/namespaces/{namespace}/properties/{property_name}`. With
/// `?resource_type=`, the name carries that association's prefix, which is stripped (404 when
/// it does not start with it).
pub async fn show(
    app: &App,
    ctx: &RequestContext,
    ns: &str,
    name: &str,
    raw_query: &str,
) -> Result<Response<Body>, ApiError> {
    let namespace = access::namespace(app, ctx, ns, Rule::GetProperty).await?;
    let pairs = query_pairs(raw_query);
    let mut name = name;
    if let Some(resource_type) = param(&pairs, "resource_type").filter(|rt| !rt.is_empty()) {
        access::require(ctx, Rule::GetResourceType, Some(&namespace))?;
        let association = app
            .catalog
            .metadef_associations(ns)
            .await?
            .into_iter()
            .find(|association| association.name == resource_type)
            .ok_or_else(|| {
                ApiError::from(meta::Error::from(MetadefError::AssociationNotFound {
                    namespace: ns.to_owned(),
                    resource_type: resource_type.to_owned(),
                }))
            })?;
        let prefix = association.prefix.unwrap_or_default();
        name = match name
            .strip_prefix(prefix.as_str())
            .filter(|_| !prefix.is_empty())
        {
            Some(stripped) => stripped,
            None => {
                let shown = if prefix.is_empty() { "None" } else { &prefix };
                return Err(ApiError::not_found(format!(
                    "Property {name} does not start with the expected resource type \
                     association prefix of '{shown}'."
                )));
            }
        };
    }
    let definition = app.catalog.metadef_property(ns, name).await?;
    Ok(json_response(
        StatusCode::OK,
        &json::property_to_json(&definition, Some(name)),
    ))
}

/// `PUT /v2/metadefs/namespaces/{namespace}/properties/{property_name}`: full replacement; a
/// different `name` renames it.
pub async fn update(
    app: &App,
    ctx: &RequestContext,
    ns: &str,
    name: &str,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let (new_name, definition) = parse(body)?;
    access::namespace(app, ctx, ns, Rule::ModifyProperty).await?;
    let answer: Value = json::property_to_json(&definition, Some(&new_name));
    app.catalog
        .update_metadef_property(ns, name, &new_name, definition)
        .await?;
    Ok(json_response(StatusCode::OK, &answer))
}

/// `DELETE /v2/metadefs/namespaces/{namespace}/properties/{property_name}`: 403 when the
/// namespace is protected.
pub async fn delete(
    app: &App,
    ctx: &RequestContext,
    ns: &str,
    name: &str,
) -> Result<Response<Body>, ApiError> {
    access::namespace(app, ctx, ns, Rule::RemoveProperty).await?;
    app.catalog.delete_metadef_property(ns, name).await?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}
