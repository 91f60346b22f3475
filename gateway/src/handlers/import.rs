//! Interoperable image import (spec §4.10, §4.16): `GET /v2/info/import`,
//! `PUT /v2/images/{id}/stage` and `POST /v2/images/{id}/import`.
//!
//! Staging is an upload into the staging area (`tasks::Imports::staging`, a file store of its
//! own) through the same ingest pipeline as `PUT /file`, with the same guard: a failed stage
//! removes its bytes and returns the image to `queued`. A finished stage stays `uploading`
//! with its `size` recorded. The import request is checked here, in Glance's order; its task,
//! its lock and the image's first status change are one `begin_import` transaction; the data
//! moves on the import thread (`tasks`) after the 202.

use http::header::{HeaderMap, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use meta::tasks::{ImportStart, TaskType};
use meta::{ImageStatus, Timestamp, MIB};
use serde_json::{json, Value};

use super::image_data::{store_error, MetaRequeue};
use super::images::{load_authorized, lookup};
use super::stage_host::{self, StageHost};
use super::{empty_response, json_response, parse_image_id};
use crate::app::App;
use crate::body::Body;
use crate::config::Secret;
use crate::context::RequestContext;
use crate::datapath::ingest::{self, Checks, Guard, IngestError};
use crate::error::ApiError;
use crate::net::fetch::FetchPolicy;
use crate::net::url::FetchUrl;
use crate::policy::{self, Rule, Target};
use crate::store::Store;
use crate::tasks::glance_download::Source;
use crate::tasks::{Job, Method};

/// `GET /v2/info/import`.
pub fn info(app: &App) -> Response<Body> {
    json_response(
        StatusCode::OK,
        &json!({
            "import-methods": {
                "description": "Import methods available.",
                "type": "array",
                "value": app.config.enabled_import_methods,
            }
        }),
    )
}

fn enabled(app: &App, method: &str) -> bool {
    app.config
        .enabled_import_methods
        .iter()
        .any(|m| m == method)
}

/// The bytes `owner` has staged (`tasks::quota::staged_bytes`).
pub(crate) async fn staged_bytes(app: &App, owner: &str) -> Result<u64, ApiError> {
    Ok(crate::tasks::quota::staged_bytes(&app.catalog, owner).await?)
}

/// `PUT /v2/images/{id}/stage`.
pub async fn stage(
    app: &App,
    ctx: &RequestContext,
    id: &str,
    request: Request<crate::body::RequestBody>,
) -> Result<Response<Body>, ApiError> {
    if !enabled(app, "glance-direct") {
        return Err(ApiError::not_found(
            "'glance-direct' method is not available at this site.",
        ));
    }
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if content_type.map(|t| t.split(';').next().unwrap_or("").trim())
        != Some("application/octet-stream")
    {
        return Err(ApiError::unsupported_media_type(format!(
            "Invalid content type {}",
            content_type.unwrap_or("")
        )));
    }
    let expected_bytes = super::image_data::expected_size(request.headers())?;
    let cap_bytes = app.config.image_size_cap;
    if expected_bytes.is_some_and(|n| n > cap_bytes) {
        return Err(super::image_data::too_large(cap_bytes));
    }
    let id = parse_image_id(id)?;
    let image = load_authorized(app, ctx, id, Rule::ModifyImage).await?;
    let limits = app.config.quotas.limits_for(image.owner.as_deref());
    // image_stage_total: what the owner has staged already, plus what this stage announces.
    let mut stage_left: Option<u64> = None;
    if let (Some(limit), Some(owner)) = (limits.image_stage_total_mib, image.owner.as_deref()) {
        let staged = staged_bytes(app, owner).await?;
        let left = (limit * MIB).saturating_sub(staged);
        if staged / MIB >= limit || expected_bytes.is_some_and(|n| n > left) {
            return Err(ApiError::too_large(format!(
                "The request returned a 413 Request Entity Too Large. This generally means \
                 that rate limiting or a quota threshold was breached.\n\nThe response body:\n\
                 Project {owner} is over a limit for [Resource image_stage_total is over \
                 limit]"
            )));
        }
        stage_left = Some(left);
    }
    if image.status != ImageStatus::Queued {
        return Err(ApiError::conflict(format!(
            "Image status transition from {} to uploading is not allowed",
            image.status
        )));
    }
    let staging = app.imports.staging();
    if std::fs::metadata(staging.image_path(id)).is_ok() {
        return Err(ApiError::conflict(format!(
            "The image {id} has data on staging"
        )));
    }
    let meta::UploadStart { .. } = app
        .catalog
        .begin_upload(id, ImageStatus::Uploading, expected_bytes, limits)
        .await?;
    let guard = Guard::new(id, MetaRequeue(app));
    let checksums = match app.hash_pool.checksums(&app.config.hashing_algorithm) {
        Ok(checksums) => checksums,
        Err(e) => {
            guard.undo().await;
            return Err(ApiError::internal(e));
        }
    };
    let limit = stage_left.map_or(cap_bytes, |left| left.min(cap_bytes));
    let checks = Checks {
        cap_bytes: limit,
        expected_bytes,
        // The import inspects the data on its way to the stores.
        inspector: None,
        checksums,
        idle_timeout: app.config.client_socket_timeout(),
    };
    let landed = match ingest::land(request.into_body(), &**staging, id, checks).await {
        Ok(landed) => landed,
        Err(e) => {
            guard.undo().await;
            return Err(match e {
                IngestError::TooLarge { cap } if cap < cap_bytes => ApiError::too_large(format!(
                    "The incoming image is over its owner's image_stage_total quota: {cap} \
                     bytes remaining."
                )),
                IngestError::TooLarge { cap } => super::image_data::too_large(cap),
                IngestError::SizeMismatch { expected, received } => ApiError::bad_request(format!(
                    "Image size mismatch: the request announced {expected} bytes but \
                         {received} were sent."
                )),
                IngestError::Store(e) => store_error(e),
                IngestError::Source(e) => ApiError::bad_request(format!(
                    "Error reading the image data from the request: {e}"
                )),
                other => ApiError::internal(other.to_string()),
            });
        }
    };
    let size = landed.size;
    // The digests of exactly these bytes: the import uses them instead of hashing again.
    let digests = crate::tasks::staged::record(size, &landed.digests);
    // Where the data is: this gateway's URL (other gateways proxy to it) or its node id.
    let node = super::stage_host::own_mark(app);
    let recorded = app
        .catalog
        .update_image(id, move |image: &mut meta::Image| -> Result<(), ApiError> {
            if image.status != ImageStatus::Uploading {
                return Err(ApiError::conflict("The image is no longer being staged."));
            }
            image.size = Some(size);
            // Marks the stage finished (recovery keeps it) and names where its data is.
            image
                .properties
                .insert(meta::tasks::STAGE_HOST_PROPERTY.to_owned(), node.clone());
            image.properties.insert(
                crate::tasks::staged::STAGE_DIGESTS_PROPERTY.to_owned(),
                digests.clone(),
            );
            Ok(())
        })
        .await;
    if let Err(e) = recorded {
        let _ = Store::delete(&**staging, &landed.location).await;
        guard.undo().await;
        return Err(match e.status() {
            StatusCode::NOT_FOUND => ApiError::new(
                StatusCode::GONE,
                format!("Image {id} could not be found after upload. The image may have been deleted during the upload."),
            ),
            _ => e,
        });
    }
    guard.disarm();
    tracing::info!(image_id = %id, size_bytes = size, "image staged");
    Ok(empty_response(StatusCode::NO_CONTENT))
}

/// The import request, checked.
struct ImportRequest {
    method: Method,
    /// What is wrong with a glance-download `method`: Glance checks it after the image's
    /// status and formats, so it is answered then.
    method_error: Option<ApiError>,
    stores: Vec<String>,
    all_stores: bool,
    all_stores_must_succeed: bool,
    body: Value,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message.into())
}

