//! Keystone v3 token validation, as keystonemiddleware's `auth_token` does it for Glance.
//!
//! A request's `X-Auth-Token` (and `X-Service-Token`, when a service such as Nova acts for a
//! user) is validated with `GET /v3/auth/tokens`, authenticated by glint's own service user
//! (`[keystone_authtoken]` `username`/`password`/`project_name`). The answer is cached until
//! the token expires or `token_cache_time` passes, whichever is first, so a token costs at most
//! one round trip to Keystone per cache lifetime: concurrent requests with the same uncached
//! token wait for the one validation in flight instead of each asking Keystone. Refused tokens
//! are cached too, so a client retrying a bogus token does not hammer Keystone.
//!
//! The cores never block on Keystone: the HTTP calls run on a few validator threads, and a
//! request awaits its answer through a oneshot channel. The cache is keyed by a SHA-256 of the
//! token, so tokens are not kept in memory once validated, and never logged.

use std::collections::HashMap;
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use futures_channel::oneshot;
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::ConfigError;
use crate::context::RequestContext;
use crate::error::ApiError;

/// Threads that talk to Keystone. Validations of different tokens run in parallel up to this.
const VALIDATOR_THREADS: usize = 4;
/// The service user's token is renewed this long before it expires.
const SERVICE_TOKEN_MARGIN: Duration = Duration::from_secs(120);
/// keystonemiddleware's message for every refused token.
const UNAUTHORIZED: &str = "The request you have made requires authentication.";

/// The `[keystone_authtoken]` table, with keystonemiddleware's key names (an operator's Glance
/// section carries over; keys glint has no use for are listed as such).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeystoneSettings {
    /// Keystone's identity endpoint, e.g. `http://keystone:5000` or `…/identity/v3`.
    pub auth_url: String,
    /// How the service user authenticates: only `password`.
    pub auth_type: String,
    /// The service user (Glance's is `glance`).
    pub username: String,
    /// Its password.
    pub password: String,
    /// The project its token is scoped to (usually `service`).
    pub project_name: String,
    /// The service user's domain, by name.
    pub user_domain_name: String,
    /// The project's domain, by name.
    pub project_domain_name: String,
    /// Where clients are told to authenticate (`WWW-Authenticate` on a 401); defaults to
    /// `auth_url`.
    pub www_authenticate_uri: Option<String>,
    /// Seconds a validation (or a refusal) is cached, at most until the token expires.
    pub token_cache_time: u64,
    /// Most tokens cached at once (glint's own bound; keystonemiddleware uses memcached).
    pub token_cache_size: usize,
    /// Seconds to wait for Keystone to accept a connection.
    pub http_connect_timeout: u64,
    /// Seconds a whole call to Keystone may take.
    pub http_request_timeout: u64,
    /// Roles a service token must hold one of when `service_token_roles_required`.
    pub service_token_roles: Vec<String>,
    /// Refuse (401) a service token holding none of `service_token_roles`.
    pub service_token_roles_required: bool,
    /// Accepted and unused: glint caches tokens in its own memory.
    pub memcached_servers: Option<String>,
    /// Accepted and unused: glint's endpoint is not looked up in the catalog.
    pub region_name: Option<String>,
}

impl Default for KeystoneSettings {
    fn default() -> Self {
        KeystoneSettings {
            auth_url: String::new(),
            auth_type: "password".into(),
            username: String::new(),
            password: String::new(),
            project_name: String::new(),
            user_domain_name: "Default".into(),
            project_domain_name: "Default".into(),
            www_authenticate_uri: None,
            token_cache_time: 300,
            token_cache_size: 10_000,
            http_connect_timeout: 10,
            http_request_timeout: 30,
            service_token_roles: vec!["service".into()],
            service_token_roles_required: false,
            memcached_servers: None,
            region_name: None,
        }
    }
}

