//! Configuration: one typed [`Config`], built in layers — defaults, then Glance's own
//! `glance-api.conf` when given (`glance`, read as oslo.config reads it by `glance_ini`), then
//! the TOML file, then `GLINT_*` environment variables, then command-line flags — and checked
//! by [`Config::validate`]. No other module reads the environment.
//!
//! This module is a leaf: it holds every settings struct (the `[auth]` and
//! `[keystone_authtoken]` tables too, in `keystone`), and the modules that act on settings
//! (`auth`, the stores) are built from them and report their own errors.
//!
//! Option names follow Glance's where Glance has the option (`image_size_cap`,
//! `hashing_algorithm`, `disk_formats`, …) so an operator's knowledge carries over.
//!
//! How values arrive (`load`): every key of the TOML file can also be set as `GLINT_<KEY>`
//! (tables joined with `_`: `GLINT_KEYSTONE_AUTHTOKEN_USERNAME`); every [`Secret`] can also
//! be read from a file named by `<key>_file` (or `GLINT_<KEY>_FILE`). An unknown key in the
//! file or an unknown `GLINT_*` variable stops start-up, naming the nearest known name: a
//! misspelt setting must not leave its default silently in force.

mod database;
pub mod glance;
mod glance_ini;
mod import;
mod keystone;
mod load;
pub mod schema;
mod secret;
pub mod stores;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use database::DatabaseConfig;
pub use glance::{GlanceOption, GlanceReport, Verdict};
pub use glance_ini::IniError;
pub use import::{
    GlanceDownloadProperties, ImageConversion, ImportFilteringOpts, InjectMetadataProperties,
    IMPORT_PLUGINS,
};
pub use keystone::{AuthConfig, KeystoneSettings, Strategy};
pub use load::{UnknownName, NOT_SETTINGS};
pub use secret::{Secret, REDACTED};
pub use stores::{StoreSettings, StoreType, StoresConfig};

/// Glance's default `disk_formats`.
pub const DEFAULT_DISK_FORMATS: &[&str] = &[
    "ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop",
];
/// Glance's default `container_formats`.
pub const DEFAULT_CONTAINER_FORMATS: &[&str] = &[
    "ami",
    "ari",
    "aki",
    "bare",
    "ovf",
    "ova",
    "docker",
    "compressed",
];
/// Hash algorithms glint can compute inline for `os_hash_value`.
pub const HASH_ALGORITHMS: &[&str] = &["sha512", "sha384", "sha256", "sha1", "md5"];

/// Which io driver the worker runtimes use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IoDriver {
    /// io_uring when the kernel offers it, epoll otherwise.
    Auto,
    /// Always epoll (the fallback), even where io_uring works.
    Epoll,
}

