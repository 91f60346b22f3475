//! Images: create, show, update (JSON patch, see `patch`), delete, deactivate/reactivate, and
//! the JSON form of an image. Listing is in `list`.

use std::collections::{BTreeMap, BTreeSet};

use http::header::{HeaderValue, LOCATION};
use http::{HeaderMap, Response, StatusCode};
use meta::{Image, ImageId, ImageStatus, MemberStatus, Timestamp, Visibility};
use serde_json::Value;

use super::{empty_response, json_response, parse_image_id};
use crate::app::App;
use crate::body::Body;
use crate::config::Config;
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::policy::{self, Rule, Target};

/// Link attributes: never accepted from a client.
const LINK_ATTRIBUTES: &[&str] = &["direct_url", "self", "file", "schema", "stores"];
/// Attributes only the server sets.
pub const READ_ONLY: &[&str] = &[
    "created_at",
    "updated_at",
    "status",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "size",
    "virtual_size",
    "id",
    "direct_url",
    "self",
    "file",
    "schema",
    "stores",
];
/// Base attributes a client may set.
pub const WRITABLE: &[&str] = &[
    "name",
    "visibility",
    "protected",
    "os_hidden",
    "container_format",
    "disk_format",
    "min_ram",
    "min_disk",
    "tags",
    "owner",
];

/// Whether `key` is reserved for the server (Glance: 403 "Attribute '…' is reserved.").
pub fn is_reserved(key: &str) -> bool {
    matches!(key, "location" | "deleted" | "deleted_at") || key.starts_with("os_glance")
}

/// Whether `key` is a base attribute of the image schema.
pub fn is_base(key: &str) -> bool {
    WRITABLE.contains(&key) || READ_ONLY.contains(&key) || key == "locations"
}

/// Glance's timestamp form: ISO 8601, UTC, seconds, `Z`.
pub fn format_timestamp(t: Timestamp) -> String {
    format!("{}Z", date_time(t))
}

/// `YYYY-MM-DDTHH:MM:SS` of `t`, UTC (the epoch when out of range).
pub(crate) fn date_time(t: Timestamp) -> String {
    let secs = t.as_unix_micros().div_euclid(1_000_000);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(dt) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            dt.year(),
            u8::from(dt.month()),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second()
        ),
        Err(_) => "1970-01-01T00:00:00".to_owned(),
    }
}

/// The names [`ImageView`] writes itself; an extra property can never shadow one of them.
const BASE_KEYS: &[&str] = &[
    "name",
    "disk_format",
    "container_format",
    "visibility",
    "size",
    "virtual_size",
    "status",
    "checksum",
    "protected",
    "min_ram",
    "min_disk",
    "owner",
    "os_hidden",
    "os_hash_algo",
    "os_hash_value",
    "id",
    "created_at",
    "updated_at",
    "tags",
    "self",
    "file",
    "schema",
];

/// An image as the API shows it (§3.1), serialized straight from the record: no
/// intermediate JSON tree, so a page of 25 images is one buffer and a handful of small
/// allocations.
///
/// Where the data is shows as Glance shows it: `stores` (the comma-separated ids of the
/// stores holding it) in multi-store mode; `locations` (every location, `[]` when none) with
/// `show_multiple_locations`; `direct_url` (the first location's URL) with
/// `show_image_direct_url`. Locations of S3 stores never carry credentials.
pub struct ImageView<'a> {
    image: &'a Image,
    shown: Shown,
}

/// Which location fields an [`ImageView`] writes (the configuration decides).
#[derive(Debug, Clone, Copy)]
struct Shown {
    stores: bool,
    locations: bool,
    direct_url: bool,
}

impl<'a> ImageView<'a> {
    /// `image` as `app`'s configuration shows it.
    pub fn of(app: &App, image: &'a Image) -> ImageView<'a> {
        ImageView {
            image,
            shown: Shown {
                stores: app.stores.is_multi(),
                locations: app.config.show_multiple_locations,
                direct_url: app.config.show_image_direct_url,
            },
        }
    }
}

/// A location as Glance shows it: `{"url", "metadata": {"store"}}` (no `store` in
/// single-store mode, where Glance records none).
struct LocationView<'a> {
    location: &'a meta::Location,
    with_store: bool,
}

