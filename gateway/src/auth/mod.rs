//! Who is asking: the auth strategies, which turn a request's headers into a
//! [`RequestContext`]. Built from the `[auth]` and `[keystone_authtoken]` settings (in
//! `config`); failing to start reports an [`AuthError`].
//!
//! - `noauth` (the embedded default): every request is an admin of one fixed project. Fit for
//!   one machine and one operator, and nothing else: keep such a server on loopback.
//! - `keystone`: every request under `/v2` carries an `X-Auth-Token` that Keystone v3
//!   validates ([`keystone`]); the token's user, scope (a project, a domain, the system, or
//!   none) and roles become the context. This is what keystonemiddleware's `auth_token` does
//!   in front of Glance: it accepts a token of any scope and leaves the answer to the policy.
//!
//! The version documents and `/healthcheck` are answered without a token, as Glance answers
//! them ahead of its auth middleware.

pub mod catalog;
pub mod keystone;

use http::HeaderMap;

use crate::config::{KeystoneSettings, Strategy};
use crate::context::RequestContext;
use crate::error::ApiError;

/// Why an auth strategy could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// `strategy = "keystone"` without its settings.
    #[error("strategy = \"keystone\" needs a [keystone_authtoken] table")]
    NoKeystoneSettings,
    /// The validator threads could not be started.
    #[error("cannot start the Keystone validator threads: {0}")]
    Threads(#[source] std::io::Error),
}

/// The configured auth strategy, ready to serve requests.
pub enum Auth {
    /// Every caller is [`RequestContext::noauth`].
    Noauth,
    /// Tokens validated by Keystone.
    Keystone(keystone::Keystone),
}

impl Auth {
    /// Builds `strategy` from its settings. Keystone is not contacted here: the service user
    /// logs in on the first request that needs it, so glint starts even while Keystone is
    /// down (requests then get 503 until it is back).
    pub fn start(
        strategy: Strategy,
        keystone: Option<&KeystoneSettings>,
    ) -> Result<Auth, AuthError> {
        match strategy {
            Strategy::Noauth => Ok(Auth::Noauth),
            Strategy::Keystone => {
                let settings = keystone.ok_or(AuthError::NoKeystoneSettings)?;
                Ok(Auth::Keystone(keystone::Keystone::start(settings)?))
            }
        }
    }

    /// Where tokens' service catalogs come from: Keystone's, or none without auth (then
    /// nothing that needs a catalog, glance-download, can work).
    pub fn catalog_source(&self) -> Option<keystone::CatalogSource> {
        match self {
            Auth::Noauth => None,
            Auth::Keystone(keystone) => Some(keystone.catalog_source()),
        }
    }

    /// The context of a request with these headers, or the error that refuses it (401 for a
    /// missing, invalid or expired token, 503 when Keystone cannot be reached).
    pub async fn context(
        &self,
        headers: &HeaderMap,
        request_id: &str,
    ) -> Result<RequestContext, ApiError> {
        match self {
            Auth::Noauth => Ok(RequestContext::noauth(request_id.to_owned())),
            Auth::Keystone(keystone) => keystone.context(headers, request_id).await,
        }
    }
}
