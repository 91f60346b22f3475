//! Locations: the new API of 2.17 (spec §4.11) — `POST /v2/images/{id}/locations` and
//! `GET …/locations` — and the legacy `PATCH` location operations (§4.4) that
//! `show_multiple_locations` turns on, as Glance gates them.
//!
//! A location must belong to a store of this gateway (the one its `metadata.store` names in
//! multi-store mode, else the one whose URLs it matches): glint never records a URL it could
//! not read back. An image given its first location takes the data's size from the store
//! and becomes `active` in the same transaction.
//!
//! `POST` answers 202 and does the rest in the background, as Glance's `location_import`
//! task: the size from the store, then — with `do_secure_hash` — md5 and the `os_hash_value`
//! computed by streaming the data through the hashing threads. With `validation_data` the
//! image waits in `importing` until the hash is known and matches (else it goes back to
//! `queued` without the location); without, it is `active` at once and gains its checksums
//! when the hashing ends.

use std::sync::Arc;

use http::{Response, StatusCode};
use meta::{Image, ImageId, ImageStatus, Location};
use serde_json::{Map, Value};

use super::images::{load_authorized, membership};
use super::{empty_response, json_response, parse_image_id};
use crate::app::App;
use crate::body::Body;
use crate::catalog::Catalog;
use crate::context::RequestContext;
use crate::datapath::checksum::HashPool;
use crate::datapath::ingest::{self, StoreSource};
use crate::error::ApiError;
use crate::policy::{self, Rule, Target};
use crate::store::{StoreError, StoreKind, Stores};

/// The hash algorithms `validation_data` may name (Glance's location schema).
const VALIDATION_ALGORITHMS: &[&str] = &["sha1", "sha256", "sha512", "md5"];

/// `validation_data` of a location: what the caller says the data's digests are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationData {
    /// md5, hex (PATCH only).
    pub checksum: Option<String>,
    /// The algorithm of `os_hash_value`.
    pub os_hash_algo: Option<String>,
    /// Hex digest.
    pub os_hash_value: Option<String>,
}

impl ValidationData {
    fn is_empty(&self) -> bool {
        self.checksum.is_none() && self.os_hash_algo.is_none() && self.os_hash_value.is_none()
    }
}

/// Digest length in bytes of `algo`.
fn digest_len(algo: &str) -> Option<usize> {
    Some(match algo {
        "md5" => 16,
        "sha1" => 20,
        "sha256" => 32,
        "sha384" => 48,
        "sha512" => 64,
        _ => return None,
    })
}

fn is_hex_of(value: &str, bytes: usize) -> bool {
    value.len() == bytes * 2 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

fn schema_error(detail: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!(
        "Provided object does not match schema 'location': {detail}"
    ))
}

/// The store `url` belongs to, as a location: the store `named` (multi-store: it must exist
/// and hold such URLs), else the one whose URLs it matches. 400 otherwise; the message never
/// repeats the URL (it may carry credentials).
pub fn resolve(app: &App, url: &str, named: Option<&str>) -> Result<Location, ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "Invalid location: the URL does not belong to any store of this gateway.",
        )
    };
    let store = match named.filter(|_| app.stores.is_multi()) {
        Some(id) => app
            .stores
            .get(id)
            .filter(|s| s.owns(url))
            .ok_or_else(invalid)?,
        None => app
            .stores
            .iter()
            .find(|s| s.owns(url))
            .ok_or_else(invalid)?,
    };
    Ok(Location {
        url: url.to_owned(),
        store: store.id().to_owned(),
    })
}

/// The size of the data at `location` (a HEAD for web and S3 locations).
pub async fn size_of(stores: &Stores, location: &Location) -> Result<u64, StoreError> {
    let store = stores
        .for_location(location)
        .ok_or_else(|| StoreError::BadLocation {
            store: location.store.clone(),
            message: "no such store here".into(),
        })?;
    store.size(location).await
}

/// A store's refusal of a location's data, as the answer to the request that added it.
fn size_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound { .. }
        | StoreError::BadLocation { .. }
        | StoreError::Remote { .. } => {
            ApiError::bad_request("Invalid location: its data cannot be read.").log_cause(e)
        }
        e => super::image_data::store_error(e),
    }
}