impl serde::Serialize for LocationView<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = serializer.serialize_map(Some(2))?;
        m.serialize_entry("url", &self.location.url)?;
        let metadata: BTreeMap<&str, &str> = if self.with_store {
            BTreeMap::from([("store", self.location.store.as_str())])
        } else {
            BTreeMap::new()
        };
        m.serialize_entry("metadata", &metadata)?;
        m.end()
    }
}

impl<'a> LocationView<'a> {
    /// Every location of `image`.
    pub fn all(image: &'a Image, with_store: bool) -> Vec<LocationView<'a>> {
        image
            .locations
            .iter()
            .map(|location| LocationView {
                location,
                with_store,
            })
            .collect()
    }
}

impl serde::Serialize for ImageView<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let image = self.image;
        let id = image.id;
        let mut m = serializer.serialize_map(None)?;
        m.serialize_entry("id", &format_args!("{id}"))?;
        m.serialize_entry("name", &image.name)?;
        m.serialize_entry("status", image.status.as_str())?;
        m.serialize_entry("visibility", image.visibility.as_str())?;
        m.serialize_entry("disk_format", &image.disk_format)?;
        m.serialize_entry("container_format", &image.container_format)?;
        m.serialize_entry("size", &image.size)?;
        m.serialize_entry("virtual_size", &image.virtual_size)?;
        m.serialize_entry("checksum", &image.checksum)?;
        m.serialize_entry("os_hash_algo", &image.os_hash_algo)?;
        m.serialize_entry("os_hash_value", &image.os_hash_value)?;
        m.serialize_entry("protected", &image.protected)?;
        m.serialize_entry("os_hidden", &image.os_hidden)?;
        m.serialize_entry("min_ram", &image.min_ram)?;
        m.serialize_entry("min_disk", &image.min_disk)?;
        m.serialize_entry("owner", &image.owner)?;
        m.serialize_entry("created_at", &format_timestamp(image.created_at))?;
        m.serialize_entry("updated_at", &format_timestamp(image.updated_at))?;
        m.serialize_entry("tags", &image.tags)?;
        m.serialize_entry("self", &format_args!("/v2/images/{id}"))?;
        m.serialize_entry("file", &format_args!("/v2/images/{id}/file"))?;
        m.serialize_entry("schema", "/v2/schemas/image")?;
        if self.shown.locations {
            m.serialize_entry("locations", &LocationView::all(image, self.shown.stores))?;
        }
        if self.shown.direct_url {
            if let Some(first) = image.locations.first() {
                m.serialize_entry("direct_url", &first.url)?;
            }
        }
        if self.shown.stores && !image.locations.is_empty() {
            let stores: Vec<&str> = image.locations.iter().map(|l| l.store.as_str()).collect();
            m.serialize_entry("stores", &stores.join(","))?;
        }
        for (k, v) in &image.properties {
            // Glance hides where staged data or a hash operation lives; glint hides the staged
            // data's digests (`tasks::staged`).
            let hidden = matches!(
                k.as_str(),
                "os_glance_stage_host"
                    | "os_glance_hash_op_host"
                    | crate::tasks::staged::STAGE_DIGESTS_PROPERTY
            );
            if !BASE_KEYS.contains(&k.as_str()) && !hidden {
                m.serialize_entry(k, v)?;
            }
        }
        m.end()
    }
}

/// The caller's membership of `image`, when its project is a member and the image is
/// `shared` (only then does a membership count).
pub async fn membership(
    app: &App,
    ctx: &RequestContext,
    image: &Image,
) -> Result<Option<MemberStatus>, ApiError> {
    match ctx.project_id.as_deref() {
        Some(project)
            if image.visibility == Visibility::Shared && !ctx.owns(image.owner.as_deref()) =>
        {
            let member = app.catalog.get_member(image.id, project).await?;
            Ok(member.map(|m| m.status))
        }
        _ => Ok(None),
    }
}

