//! Keystone v3 token validation, as keystonemiddleware's `auth_token` does it for Glance.
//!
//! A request's `X-Auth-Token` (and `X-Service-Token`, when a service such as Nova acts for a
//! user) is validated with `GET /v3/auth/tokens`, authenticated by glint's own service user
//! (`[keystone_authtoken]` `username`/`password`/`project_name`): `client`. The answers are
//! cached (`cache`), so a token costs at most one round trip to Keystone per cache lifetime,
//! and concurrent requests with the same uncached token wait for the one validation in flight.
//!
//! The cores never block on Keystone: the HTTP calls run on a few validator threads, and a
//! request awaits its answer through a channel. Tokens are never logged.

mod cache;
pub mod client;

use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use http::{HeaderMap, StatusCode};

use self::cache::{cache_key, keep_until, TokenCache};
use self::client::{Client, Identity, Outcome};
use super::catalog::ServiceCatalog;
use super::AuthError;
use crate::config::KeystoneSettings;
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::single_flight::Begin;

/// Threads that talk to Keystone. Validations of different tokens run in parallel up to this.
const VALIDATOR_THREADS: usize = 4;
/// keystonemiddleware's message for every refused token.
const UNAUTHORIZED: &str = "The request you have made requires authentication.";

/// The configured Keystone validator; shared by every core.
pub struct Keystone {
    client: Arc<Client>,
    cache: Arc<TokenCache>,
    token_cache_time: Duration,
    www_authenticate: String,
    service_token_roles: Vec<String>,
    service_token_roles_required: bool,
    jobs: Arc<Mutex<mpsc::Sender<Job>>>,
}

type Job = Box<dyn FnOnce() + Send>;

impl Keystone {
    /// Starts the validator threads for `settings` (checked by `Config::validate`).
    pub fn start(settings: &KeystoneSettings) -> Result<Keystone, AuthError> {
        let client = Arc::new(Client::new(settings));
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
                .map_err(AuthError::Threads)?;
        }
        tracing::info!(auth_url = %client.v3_url(), "keystone auth enabled");
        Ok(Keystone {
            client,
            cache: TokenCache::new(settings.token_cache_size),
            token_cache_time: Duration::from_secs(settings.token_cache_time),
            www_authenticate: settings.www_authenticate(),
            service_token_roles: settings.service_token_roles.clone(),
            service_token_roles_required: settings.service_token_roles_required,
            jobs: Arc::new(Mutex::new(jobs)),
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
            let wanted = &self.service_token_roles;
            if self.service_token_roles_required
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

    /// A handle that fetches tokens' service catalogs on the validator threads (for the
    /// import thread's glance-download).
    pub fn catalog_source(&self) -> CatalogSource {
        CatalogSource {
            client: Arc::clone(&self.client),
            jobs: Arc::clone(&self.jobs),
        }
    }

    fn unauthorized(&self) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, UNAUTHORIZED)
            .with_header(http::header::WWW_AUTHENTICATE, &self.www_authenticate)
    }

    /// The identity behind `token`: from the cache, from a validation already in flight, or
    /// from a new one on a validator thread.
    async fn validate(&self, token: &str) -> Result<Arc<Identity>, ApiError> {
        let answer = match self.cache.begin(cache_key(token), Instant::now()) {
            Begin::Hit(outcome) => return self.answer(Some(outcome)),
            Begin::Wait(answer) => answer,
            Begin::Lead(lead, answer) => {
                let client = Arc::clone(&self.client);
                let ttl = self.token_cache_time;
                let token = token.to_owned();
                let job: Job = Box::new(move || {
                    let outcome = client.validate(&token);
                    if let Outcome::Unavailable(why) = &outcome {
                        tracing::error!(cause = %why, "token validation failed");
                    }
                    let until = keep_until(&outcome, Instant::now(), ttl);
                    lead.finish(outcome, until);
                });
                // A job that cannot be queued is dropped with its lead: the answer is `None`.
                let _ = lock(&self.jobs).send(job);
                answer
            }
        };
        self.answer(answer.await)
    }

    fn answer(&self, outcome: Option<Outcome>) -> Result<Arc<Identity>, ApiError> {
        match outcome {
            Some(Outcome::Valid(identity)) => Ok(identity),
            Some(Outcome::Invalid) => Err(self.unauthorized()),
            Some(Outcome::Unavailable(_)) | None => Err(unavailable()),
        }
    }
}

/// Why a token's catalog could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// Keystone says the token is not valid (any more).
    #[error("Keystone no longer accepts the request's token (it expired or was revoked)")]
    InvalidToken,
    /// Keystone could not be asked or answered something unusable.
    #[error("the identity service could not give the service catalog: {0}")]
    Unavailable(String),
}

/// Fetches the service catalog of a token, on the validator threads: one Keystone round
/// trip per call, never cached (only glance-download asks, once per import).
#[derive(Clone)]
pub struct CatalogSource {
    client: Arc<Client>,
    jobs: Arc<Mutex<mpsc::Sender<Job>>>,
}

impl std::fmt::Debug for CatalogSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogSource")
            .field("auth_url", &self.client.v3_url())
            .finish()
    }
}

impl CatalogSource {
    /// The service catalog of `token` (a user's token; never logged).
    pub async fn catalog(&self, token: &str) -> Result<ServiceCatalog, CatalogError> {
        let (answer, answered) = futures_channel::oneshot::channel();
        let client = Arc::clone(&self.client);
        let token = token.to_owned();
        let job: Job = Box::new(move || {
            let _ = answer.send(client.catalog(&token));
        });
        if lock(&self.jobs).send(job).is_err() {
            return Err(CatalogError::Unavailable(
                "the validator threads are gone".into(),
            ));
        }
        match answered.await {
            Ok(Ok(catalog)) => Ok(catalog),
            Ok(Err(Outcome::Invalid)) => Err(CatalogError::InvalidToken),
            Ok(Err(Outcome::Unavailable(why))) => Err(CatalogError::Unavailable(why)),
            Ok(Err(Outcome::Valid(_))) | Err(_) => Err(CatalogError::Unavailable(
                "the validator thread gave no answer".into(),
            )),
        }
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
    // The job queue and sender hold no invariant a panic could break.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
