//! The cache management API (spec §4.17, Glance 2.14–2.18): `GET/DELETE /v2/cache`,
//! `PUT/DELETE /v2/cache/{id}`, `POST /v2/cache/clean|prune`, `GET /v2/cache/nodes/{id}`.
//! Admin only (Glance's `cache_*` policies). Without a cache (`image_cache_max_size = 0`) every
//! call answers 404, as Glance without a cache does, and versions 2.14, 2.16 and 2.18 are not
//! listed.
//!
//! `PUT /v2/cache/{id}` queues a prefetch that starts at once when a slot is free
//! (`image_cache_prefetch_concurrency`): the fill runs on this core and reads the store as a
//! download's fill does.

use std::sync::Arc;

use http::{HeaderMap, Response, StatusCode};
use meta::{ImageId, ImageStatus};
use serde_json::json;

use super::{empty_response, json_response, parse_image_id};
use crate::app::App;
use crate::body::Body;
use crate::cache::{Cache, Expect, FillJob};
use crate::context::RequestContext;
use crate::datapath::download::open_counted;
use crate::error::ApiError;
use crate::policy::{self, Rule};

/// The header `DELETE /v2/cache` reads.
const CLEAR_TARGET: &str = "x-image-cache-clear-target";

/// The cache, after the caller's right to `rule`.
fn cache_for<'a>(
    app: &'a App,
    ctx: &RequestContext,
    rule: Rule,
) -> Result<&'a Arc<Cache>, ApiError> {
    let cache = app
        .cache
        .as_ref()
        .ok_or_else(|| ApiError::not_found("Caching via API is not supported at this site."))?;
    let nobody = policy::Target {
        owner: None,
        visibility: meta::Visibility::Private,
        membership: None,
        member_id: None,
    };
    if !policy::allows(ctx, rule, &nobody) {
        return Err(ApiError::forbidden(format!(
            "You are not authorized to complete {} action.",
            rule.as_str()
        )));
    }
    Ok(cache)
}

/// `GET /v2/cache`.
pub async fn list(app: &App, ctx: &RequestContext) -> Result<Response<Body>, ApiError> {
    let cache = cache_for(app, ctx, Rule::CacheList)?;
    let (cached, queued) = cache.list();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "cached_images": cached, "queued_images": queued }),
    ))
}

/// `PUT /v2/cache/{id}`: 202, the prefetch queued (and started when a slot is free).
pub async fn queue(app: &App, ctx: &RequestContext, id: &str) -> Result<Response<Body>, ApiError> {
    let cache = cache_for(app, ctx, Rule::CacheImage)?;
    let id = parse_image_id(id)?;
    let image = app.catalog.get_image(id).await?;
    if image.status != ImageStatus::Active {
        return Err(ApiError::bad_request(
            "Only images with status active can be targeted for queueing",
        ));
    }
    let (false, Some(expect)) = (image.locations.is_empty(), Expect::of(&image)) else {
        return Err(ApiError::bad_request(
            "The image has no verifiable data to cache.",
        ));
    };
    let size = expect.size;
    let stores = app.stores.clone();
    let locations = image.locations.clone();
    cache.queue(
        id,
        expect,
        Box::new(move |job: FillJob| {
            monoio::spawn(async move {
                match open_counted(&stores, &locations, 0..size).await {
                    Ok(source) => job.run(Box::pin(source)).await,
                    Err(e) => job.fail(e),
                }
            });
        }),
    );
    tracing::info!(image_id = %id, "image queued for caching");
    Ok(empty_response(StatusCode::ACCEPTED))
}

/// `DELETE /v2/cache/{id}`: 204; 404 when neither the image nor an entry exists.
pub async fn delete(app: &App, ctx: &RequestContext, id: &str) -> Result<Response<Body>, ApiError> {
    let cache = cache_for(app, ctx, Rule::CacheDelete)?;
    let id: ImageId = parse_image_id(id)?;
    if !cache.invalidate(id) {
        app.catalog.get_image(id).await?;
    }
    Ok(empty_response(StatusCode::NO_CONTENT))
}

/// `DELETE /v2/cache`: 204; `x-image-cache-clear-target` says `cache`, `queue` or both.
pub async fn clear(
    app: &App,
    ctx: &RequestContext,
    headers: &HeaderMap,
) -> Result<Response<Body>, ApiError> {
    let cache = cache_for(app, ctx, Rule::CacheDelete)?;
    let target = headers
        .get(CLEAR_TARGET)
        .map(|v| v.to_str().unwrap_or("invalid").trim().to_owned())
        .unwrap_or_default();
    let (entries, queue) = match target.as_str() {
        "" => (true, true),
        "cache" => (true, false),
        "queue" => (false, true),
        _ => {
            return Err(ApiError::bad_request(
                "If provided 'x-image-cache-clear-target' must be 'cache', 'queue' or empty \
                 string.",
            ))
        }
    };
    let removed = cache.clear(entries, queue);
    tracing::info!(removed, target = %target, "image cache cleared");
    Ok(empty_response(StatusCode::NO_CONTENT))
}

/// `POST /v2/cache/clean`: re-hashes every entry against its recorded digest (off the cores)
/// and removes those that fail, and stray files.
pub async fn clean(app: &App, ctx: &RequestContext) -> Result<Response<Body>, ApiError> {
    let cache = Arc::clone(cache_for(app, ctx, Rule::CacheClean)?);
    let (tx, rx) = futures_channel::oneshot::channel();
    std::thread::Builder::new()
        .name("glint-cache-clean".into())
        .spawn(move || {
            let _ = tx.send(cache.verify_all(true));
        })
        .map_err(ApiError::internal)?;
    let (checked, removed) = rx.await.map_err(ApiError::internal)?;
    tracing::info!(checked, removed, "image cache cleaned");
    Ok(empty_response(StatusCode::OK))
}

/// `POST /v2/cache/prune`: evicts least recently used entries down to the size limit.
pub async fn prune(app: &App, ctx: &RequestContext) -> Result<Response<Body>, ApiError> {
    let cache = cache_for(app, ctx, Rule::CachePrune)?;
    let (files, bytes) = cache.prune();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "total_files_pruned": files, "total_bytes_pruned": bytes }),
    ))
}

/// `GET /v2/cache/nodes/{id}`: 409, as Glance without its `centralized_db` cache driver: each
/// gateway's cache is its own.
pub async fn nodes(app: &App, ctx: &RequestContext, id: &str) -> Result<Response<Body>, ApiError> {
    cache_for(app, ctx, Rule::ListCachedNodes)?;
    let id = parse_image_id(id)?;
    app.catalog.get_image(id).await?;
    Err(ApiError::conflict(
        "Listing the nodes that cache an image needs a centralized cache; each glint gateway's \
         image cache is its own.",
    ))
}
