//! `[database]`: the shared PostgreSQL database several gateways use instead of the embedded
//! redb file (Glance's `[database] connection`). Absent: redb in the data folder.

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret};

/// Where the metadata lives when several gateways share it.
///
/// ```toml
/// [database]
/// connection = "postgresql://glint@db.example:5432/glint"
/// password_file = "/run/secrets/glint-db"
/// sync_on_start = true
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgresql://user@host:port/dbname` (Glance's `connection`). A password written in
    /// the URL works but shows in `check-config`: give it as `password` instead.
    pub connection: String,
    /// The database password (a secret: `password_file` reads it from a file).
    pub password: Secret,
    /// Bring the schema up to date at start-up, as `glint db sync` does. Off by default: an
    /// operator usually migrates once, before starting the new version on every gateway.
    pub sync_on_start: bool,
    /// Most idle connections each gateway keeps open.
    pub max_idle_connections: usize,
    /// Seconds a connection attempt may take.
    pub connect_timeout: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            connection: String::new(),
            password: Secret::default(),
            sync_on_start: false,
            max_idle_connections: 8,
            connect_timeout: 5,
        }
    }
}

impl DatabaseConfig {
    /// Checks the values, naming the key at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: format!("database.{key}"),
            message: message.to_owned(),
        };
        let scheme_ok = ["postgresql://", "postgres://"]
            .iter()
            .any(|scheme| self.connection.starts_with(scheme));
        if !scheme_ok {
            return Err(invalid(
                "connection",
                "must be a postgresql://user@host:port/dbname URL",
            ));
        }
        if self.max_idle_connections == 0 {
            return Err(invalid("max_idle_connections", "must be at least 1"));
        }
        if self.connect_timeout == 0 {
            return Err(invalid("connect_timeout", "must be at least 1 second"));
        }
        Ok(())
    }

    /// The engine's options (the password exposed here, for the driver only).
    pub fn pg_options(&self) -> meta::PgOptions {
        meta::PgOptions {
            password: (!self.password.is_empty()).then(|| self.password.expose().to_owned()),
            max_idle: self.max_idle_connections,
            connect_timeout: std::time::Duration::from_secs(self.connect_timeout),
            ..meta::PgOptions::new(self.connection.clone())
        }
    }
}