/// Image `id` as Glance's image repository hands it out, with the caller's membership: 404
/// when it does not exist or the data layer hides it from the caller (§8.1), before any
/// policy rule is asked. Routes that check something ahead of their rule (members, download)
/// start here; the others use [`load_authorized`].
pub async fn lookup(
    app: &App,
    ctx: &RequestContext,
    id: ImageId,
) -> Result<(Image, Option<MemberStatus>), ApiError> {
    let image = app.catalog.get_image(id).await?;
    // pending_delete images still exist in meta (they hold data) but are gone for the API.
    if image.status == ImageStatus::PendingDelete {
        return Err(ApiError::image_not_found(id));
    }
    let membership = membership(app, ctx, &image).await?;
    if !policy::is_visible(ctx, &Target::image(&image, membership)) {
        return Err(ApiError::image_not_found(id));
    }
    Ok((image, membership))
}

/// Loads image `id` and checks `rule` on it: 404 when it does not exist or the caller cannot
/// see it, 403 when the caller sees it but `rule` refuses.
pub async fn load_authorized(
    app: &App,
    ctx: &RequestContext,
    id: ImageId,
    rule: Rule,
) -> Result<Image, ApiError> {
    let (image, membership) = lookup(app, ctx, id).await?;
    policy::enforce(ctx, rule, &Target::image(&image, membership), id)?;
    Ok(image)
}

/// Loads an image the caller may see (`get_image`).
pub async fn load_visible(app: &App, ctx: &RequestContext, id: ImageId) -> Result<Image, ApiError> {
    load_authorized(app, ctx, id, Rule::GetImage).await
}

fn schema_error(detail: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!(
        "Provided object does not match schema 'image': {detail}"
    ))
}