/// Glance's checks of the body and the store selection (`get_stores_from_request`).
fn parse_import(app: &App, headers: &HeaderMap, body: &[u8]) -> Result<ImportRequest, ApiError> {
    let body: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|_| bad("Malformed JSON in request body."))?
    };
    let Some(object) = body.as_object() else {
        return Err(bad("Import request requires a 'method' field."));
    };
    let Some(method) = object.get("method") else {
        return Err(bad("Import request requires a 'method' field."));
    };
    let Some(name) = method.get("name") else {
        return Err(bad("Import request requires a 'name' field."));
    };
    let name = name.as_str().unwrap_or("");
    if !enabled(app, name) {
        return Err(bad(format!("Unknown import method name '{name}'.")));
    }
    let mut method_error = None;
    let method = match name {
        "glance-direct" => Method::GlanceDirect,
        "glance-download" => match glance_download_source(method) {
            Ok(source) => Method::GlanceDownload(source),
            Err(e) => {
                method_error = Some(e);
                Method::GlanceDownload(Source {
                    region: String::new(),
                    image_id: uuid::Uuid::nil(),
                    interface: String::new(),
                })
            }
        },
        "copy-image" => Method::CopyImage,
        "web-download" => Method::WebDownload {
            uri: method
                .get("uri")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        },
        other => return Err(bad(format!("Unknown import method name '{other}'."))),
    };
    let flag = |key: &str, default: bool| -> Result<bool, ApiError> {
        match object.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(bad(format!("Invalid value for {key}: must be a boolean."))),
        }
    };
    let all_stores = flag("all_stores", false)?;
    let all_stores_must_succeed = flag("all_stores_must_succeed", true)?;
    let header_store = headers
        .get("x-image-meta-store")
        .map(|v| v.to_str().unwrap_or("").trim().to_owned());
    let stores: Vec<String> = if !app.stores.is_multi() {
        vec![app.stores.default().id().to_owned()]
    } else if all_stores {
        if object.contains_key("stores") || header_store.is_some() {
            return Err(bad(
                "All_stores parameter can't be used with x-image-meta-store header or stores \
                 parameter",
            ));
        }
        app.stores
            .iter()
            .filter(|s| !s.is_read_only() && !s.id().starts_with("os_glance_"))
            .map(|s| s.id().to_owned())
            .collect()
    } else if let Some(list) = object.get("stores") {
        if header_store.is_some() {
            return Err(bad(
                "Stores parameter and x-image-meta-store header can't be both specified",
            ));
        }
        let Some(list) = list.as_array() else {
            return Err(bad(
                "Invalid value for stores: must be a list of store ids.",
            ));
        };
        list.iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| bad("Invalid value for stores: must be a list of store ids."))
            })
            .collect::<Result<_, _>>()?
    } else {
        vec![header_store.unwrap_or_else(|| app.stores.default().id().to_owned())]
    };
    for store in &stores {
        match app.stores.get(store) {
            None => {
                return Err(ApiError::conflict(format!(
                    "Store for scheme {store} not found"
                )))
            }
            Some(s) if s.is_read_only() => {
                return Err(ApiError::conflict(format!("Store {store} is read-only.")))
            }
            Some(_) => {}
        }
    }
    let mut body = body;
    if let Method::GlanceDownload(source) = &method {
        // Glance records the default interface in the task's input.
        if let Some(m) = body.get_mut("method").and_then(Value::as_object_mut) {
            m.entry("glance_service_interface")
                .or_insert_with(|| Value::String(source.interface.clone()));
        }
    }
    Ok(ImportRequest {
        method,
        method_error,
        stores,
        all_stores,
        all_stores_must_succeed,
        body,
    })
}

