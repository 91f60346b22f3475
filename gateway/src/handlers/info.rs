//! Discovery: `GET /v2/info/usage` (spec §4.16), the caller's project's quota usage and
//! limits. Sizes are MiB; an unlimited quota is reported as -1.

use http::{Response, StatusCode};
use serde_json::{json, Value};

use super::json_response;
use crate::app::App;
use crate::body::Body;
use crate::context::RequestContext;
use crate::error::ApiError;

/// `GET /v2/info/usage`.
pub async fn usage(app: &App, ctx: &RequestContext) -> Result<Response<Body>, ApiError> {
    let project = ctx.project_id.as_deref();
    let limits = app.config.quotas.limits_for(project);
    let usage = match project {
        Some(project) => app.catalog.usage(project).await?,
        None => meta::Usage::default(),
    };
    let entry = |limit: Option<u64>, used: u64| -> Value {
        json!({ "limit": limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX)), "usage": used })
    };
    let body = json!({
        "usage": {
            "image_size_total": entry(limits.image_size_total_mib, usage.size_mib()),
            "image_count_total": entry(limits.image_count_total, usage.image_count),
            // glint has no staging area yet: nothing is ever staged.
            "image_stage_total": entry(limits.image_stage_total_mib, 0),
            "image_count_uploading": entry(limits.image_count_uploading, usage.uploading_count),
        }
    });
    Ok(json_response(StatusCode::OK, &body))
}
