//! Who is asking: the auth strategies, which turn a request's headers into a
//! [`RequestContext`].
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

pub mod keystone;

use http::HeaderMap;
use serde::{Deserialize, Serialize};

use crate::config::{Config, ConfigError};
use crate::context::RequestContext;
use crate::error::ApiError;

/// The `[auth]` table of the config file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// How callers are identified.
    pub strategy: Strategy,
}

/// How callers are identified.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// No authentication: everyone is an admin of the `glint` project.
    #[default]
    Noauth,
    /// Keystone v3 tokens, validated with the `[keystone_authtoken]` service user.
    Keystone,
}

/// The configured auth strategy, ready to serve requests.
pub enum Auth {
    /// Every caller is [`RequestContext::noauth`].
    Noauth,
    /// Tokens validated by Keystone.
    Keystone(keystone::Keystone),
}

impl Auth {
    /// Builds the strategy the configuration names. Keystone is not contacted here: the
    /// service user logs in on the first request that needs it, so glint starts even while
    /// Keystone is down (requests then get 503 until it is back).
    pub fn from_config(config: &Config) -> Result<Auth, ConfigError> {
        match config.auth.strategy {
            Strategy::Noauth => Ok(Auth::Noauth),
            Strategy::Keystone => {
                let settings =
                    config
                        .keystone_authtoken
                        .as_ref()
                        .ok_or_else(|| ConfigError::Invalid {
                            key: "keystone_authtoken".into(),
                            message: "strategy = \"keystone\" needs a [keystone_authtoken] table"
                                .into(),
                        })?;
                Ok(Auth::Keystone(keystone::Keystone::start(settings)?))
            }
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
