//! Talking to Keystone (blocking; on the validator threads): the service user's login and
//! token, and the validation of a subject token with `GET /v3/auth/tokens`.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::auth::catalog::ServiceCatalog;
use crate::config::KeystoneSettings;

/// The service user's token is renewed this long before it expires.
const SERVICE_TOKEN_MARGIN: Duration = Duration::from_secs(120);

/// What Keystone says about a token, as far as glint needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user.
    pub user_id: String,
    /// The user's domain.
    pub user_domain_id: Option<String>,
    /// The project the token is scoped to; `None` for unscoped, domain- or system-scoped.
    pub project_id: Option<String>,
    /// The project's domain.
    pub project_domain_id: Option<String>,
    /// The domain a domain-scoped token is scoped to.
    pub domain_id: Option<String>,
    /// `Some("all")` for a token scoped to the whole system (keystonemiddleware's
    /// `OpenStack-System-Scope`).
    pub system_scope: Option<String>,
    /// Role names on that scope, lower-cased (implied roles included by Keystone).
    pub roles: Vec<String>,
    /// When the token stops being valid.
    pub expires_at: SystemTime,
}

/// The answer to one validation.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Valid until its `expires_at`.
    Valid(Arc<Identity>),
    /// Unknown, revoked or expired: 401.
    Invalid,
    /// Keystone could not be asked or gave an unusable answer: 503, and not cached.
    Unavailable(String),
}

/// What `GET /v3/auth/tokens` said about a subject token.
enum Subject {
    Body(String),
    Invalid,
    Unavailable(String),
}

/// A Keystone client authenticated as glint's service user.
pub struct Client {
    settings: KeystoneSettings,
    v3_url: String,
    agent: ureq::Agent,
    service_token: Mutex<Option<ServiceToken>>,
}

struct ServiceToken {
    token: String,
    expires_at: SystemTime,
}