/// Everything the gateway can be told. Every field has a default; see [`Config::default`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the API listens on.
    pub listen: SocketAddr,
    /// Folder for the metadata database (`meta.redb`) and the file store (`images/`).
    pub data_dir: PathBuf,
    /// This gateway's id among the gateways sharing one metadata database: uploads in flight
    /// belong to it, and its start-up recovery resets only those. Unset: a random id
    /// generated on first start and kept in `<data_dir>/node_id`.
    pub node_id: Option<String>,
    /// Worker threads, each with its own runtime and listener; 0 means one per core.
    pub workers: usize,
    /// io driver: `auto` (io_uring, epoll fallback) or `epoll`.
    pub io_driver: IoDriver,
    /// Largest image accepted by an upload, in bytes (Glance `image_size_cap`, 1 TiB).
    pub image_size_cap: u64,
    /// Algorithm of `os_hash_value` (Glance `hashing_algorithm`).
    pub hashing_algorithm: String,
    /// Default page size of image lists (Glance `limit_param_default`).
    pub limit_param_default: usize,
    /// Largest page size of image lists (Glance `api_limit_max`).
    pub api_limit_max: usize,
    /// Extra properties per image; negative means unlimited (Glance `image_property_quota`).
    pub image_property_quota: i64,
    /// Tags per image; negative means unlimited (Glance `image_tag_quota`).
    pub image_tag_quota: i64,
    /// Members per image; negative means unlimited (Glance `image_member_quota`).
    pub image_member_quota: i64,
    /// Per-project limits (Glance's unified-limits quotas), `[quotas]`.
    pub quotas: QuotaConfig,
    /// Accepted `disk_format` values (Glance `disk_formats`).
    pub disk_formats: Vec<String>,
    /// Accepted `container_format` values (Glance `container_formats`).
    pub container_formats: Vec<String>,
    /// Refuse uploads whose content is not the declared `disk_format`
    /// (Glance `[image_format] require_image_format_match`).
    pub require_image_format_match: bool,
    /// VMDK create-types accepted on upload (Glance `vmdk_allowed_types`).
    pub vmdk_allowed_types: Vec<String>,
    /// Safety checks of `gpt` images that only warn: `mbr` (Glance
    /// `gpt_safety_checks_nonfatal`, empty).
    pub gpt_safety_checks_nonfatal: Vec<String>,
    /// Accept qcow2 images with the `extended_l2` incompatible feature. Off by default, as
    /// Glance and Nova, whose inspector refuses it (glint's own key).
    pub qcow2_allow_extended_l2: bool,
    /// Base URL for links in the versions document (Glance `public_endpoint`); unset means
    /// the request's own scheme and host.
    pub public_endpoint: Option<String>,
    /// Longest `x-openstack-request-id` accepted from a client (Glance `max_request_id_length`).
    pub max_request_id_length: usize,
    /// Seconds a connection may take to send a request's headers, may sit idle between
    /// keep-alive requests, or may pause inside a request body (upload or JSON), before it is
    /// closed (a stalled body gets 408); 0 waits forever (Glance `client_socket_timeout`, 900).
    pub client_socket_timeout: u64,
    /// After answering a request whose body it did not read to the end (a refused upload),
    /// glint sends its answer and end of stream, then reads and discards what the client
    /// still sends before it closes, so that the client is not reset before it has read the
    /// answer (nginx's lingering close). This is the longest that lingering lasts, in
    /// milliseconds; 0 closes at once (and the client may lose the answer).
    pub lingering_close_time_ms: u64,
    /// Lingering stops once the client has sent nothing for this many milliseconds.
    pub lingering_close_idle_ms: u64,
    /// Lingering stops once this many bytes were discarded.
    pub lingering_close_max_bytes: u64,
    /// Log format: `text` or `json`.
    pub log_format: LogFormat,
    /// Log filter in `tracing` syntax, e.g. `info` or `info,glint::access=warn`.
    pub log_filter: String,
    /// How callers are identified (`[auth] strategy`: `noauth` or `keystone`).
    pub auth: AuthConfig,
    /// Keystone token validation (keystonemiddleware's `[keystone_authtoken]` keys); needed
    /// by `strategy = "keystone"`.
    pub keystone_authtoken: Option<KeystoneSettings>,
    /// Count and serve Prometheus metrics at `/metrics`; `false` counts nothing (`/metrics`
    /// then answers 404).
    pub metrics_enabled: bool,
    /// Send whole-file and single-range downloads with splice (file → pipe → socket, no copy
    /// through user space) instead of read + write.
    pub zero_copy_download: bool,
    /// The shared PostgreSQL database (`[database]`) of several gateways; unset: the embedded
    /// redb file `<data_dir>/meta.redb`, for one gateway.
    pub database: Option<DatabaseConfig>,
    /// Folder of this gateway's image cache (Glance `image_cache_dir`); unset:
    /// `<data_dir>/image-cache`. Used only when `image_cache_max_size` is above 0.
    pub image_cache_dir: Option<PathBuf>,
    /// Bytes the image cache may hold (Glance `image_cache_max_size`); 0 (the default) means
    /// no cache. A hard limit: space is reserved before a fill, least recently used entries
    /// are evicted to make it, and an image that cannot fit is not cached.
    pub image_cache_max_size: u64,
    /// Images fetched into the cache at once by `PUT /v2/cache/{id}` (the prefetch queue).
    pub image_cache_prefetch_concurrency: usize,
    /// Egress: most image downloads this gateway serves at once; 0 means no limit. A download
    /// beyond it waits up to `download_queue_timeout_ms`, then gets 503. Reloaded on SIGHUP.
    pub max_concurrent_downloads: usize,
    /// Egress: bytes per second all of this gateway's downloads may send together; 0 means no
    /// limit. Reloaded on SIGHUP.
    pub download_bandwidth_limit: u64,
    /// Egress: how long a download waits for a free slot before it is refused with 503.
    pub download_queue_timeout_ms: u64,
    /// Write uploads with O_DIRECT from aligned buffers (no page-cache copy) where the file
    /// system allows it. Off by default: it saved 2–7% of upload CPU, but the fresh image is
    /// then not in the page cache and the first downloads read the disk (docs/PERFORMANCE.md).
    pub direct_io_upload: bool,
    /// The image stores (Glance's `enabled_backends`), `[stores]`; none: one file store
    /// under `data_dir` (see [`stores`]).
    pub stores: StoresConfig,
    /// Which URLs glint may fetch (Glance `[import_filtering_opts]`): the http store's
    /// images, locations added by users.
    pub import_filtering_opts: ImportFilteringOpts,
    /// Show every location of an image (`locations`) and allow the PATCH location
    /// operations (Glance `show_multiple_locations`, deprecated, off).
    pub show_multiple_locations: bool,
    /// Show an image's first location as `direct_url` (Glance `show_image_direct_url`, off).
    pub show_image_direct_url: bool,
    /// Compute `checksum` and `os_hash_value` of data added by location, in the background
    /// (Glance `do_secure_hash`, on).
    pub do_secure_hash: bool,
    /// Locations per image; negative means unlimited (Glance `image_location_quota`, 10).
    pub image_location_quota: i64,
    /// Import methods offered by `POST /v2/images/{id}/import` and listed by
    /// `/v2/info/import` (Glance `enabled_import_methods`: `glance-direct`, `web-download`,
    /// `copy-image` by default; `glance-download` when named). `PUT /stage` needs
    /// `glance-direct`; `glance-download` needs Keystone auth (the service catalog).
    pub enabled_import_methods: Vec<String>,
    /// Folder of staged data (`PUT /stage`), one file per image (Glance `node_staging_uri`);
    /// unset: `<data_dir>/staging`. Staged data is node-local: imports of it run here.
    pub node_staging_dir: Option<PathBuf>,
    /// Imports running at once on this gateway; more wait, `pending` (Glance's tasks pool).
    pub import_workers: usize,
    /// Seconds an import's lease lasts: the running gateway renews it every third of that; a
    /// lease left to lapse (its gateway died) lets another gateway take the import lock over
    /// and revert what the import left.
    pub import_lease_seconds: u64,
    /// This gateway's own URL, reachable from the other gateways (Glance
    /// `worker_self_reference_url`): recorded on an image as `os_glance_stage_host` when a
    /// stage finishes here, so that an import or a delete of the staged image arriving at
    /// another gateway is proxied here. Unset: staged data must be imported through the
    /// gateway that staged it.
    pub worker_self_reference_url: Option<String>,
    /// Hours a finished task is kept (Glance `[task] task_time_to_live`, 48).
    pub task_time_to_live: u64,
    /// Plugins run by glance-direct and web-download imports, in order (Glance
    /// `[image_import_opts] image_import_plugins`): `image_conversion`,
    /// `inject_image_metadata`. None by default.
    pub image_import_plugins: Vec<String>,
    /// The `image_conversion` plugin's settings (Glance `[image_conversion]`).
    pub image_conversion: ImageConversion,
    /// The `inject_image_metadata` plugin's settings (Glance `[inject_metadata_properties]`).
    pub inject_metadata_properties: InjectMetadataProperties,
    /// What a `glance-download` import copies from the remote image (Glance
    /// `[glance_download_properties]`).
    pub glance_download_properties: GlanceDownloadProperties,
}