// ---- POST and GET /v2/images/{id}/locations

/// The body of `POST /v2/images/{id}/locations`: `url`, and optional `validation_data` of
/// exactly `os_hash_algo` + `os_hash_value`.
fn parse_add(body: &[u8]) -> Result<(String, ValidationData), ApiError> {
    let value = super::images::parse_json_body(body)?;
    let Value::Object(fields) = value else {
        return Err(schema_error("the body is not an object"));
    };
    let url = match fields.get("url") {
        Some(Value::String(url)) => url.clone(),
        Some(other) => return Err(schema_error(format!("{other} is not of type 'string'"))),
        None => return Err(schema_error("'url' is a required property")),
    };
    let mut validation = ValidationData::default();
    match fields.get("validation_data") {
        None | Some(Value::Null) => {}
        Some(Value::Object(data)) => {
            for (key, value) in data {
                let text = value
                    .as_str()
                    .ok_or_else(|| schema_error(format!("{value} is not of type 'string'")))?;
                match key.as_str() {
                    "os_hash_algo" => {
                        if !VALIDATION_ALGORITHMS.contains(&text) {
                            return Err(schema_error(format!(
                                "'{text}' is not one of {VALIDATION_ALGORITHMS:?}"
                            )));
                        }
                        validation.os_hash_algo = Some(text.to_owned());
                    }
                    "os_hash_value" => {
                        if text.len() > 128 {
                            return Err(schema_error(format!("'{text}' is too long")));
                        }
                        validation.os_hash_value = Some(text.to_owned());
                    }
                    other => {
                        return Err(schema_error(format!(
                            "Additional properties are not allowed ('{other}' was unexpected)"
                        )))
                    }
                }
            }
            match (&validation.os_hash_algo, &validation.os_hash_value) {
                (Some(_), None) => {
                    return Err(schema_error(
                        "'os_hash_value' is a dependency of 'os_hash_algo'",
                    ))
                }
                (None, Some(_)) => {
                    return Err(schema_error(
                        "'os_hash_algo' is a dependency of 'os_hash_value'",
                    ))
                }
                _ => {}
            }
        }
        Some(other) => return Err(schema_error(format!("{other} is not of type 'object'"))),
    }
    if let (Some(algo), Some(value)) = (&validation.os_hash_algo, &validation.os_hash_value) {
        if !value.bytes().all(|b| b.is_ascii_hexdigit()) || value.len() % 2 != 0 {
            return Err(ApiError::bad_request(format!(
                "os_hash_value ({value}) is not a valid hexadecimal value"
            )));
        }
        let want = digest_len(algo).unwrap_or(0);
        if value.len() != want * 2 {
            return Err(ApiError::bad_request(format!(
                "os_hash_value: ({value}) is not the correct size for ({algo}) (should be \
                 ({want}) bytes)"
            )));
        }
    }
    Ok((url, validation))
}

/// Loads image `id` as the caller sees it (404 when it cannot), without a rule beyond that.
async fn load_seen(app: &App, ctx: &RequestContext, id: ImageId) -> Result<Image, ApiError> {
    load_authorized(app, ctx, id, Rule::GetImage).await
}

/// `POST /v2/images/{id}/locations` (2.17): 202, the location added in the background.
pub async fn add(
    app: &App,
    ctx: &RequestContext,
    id: &str,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let (url, validation) = parse_add(body)?;
    let id = parse_image_id(id)?;
    let image = load_seen(app, ctx, id).await?;
    if image.status != ImageStatus::Queued {
        return Err(ApiError::conflict(format!(
            "It's not allowed to add locations if image status is {}.",
            image.status
        )));
    }
    let member = membership(app, ctx, &image).await?;
    policy::enforce(
        ctx,
        Rule::AddImageLocation,
        &Target::image(&image, member),
        id,
    )?;
    let service = ctx
        .roles
        .iter()
        .chain(&ctx.service_roles)
        .any(|r| r == "service");
    if !service {
        let http_store = app.stores.iter().any(|s| s.kind() == StoreKind::Http);
        if !url.starts_with("http") || !http_store {
            return Err(ApiError::forbidden(
                "http store must be enabled to use location API by normal user.",
            ));
        }
    }
    if image.properties.contains_key("os_glance_import_task") {
        return Err(ApiError::conflict(format!(
            "New operation on image '{id}' is not permitted as prior operation is still in \
             progress"
        )));
    }
    let location = resolve(app, &url, None)?;
    let job = LocationImport {
        catalog: Arc::clone(&app.catalog),
        stores: app.stores.clone(),
        hash_pool: Arc::clone(&app.hash_pool),
        hashing_algorithm: app.config.hashing_algorithm.clone(),
        do_secure_hash: app.config.do_secure_hash,
    };
    monoio::spawn(job.run(id, location, validation));
    Ok(empty_response(StatusCode::ACCEPTED))
}

