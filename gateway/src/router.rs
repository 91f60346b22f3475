//! Routing: `(method, path)` → [`Route`], or the error Glance gives for it.
//!
//! Version prefixes are resolved here (`/v2`, `/v2.N` for every advertised N; anything else
//! gets the versions document with 300). Path parameters are kept as strings: an image id that
//! is not a UUID is answered by the handler with 404, as Glance does.

use http::Method;

use crate::error::ApiError;
use crate::handlers::versions::is_advertised;

/// One Glance operation, with its path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /` or an unknown version prefix: versions document, 300.
    VersionsChoice,
    /// `GET /versions`: versions document, 200.
    Versions,
    /// `GET /healthcheck` (and `HEAD`, as oslo.middleware answers it).
    Healthcheck,
    /// `GET /metrics`: Prometheus text format.
    Metrics,
    /// `GET /v2/schemas/image`.
    SchemaImage,
    /// `GET /v2/schemas/images`.
    SchemaImages,
    /// `GET /v2/images`.
    ListImages,
    /// `POST /v2/images`.
    CreateImage,
    /// `GET /v2/images/{id}`.
    ShowImage { id: String },
    /// `PATCH /v2/images/{id}`.
    UpdateImage { id: String },
    /// `DELETE /v2/images/{id}`.
    DeleteImage { id: String },
    /// `POST /v2/images/{id}/actions/deactivate`.
    DeactivateImage { id: String },
    /// `POST /v2/images/{id}/actions/reactivate`.
    ReactivateImage { id: String },
    /// `PUT /v2/images/{id}/file`.
    UploadImageData { id: String },
    /// `GET /v2/images/{id}/file`.
    DownloadImageData { id: String },
    /// `PUT /v2/images/{id}/tags/{tag}`.
    AddTag { id: String, tag: String },
    /// `DELETE /v2/images/{id}/tags/{tag}`.
    DeleteTag { id: String, tag: String },
    /// `GET /v2/images/{id}/members`.
    ListMembers { id: String },
    /// `POST /v2/images/{id}/members`.
    CreateMember { id: String },
    /// `GET /v2/images/{id}/members/{member_id}`.
    ShowMember { id: String, member: String },
    /// `PUT /v2/images/{id}/members/{member_id}`.
    UpdateMember { id: String, member: String },
    /// `DELETE /v2/images/{id}/members/{member_id}`.
    DeleteMember { id: String, member: String },
    /// `GET /v2/schemas/member`.
    SchemaMember,
    /// `GET /v2/schemas/members`.
    SchemaMembers,
    /// `GET /v2/info/usage`.
    InfoUsage,
}

impl Route {
    /// The route template, for logs and metrics (never contains ids).
    pub fn template(&self) -> &'static str {
        match self {
            Route::VersionsChoice => "/",
            Route::Versions => "/versions",
            Route::Healthcheck => "/healthcheck",
            Route::Metrics => "/metrics",
            Route::SchemaImage => "/v2/schemas/image",
            Route::SchemaImages => "/v2/schemas/images",
            Route::ListImages | Route::CreateImage => "/v2/images",
            Route::ShowImage { .. } | Route::UpdateImage { .. } | Route::DeleteImage { .. } => {
                "/v2/images/{id}"
            }
            Route::DeactivateImage { .. } => "/v2/images/{id}/actions/deactivate",
            Route::ReactivateImage { .. } => "/v2/images/{id}/actions/reactivate",
            Route::UploadImageData { .. } | Route::DownloadImageData { .. } => {
                "/v2/images/{id}/file"
            }
            Route::AddTag { .. } | Route::DeleteTag { .. } => "/v2/images/{id}/tags/{tag}",
            Route::ListMembers { .. } | Route::CreateMember { .. } => "/v2/images/{id}/members",
            Route::ShowMember { .. } | Route::UpdateMember { .. } | Route::DeleteMember { .. } => {
                "/v2/images/{id}/members/{member_id}"
            }
            Route::SchemaMember => "/v2/schemas/member",
            Route::SchemaMembers => "/v2/schemas/members",
            Route::InfoUsage => "/v2/info/usage",
        }
    }

    /// Whether a body on this request is refused with 400: the routes Glance's v2 router
    /// marks `body_reject`. The other body-less routes (the image list, `/v2/info/usage`, the
    /// version documents, `/healthcheck`, `/metrics`) ignore a body, as Glance does.
    pub fn forbids_body(&self) -> bool {
        matches!(
            self,
            Route::ShowImage { .. }
                | Route::DeleteImage { .. }
                | Route::DeactivateImage { .. }
                | Route::ReactivateImage { .. }
                | Route::DownloadImageData { .. }
                | Route::AddTag { .. }
                | Route::DeleteTag { .. }
                | Route::ListMembers { .. }
                | Route::ShowMember { .. }
                | Route::DeleteMember { .. }
                | Route::SchemaImage
                | Route::SchemaImages
                | Route::SchemaMember
                | Route::SchemaMembers
        )
    }
}

