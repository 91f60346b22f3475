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
    /// `GET /v2/schemas/metadefs/{name}`, one of the ten names of
    /// `handlers::metadefs::schemas::NAMES`.
    SchemaMetadef { name: &'static str },
    /// A metadata definitions operation under `/v2/metadefs`.
    Metadef(MetadefRoute),
}

/// A metadata definitions operation (spec §9.2), with its path parameters (percent-decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadefRoute {
    /// `GET /v2/metadefs/namespaces`.
    ListNamespaces,
    /// `POST /v2/metadefs/namespaces`.
    CreateNamespace,
    /// `GET /v2/metadefs/namespaces/{namespace}`.
    ShowNamespace { ns: String },
    /// `PUT /v2/metadefs/namespaces/{namespace}`.
    UpdateNamespace { ns: String },
    /// `DELETE /v2/metadefs/namespaces/{namespace}`.
    DeleteNamespace { ns: String },
    /// `GET /v2/metadefs/namespaces/{namespace}/objects`.
    ListObjects { ns: String },
    /// `POST /v2/metadefs/namespaces/{namespace}/objects`.
    CreateObject { ns: String },
    /// `DELETE /v2/metadefs/namespaces/{namespace}/objects`.
    DeleteObjects { ns: String },
    /// `GET /v2/metadefs/namespaces/{namespace}/objects/{object_name}`.
    ShowObject { ns: String, name: String },
    /// `PUT /v2/metadefs/namespaces/{namespace}/objects/{object_name}`.
    UpdateObject { ns: String, name: String },
    /// `DELETE /v2/metadefs/namespaces/{namespace}/objects/{object_name}`.
    DeleteObject { ns: String, name: String },
    /// `GET /v2/metadefs/namespaces/{namespace}/properties`.
    ListProperties { ns: String },
    /// `POST /v2/metadefs/namespaces/{namespace}/properties`.
    CreateProperty { ns: String },
    /// `DELETE /v2/metadefs/namespaces/{namespace}/properties`.
    DeleteProperties { ns: String },
    /// `GET /v2/metadefs/namespaces/{namespace}/properties/{property_name}`.
    ShowProperty { ns: String, name: String },
    /// `PUT /v2/metadefs/namespaces/{namespace}/properties/{property_name}`.
    UpdateProperty { ns: String, name: String },
    /// `DELETE /v2/metadefs/namespaces/{namespace}/properties/{property_name}`.
    DeleteProperty { ns: String, name: String },
    /// `GET /v2/metadefs/namespaces/{namespace}/tags`.
    ListTags { ns: String },
    /// `POST /v2/metadefs/namespaces/{namespace}/tags`.
    CreateTags { ns: String },
    /// `DELETE /v2/metadefs/namespaces/{namespace}/tags`.
    DeleteTags { ns: String },
    /// `GET /v2/metadefs/namespaces/{namespace}/tags/{tag_name}`.
    ShowTag { ns: String, name: String },
    /// `POST /v2/metadefs/namespaces/{namespace}/tags/{tag_name}`.
    CreateTag { ns: String, name: String },
    /// `PUT /v2/metadefs/namespaces/{namespace}/tags/{tag_name}`.
    UpdateTag { ns: String, name: String },
    /// `DELETE /v2/metadefs/namespaces/{namespace}/tags/{tag_name}`.
    DeleteTag { ns: String, name: String },
    /// `GET /v2/metadefs/resource_types`.
    ListResourceTypes,
    /// `GET /v2/metadefs/namespaces/{namespace}/resource_types`.
    ListAssociations { ns: String },
    /// `POST /v2/metadefs/namespaces/{namespace}/resource_types`.
    CreateAssociation { ns: String },
    /// `DELETE /v2/metadefs/namespaces/{namespace}/resource_types/{resource_type}`.
    DeleteAssociation { ns: String, name: String },
}