/// Checks one attribute's value against the image schema (types, enums, lengths, pattern).
pub fn validate_attribute(config: &Config, key: &str, value: &Value) -> Result<(), ApiError> {
    let string_max = |max: usize, nullable: bool| match value {
        Value::Null if nullable => Ok(()),
        Value::String(s) if s.chars().count() <= max => Ok(()),
        Value::String(s) => Err(schema_error(format!("'{s}' is too long (maximum {max})"))),
        other => Err(schema_error(format!("{other} is not of type 'string'"))),
    };
    let one_of = |allowed: &[String], nullable: bool| match value {
        Value::Null if nullable => Ok(()),
        Value::String(s) if allowed.iter().any(|a| a == s) => Ok(()),
        other => Err(schema_error(format!("{other} is not one of {allowed:?}"))),
    };
    let boolean = || match value {
        Value::Bool(_) => Ok(()),
        other => Err(schema_error(format!("{other} is not of type 'boolean'"))),
    };
    let integer = |nullable: bool| match value {
        Value::Null if nullable => Ok(()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Ok(()),
        other => Err(schema_error(format!("{other} is not of type 'integer'"))),
    };
    match key {
        "id" => match value {
            Value::String(s) if s.parse::<ImageId>().is_ok() => Ok(()),
            other => Err(schema_error(format!(
                "{other} does not match the UUID pattern"
            ))),
        },
        "name" | "owner" => string_max(255, true),
        "visibility" => one_of(
            &["community", "public", "private", "shared"].map(String::from),
            false,
        ),
        "status" => one_of(
            &super::schemas::STATUSES
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
            false,
        ),
        "protected" | "os_hidden" => boolean(),
        "checksum" => string_max(32, true),
        "os_hash_algo" => string_max(64, true),
        "os_hash_value" => string_max(128, true),
        "size" | "virtual_size" => integer(true),
        "min_ram" | "min_disk" => integer(false),
        "container_format" => one_of(&config.container_formats, true),
        "disk_format" => one_of(&config.disk_formats, true),
        "created_at" | "updated_at" | "direct_url" | "self" | "file" | "schema" | "stores" => {
            string_max(usize::MAX, false)
        }
        "tags" => match value {
            Value::Array(items) => items.iter().try_for_each(|t| match t {
                Value::String(s) if s.chars().count() <= 255 => Ok(()),
                other => Err(schema_error(format!(
                    "tag {other} is not a string of at most 255"
                ))),
            }),
            other => Err(schema_error(format!("{other} is not of type 'array'"))),
        },
        "locations" => match value {
            Value::Array(_) => Ok(()),
            other => Err(schema_error(format!("{other} is not of type 'array'"))),
        },
        _ => match value {
            Value::String(_) => Ok(()),
            other => Err(schema_error(format!("{other} is not of type 'string'"))),
        },
    }
}

/// Sets a writable base attribute or an extra property on `image` from a validated value.
pub fn set_attribute(
    ctx: &RequestContext,
    image: &mut Image,
    key: &str,
    value: &Value,
) -> Result<(), ApiError> {
    let text = || value.as_str().map(str::to_owned);
    let number = || -> Result<u64, ApiError> {
        match value.as_i64() {
            Some(n) if n < 0 => Err(ApiError::bad_request(format!("{key} must be >= 0"))),
            Some(n) => Ok(n as u64),
            None => value
                .as_u64()
                .ok_or_else(|| schema_error(format!("{key} is not an integer"))),
        }
    };
    match key {
        "name" => image.name = text(),
        "visibility" => {
            let visibility: Visibility = value
                .as_str()
                .unwrap_or("")
                .parse()
                .map_err(|_| schema_error("bad visibility"))?;
            // Checked against the image as it is (its owner), before the change.
            let rule = match visibility {
                Visibility::Public => Some(Rule::PublicizeImage),
                Visibility::Community => Some(Rule::CommunitizeImage),
                Visibility::Private | Visibility::Shared => None,
            };
            if let Some(rule) = rule.filter(|_| visibility != image.visibility) {
                policy::enforce_global(ctx, rule, &Target::image(image, None))?;
            }
            image.visibility = visibility;
        }
        "protected" => image.protected = value.as_bool().unwrap_or(false),
        "os_hidden" => image.os_hidden = value.as_bool().unwrap_or(false),
        "container_format" | "disk_format" => {
            if !matches!(image.status, ImageStatus::Queued | ImageStatus::Importing) {
                return Err(ApiError::forbidden(format!(
                    "Attribute {key} can be only replaced for a queued image."
                )));
            }
            if key == "disk_format" {
                image.disk_format = text();
            } else {
                image.container_format = text();
            }
        }
        "min_ram" => image.min_ram = number()?,
        "min_disk" => image.min_disk = number()?,
        "tags" => {
            let tags = value
                .as_array()
                .map(|a| a.iter().filter_map(|t| t.as_str()));
            image.tags = tags
                .into_iter()
                .flatten()
                .map(str::to_owned)
                .collect::<BTreeSet<_>>();
        }
        "owner" => {
            let owner = text();
            if !ctx.is_admin_role() && owner.as_deref() != image.owner.as_deref() {
                return Err(ApiError::forbidden("Owner can't be updated by non admin."));
            }
            image.owner = owner;
        }
        _ => {
            image
                .properties
                .insert(key.to_owned(), text().unwrap_or_default());
        }
    }
    Ok(())
}

/// Enforces `image_property_quota` and `image_tag_quota` (413).
pub fn check_quotas(config: &Config, image: &Image) -> Result<(), ApiError> {
    let check = |what: &str, quota: i64, attempted: usize| {
        // A negative quota means unlimited.
        if quota >= 0 && attempted as u64 > quota as u64 {
            return Err(ApiError::too_large(format!(
                "The limit has been exceeded on the number of allowed image {what}. \
                 Attempted: {attempted}, Maximum: {quota}"
            )));
        }
        Ok(())
    };
    check(
        "properties",
        config.image_property_quota,
        image.properties.len(),
    )?;
    check("tags", config.image_tag_quota, image.tags.len())
}

/// Parses a JSON request body; Glance's messages for a missing or malformed one.
pub fn parse_json_body(body: &[u8]) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request("Body expected in request."));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| ApiError::bad_request("Malformed JSON in request body."))?;
    Ok(value)
}

