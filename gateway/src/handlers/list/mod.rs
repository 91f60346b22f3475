//! `GET /v2/images`: the policy check, one page from the catalog, and the `first`/`next` links.
//!
//! `query` turns the request's parameters into a [`meta::ListFilter`] (the caller's visibility
//! rules, every filter, the order, the marker, the limit); meta runs it as one page — the
//! redb engine walks an index in sort order from the marker and stops after `limit` matches,
//! so a page never reads every image.

pub mod query;

use http::{Response, StatusCode};
use meta::Visibility;

use super::images::ImageView;
use super::json_response;
use crate::app::App;
use crate::body::Body;
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::policy::{self, Rule, Target};

/// `GET /v2/images`. Glance's order: the request's parameters (400), `get_images` (403: a
/// token without a project — system-, domain-scoped or unscoped — stops here), then the
/// filter values and the marker (400), then the images the caller may see.
pub async fn list(
    app: &App,
    ctx: &RequestContext,
    raw_query: &str,
) -> Result<Response<Body>, ApiError> {
    let pairs = query::query_pairs(raw_query);
    let query = query::parse(&app.config, ctx, &pairs)?;
    policy::enforce_global(
        ctx,
        Rule::GetImages,
        &Target {
            owner: ctx.project_id.as_deref(),
            visibility: Visibility::Private,
            membership: None,
            member_id: None,
        },
    )?;
    let filter = query.into_filter()?;
    let limit = filter.limit;
    let images = app.catalog.list_images(filter).await.map_err(|e| match e {
        meta::Error::MarkerNotFound(id) => {
            ApiError::bad_request(format!("Invalid marker. Image {id} could not be found."))
        }
        other => ApiError::from(other),
    })?;
    // Links repeat the request's own parameters (all of them, repeats kept), minus the marker.
    let kept: Vec<&str> = raw_query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("marker="))
        .collect();
    let first = if kept.is_empty() {
        "/v2/images".to_owned()
    } else {
        format!("/v2/images?{}", kept.join("&"))
    };
    let next = images
        .last()
        .filter(|_| images.len() == limit && limit > 0)
        .map(|last| {
            let mut next: Vec<String> = kept.iter().map(|s| s.to_string()).collect();
            next.push(format!("marker={}", last.id));
            format!("/v2/images?{}", next.join("&"))
        });
    let page = Page {
        images: images
            .iter()
            .map(|image| ImageView::of(app, image))
            .collect(),
        first,
        next,
        schema: "/v2/schemas/images",
    };
    Ok(json_response(StatusCode::OK, &page))
}

/// A page of images, as `GET /v2/images` answers it.
#[derive(serde::Serialize)]
struct Page<'a> {
    images: Vec<ImageView<'a>>,
    first: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
    schema: &'static str,
}