/// `GET /v2/images/{id}/locations` (2.17): every location, for services
/// (`fetch_image_location`).
pub async fn list(app: &App, ctx: &RequestContext, id: &str) -> Result<Response<Body>, ApiError> {
    let id = parse_image_id(id)?;
    let image = load_authorized(app, ctx, id, Rule::FetchImageLocation).await?;
    let shown: Vec<Value> = image
        .locations
        .iter()
        .map(|l| location_json(l, app.stores.is_multi()))
        .collect();
    Ok(json_response(StatusCode::OK, &Value::Array(shown)))
}

/// A location as Glance shows it: `{"url", "metadata": {"store"}}` (no `store` in
/// single-store mode).
pub fn location_json(location: &Location, with_store: bool) -> Value {
    let mut metadata = Map::new();
    if with_store {
        metadata.insert("store".into(), location.store.clone().into());
    }
    serde_json::json!({ "url": location.url, "metadata": metadata })
}

/// A `location_import` (Glance's task of the same name), run on the core that took the
/// request, after it was answered.
struct LocationImport {
    catalog: Arc<Catalog>,
    stores: Stores,
    hash_pool: Arc<HashPool>,
    hashing_algorithm: String,
    do_secure_hash: bool,
}

/// The edit that gives a queued image its location: the location, the data's size, and the
/// hash fields known so far.
fn attach(
    location: Location,
    size: u64,
    algo: Option<String>,
    value: Option<String>,
) -> impl FnMut(&mut Image) -> Result<(), ApiError> + Send + 'static {
    move |image: &mut Image| {
        image.locations.push(location.clone());
        image.size = Some(size);
        image.os_hash_algo = algo.clone();
        image.os_hash_value = value.clone();
        Ok(())
    }
}

impl LocationImport {
    async fn run(self, id: ImageId, location: Location, validation: ValidationData) {
        if let Err(e) = self.import(id, location, validation).await {
            tracing::warn!(image_id = %id, error = %e, "adding a location failed");
        }
    }

    async fn import(
        &self,
        id: ImageId,
        location: Location,
        validation: ValidationData,
    ) -> Result<(), ApiError> {
        let size = size_of(&self.stores, &location).await.map_err(size_error)?;
        let algo = validation
            .os_hash_algo
            .clone()
            .unwrap_or_else(|| self.hashing_algorithm.clone());
        let catalog = &self.catalog;
        match (self.do_secure_hash, validation.os_hash_value) {
            (true, Some(expected)) => {
                // The image waits in `importing` until the data proves to be what was said.
                let edit = attach(location.clone(), size, Some(algo.clone()), None);
                catalog
                    .update_image_to(id, ImageStatus::Importing, edit)
                    .await?;
                let hashed = self.hash(&location, size, &algo).await;
                match hashed {
                    Ok(digests) if digests.os_hash_value.eq_ignore_ascii_case(&expected) => {
                        catalog
                            .update_image_to(id, ImageStatus::Active, move |image: &mut Image| {
                                image.checksum = Some(digests.checksum.clone());
                                image.os_hash_value = Some(digests.os_hash_value.clone());
                                Ok::<(), ApiError>(())
                            })
                            .await?;
                        tracing::info!(image_id = %id, "location added, hash verified: image active");
                        Ok(())
                    }
                    other => {
                        let why = match other {
                            Ok(digests) => format!(
                                "os_hash_value: ({expected}) not matched with actual                                  os_hash_value: ({})",
                                digests.os_hash_value
                            ),
                            Err(e) => e,
                        };
                        self.revert(id, &location).await;
                        Err(ApiError::bad_request(why))
                    }
                }
            }
            (true, None) => {
                let edit = attach(location.clone(), size, Some(algo.clone()), None);
                catalog
                    .update_image_to(id, ImageStatus::Active, edit)
                    .await?;
                tracing::info!(image_id = %id, "location added: image active; hashing its data");
                // Active already; the checksums follow when the data has been read.
                let digests = self
                    .hash(&location, size, &algo)
                    .await
                    .map_err(ApiError::internal)?;
                catalog
                    .update_image(id, move |image: &mut Image| -> Result<(), ApiError> {
                        if image.os_hash_value.is_none() {
                            image.checksum = Some(digests.checksum.clone());
                            image.os_hash_value = Some(digests.os_hash_value.clone());
                        }
                        Ok(())
                    })
                    .await?;
                Ok(())
            }
            (false, value) => {
                // No hashing: what the caller said is recorded as it is.
                let algo = value.as_ref().map(|_| algo);
                let edit = attach(location, size, algo, value);
                catalog
                    .update_image_to(id, ImageStatus::Active, edit)
                    .await?;
                tracing::info!(image_id = %id, "location added: image active");
                Ok(())
            }
        }
    }