/// The import methods glint implements, in Glance's order.
pub const IMPORT_METHODS: &[&str] = &[
    "glance-direct",
    "web-download",
    "copy-image",
    "glance-download",
];

/// The import methods enabled by default (Glance's default: `glance-download` is opt-in).
pub const DEFAULT_IMPORT_METHODS: &[&str] = &["glance-direct", "web-download", "copy-image"];

/// Per-project limits, as Keystone's registered limits (defaults) and project limits
/// (overrides) would give them to Glance. Negative means unlimited; sizes are MiB.
///
/// ```toml
/// [quotas]
/// image_count_total = 100
/// [quotas.projects."8d3c2f…"]
/// image_count_total = 1000
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotaConfig {
    /// Images a project may own.
    pub image_count_total: i64,
    /// MiB of image data a project may hold.
    pub image_size_total: i64,
    /// MiB a project may have staged (`PUT /stage`).
    pub image_stage_total: i64,
    /// Images of a project receiving data at once.
    pub image_count_uploading: i64,
    /// Overrides by project id; a key left out keeps the default above.
    pub projects: std::collections::BTreeMap<String, QuotaOverrides>,
}

/// One project's overrides of [`QuotaConfig`]'s defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotaOverrides {
    /// See [`QuotaConfig::image_count_total`].
    pub image_count_total: Option<i64>,
    /// See [`QuotaConfig::image_size_total`].
    pub image_size_total: Option<i64>,
    /// See [`QuotaConfig::image_stage_total`].
    pub image_stage_total: Option<i64>,
    /// See [`QuotaConfig::image_count_uploading`].
    pub image_count_uploading: Option<i64>,
}

