//! The request context: who is asking. Filled by the auth layer; with no auth configured (the
//! embedded default) every request is an admin of one fixed project.

/// The project that owns everything on an unauthenticated, single-machine deployment.
pub const NOAUTH_PROJECT: &str = "glint";

/// Who is making a request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The caller's project (`owner` of what it creates); `None` for an unscoped caller.
    pub project_id: Option<String>,
    /// The domain of the caller's project, when known.
    pub project_domain_id: Option<String>,
    /// The caller's user id, when known.
    pub user_id: Option<String>,
    /// The domain of the caller's user, when known.
    pub user_domain_id: Option<String>,
    /// Role names, lower-cased.
    pub roles: Vec<String>,
    /// Role names of a valid `X-Service-Token` (a service such as Nova acting for the user),
    /// lower-cased; empty without one.
    pub service_roles: Vec<String>,
    /// Whether the caller has the admin role (`context_is_admin`).
    pub is_admin: bool,
    /// This request's id (`req-<uuid>`), for logs.
    pub request_id: String,
}

impl RequestContext {
    /// The context of every request when no auth is configured: an admin of [`NOAUTH_PROJECT`].
    pub fn noauth(request_id: String) -> RequestContext {
        RequestContext {
            project_id: Some(NOAUTH_PROJECT.to_owned()),
            project_domain_id: None,
            user_id: None,
            user_domain_id: None,
            roles: vec!["admin".to_owned(), "member".to_owned(), "reader".to_owned()],
            service_roles: Vec::new(),
            is_admin: true,
            request_id,
        }
    }

    /// Whether the caller owns `owner`'s images (same project).
    pub fn owns(&self, owner: Option<&str>) -> bool {
        matches!((self.project_id.as_deref(), owner), (Some(p), Some(o)) if p == o)
    }
}