/// A new image, owned by the caller unless `fields` say otherwise, from the attributes of a
/// `POST /v2/images` body (the legacy import task's `image_properties` too), checked in
/// Glance's order: schema, reserved and read-only attributes, `add_image`, quotas. Not stored.
pub fn new_image(
    app: &App,
    ctx: &RequestContext,
    fields: &serde_json::Map<String, Value>,
) -> Result<Image, ApiError> {
    // Glance's order: link attributes, schema, extra-property rules, read-only attributes.
    if let Some(key) = fields
        .keys()
        .find(|k| LINK_ATTRIBUTES.contains(&k.as_str()))
    {
        return Err(ApiError::forbidden(format!(
            "Attribute '{key}' is read-only."
        )));
    }
    for (key, value) in fields {
        validate_attribute(&app.config, key, value)?;
    }
    for key in fields.keys() {
        if !is_base(key) && key.chars().count() > 255 {
            return Err(schema_error(format!(
                "property name '{key}' is longer than 255"
            )));
        }
        if is_reserved(key) || key == "locations" {
            return Err(ApiError::forbidden(format!(
                "Attribute '{key}' is reserved."
            )));
        }
    }
    if let Some(key) = fields
        .keys()
        .find(|k| READ_ONLY.contains(&k.as_str()) && *k != "id")
    {
        return Err(ApiError::forbidden(format!(
            "Attribute '{key}' is read-only."
        )));
    }
    let id = match fields.get("id").and_then(Value::as_str) {
        Some(s) => s.parse().map_err(|_| schema_error("bad id"))?,
        None => ImageId::new_v4(),
    };
    // Glance's defaults: queued, shared, unprotected, not hidden, owned by the caller.
    let mut image = Image::new(id, Timestamp::now());
    image.owner = ctx.project_id.clone();
    // add_image first, against the owner the image is to have; then, as the attributes are
    // set, the visibility rules (Glance's order).
    let owner = match fields.get("owner") {
        Some(value) => value.as_str(),
        None => ctx.project_id.as_deref(),
    };
    if !policy::allows(
        ctx,
        Rule::AddImage,
        &Target {
            owner,
            ..Target::image(&image, None)
        },
    ) {
        return Err(if owner != ctx.project_id.as_deref() {
            ApiError::forbidden(format!(
                "You are not permitted to create images owned by '{}'.",
                owner.unwrap_or("")
            ))
        } else {
            policy::forbidden(Rule::AddImage)
        });
    }
    for (key, value) in fields {
        if key != "id" {
            set_attribute(ctx, &mut image, key, value)?;
        }
    }
    check_quotas(&app.config, &image)?;
    Ok(image)
}

/// `POST /v2/images`.
pub async fn create(
    app: &App,
    ctx: &RequestContext,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let value = parse_json_body(body)?;
    let Value::Object(fields) = value else {
        return Err(ApiError::bad_request("Body must be a JSON object."));
    };
    let image = new_image(app, ctx, &fields)?;
    let id = image.id;
    let limits = app.config.quotas.limits_for(image.owner.as_deref());
    app.catalog.create_image(image.clone(), limits).await?;
    tracing::info!(image_id = %id, "image created");
    let mut response = json_response(StatusCode::CREATED, &ImageView::of(app, &image));
    // openstacksdk imports only when this header names the method (Glance sends it).
    if !app.config.enabled_import_methods.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&app.config.enabled_import_methods.join(",")) {
            response
                .headers_mut()
                .insert("openstack-image-import-methods", v);
        }
    }
    if app.stores.is_multi() {
        let ids: Vec<&str> = app.stores.iter().map(|s| s.id()).collect();
        if let Ok(v) = HeaderValue::from_str(&ids.join(",")) {
            response
                .headers_mut()
                .insert("openstack-image-store-ids", v);
        }
    }
    let location = format!("{}/v2/images/{id}", app.base_url(headers));
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(LOCATION, v);
    }
    Ok(response)
}

