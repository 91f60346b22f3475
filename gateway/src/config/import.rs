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

/// The import plugins glint implements (Glance's names).
pub const IMPORT_PLUGINS: &[&str] = &["image_conversion", "inject_image_metadata"];

/// Glance's `[image_conversion]`: what the `image_conversion` plugin converts to.
///
/// ```toml
/// image_import_plugins = ["image_conversion"]
/// [image_conversion]
/// output_format = "raw"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImageConversion {
    /// `raw`, `qcow2` or `vmdk` (Glance's choices; default `raw`).
    pub output_format: String,
}

impl Default for ImageConversion {
    fn default() -> Self {
        ImageConversion {
            output_format: "raw".into(),
        }
    }
}

/// Glance's `[inject_metadata_properties]`: what the `inject_image_metadata` plugin sets.
///
/// ```toml
/// image_import_plugins = ["inject_image_metadata"]
/// [inject_metadata_properties]
/// ignore_user_roles = ["admin"]
/// inject = { hw_disk_bus = "virtio" }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InjectMetadataProperties {
    /// Users with any of these roles get nothing injected (Glance: `admin`).
    pub ignore_user_roles: Vec<String>,
    /// The properties set on every image such a user imports.
    pub inject: std::collections::BTreeMap<String, String>,
}

impl Default for InjectMetadataProperties {
    fn default() -> Self {
        InjectMetadataProperties {
            ignore_user_roles: vec!["admin".into()],
            inject: Default::default(),
        }
    }
}

/// Glance's `[glance_download_properties]`: which of the remote image's properties a
/// `glance-download` import copies (besides `disk_format` and `container_format`).
///
/// ```toml
/// [glance_download_properties]
/// extra_properties = ["hw_", "trait:", "os_distro", "os_secure_boot", "os_type"]
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GlanceDownloadProperties {
    /// Prefixes of the property names copied (Glance's default). `os_glance*` properties are
    /// never copied (reserved), whatever the prefix.
    pub extra_properties: Vec<String>,
}

impl Default for GlanceDownloadProperties {
    fn default() -> Self {
        GlanceDownloadProperties {
            extra_properties: ["hw_", "trait:", "os_distro", "os_secure_boot", "os_type"]
                .map(str::to_owned)
                .to_vec(),
        }
    }
}