/// `POST /v2/images/{id}/import`.
pub async fn import(
    app: &App,
    ctx: &RequestContext,
    id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let id = parse_image_id(id)?;
    let request = parse_import(app, headers, body)?;
    let (image, membership) = lookup(app, ctx, id).await?;
    // Quota image_size_total: refused when the owner is already over it.
    let limits = app.config.quotas.limits_for(image.owner.as_deref());
    if let (Some(limit), Some(owner)) = (limits.image_size_total_mib, image.owner.as_deref()) {
        if app.catalog.usage(owner).await?.size_mib() >= limit && limit > 0 {
            return Err(ApiError::too_large(format!(
                "The request returned a 413 Request Entity Too Large. This generally means \
                 that rate limiting or a quota threshold was breached.\n\nThe response body:\n\
                 Project {owner} is over a limit for [Resource image_size_total is over limit]"
            )));
        }
    }
    let copy = request.method == Method::CopyImage;
    let name = request.method.name();
    let conflict = |m: String| Err(ApiError::conflict(m));
    if image.status == ImageStatus::Active && !copy {
        return conflict("Image with status active cannot be target for import".into());
    }
    if image.status != ImageStatus::Active && copy {
        return conflict("Only images with status active can be targeted for copying".into());
    }
    if image.status != ImageStatus::Queued
        && matches!(
            request.method,
            Method::WebDownload { .. } | Method::GlanceDownload(_)
        )
    {
        return conflict(format!(
            "Image needs to be in 'queued' state to use '{name}' method"
        ));
    }
    if image.status != ImageStatus::Uploading && request.method == Method::GlanceDirect {
        return conflict(
            "Image needs to be staged before 'glance-direct' method can be used".into(),
        );
    }
    if image.container_format.is_none() {
        return conflict("'container_format' needs to be set before import".into());
    }
    if image.disk_format.is_none() {
        return conflict("'disk_format' needs to be set before import".into());
    }
    if let Some(e) = request.method_error {
        return Err(e);
    }
    let rule = if copy {
        Rule::CopyImage
    } else {
        Rule::ModifyImage
    };
    policy::enforce(ctx, rule, &Target::image(&image, membership), id)?;
    let mut stores = request.stores.clone();
    if copy {
        let present: Vec<&str> = image.locations.iter().map(|l| l.store.as_str()).collect();
        if request.all_stores {
            stores.retain(|s| !present.contains(&s.as_str()));
            if stores.is_empty() {
                // Already everywhere: nothing to do.
                return Ok(empty_response(StatusCode::ACCEPTED));
            }
        } else if let Some(store) = stores.iter().find(|s| present.contains(&s.as_str())) {
            return Err(bad(format!("Image is already present at store '{store}'")));
        }
    }
    if !request.all_stores_must_succeed && !app.stores.is_multi() {
        return Err(bad(
            "All_stores_must_succeed can only be set with enabled_backends",
        ));
    }
    if let Method::WebDownload { uri } = &request.method {
        check_uri(app, uri)?;
    }
    if request.method == Method::GlanceDirect {
        // The staged data is on the gateway that staged it: the import runs there.
        match stage_host::locate(app, &image) {
            StageHost::Here => {}
            StageHost::Peer(url) if !stage_host::was_proxied(headers) => {
                let path = format!("/v2/images/{id}/import");
                let body = bytes::Bytes::copy_from_slice(body);
                return stage_host::replay(&url, http::Method::POST, &path, headers, body).await;
            }
            elsewhere => {
                let proxied = stage_host::was_proxied(headers);
                return Err(stage_host::not_here(app, id, &elsewhere, proxied));
            }
        }
    }
    let input = json!({
        "image_id": id.to_string(),
        "import_req": request.body,
        "backend": stores,
    });
    let task = crate::tasks::new_task(
        &app.catalog,
        &app.config,
        ctx,
        TaskType::ApiImageImport,
        Some(id),
        input.to_string(),
        Timestamp::now(),
    );
    let task_id = task.id;
    let start = ImportStart {
        task,
        from: image.status,
        to: if copy {
            image.status
        } else {
            ImageStatus::Importing
        },
        stores: stores.clone(),
    };
    let begun = app.catalog.begin_import(start).await.map_err(|e| match e {
        meta::Error::InvalidTransition { from, .. } => ApiError::conflict(format!(
            "Image status changed to {from} meanwhile; the import was not started"
        )),
        e => e.into(),
    })?;
    if let Some(old) = begun.taken_over {
        tracing::warn!(image_id = %id, task = %old.id, "took over an expired import lock");
        crate::tasks::clear_taken_over(&app.catalog, &app.stores, id, &old).await;
    }
    // inject_image_metadata: decided by who asks (Glance's plugin reads the request's roles).
    let inject_settings = &app.config.inject_metadata_properties;
    let inject = if !copy
        && app
            .config
            .image_import_plugins
            .iter()
            .any(|p| p == "inject_image_metadata")
        && !ctx
            .roles
            .iter()
            .any(|r| inject_settings.ignore_user_roles.contains(r))
    {
        inject_settings.inject.clone()
    } else {
        Default::default()
    };
    // glance-download sends the caller's token on (to Keystone for the catalog, to the
    // remote Image service), as Glance's task does with its request context.
    let token = matches!(request.method, Method::GlanceDownload(_))
        .then(|| headers.get("x-auth-token").and_then(|v| v.to_str().ok()))
        .flatten()
        .map(Secret::new);
    app.imports.submit(Job {
        image: id,
        task: task_id,
        method: request.method,
        stores,
        all_stores_must_succeed: request.all_stores_must_succeed,
        inject,
        token,
        base_attribute: super::images::is_base,
    });
    tracing::info!(image_id = %id, task = %task_id, method = name, "import accepted");
    Ok(empty_response(StatusCode::ACCEPTED))
}