impl KeystoneSettings {
    /// Checks the table, naming the key at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: format!("keystone_authtoken.{key}"),
            message: message.into(),
        };
        if !(self.auth_url.starts_with("http://") || self.auth_url.starts_with("https://")) {
            return Err(invalid("auth_url", "must be an http:// or https:// URL"));
        }
        if self.auth_type != "password" {
            return Err(invalid("auth_type", "only \"password\" is supported"));
        }
        for (key, value) in [
            ("username", &self.username),
            ("password", &self.password),
            ("project_name", &self.project_name),
        ] {
            if value.is_empty() {
                return Err(invalid(key, "must be set"));
            }
        }
        if self.token_cache_size == 0 {
            return Err(invalid("token_cache_size", "must be at least 1"));
        }
        Ok(())
    }

    /// `…/v3`, whether or not `auth_url` names the version.
    fn v3_url(&self) -> String {
        let base = self.auth_url.trim_end_matches('/');
        if base.ends_with("/v3") {
            base.to_owned()
        } else {
            format!("{base}/v3")
        }
    }

    fn www_authenticate(&self) -> String {
        let uri = self
            .www_authenticate_uri
            .as_deref()
            .unwrap_or(&self.auth_url);
        format!("Keystone uri=\"{uri}\"")
    }
}

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
enum Outcome {
    Valid(Arc<Identity>),
    /// Unknown, revoked or expired: 401.
    Invalid,
    /// Keystone could not be asked or gave an unusable answer: 503, and not cached.
    Unavailable(String),
}

/// The configured Keystone validator; shared by every core.
pub struct Keystone {
    shared: Arc<Shared>,
    jobs: Mutex<mpsc::Sender<Job>>,
}

type Job = Box<dyn FnOnce() + Send>;

struct Shared {
    settings: KeystoneSettings,
    v3_url: String,
    www_authenticate: String,
    agent: ureq::Agent,
    service_token: Mutex<Option<ServiceToken>>,
    cache: Mutex<TokenCache>,
}

#[derive(Clone)]
struct ServiceToken {
    token: String,
    expires_at: SystemTime,
}

impl Keystone {
    /// Checks the settings and starts the validator threads.
    pub fn start(settings: &KeystoneSettings) -> Result<Keystone, ConfigError> {
        settings.validate()?;
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_connect(Some(Duration::from_secs(settings.http_connect_timeout)))
                .timeout_global(Some(Duration::from_secs(settings.http_request_timeout)))
                .build(),
        );
        let shared = Arc::new(Shared {
            v3_url: settings.v3_url(),
            www_authenticate: settings.www_authenticate(),
            settings: settings.clone(),
            agent,
            service_token: Mutex::new(None),
            cache: Mutex::new(TokenCache::new(settings.token_cache_size)),
        });
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..VALIDATOR_THREADS {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("glint-keystone-{i}"))
                .spawn(move || loop {
                    let job = match lock(&queue).recv() {
                        Ok(job) => job,
                        Err(_) => return,
                    };
                    job();
                })
                .map_err(|e| ConfigError::Invalid {
                    key: "keystone_authtoken".into(),
                    message: format!("cannot start a validator thread: {e}"),
                })?;
        }
        tracing::info!(auth_url = %shared.v3_url, "keystone auth enabled");
        Ok(Keystone {
            shared,
            jobs: Mutex::new(jobs),
        })
    }

    /// The context of a request, from its `X-Auth-Token` and `X-Service-Token`.
    pub async fn context(
        &self,
        headers: &HeaderMap,
        request_id: &str,
    ) -> Result<RequestContext, ApiError> {
        let token = header_token(headers, "x-auth-token").ok_or_else(|| self.unauthorized())?;
        let user = self.validate(token).await?;
        let mut service_roles = Vec::new();
        if headers.contains_key("x-service-token") {
            // Present but empty or not text is refused, as a bad token is.
            let service_token =
                header_token(headers, "x-service-token").ok_or_else(|| self.unauthorized())?;
            let service = self.validate(service_token).await?;
            let wanted = &self.shared.settings.service_token_roles;
            if self.shared.settings.service_token_roles_required
                && !service.roles.iter().any(|r| wanted.contains(r))
            {
                return Err(self.unauthorized());
            }
            service_roles = service.roles.clone();
        }
        // Any scope is accepted, as keystonemiddleware accepts it in front of Glance: what a
        // system-, domain-scoped or unscoped token may do is the policy's answer, per route.
        Ok(RequestContext {
            project_id: user.project_id.clone(),
            domain_id: user.domain_id.clone(),
            system_scope: user.system_scope.clone(),
            project_domain_id: user.project_domain_id.clone(),
            user_id: Some(user.user_id.clone()),
            user_domain_id: user.user_domain_id.clone(),
            is_admin: user.roles.iter().any(|r| r == "admin"),
            roles: user.roles.clone(),
            service_roles,
            request_id: request_id.to_owned(),
        })
    }

    fn unauthorized(&self) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, UNAUTHORIZED).with_header(
            http::header::WWW_AUTHENTICATE,
            &self.shared.www_authenticate,
        )
    }

    /// The identity behind `token`: from the cache, from a validation already in flight, or
    /// from a new one.
    async fn validate(&self, token: &str) -> Result<Arc<Identity>, ApiError> {
        let key = cache_key(token);
        let now = Instant::now();
        let (answer, fetch) = match lock(&self.shared.cache).begin(key, now) {
            Begin::Hit(identity) => return Ok(identity),
            Begin::Refused => return Err(self.unauthorized()),
            Begin::Wait(answer) => (answer, false),
            Begin::Fetch(answer) => (answer, true),
        };
        if fetch {
            let shared = Arc::clone(&self.shared);
            let token = token.to_owned();
            let job: Job = Box::new(move || {
                let outcome = shared.fetch(&token);
                if let Outcome::Unavailable(why) = &outcome {
                    tracing::error!(cause = %why, "token validation failed");
                }
                let ttl = Duration::from_secs(shared.settings.token_cache_time);
                let waiters = lock(&shared.cache).finish(key, &outcome, Instant::now(), ttl);
                for waiter in waiters {
                    let _ = waiter.send(outcome.clone());
                }
            });
            if lock(&self.jobs).send(job).is_err() {
                lock(&self.shared.cache).abandon(key);
                return Err(unavailable());
            }
        }
        match answer.await {
            Ok(Outcome::Valid(identity)) => Ok(identity),
            Ok(Outcome::Invalid) => Err(self.unauthorized()),
            Ok(Outcome::Unavailable(_)) | Err(_) => Err(unavailable()),
        }
    }
}

