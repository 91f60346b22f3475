//! `[auth]` and `[keystone_authtoken]`: how callers are identified, and how glint's service
//! user reaches Keystone. The strategies themselves live in `auth`, built from these.

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret};

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
    /// Its password (or `password_file`, or `GLINT_KEYSTONE_AUTHTOKEN_PASSWORD`).
    pub password: Secret,
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
            password: Secret::default(),
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
        for (key, empty) in [
            ("username", self.username.is_empty()),
            ("password", self.password.is_empty()),
            ("project_name", self.project_name.is_empty()),
        ] {
            if empty {
                return Err(invalid(key, "must be set"));
            }
        }
        if self.token_cache_size == 0 {
            return Err(invalid("token_cache_size", "must be at least 1"));
        }
        Ok(())
    }

    /// `…/v3`, whether or not `auth_url` names the version.
    pub fn v3_url(&self) -> String {
        let base = self.auth_url.trim_end_matches('/');
        if base.ends_with("/v3") {
            base.to_owned()
        } else {
            format!("{base}/v3")
        }
    }

    /// The `WWW-Authenticate` value of a 401.
    pub fn www_authenticate(&self) -> String {
        let uri = self
            .www_authenticate_uri
            .as_deref()
            .unwrap_or(&self.auth_url);
        format!("Keystone uri=\"{uri}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
