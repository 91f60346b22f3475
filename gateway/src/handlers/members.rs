//! Image members (sharing, spec §4.13): `/v2/images/{id}/members[/{member_id}]`.
//!
//! The owner project shares a `shared` image with other projects; each member project then
//! accepts or rejects it (which only decides whether the image is in its default list: every
//! member can read the image either way). Rules, in Glance's order: the data layer must show
//! the image (404), it must be `shared` (403 here, 404 on show), `get_image` must allow the
//! caller (404) and then the call's own rule (403); a member project sees only its own
//! membership. An admin without a project (system- or domain-scoped token) thus gets the 403
//! for a non-`shared` image and 404 for a `shared` one. Writes and the shared/duplicate/limit
//! checks happen in one `meta` transaction.

use http::{Response, StatusCode};
use meta::{Image, ImageId, Member, MemberStatus, Visibility};
use serde_json::{json, Value};

use super::images::{format_timestamp, lookup as lookup_image, parse_json_body};
use super::{empty_response, json_response, parse_image_id};
use crate::app::App;
use crate::body::Body;
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::policy::{self, Rule, Target};

/// The JSON form of a member.
pub fn to_json(member: &Member) -> Value {
    json!({
        "created_at": format_timestamp(member.created_at),
        "image_id": member.image_id.to_string(),
        "member_id": member.member_id,
        "schema": "/v2/schemas/member",
        "status": member.status.as_str(),
        "updated_at": format_timestamp(member.updated_at),
    })
}

/// `get_image` on an image the data layer showed: 404 when the caller may not see it.
fn check_get_image(
    ctx: &RequestContext,
    image: &Image,
    membership: Option<MemberStatus>,
) -> Result<(), ApiError> {
    policy::enforce(
        ctx,
        Rule::GetImage,
        &Target::image(image, membership),
        image.id,
    )
}

/// Whether the caller sees every member of `image` (admin, or the owner project) rather
/// than only its own membership.
fn sees_all_members(ctx: &RequestContext, image: &Image) -> bool {
    ctx.is_admin_role() || ctx.owns(image.owner.as_deref())
}

fn member_not_found(id: ImageId, member_id: &str) -> ApiError {
    ApiError::not_found(format!(
        "{member_id} not found in the member list of the image {id}."
    ))
}

/// The member `member_id` of `image` as the caller may see it (`get_member`): 404 when the
/// caller may not see the image, 403 when the policy refuses, 404 when there is no such
/// member or it is not the caller's to see.
async fn lookup(
    app: &App,
    ctx: &RequestContext,
    image: &Image,
    membership: Option<MemberStatus>,
    member_id: &str,
) -> Result<Member, ApiError> {
    check_get_image(ctx, image, membership)?;
    if !policy::allows(ctx, Rule::GetMember, &Target::image(image, membership)) {
        return Err(ApiError::forbidden(format!(
            "You are not authorized to lookup the members of the image {}.",
            image.id
        )));
    }
    if !sees_all_members(ctx, image) && ctx.project_id.as_deref() != Some(member_id) {
        return Err(member_not_found(image.id, member_id));
    }
    app.catalog
        .get_member(image.id, member_id)
        .await?
        .ok_or_else(|| member_not_found(image.id, member_id))
}

/// `GET /v2/images/{id}/members`: every member for the owner project and admins, the
/// caller's own membership for a member project.
pub async fn list(app: &App, ctx: &RequestContext, id: &str) -> Result<Response<Body>, ApiError> {
    let id = parse_image_id(id)?;
    let (image, membership) = lookup_image(app, ctx, id).await?;
    let refused = |why: &str| {
        ApiError::forbidden(format!("Not allowed to list members for image {id}: {why}"))
    };
    if image.visibility != Visibility::Shared {
        return Err(refused("Only shared images have members."));
    }
    check_get_image(ctx, &image, membership)?;
    if !policy::allows(ctx, Rule::GetMembers, &Target::image(&image, membership)) {
        return Err(refused(
            "You are not authorized to complete get_members action.",
        ));
    }
    let mut members = app.catalog.list_members(id).await?;
    if !sees_all_members(ctx, &image) {
        members.retain(|m| ctx.project_id.as_deref() == Some(m.member_id.as_str()));
    }
    let body = json!({
        "members": members.iter().map(to_json).collect::<Vec<_>>(),
        "schema": "/v2/schemas/members",
    });
    Ok(json_response(StatusCode::OK, &body))
}

/// `GET /v2/images/{id}/members/{member_id}`: every refusal is a 404, so that nothing leaks.
pub async fn show(
    app: &App,
    ctx: &RequestContext,
    id: &str,
    member_id: &str,
) -> Result<Response<Body>, ApiError> {
    let id = parse_image_id(id)?;
    let (image, membership) = lookup_image(app, ctx, id).await?;
    if image.visibility != Visibility::Shared {
        return Err(ApiError::not_found("Only shared images have members."));
    }
    let member = lookup(app, ctx, &image, membership, member_id)
        .await
        .map_err(|e| {
            if e.status() == StatusCode::FORBIDDEN {
                member_not_found(id, member_id)
            } else {
                e
            }
        })?;
    Ok(json_response(StatusCode::OK, &to_json(&member)))
}

