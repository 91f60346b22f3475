//! `PUT` / `DELETE /v2/images/{id}/tags/{tag}`.

use http::{Response, StatusCode};
use meta::Image;

use super::images::{check_quotas, load_authorized};
use super::{empty_response, parse_image_id};
use crate::app::App;
use crate::body::Body;
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::policy::Rule;

/// `PUT /v2/images/{id}/tags/{tag}`: adding a tag the image has is a no-op.
pub async fn add(
    app: &App,
    ctx: &RequestContext,
    id: &str,
    tag: String,
) -> Result<Response<Body>, ApiError> {
    if tag.chars().count() > 255 {
        return Err(ApiError::bad_request("Tag is longer than 255 characters."));
    }
    let id = parse_image_id(id)?;
    load_authorized(app, ctx, id, Rule::ModifyImage).await?;
    let config = app.config.clone();
    app.catalog
        .update_image(id, move |image: &mut Image| -> Result<(), ApiError> {
            image.tags.insert(tag.clone());
            check_quotas(&config, image)
        })
        .await?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

/// `DELETE /v2/images/{id}/tags/{tag}`: 404 when the image does not carry it.
pub async fn delete(
    app: &App,
    ctx: &RequestContext,
    id: &str,
    tag: String,
) -> Result<Response<Body>, ApiError> {
    let id = parse_image_id(id)?;
    load_authorized(app, ctx, id, Rule::ModifyImage).await?;
    app.catalog
        .update_image(id, move |image: &mut Image| -> Result<(), ApiError> {
            if image.tags.remove(&tag) {
                Ok(())
            } else {
                Err(ApiError::not_found(format!("Tag {tag} not found")))
            }
        })
        .await?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}