impl Default for QuotaConfig {
    /// Unlimited, as Glance without `use_keystone_limits`.
    fn default() -> Self {
        QuotaConfig {
            image_count_total: -1,
            image_size_total: -1,
            image_stage_total: -1,
            image_count_uploading: -1,
            projects: Default::default(),
        }
    }
}

impl QuotaConfig {
    /// The limits of `project`: its overrides, else the defaults.
    pub fn limits_for(&self, project: Option<&str>) -> meta::Limits {
        let overrides = project.and_then(|p| self.projects.get(p));
        let pick = |default: i64, get: fn(&QuotaOverrides) -> Option<i64>| {
            let value = overrides.and_then(get).unwrap_or(default);
            u64::try_from(value).ok()
        };
        meta::Limits {
            image_count_total: pick(self.image_count_total, |o| o.image_count_total),
            image_size_total_mib: pick(self.image_size_total, |o| o.image_size_total),
            image_stage_total_mib: pick(self.image_stage_total, |o| o.image_stage_total),
            image_count_uploading: pick(self.image_count_uploading, |o| o.image_count_uploading),
        }
    }
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 9292)),
            data_dir: PathBuf::from("./glint-data"),
            node_id: None,
            workers: 0,
            io_driver: IoDriver::Auto,
            image_size_cap: 1 << 40,
            hashing_algorithm: "sha512".to_owned(),
            limit_param_default: 25,
            api_limit_max: 1000,
            image_property_quota: 128,
            image_tag_quota: 128,
            image_member_quota: 128,
            quotas: QuotaConfig::default(),
            disk_formats: DEFAULT_DISK_FORMATS.iter().map(|s| s.to_string()).collect(),
            container_formats: DEFAULT_CONTAINER_FORMATS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            require_image_format_match: true,
            vmdk_allowed_types: vec!["streamOptimized".to_owned(), "monolithicSparse".to_owned()],
            gpt_safety_checks_nonfatal: Vec::new(),
            qcow2_allow_extended_l2: false,
            public_endpoint: None,
            max_request_id_length: 64,
            client_socket_timeout: 900,
            lingering_close_time_ms: 30_000,
            lingering_close_idle_ms: 5_000,
            lingering_close_max_bytes: 1 << 30,
            log_format: LogFormat::Text,
            log_filter: "info".to_owned(),
            auth: AuthConfig::default(),
            keystone_authtoken: None,
            metrics_enabled: true,
            zero_copy_download: true,
            direct_io_upload: false,
            database: None,
            image_cache_dir: None,
            image_cache_max_size: 0,
            image_cache_prefetch_concurrency: 2,
            max_concurrent_downloads: 0,
            download_bandwidth_limit: 0,
            download_queue_timeout_ms: 2_000,
            stores: StoresConfig::default(),
            import_filtering_opts: ImportFilteringOpts::default(),
            show_multiple_locations: false,
            show_image_direct_url: false,
            do_secure_hash: true,
            image_location_quota: 10,
            enabled_import_methods: DEFAULT_IMPORT_METHODS
                .iter()
                .map(|m| m.to_string())
                .collect(),
            node_staging_dir: None,
            import_workers: 4,
            import_lease_seconds: 60,
            worker_self_reference_url: None,
            task_time_to_live: 48,
            image_import_plugins: Vec::new(),
            image_conversion: ImageConversion::default(),
            inject_metadata_properties: InjectMetadataProperties::default(),
            glance_download_properties: GlanceDownloadProperties::default(),
        }
    }
}