/// `GET /v2/images/{id}`.
pub async fn show(app: &App, ctx: &RequestContext, id: &str) -> Result<Response<Body>, ApiError> {
    let image = load_visible(app, ctx, parse_image_id(id)?).await?;
    Ok(json_response(StatusCode::OK, &ImageView::of(app, &image)))
}

/// `DELETE /v2/images/{id}`.
pub async fn delete(
    app: &App,
    ctx: &RequestContext,
    id: &str,
    headers: &http::HeaderMap,
) -> Result<Response<Body>, ApiError> {
    let id = parse_image_id(id)?;
    let found = load_authorized(app, ctx, id, Rule::DeleteImage).await?;
    if found.status == ImageStatus::Uploading {
        // Staged on another gateway: that gateway deletes it, staged data included (Glance).
        // When it cannot be reached the delete goes on here and its staged file stays there
        // (its start-up removes staging files of images that are gone).
        match super::stage_host::locate(app, &found) {
            super::stage_host::StageHost::Peer(url) if !super::stage_host::was_proxied(headers) => {
                let path = format!("/v2/images/{id}");
                let replayed = super::stage_host::replay(
                    &url,
                    http::Method::DELETE,
                    &path,
                    headers,
                    bytes::Bytes::new(),
                )
                .await;
                match replayed {
                    Ok(answer) if !answer.status().is_server_error() => return Ok(answer),
                    Ok(answer) => tracing::warn!(image_id = %id, status = %answer.status(),
                        "the stage host failed the delete; deleting here, its staged data stays"),
                    Err(_) => tracing::warn!(image_id = %id,
                        "the stage host is unavailable; deleting here, its staged data stays"),
                }
            }
            super::stage_host::StageHost::Here => {}
            elsewhere => tracing::warn!(image_id = %id, stage_host = ?elsewhere,
                "image staged on another gateway; deleting here, its staged data stays there"),
        }
    }
    let image = app.catalog.delete_image(id).await?;
    // Other gateways drop their copies when the database announces the deletion (`serve`).
    if let Some(cache) = &app.cache {
        cache.invalidate(id);
    }
    // The record is gone; now the data, from every store holding it. An upload in progress
    // keeps writing; it notices the deletion when it commits (410) and removes its data then.
    delete_data(app, &image).await;
    if image.status == ImageStatus::Uploading {
        // Its staged data (a stage still running removes its own when it finds the image
        // gone).
        let staged = app.imports.staged_location(id);
        if let Err(e) = crate::store::Store::delete(&**app.imports.staging(), &staged).await {
            tracing::error!(image_id = %id, error = %e, "cannot delete staged data");
        }
    }
    tracing::info!(image_id = %id, "image deleted");
    Ok(empty_response(StatusCode::NO_CONTENT))
}

/// Deletes a deleted image's data from each store holding it. A store that fails is logged
/// (the image is gone either way; its data is then an orphan for the operator).
pub async fn delete_data(app: &App, image: &Image) {
    for location in &image.locations {
        let Some(store) = app.stores.for_location(location) else {
            tracing::warn!(image_id = %image.id, store = %location.store,
                "location in a store this gateway does not have; its data stays");
            continue;
        };
        if let Err(e) = store.delete(location).await {
            tracing::error!(image_id = %image.id, store = %store.id(), error = %e,
                "cannot delete image data");
        }
    }
}