impl MetadefRoute {
    /// The route template, for logs and metrics.
    pub fn template(&self) -> &'static str {
        use MetadefRoute as M;
        match self {
            M::ListNamespaces | M::CreateNamespace => "/v2/metadefs/namespaces",
            M::ShowNamespace { .. } | M::UpdateNamespace { .. } | M::DeleteNamespace { .. } => {
                "/v2/metadefs/namespaces/{namespace}"
            }
            M::ListObjects { .. } | M::CreateObject { .. } | M::DeleteObjects { .. } => {
                "/v2/metadefs/namespaces/{namespace}/objects"
            }
            M::ShowObject { .. } | M::UpdateObject { .. } | M::DeleteObject { .. } => {
                "/v2/metadefs/namespaces/{namespace}/objects/{object_name}"
            }
            M::ListProperties { .. } | M::CreateProperty { .. } | M::DeleteProperties { .. } => {
                "/v2/metadefs/namespaces/{namespace}/properties"
            }
            M::ShowProperty { .. } | M::UpdateProperty { .. } | M::DeleteProperty { .. } => {
                "/v2/metadefs/namespaces/{namespace}/properties/{property_name}"
            }
            M::ListTags { .. } | M::CreateTags { .. } | M::DeleteTags { .. } => {
                "/v2/metadefs/namespaces/{namespace}/tags"
            }
            M::ShowTag { .. } | M::CreateTag { .. } | M::UpdateTag { .. } | M::DeleteTag { .. } => {
                "/v2/metadefs/namespaces/{namespace}/tags/{tag_name}"
            }
            M::ListResourceTypes => "/v2/metadefs/resource_types",
            M::ListAssociations { .. } | M::CreateAssociation { .. } => {
                "/v2/metadefs/namespaces/{namespace}/resource_types"
            }
            M::DeleteAssociation { .. } => {
                "/v2/metadefs/namespaces/{namespace}/resource_types/{resource_type}"
            }
        }
    }

    /// Whether a request body is refused (Glance's `body_reject` routes); the others read one
    /// or ignore it.
    pub fn forbids_body(&self) -> bool {
        use MetadefRoute as M;
        matches!(
            self,
            M::ShowNamespace { .. }
                | M::DeleteNamespace { .. }
                | M::ShowObject { .. }
                | M::DeleteObject { .. }
                | M::ShowTag { .. }
                | M::CreateTag { .. }
                | M::DeleteTag { .. }
                | M::ListResourceTypes
                | M::ListAssociations { .. }
                | M::DeleteAssociation { .. }
        )
    }
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
            Route::SchemaMetadef { name } => metadef_schema_template(name),
            Route::Metadef(op) => op.template(),
        }
    }

    /// Whether the request must not carry a body (Glance answers 400 when it does).
    pub fn forbids_body(&self) -> bool {
        if let Route::Metadef(op) = self {
            return op.forbids_body();
        }
        !matches!(
            self,
            Route::CreateImage
                | Route::UpdateImage { .. }
                | Route::UploadImageData { .. }
                | Route::CreateMember { .. }
                | Route::UpdateMember { .. }
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
        ["schemas", "metadefs", name] => match metadef_schema_name(name) {
            Some(name) => only(method, &[M::GET], Route::SchemaMetadef { name }),
            None => Err(ApiError::not_found("The resource could not be found.")),
        },
        ["metadefs", rest @ ..] => route_metadefs(method, rest).map(Route::Metadef),
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

/// The ten metadef schema names, each with its template.
const METADEF_SCHEMAS: [(&str, &str); 10] = [
    ("namespace", "/v2/schemas/metadefs/namespace"),
    ("namespaces", "/v2/schemas/metadefs/namespaces"),
    ("object", "/v2/schemas/metadefs/object"),
    ("objects", "/v2/schemas/metadefs/objects"),
    ("property", "/v2/schemas/metadefs/property"),
    ("properties", "/v2/schemas/metadefs/properties"),
    ("resource_type", "/v2/schemas/metadefs/resource_type"),
    ("resource_types", "/v2/schemas/metadefs/resource_types"),
    ("tag", "/v2/schemas/metadefs/tag"),
    ("tags", "/v2/schemas/metadefs/tags"),
];

fn metadef_schema_name(segment: &str) -> Option<&'static str> {
    METADEF_SCHEMAS
        .iter()
        .find(|(name, _)| *name == segment)
        .map(|(name, _)| *name)
}

fn metadef_schema_template(name: &str) -> &'static str {
    METADEF_SCHEMAS
        .iter()
        .find(|(known, _)| *known == name)
        .map_or("/v2/schemas/metadefs/{name}", |(_, template)| *template)
}