impl Shared {
    /// Asks Keystone about `token` (blocking; on a validator thread).
    fn fetch(&self, token: &str) -> Outcome {
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Outcome::Invalid;
        }
        let url = format!("{}/auth/tokens?nocatalog", self.v3_url);
        for attempt in 0..2 {
            let service_token = match self.service_token(attempt > 0) {
                Ok(t) => t,
                Err(why) => return Outcome::Unavailable(why),
            };
            let response = self
                .agent
                .get(&url)
                .header("X-Auth-Token", &service_token)
                .header("X-Subject-Token", token)
                .call();
            let mut response = match response {
                Ok(r) => r,
                Err(e) => return Outcome::Unavailable(format!("cannot reach Keystone: {e}")),
            };
            match response.status().as_u16() {
                200 => {
                    let body = match response.body_mut().read_to_string() {
                        Ok(b) => b,
                        Err(e) => return Outcome::Unavailable(format!("reading Keystone: {e}")),
                    };
                    return match parse_token(&body) {
                        Ok(identity) if identity.expires_at > SystemTime::now() => {
                            Outcome::Valid(Arc::new(identity))
                        }
                        Ok(_) => Outcome::Invalid,
                        Err(why) => Outcome::Unavailable(why),
                    };
                }
                // Keystone's answer for unknown, revoked and expired subject tokens.
                404 | 400 => return Outcome::Invalid,
                // Our own token was refused (revoked, or expired early): log in again once.
                401 if attempt == 0 => continue,
                code => {
                    return Outcome::Unavailable(format!(
                        "Keystone answered {code} to token validation"
                    ))
                }
            }
        }
        Outcome::Unavailable("Keystone refused the service user's fresh token".into())
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
                "password": s.password,
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

fn header_token<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|t| !t.is_empty())
}