/// Maps a request to its route.
pub fn route(method: &Method, path: &str) -> Result<Route, ApiError> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let segments: &[&str] = if segments == [""] { &[] } else { &segments };
    match segments {
        [] => only(method, &[Method::GET], Route::VersionsChoice),
        ["versions"] => only(method, &[Method::GET], Route::Versions),
        ["healthcheck"] => only(method, &[Method::GET, Method::HEAD], Route::Healthcheck),
        ["metrics"] => only(method, &[Method::GET], Route::Metrics),
        [version, rest @ ..] if is_advertised(version) => route_v2(method, rest),
        // Glance sends any other prefix to the versions application.
        _ => Ok(Route::VersionsChoice),
    }
}

fn route_v2(method: &Method, rest: &[&str]) -> Result<Route, ApiError> {
    use Method as M;
    let id = |s: &str| s.to_owned();
    match rest {
        ["schemas", "image"] => only(method, &[M::GET], Route::SchemaImage),
        ["schemas", "images"] => only(method, &[M::GET], Route::SchemaImages),
        ["schemas", "member"] => only(method, &[M::GET], Route::SchemaMember),
        ["schemas", "members"] => only(method, &[M::GET], Route::SchemaMembers),
        ["info", "usage"] => only(method, &[M::GET], Route::InfoUsage),
        ["images", image, "members"] => match *method {
            M::GET => Ok(Route::ListMembers { id: id(image) }),
            M::POST => Ok(Route::CreateMember { id: id(image) }),
            _ => Err(ApiError::method_not_allowed(&["GET", "POST"])),
        },
        ["images", image, "members", member] => {
            let member = percent_decode(member)
                .ok_or_else(|| ApiError::bad_request("Member id is not valid UTF-8."))?;
            let (id, member) = (id(image), member);
            match *method {
                M::GET => Ok(Route::ShowMember { id, member }),
                M::PUT => Ok(Route::UpdateMember { id, member }),
                M::DELETE => Ok(Route::DeleteMember { id, member }),
                _ => Err(ApiError::method_not_allowed(&["GET", "PUT", "DELETE"])),
            }
        }
        ["images"] => match *method {
            M::GET => Ok(Route::ListImages),
            M::POST => Ok(Route::CreateImage),
            _ => Err(ApiError::method_not_allowed(&["GET", "POST"])),
        },
        ["images", image] => match *method {
            M::GET => Ok(Route::ShowImage { id: id(image) }),
            M::PATCH => Ok(Route::UpdateImage { id: id(image) }),
            M::DELETE => Ok(Route::DeleteImage { id: id(image) }),
            _ => Err(ApiError::method_not_allowed(&["GET", "PATCH", "DELETE"])),
        },
        ["images", image, "file"] => match *method {
            M::GET => Ok(Route::DownloadImageData { id: id(image) }),
            M::PUT => Ok(Route::UploadImageData { id: id(image) }),
            _ => Err(ApiError::method_not_allowed(&["GET", "PUT"])),
        },
        ["images", image, "actions", "deactivate"] => {
            only(method, &[M::POST], Route::DeactivateImage { id: id(image) })
        }
        ["images", image, "actions", "reactivate"] => {
            only(method, &[M::POST], Route::ReactivateImage { id: id(image) })
        }
        ["images", image, "tags", tag] => {
            let tag = percent_decode(tag)
                .ok_or_else(|| ApiError::bad_request("Tag is not valid UTF-8."))?;
            match *method {
                M::PUT => Ok(Route::AddTag { id: id(image), tag }),
                M::DELETE => Ok(Route::DeleteTag { id: id(image), tag }),
                _ => Err(ApiError::method_not_allowed(&["PUT", "DELETE"])),
            }
        }
        _ => Err(ApiError::not_found("The resource could not be found.")),
    }
}