    /// The digests of the data at `location`, read from its store.
    async fn hash(
        &self,
        location: &Location,
        size: u64,
        algo: &str,
    ) -> Result<crate::datapath::checksum::Digests, String> {
        let store = self
            .stores
            .for_location(location)
            .ok_or_else(|| "the location's store is gone".to_owned())?;
        let stream = store
            .read(location, 0..size)
            .await
            .map_err(|e| e.to_string())?;
        let checksums = self.hash_pool.checksums(algo).map_err(|e| e.to_string())?;
        ingest::digest(StoreSource(stream), checksums, size)
            .await
            .map_err(|e| e.to_string())
    }

    /// Back to `queued`, without the location nor any hash (a failed verification).
    async fn revert(&self, id: ImageId, location: &Location) {
        let url = location.url.clone();
        let reverted = self
            .catalog
            .update_image_to(id, ImageStatus::Queued, move |image: &mut Image| {
                image.locations.retain(|l| l.url != url);
                image.checksum = None;
                image.os_hash_algo = None;
                image.os_hash_value = None;
                Ok::<(), ApiError>(())
            })
            .await;
        if let Err(e) = reverted {
            tracing::error!(image_id = %id, error = %e, "cannot return the image to queued");
        }
    }
}

// ---- the legacy PATCH operations (show_multiple_locations)

/// A checked `PATCH` location operation, ready for the transaction.
#[derive(Debug, Clone)]
pub enum PatchOp {
    /// `add /locations/<N>|-`.
    Add {
        /// `N`, or `-` for the end.
        position: String,
        /// The location, its store resolved.
        location: Location,
        /// What its `validation_data` says.
        validation: ValidationData,
    },
    /// `replace /locations` with a non-empty list.
    Replace(Vec<(Location, ValidationData)>),
    /// `remove /locations/<N>`.
    Remove {
        /// `N` (or `-`, the last).
        position: String,
    },
}

impl PatchOp {
    /// Whether it adds data (so a queued image becomes active).
    pub fn adds(&self) -> bool {
        !matches!(self, PatchOp::Remove { .. })
    }

    /// The rule it needs: `set_image_location` or `delete_image_location`.
    pub fn rule(&self) -> Rule {
        match self {
            PatchOp::Remove { .. } => Rule::DeleteImageLocation,
            _ => Rule::SetImageLocation,
        }
    }

    /// The first location it adds, whose data gives a queued image its size.
    pub fn first_new(&self) -> Option<&Location> {
        match self {
            PatchOp::Add { location, .. } => Some(location),
            PatchOp::Replace(list) => list.first().map(|(l, _)| l),
            PatchOp::Remove { .. } => None,
        }
    }
}