/// `POST /v2/images/{id}/actions/deactivate` and `…/reactivate`.
pub async fn set_active(
    app: &App,
    ctx: &RequestContext,
    id: &str,
    active: bool,
) -> Result<Response<Body>, ApiError> {
    let id = parse_image_id(id)?;
    let verb = if active { "reactivate" } else { "deactivate" };
    let rule = if active {
        Rule::Reactivate
    } else {
        Rule::Deactivate
    };
    let image = load_authorized(app, ctx, id, rule).await?;
    let (from, to) = if active {
        (ImageStatus::Deactivated, ImageStatus::Active)
    } else {
        (ImageStatus::Active, ImageStatus::Deactivated)
    };
    if image.status == to {
        return Ok(empty_response(StatusCode::NO_CONTENT));
    }
    if image.status != from {
        return Err(ApiError::forbidden(format!(
            "Not allowed to {verb} image in status '{}'",
            image.status
        )));
    }
    app.catalog.set_status(id, to).await?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

#[cfg(test)]
impl<'a> ImageView<'a> {
    /// `image` without any location field (single store, no location options).
    fn plain(image: &'a Image) -> ImageView<'a> {
        ImageView {
            image,
            shown: Shown {
                stores: false,
                locations: false,
                direct_url: false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn location_fields_show_as_configured() {
        let mut image = Image::new(ImageId::new_v4(), Timestamp::now());
        let at = |url: &str, store: &str| meta::Location {
            url: url.into(),
            store: store.into(),
        };
        let view = |image: &Image, stores, locations, direct_url| {
            let view = ImageView {
                image,
                shown: Shown {
                    stores,
                    locations,
                    direct_url,
                },
            };
            serde_json::to_value(&view).unwrap()
        };
        let empty = view(&image, true, true, true);
        assert_eq!(empty["locations"], json!([]));
        assert!(empty.get("direct_url").is_none() && empty.get("stores").is_none());
        image.locations = vec![
            at("s3://10.0.0.1:7480/images/x", "ceph"),
            at("file:///var/lib/glint/images/x", "local"),
        ];
        let all = view(&image, true, true, true);
        assert_eq!(all["stores"], "ceph,local");
        assert_eq!(all["direct_url"], "s3://10.0.0.1:7480/images/x");
        assert_eq!(
            all["locations"][1],
            json!({"url": "file:///var/lib/glint/images/x", "metadata": {"store": "local"}})
        );
        let single = view(&image, false, true, false);
        assert_eq!(single["locations"][0]["metadata"], json!({}));
        assert!(single.get("stores").is_none() && single.get("direct_url").is_none());
        let none = view(&image, false, false, false);
        assert!(none.get("locations").is_none());
    }

    #[test]
    fn image_view_has_every_base_key_once_and_extra_properties() {
        let mut image = Image::new(ImageId::new_v4(), Timestamp::now());
        image.name = Some("cirros".into());
        image.size = Some(42);
        image.tags.insert("t".into());
        image
            .properties
            .insert("hw_disk_bus".into(), "virtio".into());
        // A property named like a base attribute cannot shadow it (nor repeat the key).
        image.properties.insert("status".into(), "bogus".into());
        let text = serde_json::to_string(&ImageView::plain(&image)).unwrap();
        assert_eq!(text.matches("\"status\"").count(), 1, "{text}");
        let doc: Value = serde_json::from_str(&text).unwrap();
        let obj = doc.as_object().unwrap();
        for key in BASE_KEYS {
            assert!(obj.contains_key(*key), "{key} missing from {text}");
        }
        assert_eq!(obj.len(), BASE_KEYS.len() + 1);
        let id = image.id.to_string();
        assert_eq!(doc["id"], id.as_str());
        assert_eq!(doc["status"], "queued");
        assert_eq!(doc["size"], 42);
        assert_eq!(doc["virtual_size"], Value::Null);
        assert_eq!(doc["tags"], serde_json::json!(["t"]));
        assert_eq!(doc["hw_disk_bus"], "virtio");
        assert_eq!(doc["file"], format!("/v2/images/{id}/file"));
    }
}
