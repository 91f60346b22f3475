//! `PATCH /v2/images/{id}`: Glance's JSON-patch dialects (spec §4.4).
//!
//! Two media types: `application/openstack-images-v2.1-json-patch` (RFC 6902 style,
//! `{"op": "replace", "path": "/name", "value": …}`) and the deprecated
//! `application/openstack-images-v2.0-json-patch` (`{"replace": "/name", "value": …}`). Every
//! operation is checked before the image is touched; then they are applied in order inside one
//! metadata transaction, so a patch is all or nothing.

use http::header::{HeaderMap, CONTENT_TYPE};
use http::{Response, StatusCode};
use meta::{Image, ImageStatus};
use serde_json::Value;

use super::images::{
    check_quotas, is_base, is_reserved, load_authorized, lookup, membership, set_attribute,
    validate_attribute, ImageView, READ_ONLY,
};
use super::locations;
use super::{json_response, parse_image_id};
use crate::app::App;
use crate::body::Body;
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::policy::{self, Rule, Target};

const V21: &str = "application/openstack-images-v2.1-json-patch";
const V20: &str = "application/openstack-images-v2.0-json-patch";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    V20,
    V21,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Remove,
    Replace,
}

#[derive(Debug)]
struct Operation {
    op: Op,
    /// The one path segment, decoded.
    key: String,
    value: Option<Value>,
    /// A location operation, checked (`show_multiple_locations`).
    location: Option<locations::PatchOp>,
}

/// `PATCH /v2/images/{id}`.
pub async fn update(
    app: &App,
    ctx: &RequestContext,
    id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let dialect = dialect(headers)?;
    let value = super::images::parse_json_body(body)?;
    let Value::Array(items) = value else {
        return Err(ApiError::bad_request(
            "Request body must be a JSON array of operation objects.",
        ));
    };
    let ops = items
        .iter()
        .map(|item| parse_operation(app, dialect, item))
        .collect::<Result<Vec<_>, _>>()?;
    let id = parse_image_id(id)?;
    if ops.is_empty() {
        // Glance asks a rule per operation and saves only when there is one: an empty patch
        // hands back the image, untouched, to anybody the data layer shows it to.
        let (image, _) = lookup(app, ctx, id).await?;
        return Ok(json_response(StatusCode::OK, &ImageView::of(app, &image)));
    }
    let current = load_authorized(app, ctx, id, Rule::ModifyImage).await?;
    let location_ops: Vec<&locations::PatchOp> =
        ops.iter().filter_map(|op| op.location.as_ref()).collect();
    let mut location_ctx = None;
    if !location_ops.is_empty() {
        let member = membership(app, ctx, &current).await?;
        for op in &location_ops {
            policy::enforce(ctx, op.rule(), &Target::image(&current, member), id)?;
        }
        let owned: Vec<locations::PatchOp> = location_ops.iter().map(|op| (*op).clone()).collect();
        location_ctx = Some(locations::PatchContext {
            hashing_algorithm: app.config.hashing_algorithm.clone(),
            location_quota: usize::try_from(app.config.image_location_quota).ok(),
            size: locations::size_for(app, &current, &owned).await?,
        });
    }
    // A queued image given a location becomes active in the same transaction.
    let activates =
        current.status == ImageStatus::Queued && location_ops.iter().any(|op| op.adds());
    let ctx_for_txn = ctx.clone();
    let config = app.config.clone();
    let removed = locations::Removed::default();
    let removed_in_txn = removed.clone();
    let edit = move |image: &mut Image| -> Result<(), ApiError> {
        let mut gone = Vec::new();
        for op in &ops {
            match (&op.location, &location_ctx) {
                (Some(location_op), Some(lctx)) => {
                    locations::apply_patch(image, location_op, lctx, &mut gone)?
                }
                _ => apply(&ctx_for_txn, dialect, image, op)?,
            }
        }
        removed_in_txn.set(gone);
        check_quotas(&config, image)
    };
    let image = if activates {
        app.catalog
            .update_image_to(id, ImageStatus::Active, edit)
            .await?
    } else {
        app.catalog.update_image(id, edit).await?
    };
    locations::delete_removed(app, &image, removed.take()).await;
    Ok(json_response(StatusCode::OK, &ImageView::of(app, &image)))
}

fn dialect(headers: &HeaderMap) -> Result<Dialect, ApiError> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    match content_type.as_deref() {
        Some(V21) => Ok(Dialect::V21),
        Some(V20) => Ok(Dialect::V20),
        other => Err(ApiError::unsupported_media_type(format!(
            "Unsupported Content-Type {}",
            other.unwrap_or("(none)")
        ))
        .with_header(
            http::header::HeaderName::from_static("accept-patch"),
            &format!("{V20}, {V21}"),
        )),
    }
}