/// glance-download's `method` fields, checked as Glance checks them (400): `glance_region`
/// and `glance_image_id` present, the id a UUID; `glance_service_interface` defaults to
/// `public`. Beyond Glance (which fails the task later), a region or interface that is not a
/// string is refused here.
fn glance_download_source(method: &Value) -> Result<Source, ApiError> {
    let field = |key: &str| method.get(key);
    let Some(region) = field("glance_region") else {
        return Err(bad(
            "'glance_region' needs to be set for glance-download import method",
        ));
    };
    let Some(image_id) = field("glance_image_id") else {
        return Err(bad(
            "'glance_image_id' needs to be set for glance-download import method",
        ));
    };
    let image_id = match image_id {
        Value::String(text) => text.parse::<uuid::Uuid>().ok(),
        _ => None,
    }
    .ok_or_else(|| {
        let shown = image_id
            .as_str()
            .map_or_else(|| image_id.to_string(), str::to_owned);
        bad(format!(
            "Remote image id does not look like a UUID: {shown}"
        ))
    })?;
    let text = |key: &str, value: &Value| -> Result<String, ApiError> {
        value
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| bad(format!("Invalid value for {key}: must be a string.")))
    };
    let region = text("glance_region", region)?;
    let interface = match field("glance_service_interface") {
        None => "public".to_owned(),
        Some(value) => text("glance_service_interface", value)?,
    };
    Ok(Source {
        region,
        image_id,
        interface,
    })
}

