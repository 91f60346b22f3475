//! Discovery (spec §4.16): `GET /v2/info/usage`, the caller's project's quota usage and
//! limits (sizes are MiB; an unlimited quota is reported as -1); `GET /v2/info/stores` and
//! `…/detail`, the configured stores (multi-store only: 404 otherwise, as Glance).

use http::{Response, StatusCode};
use serde_json::{json, Value};

use super::json_response;
use crate::app::App;
use crate::body::Body;
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::policy::{self, Rule, Target};

/// `GET /v2/info/usage`.
pub async fn usage(app: &App, ctx: &RequestContext) -> Result<Response<Body>, ApiError> {
    let project = ctx.project_id.as_deref();
    let limits = app.config.quotas.limits_for(project);
    let usage = match project {
        Some(project) => app.catalog.usage(project).await?,
        None => meta::Usage::default(),
    };
    let staged_mib = match project {
        Some(project) => super::import::staged_bytes(app, project).await? / meta::MIB,
        None => 0,
    };
    let entry = |limit: Option<u64>, used: u64| -> Value {
        json!({ "limit": limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX)), "usage": used })
    };
    let body = json!({
        "usage": {
            "image_size_total": entry(limits.image_size_total_mib, usage.size_mib()),
            "image_count_total": entry(limits.image_count_total, usage.image_count),
            "image_stage_total": entry(limits.image_stage_total_mib, staged_mib),
            "image_count_uploading": entry(limits.image_count_uploading, usage.uploading_count),
        }
    });
    Ok(json_response(StatusCode::OK, &body))
}

/// The stores as `/v2/info/stores` lists them: `id`, `description` when configured,
/// `default` and `read-only` as the strings `"true"` and only when true (Glance's form).
fn store_list(app: &App) -> Result<Vec<serde_json::Map<String, Value>>, ApiError> {
    if !app.stores.is_multi() {
        return Err(ApiError::not_found(
            "Multi backend is not supported at this site.",
        ));
    }
    let default = app.stores.default().id();
    Ok(app
        .stores
        .iter()
        // Glance's internal stores (staging, tasks) are never listed.
        .filter(|store| !store.id().starts_with("os_glance_"))
        .map(|store| {
            let mut entry = serde_json::Map::new();
            entry.insert("id".into(), store.id().into());
            if let Some(description) = store.description() {
                entry.insert("description".into(), description.into());
            }
            if store.id() == default {
                entry.insert("default".into(), "true".into());
            }
            if store.is_read_only() {
                entry.insert("read-only".into(), "true".into());
            }
            entry
        })
        .collect())
}

/// `GET /v2/info/stores`.
pub fn stores(app: &App) -> Result<Response<Body>, ApiError> {
    let stores = store_list(app)?;
    Ok(json_response(StatusCode::OK, &json!({ "stores": stores })))
}

/// `GET /v2/info/stores/detail`: each store's `type`, `weight` and `properties` too, for
/// admins and services (`stores_info_detail`).
pub fn stores_detail(app: &App, ctx: &RequestContext) -> Result<Response<Body>, ApiError> {
    let mut stores = store_list(app)?;
    let anything = Target {
        owner: None,
        visibility: meta::Visibility::Public,
        membership: None,
        member_id: None,
    };
    policy::enforce_global(ctx, Rule::StoresInfoDetail, &anything)?;
    for entry in &mut stores {
        let id = entry.get("id").and_then(Value::as_str).unwrap_or_default();
        let Some(store) = app.stores.get(id) else {
            continue;
        };
        entry.insert("type".into(), store.kind().as_str().into());
        entry.insert("weight".into(), store.weight().into());
        entry.insert("properties".into(), Value::Object(store.properties()));
    }
    Ok(json_response(StatusCode::OK, &json!({ "stores": stores })))
}