/// One location value of a `PATCH` (the image schema's `locations` item).
fn parse_value(app: &App, value: &Value) -> Result<(Location, ValidationData), ApiError> {
    let image_schema = |detail: String| {
        ApiError::bad_request(format!(
            "Provided object does not match schema 'image': {detail}"
        ))
    };
    let Value::Object(fields) = value else {
        return Err(image_schema(format!("{value} is not of type 'object'")));
    };
    let url = match fields.get("url") {
        Some(Value::String(url)) if url.chars().count() <= 255 => url,
        Some(Value::String(url)) => return Err(image_schema(format!("'{url}' is too long"))),
        Some(other) => return Err(image_schema(format!("{other} is not of type 'string'"))),
        None => return Err(image_schema("'url' is a required property".into())),
    };
    let metadata = match fields.get("metadata") {
        Some(Value::Object(metadata)) => metadata,
        Some(other) => return Err(image_schema(format!("{other} is not of type 'object'"))),
        None => return Err(image_schema("'metadata' is a required property".into())),
    };
    let mut validation = ValidationData::default();
    if let Some(data) = fields.get("validation_data") {
        let Value::Object(data) = data else {
            return Err(image_schema(format!("{data} is not of type 'object'")));
        };
        for (key, value) in data {
            let text = value
                .as_str()
                .ok_or_else(|| image_schema(format!("{value} is not of type 'string'")))?;
            let (slot, max) = match key.as_str() {
                "checksum" => (&mut validation.checksum, 32),
                "os_hash_algo" => (&mut validation.os_hash_algo, 64),
                "os_hash_value" => (&mut validation.os_hash_value, 128),
                other => {
                    return Err(image_schema(format!(
                        "Additional properties are not allowed ('{other}' was unexpected)"
                    )))
                }
            };
            if text.chars().count() > max || (key == "checksum" && text.chars().count() < 32) {
                return Err(image_schema(format!(
                    "'{text}' has the wrong length for {key}"
                )));
            }
            *slot = Some(text.to_owned());
        }
        for required in ["os_hash_algo", "os_hash_value"] {
            if !data.contains_key(required) {
                return Err(image_schema(format!("'{required}' is a required property")));
            }
        }
    }
    let named = metadata.get("store").and_then(Value::as_str);
    Ok((resolve(app, url, named)?, validation))
}

/// Checks a `PATCH` location operation: its path (`index`) and value. Without
/// `show_multiple_locations` every one is refused, as Glance refuses them.
pub fn parse_patch(
    app: &App,
    op: &str,
    index: Option<&str>,
    value: Option<&Value>,
) -> Result<PatchOp, ApiError> {
    if !app.config.show_multiple_locations {
        return Err(ApiError::forbidden(
            "It's not allowed to add/update/remove locations if locations are invisible.",
        ));
    }
    let pointer = || {
        ApiError::bad_request(format!(
            "Invalid JSON pointer for this resource: '/locations{}'",
            index.map(|i| format!("/{i}")).unwrap_or_default()
        ))
    };
    match (op, index) {
        ("add", Some(position)) => {
            let (location, validation) = parse_value(app, value.unwrap_or(&Value::Null))?;
            Ok(PatchOp::Add {
                position: position.to_owned(),
                location,
                validation,
            })
        }
        ("replace", None) => {
            let items = match value {
                Some(Value::Array(items)) => items,
                Some(other) => {
                    return Err(ApiError::bad_request(format!(
                        "Provided object does not match schema 'image': {other} is not of \
                         type 'array'"
                    )))
                }
                None => return Err(pointer()),
            };
            if items.is_empty() {
                return Err(ApiError::forbidden("Cannot set locations to empty list."));
            }
            let list = items
                .iter()
                .map(|item| parse_value(app, item))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(PatchOp::Replace(list))
        }
        ("remove", Some(position)) => Ok(PatchOp::Remove {
            position: position.to_owned(),
        }),
        _ => Err(pointer()),
    }
}

/// What a transaction applying location operations needs besides the image.
#[derive(Debug, Clone)]
pub struct PatchContext {
    /// `hashing_algorithm`: `validation_data` must use it.
    pub hashing_algorithm: String,
    /// `image_location_quota`, when limited.
    pub location_quota: Option<usize>,
    /// The size of the first new location's data, read before the transaction.
    pub size: Option<u64>,
}