/// The JSON object of a members request body; Glance's 400 when it is something else.
fn body_object(body: &[u8], form: &str) -> Result<serde_json::Map<String, Value>, ApiError> {
    match parse_json_body(body)? {
        Value::Object(fields) => Ok(fields),
        _ => Err(ApiError::bad_request(format!(
            "Expected a {form} in the form: {{\"{form}\": \"{}\"}}",
            if form == "member" {
                "image_id"
            } else {
                "status"
            }
        ))),
    }
}

/// `POST /v2/images/{id}/members` with `{"member": "<project>"}`: 200 and the new `pending`
/// member.
pub async fn create(
    app: &App,
    ctx: &RequestContext,
    id: &str,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let fields = body_object(body, "member")?;
    let member_id = match fields.get("member") {
        None => return Err(ApiError::bad_request("Member to be added not specified")),
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(Value::String(_) | Value::Null | Value::Bool(false)) => {
            return Err(ApiError::bad_request("Member can't be empty"))
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "Expected a member in the form: {\"member\": \"image_id\"}",
            ))
        }
    };
    if member_id.chars().count() > 255 {
        return Err(ApiError::bad_request(
            "Member id is longer than 255 characters.",
        ));
    }
    let id = parse_image_id(id)?;
    let (image, membership) = lookup_image(app, ctx, id).await?;
    let refused = || ApiError::forbidden(format!("Not allowed to create members for image {id}."));
    if image.visibility != Visibility::Shared {
        return Err(refused());
    }
    check_get_image(ctx, &image, membership)?;
    if !policy::allows(ctx, Rule::AddMember, &Target::image(&image, membership)) {
        return Err(refused());
    }
    // A negative quota means unlimited.
    let max_members = u64::try_from(app.config.image_member_quota).ok();
    let added = app.catalog.add_member(id, &member_id, max_members).await;
    let member = refuse_unshared(added, refused)?;
    tracing::info!(image_id = %id, member_id = %member_id, "image member added");
    Ok(json_response(StatusCode::OK, &to_json(&member)))
}

/// `PUT /v2/images/{id}/members/{member_id}` with `{"status": "accepted"}`: only the member
/// project itself (or an admin) answers.
pub async fn update(
    app: &App,
    ctx: &RequestContext,
    id: &str,
    member_id: &str,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let fields = body_object(body, "status")?;
    let Some(status) = fields.get("status") else {
        return Err(ApiError::bad_request("Status not specified"));
    };
    let id = parse_image_id(id)?;
    let (image, membership) = lookup_image(app, ctx, id).await?;
    let refused = || ApiError::forbidden(format!("Not allowed to update members for image {id}."));
    if image.visibility != Visibility::Shared {
        return Err(refused());
    }
    lookup(app, ctx, &image, membership, member_id).await?;
    let target = Target::image(&image, membership).about_member(member_id);
    if !policy::allows(ctx, Rule::ModifyMember, &target) {
        return Err(refused());
    }
    let status: MemberStatus = status
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            ApiError::bad_request(
                "Incorrect request: Status must be \"pending\", \"accepted\" or \"rejected\".",
            )
        })?;
    let updated = app.catalog.update_member(id, member_id, status).await;
    let member = refuse_unshared(updated, refused)?;
    Ok(json_response(StatusCode::OK, &to_json(&member)))
}

/// `DELETE /v2/images/{id}/members/{member_id}`: the owner project (or an admin) stops
/// sharing.
pub async fn delete(
    app: &App,
    ctx: &RequestContext,
    id: &str,
    member_id: &str,
) -> Result<Response<Body>, ApiError> {
    let id = parse_image_id(id)?;
    let (image, membership) = lookup_image(app, ctx, id).await?;
    let refused = || ApiError::forbidden(format!("Not allowed to delete members for image {id}."));
    if image.visibility != Visibility::Shared {
        return Err(refused());
    }
    lookup(app, ctx, &image, membership, member_id).await?;
    if !policy::allows(ctx, Rule::DeleteMember, &Target::image(&image, membership)) {
        return Err(refused());
    }
    let deleted = app.catalog.delete_member(id, member_id).await;
    refuse_unshared(deleted, refused)?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

/// The result of a member write. The image may have stopped being `shared` since it was read:
/// that is `refused`, as if it had not been shared when asked.
fn refuse_unshared<T>(
    result: Result<T, meta::Error>,
    refused: impl FnOnce() -> ApiError,
) -> Result<T, ApiError> {
    match result {
        Ok(value) => Ok(value),
        Err(meta::Error::NotShared(_)) => Err(refused()),
        Err(e) => Err(e.into()),
    }
}