/// web-download's URI through `[import_filtering_opts]` (scheme, host and port, without a
/// lookup: addresses are checked when the task connects): 400 as Glance.
fn check_uri(app: &App, uri: &str) -> Result<(), ApiError> {
    if passes_filtering(app, uri)? {
        return Ok(());
    }
    Err(bad(format!(
        "URI for web-download does not pass filtering: {}",
        redact(uri)
    )))
}

/// Whether `uri` passes `[import_filtering_opts]` by scheme, host and port (a literal address
/// included), before any lookup (Glance's `validate_import_uri`).
pub(crate) fn passes_filtering(app: &App, uri: &str) -> Result<bool, ApiError> {
    let policy = FetchPolicy::new(&app.config.import_filtering_opts).map_err(ApiError::internal)?;
    let Ok(url) = FetchUrl::parse(uri) else {
        return Ok(false);
    };
    if policy.check_url(&url).is_err() {
        return Ok(false);
    }
    if let Some(address) = url.host().ip() {
        if policy.check_address(&url, address).is_err() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `uri` without userinfo or query, for messages.
pub(crate) fn redact(uri: &str) -> String {
    let without_query = uri.split(['?', '#']).next().unwrap_or("");
    match without_query.split_once("://") {
        Some((scheme, rest)) => {
            let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://{rest}")
        }
        None => without_query.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{glance_download_source, redact};
    use serde_json::json;

    #[test]
    fn glance_download_fields_are_checked_as_glance_checks_them() {
        let id = "1b1c2a8e-5f4e-4b0a-9d43-7d2f64f7c0a1";
        let message = |body: serde_json::Value| {
            let e = glance_download_source(&body).unwrap_err();
            assert_eq!(e.status(), http::StatusCode::BAD_REQUEST);
            e.explanation().to_owned()
        };
        assert_eq!(
            message(json!({"name": "glance-download", "glance_image_id": id})),
            "'glance_region' needs to be set for glance-download import method"
        );
        assert_eq!(
            message(json!({"name": "glance-download", "glance_region": "R2"})),
            "'glance_image_id' needs to be set for glance-download import method"
        );
        assert_eq!(
            message(json!({"glance_region": "R2", "glance_image_id": "not-a-uuid"})),
            "Remote image id does not look like a UUID: not-a-uuid"
        );
        assert_eq!(
            message(json!({"glance_region": "R2", "glance_image_id": 7})),
            "Remote image id does not look like a UUID: 7"
        );
        assert_eq!(
            message(json!({"glance_region": ["R2"], "glance_image_id": id})),
            "Invalid value for glance_region: must be a string."
        );
        let source =
            glance_download_source(&json!({"glance_region": "R2", "glance_image_id": id})).unwrap();
        assert_eq!(
            (source.region.as_str(), source.interface.as_str()),
            ("R2", "public")
        );
        assert_eq!(source.image_id.to_string(), id);
        let braced = glance_download_source(&json!({"glance_region": "R2",
            "glance_image_id": "{1B1C2A8E-5F4E-4B0A-9D43-7D2F64F7C0A1}",
            "glance_service_interface": "internal"}))
        .unwrap();
        assert_eq!(braced.image_id.to_string(), id);
        assert_eq!(braced.interface, "internal");
    }

    #[test]
    fn redacts_userinfo_and_query() {
        assert_eq!(
            redact("http://user:pw@example.com/a?token=x"),
            "http://example.com/a"
        );
        assert_eq!(redact("http://example.com/a"), "http://example.com/a");
    }
}
