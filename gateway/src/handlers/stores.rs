//! `DELETE /v2/stores/{store_id}/{image_id}` (spec §4.14, since 2.10): removes an image's copy
//! from one store, keeping the others.
//!
//! Checks in Glance's order: multi-store (else 404), the store configured here (else 409),
//! the image (404), `get_image_location` and `delete_image_location` (admin by default: 403),
//! `active` (409), more than one location (403), a location in that store (404). Then the
//! location goes from the image first — so no download can pick it meanwhile — and the data
//! after.

use http::{Response, StatusCode};

use super::images::load_authorized;
use super::{empty_response, parse_image_id};
use crate::app::App;
use crate::body::Body;
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::policy::Rule;

/// `DELETE /v2/stores/{store_id}/{image_id}`.
pub async fn delete_from_store(
    app: &App,
    ctx: &RequestContext,
    store_id: &str,
    image_id: &str,
) -> Result<Response<Body>, ApiError> {
    if !app.stores.is_multi() {
        return Err(ApiError::not_found("The resource could not be found."));
    }
    let Some(store) = app.stores.get(store_id) else {
        return Err(ApiError::conflict(format!(
            "The selected store {store_id} is not available on this node."
        )));
    };
    let id = parse_image_id(image_id)?;
    load_authorized(app, ctx, id, Rule::GetImageLocation).await?;
    let image = load_authorized(app, ctx, id, Rule::DeleteImageLocation).await?;
    if image.status != meta::ImageStatus::Active {
        return Err(ApiError::conflict(
            "It's not allowed to remove image data from store if image status is not 'active'",
        ));
    }
    if image.locations.len() == 1 {
        return Err(ApiError::forbidden(
            "Cannot delete image data from the only store containing it. Consider deleting \
             the image instead.",
        ));
    }
    let in_store = |l: &meta::Location| l.store == store.id();
    if !image.locations.iter().any(in_store) {
        return Err(ApiError::not_found(format!(
            "Image {id} is not stored in store {store_id}."
        )));
    }
    let store_name = store.id().to_owned();
    // What the edit took out, handed back from the writer thread.
    let taken = std::sync::Arc::new(std::sync::Mutex::new(None));
    let taken_in_edit = std::sync::Arc::clone(&taken);
    app.catalog
        .update_image(id, move |image: &mut meta::Image| -> Result<(), ApiError> {
            // Checked again inside the write: another request may have got here first.
            if image.status != meta::ImageStatus::Active {
                return Err(ApiError::conflict(
                    "It's not allowed to remove image data from store if image status is not \
                     'active'",
                ));
            }
            if image.locations.len() < 2 {
                return Err(ApiError::forbidden(
                    "Cannot delete image data from the only store containing it. Consider \
                     deleting the image instead.",
                ));
            }
            let position = image
                .locations
                .iter()
                .position(|l| l.store == store_name)
                .ok_or_else(|| {
                    ApiError::not_found(format!("Image {id} is not stored in store {store_name}."))
                })?;
            let location = image.locations.remove(position);
            *taken_in_edit
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(location);
            Ok(())
        })
        .await?;
    let removed = taken
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    if let Some(location) = removed {
        store.delete(&location).await.map_err(|e| {
            ApiError::internal(format!("deleting image {id} from store {store_id}: {e}"))
        })?;
        tracing::info!(image_id = %id, store = %store_id, "image data deleted from one store");
    }
    Ok(empty_response(StatusCode::NO_CONTENT))
}