fn only(method: &Method, allowed: &[Method], route: Route) -> Result<Route, ApiError> {
    if allowed.contains(method) {
        Ok(route)
    } else {
        let names: Vec<&str> = allowed.iter().map(Method::as_str).collect();
        Err(ApiError::method_not_allowed(&names))
    }
}

/// Decodes `%XX` escapes (and nothing else: `+` stays `+` in a path). `None` when the result
/// is not UTF-8 or an escape is malformed.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_unknown_prefixes() {
        assert_eq!(route(&Method::GET, "/").unwrap(), Route::VersionsChoice);
        assert_eq!(route(&Method::GET, "/versions").unwrap(), Route::Versions);
        assert_eq!(
            route(&Method::GET, "/v1/images").unwrap(),
            Route::VersionsChoice
        );
        assert_eq!(
            route(&Method::GET, "/v2/images").unwrap(),
            Route::ListImages
        );
        assert_eq!(
            route(&Method::GET, "/v2.0/images").unwrap(),
            Route::ListImages
        );
    }

    #[test]
    fn wrong_method_lists_allowed() {
        let err = route(&Method::PUT, "/v2/images/abc").unwrap_err();
        assert_eq!(err.status(), http::StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn unknown_v2_path_is_404() {
        let err = route(&Method::GET, "/v2/nothing").unwrap_err();
        assert_eq!(err.status(), http::StatusCode::NOT_FOUND);
    }

    #[test]
    fn member_routes() {
        assert_eq!(
            route(&Method::POST, "/v2/images/x/members").unwrap(),
            Route::CreateMember { id: "x".into() }
        );
        assert_eq!(
            route(&Method::PUT, "/v2/images/x/members/p%20q").unwrap(),
            Route::UpdateMember {
                id: "x".into(),
                member: "p q".into()
            }
        );
        let err = route(&Method::PATCH, "/v2/images/x/members/p").unwrap_err();
        assert_eq!(err.status(), http::StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            route(&Method::GET, "/v2/info/usage").unwrap(),
            Route::InfoUsage
        );
        assert!(!Route::CreateMember { id: "x".into() }.forbids_body());
        assert!(Route::ListMembers { id: "x".into() }.forbids_body());
    }

    #[test]
    fn bodies_are_refused_where_glance_marks_body_reject() {
        let id = || "x".to_owned();
        for refused in [
            Route::ShowImage { id: id() },
            Route::DeleteImage { id: id() },
            Route::DownloadImageData { id: id() },
            Route::DeactivateImage { id: id() },
            Route::DeleteTag {
                id: id(),
                tag: id(),
            },
            Route::DeleteMember {
                id: id(),
                member: id(),
            },
            Route::SchemaImage,
        ] {
            assert!(refused.forbids_body(), "{refused:?}");
        }
        // Ignored: Glance's list and usage routes have no body_reject, and the version
        // documents and the healthcheck are served outside its v2 router.
        for ignored in [
            Route::ListImages,
            Route::InfoUsage,
            Route::Versions,
            Route::VersionsChoice,
            Route::Healthcheck,
            Route::Metrics,
            Route::UpdateImage { id: id() },
        ] {
            assert!(!ignored.forbids_body(), "{ignored:?}");
        }
    }

    #[test]
    fn tags_are_decoded() {
        assert_eq!(
            route(&Method::PUT, "/v2/images/x/tags/a%20b").unwrap(),
            Route::AddTag {
                id: "x".into(),
                tag: "a b".into()
            }
        );
    }
}