/// Routes under `/v2/metadefs/`.
fn route_metadefs(method: &Method, rest: &[&str]) -> Result<MetadefRoute, ApiError> {
    use MetadefRoute as R;
    use Method as M;
    let decode = |segment: &str| {
        percent_decode(segment).ok_or_else(|| ApiError::bad_request("Path is not valid UTF-8."))
    };
    let not_allowed = |allowed: &[&str]| Err(ApiError::method_not_allowed(allowed));
    match rest {
        ["resource_types"] => match *method {
            M::GET => Ok(R::ListResourceTypes),
            _ => not_allowed(&["GET"]),
        },
        ["namespaces"] => match *method {
            M::GET => Ok(R::ListNamespaces),
            M::POST => Ok(R::CreateNamespace),
            _ => not_allowed(&["GET", "POST"]),
        },
        ["namespaces", ns] => {
            let ns = decode(ns)?;
            match *method {
                M::GET => Ok(R::ShowNamespace { ns }),
                M::PUT => Ok(R::UpdateNamespace { ns }),
                M::DELETE => Ok(R::DeleteNamespace { ns }),
                _ => not_allowed(&["GET", "PUT", "DELETE"]),
            }
        }
        ["namespaces", ns, kind] => {
            let ns = decode(ns)?;
            match (*kind, method.clone()) {
                ("objects", M::GET) => Ok(R::ListObjects { ns }),
                ("objects", M::POST) => Ok(R::CreateObject { ns }),
                ("objects", M::DELETE) => Ok(R::DeleteObjects { ns }),
                ("properties", M::GET) => Ok(R::ListProperties { ns }),
                ("properties", M::POST) => Ok(R::CreateProperty { ns }),
                ("properties", M::DELETE) => Ok(R::DeleteProperties { ns }),
                ("tags", M::GET) => Ok(R::ListTags { ns }),
                ("tags", M::POST) => Ok(R::CreateTags { ns }),
                ("tags", M::DELETE) => Ok(R::DeleteTags { ns }),
                ("resource_types", M::GET) => Ok(R::ListAssociations { ns }),
                ("resource_types", M::POST) => Ok(R::CreateAssociation { ns }),
                ("objects" | "properties" | "tags", _) => not_allowed(&["GET", "POST", "DELETE"]),
                ("resource_types", _) => not_allowed(&["GET", "POST"]),
                _ => Err(ApiError::not_found("The resource could not be found.")),
            }
        }
        ["namespaces", ns, kind, name] => {
            let (ns, name) = (decode(ns)?, decode(name)?);
            match (*kind, method.clone()) {
                ("objects", M::GET) => Ok(R::ShowObject { ns, name }),
                ("objects", M::PUT) => Ok(R::UpdateObject { ns, name }),
                ("objects", M::DELETE) => Ok(R::DeleteObject { ns, name }),
                ("properties", M::GET) => Ok(R::ShowProperty { ns, name }),
                ("properties", M::PUT) => Ok(R::UpdateProperty { ns, name }),
                ("properties", M::DELETE) => Ok(R::DeleteProperty { ns, name }),
                ("tags", M::GET) => Ok(R::ShowTag { ns, name }),
                ("tags", M::POST) => Ok(R::CreateTag { ns, name }),
                ("tags", M::PUT) => Ok(R::UpdateTag { ns, name }),
                ("tags", M::DELETE) => Ok(R::DeleteTag { ns, name }),
                ("resource_types", M::DELETE) => Ok(R::DeleteAssociation { ns, name }),
                ("objects" | "properties", _) => not_allowed(&["GET", "PUT", "DELETE"]),
                ("tags", _) => not_allowed(&["GET", "POST", "PUT", "DELETE"]),
                ("resource_types", _) => not_allowed(&["DELETE"]),
                _ => Err(ApiError::not_found("The resource could not be found.")),
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
    fn metadef_routes() {
        use MetadefRoute as R;
        let ns = || "OS::Compute::Libvirt".to_owned();
        for (method, path, expected) in [
            (Method::GET, "/v2/metadefs/namespaces", R::ListNamespaces),
            (Method::PUT, "/v2/metadefs/namespaces/OS::Compute::Libvirt", R::UpdateNamespace { ns: ns() }),
            (Method::DELETE, "/v2/metadefs/namespaces/OS::Compute::Libvirt/tags", R::DeleteTags { ns: ns() }),
            (
                Method::POST,
                "/v2/metadefs/namespaces/OS::Compute::Libvirt/tags/a%20b",
                R::CreateTag { ns: ns(), name: "a b".into() },
            ),
            (
                Method::DELETE,
                "/v2/metadefs/namespaces/OS%3A%3ACompute%3A%3ALibvirt/resource_types/OS::Glance::Image",
                R::DeleteAssociation { ns: ns(), name: "OS::Glance::Image".into() },
            ),
            (Method::GET, "/v2/metadefs/resource_types", R::ListResourceTypes),
        ] {
            assert_eq!(route(&method, path).unwrap(), Route::Metadef(expected), "{method} {path}");
        }
        let err = route(&Method::PATCH, "/v2/metadefs/namespaces/x/tags/y").unwrap_err();
        assert_eq!(err.status(), http::StatusCode::METHOD_NOT_ALLOWED);
        let err = route(&Method::GET, "/v2/metadefs/namespaces/x/nothing").unwrap_err();
        assert_eq!(err.status(), http::StatusCode::NOT_FOUND);
        assert_eq!(
            route(&Method::GET, "/v2/schemas/metadefs/resource_types")
                .unwrap()
                .template(),
            "/v2/schemas/metadefs/resource_types"
        );
        assert!(route(&Method::GET, "/v2/schemas/metadefs/nothing").is_err());
        assert!(Route::Metadef(R::ShowNamespace { ns: ns() }).forbids_body());
        assert!(!Route::Metadef(R::CreateTags { ns: ns() }).forbids_body());
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