/// Glance's rules for `validation_data` of locations being added to `image`: values that
/// agree with each other and with the image; new ones only while `queued`, and then a
/// `checksum` that is an md5, `os_hash_algo` the configured algorithm and `os_hash_value` of
/// its size. Returns the values to set (409 for any conflict).
fn check_validation<'a>(
    image: &Image,
    data: impl IntoIterator<Item = &'a ValidationData>,
    hashing_algorithm: &str,
) -> Result<ValidationData, ApiError> {
    let mut merged = ValidationData::default();
    for d in data {
        for (slot, value, name) in [
            (&mut merged.checksum, &d.checksum, "checksum"),
            (&mut merged.os_hash_algo, &d.os_hash_algo, "os_hash_algo"),
            (&mut merged.os_hash_value, &d.os_hash_value, "os_hash_value"),
        ] {
            if let Some(value) = value {
                if slot.as_ref().is_some_and(|v| v != value) {
                    return Err(ApiError::conflict(format!("Conflicting values for {name}")));
                }
                *slot = Some(value.clone());
            }
        }
    }
    let mut new = ValidationData::default();
    for (slot, value, current, name) in [
        (
            &mut new.checksum,
            merged.checksum,
            &image.checksum,
            "checksum",
        ),
        (
            &mut new.os_hash_algo,
            merged.os_hash_algo,
            &image.os_hash_algo,
            "os_hash_algo",
        ),
        (
            &mut new.os_hash_value,
            merged.os_hash_value,
            &image.os_hash_value,
            "os_hash_value",
        ),
    ] {
        let Some(value) = value else { continue };
        if current.as_ref() == Some(&value) {
            continue;
        }
        if current.is_some() {
            return Err(ApiError::conflict(format!(
                "{name} is already set with a different value"
            )));
        }
        *slot = Some(value);
    }
    if new.is_empty() {
        return Ok(new);
    }
    if image.status != ImageStatus::Queued {
        let keys: Vec<&str> = [
            new.checksum.as_ref().map(|_| "checksum"),
            new.os_hash_algo.as_ref().map(|_| "os_hash_algo"),
            new.os_hash_value.as_ref().map(|_| "os_hash_value"),
        ]
        .into_iter()
        .flatten()
        .collect();
        return Err(ApiError::conflict(format!(
            "New value(s) for {} may only be provided when image status is 'queued'",
            keys.join(", ")
        )));
    }
    if let Some(checksum) = &new.checksum {
        if !is_hex_of(checksum, 16) {
            return Err(ApiError::conflict(format!(
                "checksum ({checksum}) is not a valid md5 (16 bytes, hexadecimal)"
            )));
        }
    }
    let algo = new.os_hash_algo.as_deref().unwrap_or("");
    if algo != hashing_algorithm {
        return Err(ApiError::conflict(format!(
            "os_hash_algo must be {hashing_algorithm}, not {algo}"
        )));
    }
    let value = new.os_hash_value.as_deref().unwrap_or("");
    let want = digest_len(algo).unwrap_or(0);
    if !is_hex_of(value, want) {
        return Err(ApiError::conflict(format!(
            "os_hash_value ({value}) is not the correct size for {algo} (should be {want} \
             bytes, hexadecimal)"
        )));
    }
    Ok(new)
}

/// Sets what validation data says on a queued image.
fn fill(image: &mut Image, new: ValidationData) {
    if let Some(checksum) = new.checksum {
        image.checksum = Some(checksum);
    }
    if let Some(algo) = new.os_hash_algo {
        image.os_hash_algo = Some(algo);
    }
    if let Some(value) = new.os_hash_value {
        image.os_hash_value = Some(value);
    }
}