/// A configuration that cannot be used, naming the key at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The TOML file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TOML file is not valid, or has an unknown key.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (it names the key).
        message: String,
    },
    /// A value is out of range or not understood.
    #[error("invalid value for `{key}`: {message}")]
    Invalid {
        /// The key at fault (file key or `GLINT_*` variable).
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// Keys of the file or `GLINT_*` variables that glint does not know.
    #[error("{}", UnknownName::describe_all(.0))]
    Unknown(Vec<UnknownName>),
    /// A secret's `<key>_file` could not be read.
    #[error("cannot read `{key}` from {path}: {source}")]
    SecretFile {
        /// The secret's key (`keystone_authtoken.password`).
        key: String,
        /// The file named by `<key>_file`.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl Config {
    /// Defaults, then the TOML file at `path` (when given), then the `GLINT_*` variables among
    /// `vars` (normally `std::env::vars()`), with secrets read from their `<key>_file`s.
    /// Flags and [`Config::validate`] are the caller's.
    pub fn load(
        path: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let text = match path {
            Some(path) => {
                Some(
                    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                        path: path.to_owned(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        load::load(text.as_deref().zip(path), vars)
    }

    /// [`Config::load`] under the settings of a Glance configuration file (`glance-api.conf`,
    /// read as oslo.config reads it): defaults, then what `glance` maps to, then the TOML file
    /// at `path`, then the `GLINT_*` variables. Also returns what became of each option the
    /// Glance file sets ([`GlanceReport`]).
    pub fn load_with_glance(
        glance: Option<&Path>,
        path: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Config, Option<GlanceReport>), ConfigError> {
        let (base, report) = match glance {
            Some(glance_path) => {
                let (table, report) = glance::read(glance_path)?;
                (Some((table, glance_path)), Some(report))
            }
            None => (None, None),
        };
        let text = match path {
            Some(path) => {
                Some(
                    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                        path: path.to_owned(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        let config = load::load_over(base, text.as_deref().zip(path), vars)?;
        Ok((config, report))
    }

    /// [`Config::load`] from TOML text (the file named `origin` in messages), no environment.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        load::load(Some((text, origin)), std::iter::empty())
    }

    /// The shape of the configuration (`schema`): the defaults with every optional table
    /// present, so that their keys are known too. A new optional table goes here.
    pub fn schema() -> schema::Node {
        let mut sample = Config {
            keystone_authtoken: Some(KeystoneSettings::default()),
            database: Some(DatabaseConfig::default()),
            image_cache_dir: Some(PathBuf::new()),
            ..Config::default()
        };
        sample
            .quotas
            .projects
            .insert(String::new(), QuotaOverrides::default());
        sample
            .stores
            .stores
            .insert(String::new(), StoreSettings::sample());
        schema::Node::of(&sample)
    }

    /// The format-inspection policy uploads are judged by.
    pub fn format_policy(&self) -> formats::Policy {
        formats::Policy {
            require_format_match: self.require_image_format_match,
            vmdk_allowed_types: self.vmdk_allowed_types.clone(),
            gpt_safety_checks_nonfatal: self.gpt_safety_checks_nonfatal.clone(),
            qcow2_allow_extended_l2: self.qcow2_allow_extended_l2,
        }
    }

    /// Checks every value that could be wrong, naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: key.into(),
            message,
        };
        if !HASH_ALGORITHMS.contains(&self.hashing_algorithm.as_str()) {
            return Err(invalid(
                "hashing_algorithm",
                format!(
                    "{:?} is not one of {}",
                    self.hashing_algorithm,
                    HASH_ALGORITHMS.join(", ")
                ),
            ));
        }
        if let Some(node_id) = &self.node_id {
            node_id
                .parse::<meta::NodeId>()
                .map_err(|e| invalid("node_id", e.to_string()))?;
        }
        if self.limit_param_default == 0 || self.limit_param_default > self.api_limit_max {
            return Err(invalid(
                "limit_param_default",
                "must be between 1 and api_limit_max".to_owned(),
            ));
        }
        if self.disk_formats.is_empty() {
            return Err(invalid("disk_formats", "must not be empty".to_owned()));
        }
        if self.container_formats.is_empty() {
            return Err(invalid("container_formats", "must not be empty".to_owned()));
        }
        if let Some(endpoint) = &self.public_endpoint {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Err(invalid(
                    "public_endpoint",
                    "must start with http:// or https://".into(),
                ));
            }
        }
        if let Some(url) = &self.worker_self_reference_url {
            let rest = url
                .strip_prefix("http://")
                .or_else(|| url.strip_prefix("https://"));
            let plain = rest.is_some_and(|rest| {
                !rest.is_empty()
                    && !rest.starts_with('/')
                    && rest
                        .bytes()
                        .all(|b| b > b' ' && b < 0x7f && !matches!(b, b'?' | b'#' | b'@'))
            });
            if !plain {
                return Err(invalid(
                    "worker_self_reference_url",
                    "must be an http:// or https:// URL without userinfo, query or fragment \
                     (this gateway's own, reachable from the other gateways)"
                        .into(),
                ));
            }
        }
        for method in &self.enabled_import_methods {
            if !IMPORT_METHODS.contains(&method.as_str()) {
                return Err(invalid(
                    "enabled_import_methods",
                    format!("{method:?} is not one of {}", IMPORT_METHODS.join(", ")),
                ));
            }
        }
        for plugin in &self.image_import_plugins {
            if !IMPORT_PLUGINS.contains(&plugin.as_str()) {
                return Err(invalid(
                    "image_import_plugins",
                    format!("{plugin:?} is not one of {}", IMPORT_PLUGINS.join(", ")),
                ));
            }
        }
        if !["raw", "qcow2", "vmdk"].contains(&self.image_conversion.output_format.as_str()) {
            return Err(invalid(
                "image_conversion.output_format",
                "must be raw, qcow2 or vmdk".into(),
            ));
        }
        if self.import_workers == 0 {
            return Err(invalid("import_workers", "must be at least 1".into()));
        }
        if self.import_lease_seconds < 3 {
            return Err(invalid("import_lease_seconds", "must be at least 3".into()));
        }
        if let Some(database) = &self.database {
            database.validate()?;
        }
        if self.image_cache_max_size > 0 && self.image_cache_prefetch_concurrency == 0 {
            return Err(invalid(
                "image_cache_prefetch_concurrency",
                "must be at least 1 when the cache is on".into(),
            ));
        }
        self.stores.check()?;
        if self.auth.strategy == Strategy::Keystone {
            match &self.keystone_authtoken {
                Some(settings) => settings.validate()?,
                None => {
                    return Err(invalid(
                        "keystone_authtoken",
                        "[auth] strategy = \"keystone\" needs a [keystone_authtoken] table".into(),
                    ))
                }
            }
        }
        Ok(())
    }

    /// Worker threads to start: the configured number, or one per core.
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }
    }

    /// The file store's folder.
    pub fn images_dir(&self) -> PathBuf {
        self.data_dir.join("images")
    }

    /// The staging folder (`PUT /stage`).
    pub fn staging_dir(&self) -> PathBuf {
        self.node_staging_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("staging"))
    }

    /// The metadata database file.
    pub fn meta_path(&self) -> PathBuf {
        self.data_dir.join("meta.redb")
    }

    /// `client_socket_timeout` as a duration; `None` for 0 (wait forever).
    pub fn client_socket_timeout(&self) -> Option<std::time::Duration> {
        (self.client_socket_timeout > 0)
            .then(|| std::time::Duration::from_secs(self.client_socket_timeout))
    }

    /// The image cache's folder, when the cache is on.
    pub fn cache_dir(&self) -> Option<PathBuf> {
        (self.image_cache_max_size > 0).then(|| {
            self.image_cache_dir
                .clone()
                .unwrap_or_else(|| self.data_dir.join("image-cache"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_glance_like() {
        let c = Config::default();
        c.validate().unwrap();
        assert_eq!(c.image_size_cap, 1_099_511_627_776);
        assert_eq!(c.limit_param_default, 25);
        assert_eq!(c.listen.to_string(), "127.0.0.1:9292");
    }

    fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("glint.toml"))
    }

    #[test]
    fn unknown_file_key_is_named() {
        let err = from_toml("listne = \"127.0.0.1:1\"").unwrap_err();
        assert!(err.to_string().contains("listne"), "{err}");
    }

    #[test]
    fn keystone_strategy_needs_its_table() {
        let c = from_toml("[auth]\nstrategy = \"keystone\"\n").unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("keystone_authtoken"), "{err}");
        let c = from_toml(
            "[auth]\nstrategy = \"keystone\"\n[keystone_authtoken]\n\
             auth_url = \"http://127.0.0.1:5000/v3\"\nusername = \"glance\"\n\
             password = \"secret\"\nproject_name = \"service\"\n\
             memcached_servers = \"127.0.0.1:11211\"\n",
        )
        .unwrap();
        c.validate().unwrap();
        let settings = c.keystone_authtoken.unwrap();
        assert_eq!(settings.user_domain_name, "Default");
        assert_eq!(settings.token_cache_time, 300);
    }

    #[test]
    fn quotas_default_to_unlimited_and_projects_override_keys() {
        let c = from_toml(
            "[quotas]\nimage_count_total = 10\n[quotas.projects.B]\nimage_count_total = 2\n\
             image_size_total = 0\n",
        )
        .unwrap();
        let default = c.quotas.limits_for(Some("A"));
        assert_eq!(default.image_count_total, Some(10));
        assert_eq!(default.image_size_total_mib, None);
        let b = c.quotas.limits_for(Some("B"));
        assert_eq!(b.image_count_total, Some(2));
        assert_eq!(b.image_size_total_mib, Some(0));
        assert_eq!(b.image_count_uploading, None);
        assert_eq!(
            Config::default().quotas.limits_for(None),
            meta::Limits::UNLIMITED
        );
        let err = from_toml("[quotas]\nimage_count = 1\n").unwrap_err();
        assert!(err.to_string().contains("image_count"), "{err}");
    }

    #[test]
    fn node_id_is_checked_and_set_by_env() {
        let mut c = Config::load(None, [("GLINT_NODE_ID".to_owned(), "gw-1".to_owned())]).unwrap();
        assert_eq!(c.node_id.as_deref(), Some("gw-1"));
        c.validate().unwrap();
        c.node_id = Some("two words".into());
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("node_id"), "{err}");
    }

    #[test]
    fn database_table_takes_a_url_and_a_secret_password() {
        let c = from_toml(
            "[database]\nconnection = \"postgresql://glint@db:5432/glint\"\n\
             password = \"s3cret\"\nsync_on_start = true\n",
        )
        .unwrap();
        c.validate().unwrap();
        let db = c.database.as_ref().unwrap();
        assert!(db.sync_on_start);
        assert_eq!(db.pg_options().password.as_deref(), Some("s3cret"));
        let shown = toml::to_string(&c).unwrap();
        assert!(!shown.contains("s3cret"), "{shown}");
        let c = Config::load(
            None,
            [(
                "GLINT_DATABASE_CONNECTION".to_owned(),
                "mysql://x".to_owned(),
            )],
        )
        .unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("database.connection"), "{err}");
    }

    #[test]
    fn the_cache_is_off_unless_it_has_a_size() {
        let c = Config::default();
        assert_eq!(c.cache_dir(), None);
        let c = from_toml("image_cache_max_size = 1048576\n").unwrap();
        assert_eq!(c.cache_dir(), Some(c.data_dir.join("image-cache")));
        let c =
            from_toml("image_cache_max_size = 1\nimage_cache_dir = \"/var/cache/g\"\n").unwrap();
        assert_eq!(c.cache_dir(), Some(PathBuf::from("/var/cache/g")));
    }

    #[test]
    fn rejects_unknown_hash() {
        let c = Config {
            hashing_algorithm: "crc32".into(),
            ..Config::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("hashing_algorithm"));
    }
}
