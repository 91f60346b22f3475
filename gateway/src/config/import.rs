//! `[import_filtering_opts]`: which URLs glint may fetch (web-download, the http store,
//! location adds), with Glance's names and defaults. `net::fetch` applies them.

use serde::{Deserialize, Serialize};

/// Glance's `[import_filtering_opts]`, with Glance's names and defaults.
///
/// ```toml
/// [import_filtering_opts]
/// allowed_schemes = ["http", "https"]
/// allowed_hosts = ["mirror.internal", "10.0.0.5"]   # also the only way to reach those
/// allowed_ports = [80, 443, 8080]
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImportFilteringOpts {
    /// Schemes accepted; when not empty, `disallowed_schemes` is ignored (Glance: `http`,
    /// `https`).
    pub allowed_schemes: Vec<String>,
    /// Schemes refused, used only when `allowed_schemes` is empty.
    pub disallowed_schemes: Vec<String>,
    /// Hosts accepted (names or addresses); when not empty, only these are fetched from and
    /// `disallowed_hosts` is ignored. Naming a host here is also the only way to reach it at
    /// a loopback, private, link-local or metadata address.
    pub allowed_hosts: Vec<String>,
    /// Hosts refused (names or addresses), used only when `allowed_hosts` is empty. An
    /// address here is refused whichever name resolves to it.
    pub disallowed_hosts: Vec<String>,
    /// Ports accepted; when not empty, `disallowed_ports` is ignored (Glance: 80, 443).
    pub allowed_ports: Vec<u16>,
    /// Ports refused, used only when `allowed_ports` is empty.
    pub disallowed_ports: Vec<u16>,
}

impl Default for ImportFilteringOpts {
    fn default() -> Self {
        ImportFilteringOpts {
            allowed_schemes: vec!["http".into(), "https".into()],
            disallowed_schemes: Vec::new(),
            allowed_hosts: Vec::new(),
            disallowed_hosts: Vec::new(),
            allowed_ports: vec![80, 443],
            disallowed_ports: Vec::new(),
        }
    }
}