/// Applies one location operation to `image` inside the `PATCH` transaction; a removed
/// location is pushed on `removed` (its data goes once the transaction is committed).
pub fn apply_patch(
    image: &mut Image,
    op: &PatchOp,
    ctx: &PatchContext,
    removed: &mut Vec<Location>,
) -> Result<(), ApiError> {
    let over_quota = |count: usize| {
        ctx.location_quota.filter(|&q| count > q).map(|q| {
            ApiError::too_large(format!(
                "Maximum number of locations exceeded: {count} locations, the limit is {q}."
            ))
        })
    };
    let duplicate = || ApiError::bad_request("The location already exists in the image.");
    match op {
        PatchOp::Add {
            position,
            location,
            validation,
        } => {
            if !matches!(image.status, ImageStatus::Queued | ImageStatus::Active) {
                return Err(ApiError::conflict(format!(
                    "It's not allowed to add locations if image status is {}.",
                    image.status
                )));
            }
            let new = check_validation(image, [validation], &ctx.hashing_algorithm)?;
            let len = image.locations.len();
            let at = match position.as_str() {
                "-" => len,
                digits if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                    digits.parse::<usize>().map_or(len, |n| n.min(len))
                }
                _ => {
                    return Err(ApiError::bad_request(
                        "Invalid position for adding a location.",
                    ))
                }
            };
            if image.locations.iter().any(|l| l.url == location.url) {
                return Err(duplicate());
            }
            if let Some(e) = over_quota(len + 1) {
                return Err(e);
            }
            image.locations.insert(at, location.clone());
            if image.status == ImageStatus::Queued {
                fill(image, new);
            }
        }
        PatchOp::Replace(list) => {
            if !matches!(image.status, ImageStatus::Queued | ImageStatus::Active) {
                return Err(ApiError::conflict(format!(
                    "It's not allowed to replace locations if image status is {}.",
                    image.status
                )));
            }
            let new = check_validation(image, list.iter().map(|(_, v)| v), &ctx.hashing_algorithm)?;
            let mut urls: Vec<&str> = list.iter().map(|(l, _)| l.url.as_str()).collect();
            urls.sort_unstable();
            if urls.windows(2).any(|w| w[0] == w[1]) {
                return Err(duplicate());
            }
            if let Some(e) = over_quota(list.len()) {
                return Err(e);
            }
            image.locations = list.iter().map(|(l, _)| l.clone()).collect();
            if image.status == ImageStatus::Queued {
                fill(image, new);
            }
        }
        PatchOp::Remove { position } => {
            if image.status != ImageStatus::Active {
                return Err(ApiError::conflict(format!(
                    "It's not allowed to remove locations if image status is {}.",
                    image.status
                )));
            }
            let len = image.locations.len();
            if len == 1 {
                return Err(ApiError::forbidden(
                    "Cannot remove last location in the image.",
                ));
            }
            let at = match position.as_str() {
                "-" => len.checked_sub(1),
                digits if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                    digits.parse::<usize>().ok().filter(|&n| n < len)
                }
                _ => None,
            }
            .ok_or_else(|| ApiError::bad_request("Invalid position for removing a location."))?;
            removed.push(image.locations.remove(at));
        }
    }
    if image.size.is_none() && !image.locations.is_empty() {
        image.size = ctx.size;
    }
    Ok(())
}

/// Deletes the data of locations a `PATCH` removed (Glance deletes it with the location),
/// unless the image still points at the same URL.
pub async fn delete_removed(app: &App, image: &Image, removed: Vec<Location>) {
    for location in removed {
        if image.locations.iter().any(|l| l.url == location.url) {
            continue;
        }
        if let Some(store) = app.stores.for_location(&location) {
            if let Err(e) = store.delete(&location).await {
                tracing::error!(image_id = %image.id, store = %store.id(), error = %e,
                    "cannot delete the data of a removed location");
            }
        }
    }
}

/// The removed locations of a `PATCH`, handed back from the writer thread.
#[derive(Clone, Default)]
pub struct Removed(Arc<std::sync::Mutex<Vec<Location>>>);

impl Removed {
    /// Replaces what was recorded (a transaction retried starts over).
    pub fn set(&self, locations: Vec<Location>) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = locations;
    }

    /// What was recorded.
    pub fn take(&self) -> Vec<Location> {
        std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

/// Reads, before the transaction, the size of the data the first new location of `ops`
/// points at, when `image` has none yet.
pub async fn size_for(app: &App, image: &Image, ops: &[PatchOp]) -> Result<Option<u64>, ApiError> {
    if image.size.is_some() {
        return Ok(None);
    }
    match ops.iter().find_map(PatchOp::first_new) {
        Some(location) => size_of(&app.stores, location)
            .await
            .map(Some)
            .map_err(size_error),
        None => Ok(None),
    }
}
