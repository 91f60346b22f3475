//! The request context: who is asking. Filled by the auth layer; with no auth configured (the
//! embedded default) every request is an admin of one fixed project.
//!
//! A Keystone token is scoped to a project, a domain or the whole system, or to nothing; the
//! context keeps that as keystonemiddleware hands it to Glance (`X-Project-Id`, `X-Domain-Id`,
//! `OpenStack-System-Scope`), and [`RequestContext::token_scope`] tells the kinds apart the
//! way oslo.policy does. What each kind may do is the policy's business (`crate::policy`).

/// The project that owns everything on an unauthenticated, single-machine deployment.
pub const NOAUTH_PROJECT: &str = "glint";

/// The scope of a token, as policy rules' `scope_types` name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenScope {
    /// Scoped to a project, or unscoped (no project then).
    Project,
    /// Scoped to a domain.
    Domain,
    /// Scoped to the whole deployment (`--os-system-scope all`).
    System,
}

/// Who is making a request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The caller's project (`owner` of what it creates); `None` unless the token is
    /// project-scoped.
    pub project_id: Option<String>,
    /// The domain a domain-scoped token is scoped to; `None` for any other token.
    pub domain_id: Option<String>,
    /// `Some("all")` for a system-scoped token; `None` for any other token.
    pub system_scope: Option<String>,
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
            domain_id: None,
            system_scope: None,
            project_domain_id: None,
            user_id: None,
            user_domain_id: None,
            roles: vec!["admin".to_owned(), "member".to_owned(), "reader".to_owned()],
            service_roles: Vec::new(),
            is_admin: true,
            request_id,
        }
    }

    /// The scope of the caller's token, decided as oslo.policy decides it: system when a
    /// system scope is set, else domain when a domain is, else project — so an unscoped
    /// token counts as project-scoped, only without a project (and, from Keystone, without
    /// roles).
    pub fn token_scope(&self) -> TokenScope {
        if self.system_scope.is_some() {
            TokenScope::System
        } else if self.domain_id.is_some() {
            TokenScope::Domain
        } else {
            TokenScope::Project
        }
    }

    /// Whether the caller owns `owner`'s images (same project).
    pub fn owns(&self, owner: Option<&str>) -> bool {
        matches!((self.project_id.as_deref(), owner), (Some(p), Some(o)) if p == o)
    }
}