fn parse_operation(app: &App, dialect: Dialect, item: &Value) -> Result<Operation, ApiError> {
    let Value::Object(fields) = item else {
        return Err(ApiError::bad_request("Operations must be JSON objects."));
    };
    let (op, path) = match dialect {
        Dialect::V21 => {
            let op = fields.get("op").ok_or_else(|| {
                ApiError::bad_request("Unable to find 'op' in JSON Schema change")
            })?;
            let op = match op.as_str() {
                Some("add") => Op::Add,
                Some("remove") => Op::Remove,
                Some("replace") => Op::Replace,
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "Invalid operation: `{op}`: valid operations are add, remove, replace"
                    )))
                }
            };
            let path = fields.get("path").ok_or_else(|| {
                ApiError::bad_request("Unable to find 'path' in JSON Schema change")
            })?;
            (op, path)
        }
        Dialect::V20 => {
            let found: Vec<(Op, &Value)> = [
                ("add", Op::Add),
                ("remove", Op::Remove),
                ("replace", Op::Replace),
            ]
            .into_iter()
            .filter_map(|(name, op)| fields.get(name).map(|p| (op, p)))
            .collect();
            match found.as_slice() {
                [(op, path)] => (*op, *path),
                [] => return Err(ApiError::bad_request("Unable to find `op` in JSON Schema change. It must be one of the following: add, remove, replace.")),
                _ => return Err(ApiError::bad_request("Operation objects must contain only one member named \"add\", \"remove\", or \"replace\".")),
            }
        }
    };
    let path = path
        .as_str()
        .ok_or_else(|| ApiError::bad_request("Path must be a string"))?;
    let (key, index) = parse_pointer(path)?;
    let value = fields.get("value").cloned();
    if op != Op::Remove && value.is_none() {
        let name = match op {
            Op::Add => "add",
            _ => "replace",
        };
        return Err(ApiError::bad_request(format!(
            "Operation \"{name}\" requires a member named \"value\"."
        )));
    }
    if READ_ONLY.contains(&key.as_str()) {
        return Err(ApiError::forbidden(format!(
            "Attribute '{key}' is read-only."
        )));
    }
    if is_reserved(&key) {
        return Err(ApiError::forbidden(format!(
            "Attribute '{key}' is reserved."
        )));
    }
    if key == "locations" {
        let name = match op {
            Op::Add => "add",
            Op::Remove => "remove",
            Op::Replace => "replace",
        };
        let location = locations::parse_patch(app, name, index.as_deref(), value.as_ref())?;
        return Ok(Operation {
            op,
            key,
            value,
            location: Some(location),
        });
    }
    if !is_base(&key) && key.chars().count() > 255 {
        return Err(ApiError::bad_request(format!(
            "Property name '{key}' is longer than 255"
        )));
    }
    if let Some(value) = &value {
        validate_attribute(&app.config, &key, value)?;
    }
    Ok(Operation {
        op,
        key,
        value,
        location: None,
    })
}

/// A JSON pointer with exactly one segment (`/name`), `~0`/`~1` decoded — or `/locations`
/// with one more segment, its position (`N` or `-`), given back beside the key.
fn parse_pointer(path: &str) -> Result<(String, Option<String>), ApiError> {
    let invalid =
        || ApiError::bad_request(format!("Invalid JSON pointer for this resource: '{path}'"));
    let rest = path.strip_prefix('/').ok_or_else(|| {
        ApiError::bad_request(format!("Pointer `{path}` does not start with \"/\"."))
    })?;
    // Locations take `/locations/<index>` or `/locations/-` (add, remove).
    let (rest, index) = match rest.split_once('/') {
        Some(("locations", index)) if !index.is_empty() && !index.contains('/') => {
            ("locations", Some(index.to_owned()))
        }
        Some(_) => return Err(invalid()),
        None => (rest, None),
    };
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut key = String::with_capacity(rest.len());
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => key.push('~'),
                Some('1') => key.push('/'),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "Pointer `{path}` contains \"~\" not part of a recognized escape sequence."
                    )))
                }
            }
        } else {
            key.push(c);
        }
    }
    Ok((key, index))
}

fn apply(
    ctx: &RequestContext,
    dialect: Dialect,
    image: &mut Image,
    op: &Operation,
) -> Result<(), ApiError> {
    let key = op.key.as_str();
    let base = is_base(key);
    let exists = base || image.properties.contains_key(key);
    match op.op {
        Op::Remove => {
            if base {
                return Err(ApiError::forbidden(format!(
                    "Property {key} may not be removed."
                )));
            }
            if image.properties.remove(key).is_none() {
                return Err(ApiError::conflict(format!(
                    "Property {key} does not exist."
                )));
            }
            Ok(())
        }
        Op::Add if dialect == Dialect::V20 && exists => Err(ApiError::conflict(format!(
            "Property {key} already present."
        ))),
        Op::Replace if !exists => Err(ApiError::conflict(format!(
            "Property {key} does not exist."
        ))),
        Op::Add | Op::Replace => {
            let value = op.value.as_ref().unwrap_or(&Value::Null);
            set_attribute(ctx, image, key, value)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers() {
        assert_eq!(parse_pointer("/name").unwrap(), ("name".into(), None));
        assert_eq!(parse_pointer("/a~1b~0c").unwrap().0, "a/b~c");
        assert!(parse_pointer("name").is_err());
        assert!(parse_pointer("/").is_err());
        assert!(parse_pointer("/a/b").is_err());
        assert!(parse_pointer("/tags/-").is_err());
        assert!(parse_pointer("/a~2").is_err());
        assert!(parse_pointer("/a/").is_err());
        assert_eq!(
            parse_pointer("/locations/-").unwrap(),
            ("locations".into(), Some("-".into()))
        );
        assert_eq!(
            parse_pointer("/locations").unwrap(),
            ("locations".into(), None)
        );
        assert!(parse_pointer("/locations/0/url").is_err());
    }
}