fn unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "The identity service cannot be reached to validate the token; try again later.",
    )
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves consistent data (whole values are
    // swapped in), so a poisoned lock is still usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

type CacheKey = [u8; 32];

fn cache_key(token: &str) -> CacheKey {
    Sha256::digest(token.as_bytes()).into()
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

/// Validations by token hash: answered, refused, or in flight with the requests waiting.
struct TokenCache {
    entries: HashMap<CacheKey, Entry>,
    capacity: usize,
}

enum Entry {
    Valid {
        identity: Arc<Identity>,
        until: Instant,
    },
    Refused {
        until: Instant,
    },
    Pending(Vec<oneshot::Sender<Outcome>>),
}

/// What a request does about its token.
enum Begin {
    Hit(Arc<Identity>),
    Refused,
    /// Another request is validating this token; wait for its answer.
    Wait(oneshot::Receiver<Outcome>),
    /// Validate it, and wait for the answer with everyone else.
    Fetch(oneshot::Receiver<Outcome>),
}

impl TokenCache {
    fn new(capacity: usize) -> TokenCache {
        TokenCache {
            entries: HashMap::new(),
            capacity,
        }
    }

    fn begin(&mut self, key: CacheKey, now: Instant) -> Begin {
        let (tx, rx) = oneshot::channel();
        match self.entries.get_mut(&key) {
            Some(Entry::Valid { identity, until }) if *until > now => {
                return Begin::Hit(Arc::clone(identity))
            }
            Some(Entry::Refused { until }) if *until > now => return Begin::Refused,
            Some(Entry::Pending(waiters)) => {
                waiters.push(tx);
                return Begin::Wait(rx);
            }
            _ => {}
        }
        self.make_room(now);
        self.entries.insert(key, Entry::Pending(vec![tx]));
        Begin::Fetch(rx)
    }

    /// Records the answer for `key` and hands back the requests waiting for it.
    fn finish(
        &mut self,
        key: CacheKey,
        outcome: &Outcome,
        now: Instant,
        ttl: Duration,
    ) -> Vec<oneshot::Sender<Outcome>> {
        let entry = match outcome {
            Outcome::Valid(identity) => {
                let left = identity
                    .expires_at
                    .duration_since(SystemTime::now())
                    .unwrap_or_default();
                Some(Entry::Valid {
                    identity: Arc::clone(identity),
                    until: now + ttl.min(left),
                })
            }
            Outcome::Invalid => Some(Entry::Refused { until: now + ttl }),
            Outcome::Unavailable(_) => None,
        };
        let previous = match entry {
            Some(entry) => self.entries.insert(key, entry),
            None => self.entries.remove(&key),
        };
        match previous {
            Some(Entry::Pending(waiters)) => waiters,
            _ => Vec::new(),
        }
    }

    /// Forgets a validation that will never be answered.
    fn abandon(&mut self, key: CacheKey) {
        self.entries.remove(&key);
    }

    /// Keeps the cache under its capacity: drops what has expired, then, if still full, the
    /// eighth of the answers that expire soonest. Validations in flight are never dropped.
    fn make_room(&mut self, now: Instant) {
        if self.entries.len() < self.capacity {
            return;
        }
        self.entries.retain(|_, e| match e {
            Entry::Valid { until, .. } | Entry::Refused { until } => *until > now,
            Entry::Pending(_) => true,
        });
        if self.entries.len() < self.capacity {
            return;
        }
        let mut answered: Vec<(Instant, CacheKey)> = self
            .entries
            .iter()
            .filter_map(|(k, e)| match e {
                Entry::Valid { until, .. } | Entry::Refused { until } => Some((*until, *k)),
                Entry::Pending(_) => None,
            })
            .collect();
        let drop = (self.capacity / 8).max(1).min(answered.len());
        if drop == 0 {
            return;
        }
        answered.select_nth_unstable(drop - 1);
        for (_, key) in &answered[..drop] {
            self.entries.remove(key);
        }
    }
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

    fn identity(expires_in: Duration) -> Arc<Identity> {
        Arc::new(Identity {
            user_id: "u".into(),
            user_domain_id: None,
            project_id: Some("p".into()),
            project_domain_id: None,
            domain_id: None,
            system_scope: None,
            roles: vec!["reader".into()],
            expires_at: SystemTime::now() + expires_in,
        })
    }

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

    #[test]
    fn v3_url_with_or_without_version() {
        let mut s = KeystoneSettings {
            auth_url: "http://k:5000/".into(),
            ..KeystoneSettings::default()
        };
        assert_eq!(s.v3_url(), "http://k:5000/v3");
        s.auth_url = "http://k/identity/v3".into();
        assert_eq!(s.v3_url(), "http://k/identity/v3");
        assert_eq!(
            s.www_authenticate(),
            "Keystone uri=\"http://k/identity/v3\""
        );
    }

    #[test]
    fn settings_name_the_missing_key() {
        let s = KeystoneSettings {
            auth_url: "http://k:5000".into(),
            username: "glance".into(),
            project_name: "service".into(),
            ..KeystoneSettings::default()
        };
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("keystone_authtoken.password"), "{err}");
    }

    #[test]
    fn one_fetch_for_concurrent_requests_then_hits() {
        let mut cache = TokenCache::new(10);
        let now = Instant::now();
        let key = cache_key("t");
        let Begin::Fetch(mut first) = cache.begin(key, now) else {
            panic!("first request must fetch")
        };
        let Begin::Wait(mut second) = cache.begin(key, now) else {
            panic!("second request must wait")
        };
        let id = identity(Duration::from_secs(3600));
        let waiters = cache.finish(key, &Outcome::Valid(id), now, Duration::from_secs(300));
        assert_eq!(waiters.len(), 2);
        for w in waiters {
            w.send(Outcome::Invalid).unwrap();
        }
        assert!(matches!(first.try_recv(), Ok(Some(Outcome::Invalid))));
        assert!(matches!(second.try_recv(), Ok(Some(Outcome::Invalid))));
        assert!(matches!(cache.begin(key, now), Begin::Hit(_)));
        // Past the cache time, the token is validated again.
        let later = now + Duration::from_secs(301);
        assert!(matches!(cache.begin(key, later), Begin::Fetch(_)));
    }

    #[test]
    fn cached_no_longer_than_the_token_lives() {
        let mut cache = TokenCache::new(10);
        let now = Instant::now();
        let key = cache_key("t");
        let _rx = cache.begin(key, now);
        let id = identity(Duration::from_secs(10));
        cache.finish(key, &Outcome::Valid(id), now, Duration::from_secs(300));
        assert!(matches!(
            cache.begin(key, now + Duration::from_secs(5)),
            Begin::Hit(_)
        ));
        assert!(matches!(
            cache.begin(key, now + Duration::from_secs(11)),
            Begin::Fetch(_)
        ));
    }

    #[test]
    fn refusals_are_cached_and_outages_are_not() {
        let mut cache = TokenCache::new(10);
        let now = Instant::now();
        let (bad, down) = (cache_key("bad"), cache_key("down"));
        let _a = cache.begin(bad, now);
        let _b = cache.begin(down, now);
        let ttl = Duration::from_secs(300);
        cache.finish(bad, &Outcome::Invalid, now, ttl);
        cache.finish(down, &Outcome::Unavailable("x".into()), now, ttl);
        assert!(matches!(cache.begin(bad, now), Begin::Refused));
        assert!(matches!(cache.begin(down, now), Begin::Fetch(_)));
    }

    #[test]
    fn stays_within_capacity_and_keeps_pending() {
        let mut cache = TokenCache::new(16);
        let now = Instant::now();
        let pending = cache_key("pending");
        let _rx = cache.begin(pending, now);
        for i in 0..100 {
            let key = cache_key(&format!("t{i}"));
            let _rx = cache.begin(key, now);
            let id = identity(Duration::from_secs(3600));
            let ttl = Duration::from_secs(i + 1);
            cache.finish(key, &Outcome::Valid(id), now, ttl);
            assert!(cache.entries.len() <= 16);
        }
        assert!(matches!(
            cache.entries.get(&pending),
            Some(Entry::Pending(_))
        ));
        // The newest answers (longest to live) survive.
        assert!(matches!(cache.begin(cache_key("t99"), now), Begin::Hit(_)));
    }
}