impl Client {
    /// A client for `settings`; nothing is contacted yet.
    pub fn new(settings: &KeystoneSettings) -> Client {
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_connect(Some(Duration::from_secs(settings.http_connect_timeout)))
                .timeout_global(Some(Duration::from_secs(settings.http_request_timeout)))
                .build(),
        );
        Client {
            v3_url: settings.v3_url(),
            settings: settings.clone(),
            agent,
            service_token: Mutex::new(None),
        }
    }

    /// `…/v3` of Keystone.
    pub fn v3_url(&self) -> &str {
        &self.v3_url
    }

    /// Asks Keystone about `token` (blocking).
    pub fn validate(&self, token: &str) -> Outcome {
        match self.subject_token(token, false) {
            Subject::Body(body) => match parse_token(&body) {
                Ok(identity) if identity.expires_at > SystemTime::now() => {
                    Outcome::Valid(Arc::new(identity))
                }
                Ok(_) => Outcome::Invalid,
                Err(why) => Outcome::Unavailable(why),
            },
            Subject::Invalid => Outcome::Invalid,
            Subject::Unavailable(why) => Outcome::Unavailable(why),
        }
    }

    /// The service catalog of `token` (blocking): the same validation with the catalog
    /// asked for. `Invalid` when the token is no longer valid.
    pub fn catalog(&self, token: &str) -> Result<ServiceCatalog, Outcome> {
        match self.subject_token(token, true) {
            Subject::Body(body) => {
                let body: serde_json::Value = serde_json::from_str(&body)
                    .map_err(|e| Outcome::Unavailable(format!("unexpected token body: {e}")))?;
                let catalog = body
                    .get("token")
                    .and_then(|t| t.get("catalog"))
                    .cloned()
                    .unwrap_or_else(|| serde_json::Value::Array(Vec::new()));
                ServiceCatalog::parse(catalog).map_err(Outcome::Unavailable)
            }
            Subject::Invalid => Err(Outcome::Invalid),
            Subject::Unavailable(why) => Err(Outcome::Unavailable(why)),
        }
    }

    /// `GET /v3/auth/tokens` for `token` as the service user: the body, with the catalog
    /// only when asked for.
    fn subject_token(&self, token: &str, with_catalog: bool) -> Subject {
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Subject::Invalid;
        }
        let url = if with_catalog {
            format!("{}/auth/tokens", self.v3_url)
        } else {
            format!("{}/auth/tokens?nocatalog", self.v3_url)
        };
        for attempt in 0..2 {
            let service_token = match self.service_token(attempt > 0) {
                Ok(t) => t,
                Err(why) => return Subject::Unavailable(why),
            };
            let response = self
                .agent
                .get(&url)
                .header("X-Auth-Token", &service_token)
                .header("X-Subject-Token", token)
                .call();
            let mut response = match response {
                Ok(r) => r,
                Err(e) => return Subject::Unavailable(format!("cannot reach Keystone: {e}")),
            };
            match response.status().as_u16() {
                200 => {
                    return match response.body_mut().read_to_string() {
                        Ok(b) => Subject::Body(b),
                        Err(e) => Subject::Unavailable(format!("reading Keystone: {e}")),
                    };
                }
                // Keystone's answer for unknown, revoked and expired subject tokens.
                404 | 400 => return Subject::Invalid,
                // Our own token was refused (revoked, or expired early): log in again once.
                401 if attempt == 0 => continue,
                code => {
                    return Subject::Unavailable(format!(
                        "Keystone answered {code} to token validation"
                    ))
                }
            }
        }
        Subject::Unavailable("Keystone refused the service user's fresh token".into())
    }

    /// The service user's token, logging in when there is none, it is about to expire, or
    /// `renew` says Keystone refused it.
    fn service_token(&self, renew: bool) -> Result<String, String> {
        let mut current = lock(&self.service_token);
        if let Some(t) = current.as_ref() {
            if !renew && t.expires_at > SystemTime::now() + SERVICE_TOKEN_MARGIN {
                return Ok(t.token.clone());
            }
        }
        let fresh = self.login()?;
        let token = fresh.token.clone();
        *current = Some(fresh);
        Ok(token)
    }

    /// `POST /v3/auth/tokens` with the service user's password, scoped to its project.
    fn login(&self) -> Result<ServiceToken, String> {
        let s = &self.settings;
        let body = serde_json::json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": s.username,
                "domain": {"name": s.user_domain_name},
                // The one place the password leaves the process.
                "password": s.password.expose(),
            }}},
            "scope": {"project": {
                "name": s.project_name,
                "domain": {"name": s.project_domain_name},
            }},
        }});
        let url = format!("{}/auth/tokens?nocatalog", self.v3_url);
        let mut response = self
            .agent
            .post(&url)
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .map_err(|e| format!("cannot reach Keystone at {url}: {e}"))?;
        let status = response.status().as_u16();
        if status != 201 {
            return Err(format!(
                "Keystone refused the service user {:?} ({status}); check [keystone_authtoken]",
                s.username
            ));
        }
        let token = response
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or("Keystone's login answer has no X-Subject-Token")?;
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("reading Keystone: {e}"))?;
        let identity = parse_token(&body)?;
        Ok(ServiceToken {
            token,
            expires_at: identity.expires_at,
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves a whole token or none: still usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The body of a `GET`/`POST /v3/auth/tokens` answer, as far as glint reads it.
#[derive(Deserialize)]
struct TokenBody {
    token: TokenData,
}

#[derive(Deserialize)]
struct TokenData {
    expires_at: String,
    user: Named,
    project: Option<Named>,
    /// Present on a domain-scoped token.
    domain: Option<Domain>,
    /// Present on a system-scoped token: `{"all": true}`.
    system: Option<System>,
    #[serde(default)]
    roles: Vec<Role>,
}

#[derive(Deserialize)]
struct System {
    #[serde(default)]
    all: bool,
}

#[derive(Deserialize)]
struct Named {
    id: String,
    domain: Option<Domain>,
}

#[derive(Deserialize)]
struct Domain {
    id: String,
}

#[derive(Deserialize)]
struct Role {
    name: String,
}

fn parse_token(body: &str) -> Result<Identity, String> {
    let body: TokenBody =
        serde_json::from_str(body).map_err(|e| format!("unexpected token body: {e}"))?;
    let t = body.token;
    let expires_at = time::OffsetDateTime::parse(
        &t.expires_at,
        &time::format_description::well_known::Rfc3339,
    )
    .map_err(|e| format!("unexpected expires_at {:?}: {e}", t.expires_at))?;
    Ok(Identity {
        user_id: t.user.id,
        user_domain_id: t.user.domain.map(|d| d.id),
        project_domain_id: t
            .project
            .as_ref()
            .and_then(|p| p.domain.as_ref())
            .map(|d| d.id.clone()),
        project_id: t.project.map(|p| p.id),
        domain_id: t.domain.map(|d| d.id),
        // keystonemiddleware passes on only the whole-system scope, as "all".
        system_scope: t.system.filter(|s| s.all).map(|_| "all".to_owned()),
        roles: t.roles.into_iter().map(|r| r.name.to_lowercase()).collect(),
        expires_at: expires_at.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = r#"{"token": {"methods": ["password"],
        "user": {"domain": {"id": "default", "name": "Default"}, "id": "u1", "name": "alice",
                 "password_expires_at": null},
        "audit_ids": ["x"], "expires_at": "2099-01-01T00:00:00.000000Z",
        "issued_at": "2026-11-27T12:00:00.000000Z",
        "project": {"domain": {"id": "default", "name": "Default"}, "id": "p1", "name": "demo"},
        "is_domain": false,
        "roles": [{"id": "r1", "name": "Member"}, {"id": "r2", "name": "reader"}]}}"#;

    #[test]
    fn parses_a_project_scoped_token() {
        let id = parse_token(TOKEN).unwrap();
        assert_eq!(id.user_id, "u1");
        assert_eq!(id.project_id.as_deref(), Some("p1"));
        assert_eq!(id.project_domain_id.as_deref(), Some("default"));
        assert_eq!(id.user_domain_id.as_deref(), Some("default"));
        assert_eq!(id.roles, ["member", "reader"]);
        assert!(id.expires_at > SystemTime::now());
    }

    #[test]
    fn system_scoped_token_has_no_project() {
        let body = r#"{"token": {"expires_at": "2099-01-01T00:00:00Z",
            "user": {"id": "u1", "domain": {"id": "default"}}, "system": {"all": true},
            "roles": [{"id": "r", "name": "admin"}]}}"#;
        let id = parse_token(body).unwrap();
        assert_eq!(id.project_id, None);
        assert_eq!(id.domain_id, None);
        assert_eq!(id.system_scope.as_deref(), Some("all"));
        assert_eq!(id.roles, ["admin"]);
    }

    #[test]
    fn domain_scoped_and_unscoped_tokens() {
        let domain = r#"{"token": {"expires_at": "2099-01-01T00:00:00Z",
            "user": {"id": "u1", "domain": {"id": "default"}},
            "domain": {"id": "default", "name": "Default"},
            "roles": [{"id": "r", "name": "reader"}]}}"#;
        let id = parse_token(domain).unwrap();
        assert_eq!(id.project_id, None);
        assert_eq!(id.domain_id.as_deref(), Some("default"));
        assert_eq!(id.system_scope, None);
        assert_eq!(id.roles, ["reader"]);
        let unscoped = r#"{"token": {"expires_at": "2099-01-01T00:00:00Z",
            "user": {"id": "u1", "domain": {"id": "default"}}, "methods": ["password"]}}"#;
        let id = parse_token(unscoped).unwrap();
        assert_eq!(
            (id.project_id, id.domain_id, id.system_scope),
            (None, None, None)
        );
        assert!(id.roles.is_empty());
    }

    #[test]
    fn garbage_is_an_error_not_a_refusal() {
        assert!(parse_token("{}").is_err());
        assert!(parse_token(r#"{"token": {"expires_at": "soon", "user": {"id": "u"}}}"#).is_err());
    }
}
