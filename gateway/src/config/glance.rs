//! `--glance-config glance-api.conf`: Glance's own configuration file, read as it is
//! (`glance_ini`), translated into glint's settings, with a verdict on every option it sets.
//!
//! The translation is a layer under the TOML file: defaults → glance-api.conf → TOML file →
//! `GLINT_*` → flags. It produces the same table a TOML file would, so that the loader checks
//! and deserializes both alike, and a [`GlanceReport`]: for each option the file sets, either
//! the glint key it became or why not —
//!
//! - **mapped**: read into a glint setting of the same meaning;
//! - **ignored (harmless)**: glint has no such setting, and clients see no difference
//!   (logging, the message queue, Glance's own worker pools, …);
//! - **not supported (changes behaviour)**: glint does not do what this value asks (a
//!   CORS policy, delayed delete, Keystone unified limits, a store kind glint lacks, …);
//! - **unknown**: no option of Glance's has this name (Glance ignores it too), with the
//!   nearest one.
//!
//! Which options exist comes from Glance's own sample configuration (`glance_options.txt`,
//! written by `scripts/glance_options.py` from the `glance-api.conf` in Glance's PyPI package),
//! plus the options of older Glance releases and of keystoneauth's password plugin, which the
//! sample does not list. Values are checked with oslo's types; an invalid value of a mapped
//! option stops start-up, naming the section, the option and the line.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use toml::{Table, Value as Toml};

use super::glance_ini::{self, IniFile, Value};
use super::schema::nearest;
use super::ConfigError;

mod import;
mod stores;

/// What glint made of one option of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Read into glint's setting `key` (a dotted key of the TOML file), with a note on how,
    /// where the meaning is not exactly Glance's.
    Mapped {
        /// The glint key.
        key: String,
        /// How the value was taken, when that needs saying.
        note: Option<String>,
    },
    /// glint has no such setting, and clients see no difference; why.
    Ignored(String),
    /// glint does not do what this value asks; what differs.
    Unsupported(String),
    /// Not an option of Glance's (Glance ignores it as well); the nearest one.
    Unknown {
        /// The nearest option of the same section, if any.
        nearest: Option<String>,
    },
}

impl Verdict {
    fn mapped(key: &str) -> Verdict {
        Verdict::Mapped {
            key: key.to_owned(),
            note: None,
        }
    }
}

/// One option the file sets, and its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlanceOption {
    /// Its section, normalized (`DEFAULT`, `keystone_authtoken`, …).
    pub section: String,
    /// Its name as written.
    pub name: String,
    /// The line it is set on (the last time, when set more than once).
    pub line: usize,
    /// What glint made of it.
    pub verdict: Verdict,
}

impl fmt::Display for GlanceOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = format!("[{}] {} (line {})", self.section, self.name, self.line);
        match &self.verdict {
            Verdict::Mapped { key, note: None } => write!(f, "{what}: mapped to `{key}`"),
            Verdict::Mapped {
                key,
                note: Some(note),
            } => write!(f, "{what}: mapped to `{key}` ({note})"),
            Verdict::Ignored(why) => write!(f, "{what}: ignored (harmless): {why}"),
            Verdict::Unsupported(why) => {
                write!(f, "{what}: not supported (changes behaviour): {why}")
            }
            Verdict::Unknown { nearest: Some(n) } => {
                write!(
                    f,
                    "{what}: not a Glance option, ignored (did you mean `{n}`?)"
                )
            }
            Verdict::Unknown { nearest: None } => {
                write!(f, "{what}: not a Glance option, ignored")
            }
        }
    }
}

/// Every option a glance-api.conf set, with its verdict, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GlanceReport {
    /// The file.
    pub path: PathBuf,
    /// The options, by line.
    pub options: Vec<GlanceOption>,
}

impl GlanceReport {
    /// The options glint did not take (everything but mapped ones).
    pub fn not_taken(&self) -> impl Iterator<Item = &GlanceOption> {
        self.options
            .iter()
            .filter(|o| !matches!(o.verdict, Verdict::Mapped { .. }))
    }

    /// The options whose values glint does not honour.
    pub fn unsupported(&self) -> impl Iterator<Item = &GlanceOption> {
        self.options
            .iter()
            .filter(|o| matches!(o.verdict, Verdict::Unsupported(_)))
    }
}

/// An option's type in Glance's catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Int,
    Float,
    Str,
    List,
    Dict,
    Multi,
}

/// Glance's options: `(section, name)` → kind, and deprecated names → current ones.
struct Catalog {
    options: BTreeMap<(String, String), Kind>,
    renamed: BTreeMap<(String, String), (String, String)>,
}

/// Glance's sample configuration's options (see the module docs).
const SAMPLE_OPTIONS: &str = include_str!("glance_options.txt");

/// Options older Glance releases had (the eventlet server's, the registry's, v1's) that a
/// glance-api.conf written for them may still set; the sample no longer lists them.
const OLDER_OPTIONS: &[(&str, &str, Kind)] = &[
    ("DEFAULT", "bind_host", Kind::Str),
    ("DEFAULT", "bind_port", Kind::Int),
    ("DEFAULT", "workers", Kind::Int),
    ("DEFAULT", "client_socket_timeout", Kind::Int),
    ("DEFAULT", "backlog", Kind::Int),
    ("DEFAULT", "tcp_keepidle", Kind::Int),
    ("DEFAULT", "http_keepalive", Kind::Bool),
    ("DEFAULT", "max_header_line", Kind::Int),
    ("DEFAULT", "cert_file", Kind::Str),
    ("DEFAULT", "key_file", Kind::Str),
    ("DEFAULT", "ca_file", Kind::Str),
    ("DEFAULT", "secure_proxy_ssl_header", Kind::Str),
    ("DEFAULT", "verbose", Kind::Bool),
    ("DEFAULT", "enable_v1_api", Kind::Bool),
    ("DEFAULT", "enable_v2_api", Kind::Bool),
    ("DEFAULT", "enable_v1_registry", Kind::Bool),
    ("DEFAULT", "enable_v2_registry", Kind::Bool),
    ("DEFAULT", "registry_host", Kind::Str),
    ("DEFAULT", "registry_port", Kind::Int),
    ("DEFAULT", "data_api", Kind::Str),
    ("DEFAULT", "owner_is_tenant", Kind::Bool),
    ("DEFAULT", "location_strategy", Kind::Str),
    ("DEFAULT", "enable_image_import", Kind::Bool),
    ("DEFAULT", "image_cache_driver", Kind::Str),
    // keystoneauth's loading options, which the sample lists for some sections only.
    ("oslo_limit", "auth_type", Kind::Str),
    ("oslo_limit", "auth_section", Kind::Str),
];

/// keystoneauth's password plugin options, which `auth_type = password` adds to
/// `[keystone_authtoken]` (the sample, generated without a plugin, does not list them).
const PASSWORD_PLUGIN_OPTIONS: &[&str] = &[
    "auth_url",
    "username",
    "password",
    "project_name",
    "user_domain_name",
    "project_domain_name",
    "user_id",
    "user_domain_id",
    "project_id",
    "project_domain_id",
    "domain_id",
    "domain_name",
    "trust_id",
    "system_scope",
    "default_domain_id",
    "default_domain_name",
    "tenant_id",
    "tenant_name",
];

fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let mut options = BTreeMap::new();
        let mut renamed = BTreeMap::new();
        let mut section = String::new();
        for line in SAMPLE_OPTIONS.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = glance_ini::normalize_section(name);
                continue;
            }
            let mut fields = line.split_whitespace();
            let (Some(name), Some(kind)) = (fields.next(), fields.next()) else {
                continue;
            };
            let kind = match kind {
                "bool" => Kind::Bool,
                "int" => Kind::Int,
                "float" => Kind::Float,
                "list" => Kind::List,
                "dict" => Kind::Dict,
                "multi" => Kind::Multi,
                _ => Kind::Str,
            };
            options.insert((section.clone(), name.to_owned()), kind);
            for old in fields.next().into_iter().flat_map(|d| d.split(',')) {
                if let Some((group, old_name)) = old.split_once('/') {
                    let key = (glance_ini::normalize_section(group), old_name.to_owned());
                    if key != (section.clone(), name.to_owned()) {
                        renamed.insert(key, (section.clone(), name.to_owned()));
                    }
                }
            }
        }
        for (section, name, kind) in OLDER_OPTIONS {
            options.insert((section.to_string(), name.to_string()), *kind);
        }
        for (section, name, kind) in import::OPTIONS {
            options.insert((section.to_string(), name.to_string()), *kind);
        }
        for name in PASSWORD_PLUGIN_OPTIONS {
            options.insert(("keystone_authtoken".into(), name.to_string()), Kind::Str);
        }
        Catalog { options, renamed }
    })
}

/// The option kinds of store sections, by Glance's store type (`enabled_backends` values):
/// the sample lists each type's options under its own group.
fn store_type_group(store_type: &str) -> Option<&'static str> {
    Some(match store_type {
        "file" => "file",
        "http" => "glance.store.http.store",
        "rbd" => "glance.store.rbd.store",
        "s3" => "glance.store.s3.store",
        "swift" => "glance.store.swift.store",
        "vmware" => "glance.store.vmware_datastore.store",
        "cinder" => "cinder",
        _ => return None,
    })
}

/// Sections glint has no use for, whatever they hold, and why that is harmless.
const HARMLESS_SECTIONS: &[(&str, &str)] = &[
    (
        "oslo_messaging_rabbit",
        "message-queue transport (glint sends no notifications)",
    ),
    (
        "oslo_messaging_kafka",
        "message-queue transport (glint sends no notifications)",
    ),
    ("oslo_concurrency", "Glance's inter-process locks"),
    ("oslo_reports", "Guru Meditation reports"),
    ("os_brick", "the cinder store's volume attachment"),
    (
        "profiler",
        "OSProfiler tracing (glint traces with its own logs and metrics)",
    ),
    (
        "healthcheck",
        "oslo.middleware's health check (glint serves /healthcheck itself)",
    ),
    ("wsgi", "Glance's WSGI thread pool"),
    ("task", "Glance's task runner"),
    ("taskflow_executor", "Glance's task runner"),
    (
        "oslo_limit",
        "Keystone unified limits, used only with use_keystone_limits",
    ),
    (
        "database",
        "Glance's SQLAlchemy settings: glint's PostgreSQL ([database], mapped from a \
         postgresql:// connection) has its own",
    ),
    (
        "os_glance_staging_store",
        "the staging area of image import",
    ),
    ("os_glance_tasks_store", "the work area of image import"),
];

/// Sections whose options ask for something glint does not do.
const UNSUPPORTED_SECTIONS: &[(&str, &str)] = &[
    (
        "cors",
        "glint answers no CORS preflight and sends no CORS headers",
    ),
    ("barbican", "glint does not verify image signatures"),
    (
        "barbican_service_user",
        "glint does not verify image signatures",
    ),
    ("key_manager", "glint does not verify image signatures"),
    ("vault", "glint does not verify image signatures"),
    ("cinder", "glint has no cinder store"),
    ("glance.store.rbd.store", "glint has no rbd store"),
    ("glance.store.swift.store", "glint has no swift store"),
    (
        "glance.store.vmware_datastore.store",
        "glint has no vmware store",
    ),
];

/// DEFAULT options of oslo.log and oslo.messaging: glint logs to stderr (`log_filter`,
/// `log_format`) and sends no notifications.
fn is_logging_or_messaging(name: &str) -> bool {
    const NAMES: &[&str] = &[
        "log_config_append",
        "log_date_format",
        "log_file",
        "log_dir",
        "watch_log_file",
        "use_syslog",
        "use_journal",
        "syslog_log_facility",
        "use_json",
        "use_stderr",
        "log_color",
        "log_rotate_interval",
        "log_rotate_interval_type",
        "max_logfile_count",
        "max_logfile_size_mb",
        "log_rotation_type",
        "default_log_levels",
        "publish_errors",
        "instance_format",
        "instance_uuid_format",
        "rate_limit_interval",
        "rate_limit_burst",
        "rate_limit_except_level",
        "fatal_deprecations",
        "verbose",
        "executor_thread_pool_size",
        "rpc_response_timeout",
        "transport_url",
        "control_exchange",
        "rpc_ping_enabled",
        "default_publisher_id",
        "disabled_notifications",
    ];
    NAMES.contains(&name) || name.starts_with("logging_")
}

/// The translation under way: the table being built and what was learnt.
struct Translation<'a> {
    ini: &'a IniFile,
    table: Table,
    report: Vec<GlanceOption>,
    /// The stores the file enables (`stores`).
    stores: stores::Layout,
}

impl Translation<'_> {
    fn invalid(&self, section: &str, name: &str, line: usize, message: &str) -> ConfigError {
        ConfigError::Invalid {
            key: format!(
                "[{section}] {name} ({} line {line})",
                self.ini.path().display()
            ),
            message: message.to_owned(),
        }
    }

    fn put(&mut self, key: &str, value: Toml) {
        let (leaf, parents) = key
            .rsplit_once('.')
            .map_or((key, None), |(p, l)| (l, Some(p)));
        let mut here = &mut self.table;
        for parent in parents.into_iter().flat_map(|p| p.split('.')) {
            let entry = here
                .entry(parent.to_owned())
                .or_insert_with(|| Toml::Table(Table::new()));
            here = match entry {
                Toml::Table(sub) => sub,
                _ => unreachable_table(),
            };
        }
        here.insert(leaf.to_owned(), value);
    }

    fn value(&self, section: &str, name: &str) -> Result<Option<Value>, ConfigError> {
        self.ini
            .get(section, name)
            .map_err(|e| ConfigError::Invalid {
                key: format!("[{section}] {name}"),
                message: e.to_string(),
            })
    }

    fn int(
        &self,
        section: &str,
        name: &str,
        value: &Value,
        min: i128,
    ) -> Result<Option<i128>, ConfigError> {
        let parsed = glance_ini::parse_int(&value.text)
            .map_err(|m| self.invalid(section, name, value.line, &m))?;
        match parsed {
            Some(n) if n < min => Err(self.invalid(
                section,
                name,
                value.line,
                &format!("must be at least {min}"),
            )),
            other => Ok(other),
        }
    }

    fn boolean(&self, section: &str, name: &str, value: &Value) -> Result<bool, ConfigError> {
        glance_ini::parse_bool(&value.text).map_err(|m| self.invalid(section, name, value.line, &m))
    }
}

/// A table path holding a non-table: the translation only writes tables where the schema has
/// them, so this cannot happen.
fn unreachable_table() -> ! {
    panic!("the glance-api.conf translation wrote a value where a table belongs")
}

fn list_value(text: &str) -> Toml {
    Toml::Array(
        glance_ini::parse_list(text)
            .into_iter()
            .map(Toml::String)
            .collect(),
    )
}

/// `user_storage_quota`: a byte count with an optional `B`/`KB`/`MB`/`GB`/`TB` suffix (powers
/// of 1024, as Glance's `utils.get_storage_quota` reads them).
fn parse_storage_quota(text: &str) -> Option<u128> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "B"),
    };
    let shift = match unit {
        "B" => 0,
        "KB" => 10,
        "MB" => 20,
        "GB" => 30,
        "TB" => 40,
        _ => return None,
    };
    let n: u128 = digits.parse().ok()?;
    n.checked_mul(1u128 << shift)
}

/// Translates `ini` into a table of glint settings (keys as in the TOML file) and a report on
/// every option it sets.
pub fn translate(ini: &IniFile) -> Result<(Table, GlanceReport), ConfigError> {
    let mut t = Translation {
        ini,
        table: Table::new(),
        report: Vec::new(),
        stores: stores::Layout::default(),
    };
    stores::prepare(&mut t)?;
    let catalog = catalog();
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    let mut listen_host: Option<(String, usize)> = None;
    let mut listen_port: Option<(u16, usize)> = None;
    // The options, each once (its last setting), in file order of that setting.
    let mut options: Vec<(String, String, usize)> = Vec::new();
    for (section, found) in ini.sections() {
        for entry in found.entries.iter().rev() {
            if seen.insert((section.to_owned(), entry.key.clone())) {
                options.push((section.to_owned(), entry.key.clone(), entry.line));
            }
        }
    }
    options.sort_by_key(|(_, _, line)| *line);
    for (section, name, line) in options {
        // A deprecated name reads as the current one, unless the current one is also set
        // (oslo prefers it).
        let (canon_section, canon_name) =
            match catalog.renamed.get(&(section.clone(), name.clone())) {
                Some((s, n)) if ini.entry(s, n).is_none() => (s.clone(), n.clone()),
                Some(_) => {
                    t.report.push(GlanceOption {
                        section: section.clone(),
                        name: name.clone(),
                        line,
                        verdict: Verdict::Ignored(
                            "a deprecated name of an option the file also sets by its current name"
                                .into(),
                        ),
                    });
                    continue;
                }
                None => (section.clone(), name.clone()),
            };
        let value = ini
            .get(&section, &name)
            .map_err(|e| ConfigError::Invalid {
                key: format!("[{section}] {name}"),
                message: e.to_string(),
            })?
            .expect("the option was found in the file");
        let verdict = classify(&mut t, &canon_section, &canon_name, &value)?;
        match (canon_section.as_str(), canon_name.as_str(), &verdict) {
            ("DEFAULT", "bind_host", _) => listen_host = Some((value.text.clone(), line)),
            ("DEFAULT", "bind_port", _) => {
                let port = t
                    .int(&section, &name, &value, 0)?
                    .and_then(|p| u16::try_from(p).ok())
                    .ok_or_else(|| t.invalid(&section, &name, line, "not a port (0-65535)"))?;
                listen_port = Some((port, line));
            }
            _ => {}
        }
        t.report.push(GlanceOption {
            section,
            name,
            line,
            verdict,
        });
    }
    if listen_host.is_some() || listen_port.is_some() {
        // Glance's eventlet server: bind_host 0.0.0.0, bind_port 9292 by default.
        let host = listen_host.map_or("0.0.0.0".to_owned(), |(h, _)| h);
        let port = listen_port.map_or(9292, |(p, _)| p);
        let address = match host.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V6(v6)) => format!("[{v6}]:{port}"),
            Ok(v4) => format!("{v4}:{port}"),
            Err(_) => {
                let line = t.ini.entry("DEFAULT", "bind_host").map_or(0, |e| e.line);
                return Err(t.invalid(
                    "DEFAULT",
                    "bind_host",
                    line,
                    "glint listens on an IP address, not a host name",
                ));
            }
        };
        t.put("listen", Toml::String(address));
    }
    let report = GlanceReport {
        path: ini.path().to_owned(),
        options: t.report,
    };
    Ok((t.table, report))
}

/// The verdict on one option, writing what it maps to.
fn classify(
    t: &mut Translation<'_>,
    section: &str,
    name: &str,
    value: &Value,
) -> Result<Verdict, ConfigError> {
    let mapped = |key: &str| Ok(Verdict::mapped(key));
    let ignored = |why: &str| Ok(Verdict::Ignored(why.to_owned()));
    let unsupported = |why: &str| Ok(Verdict::Unsupported(why.to_owned()));
    let text = value.text.as_str();
    // Options whose meaning depends on their value.
    let when_true =
        |t: &Translation<'_>, harmless: &str, why: &str| -> Result<Verdict, ConfigError> {
            if t.boolean(section, name, value)? {
                Ok(Verdict::Unsupported(why.to_owned()))
            } else {
                Ok(Verdict::Ignored(harmless.to_owned()))
            }
        };
    if let Some(verdict) = import::classify(t, section, name, value) {
        return verdict;
    }
    match (section, name) {
        // ---- mapped one to one
        ("DEFAULT", "image_size_cap") => {
            let n = t.int(section, name, value, 1)?;
            if let Some(n) = n {
                let n = u64::try_from(n)
                    .map_err(|_| t.invalid(section, name, value.line, "too large"))?;
                t.put(
                    "image_size_cap",
                    Toml::Integer(n.min(i64::MAX as u64) as i64),
                );
            }
            mapped("image_size_cap")
        }
        ("DEFAULT", key @ ("limit_param_default" | "api_limit_max" | "max_request_id_length")) => {
            if let Some(n) = t.int(section, name, value, 1)? {
                t.put(key, Toml::Integer(clamp_i64(n)));
            }
            mapped(key)
        }
        ("DEFAULT", key @ ("image_member_quota" | "image_property_quota" | "image_tag_quota")) => {
            if let Some(n) = t.int(section, name, value, i128::from(i64::MIN))? {
                t.put(key, Toml::Integer(clamp_i64(n)));
            }
            mapped(key)
        }
        ("DEFAULT", "workers" | "client_socket_timeout") => {
            if let Some(n) = t.int(section, name, value, 0)? {
                t.put(name, Toml::Integer(clamp_i64(n)));
            }
            mapped(name)
        }
        ("DEFAULT", "hashing_algorithm") => {
            t.put("hashing_algorithm", Toml::String(text.to_owned()));
            mapped("hashing_algorithm")
        }
        ("DEFAULT", "public_endpoint") => {
            if !text.is_empty() {
                t.put("public_endpoint", Toml::String(text.to_owned()));
            }
            mapped("public_endpoint")
        }
        ("DEFAULT", "worker_self_reference_url") => {
            if !text.is_empty() {
                t.put(
                    "worker_self_reference_url",
                    Toml::String(text.trim_end_matches('/').to_owned()),
                );
            }
            mapped("worker_self_reference_url")
        }
        ("DEFAULT", "debug") => {
            let level = if t.boolean(section, name, value)? {
                "debug"
            } else {
                "info"
            };
            t.put("log_filter", Toml::String(level.to_owned()));
            mapped("log_filter")
        }
        ("DEFAULT", "bind_host" | "bind_port") => mapped("listen"),
        ("DEFAULT", "user_storage_quota") => {
            let bytes = parse_storage_quota(text).ok_or_else(|| {
                t.invalid(
                    section,
                    name,
                    value.line,
                    "not a size (a whole number with an optional B, KB, MB, GB or TB)",
                )
            })?;
            let keystone_limits = match t.value("DEFAULT", "use_keystone_limits")? {
                Some(v) => t.boolean("DEFAULT", "use_keystone_limits", &v)?,
                None => false,
            };
            if keystone_limits {
                return ignored("no effect with use_keystone_limits = true (as in Glance)");
            }
            let mib = if bytes == 0 {
                -1
            } else {
                clamp_i64((bytes / (1 << 20) as u128) as i128)
            };
            t.put("quotas.image_size_total", Toml::Integer(mib));
            if bytes % (1 << 20) != 0 {
                return Ok(Verdict::Mapped {
                    key: "quotas.image_size_total".into(),
                    note: Some(format!("glint counts whole MiB: {mib} MiB")),
                });
            }
            mapped("quotas.image_size_total")
        }
        ("image_format", key @ ("disk_formats" | "container_formats" | "vmdk_allowed_types")) => {
            t.put(key, list_value(text));
            mapped(key)
        }
        ("image_format", "gpt_safety_checks_nonfatal") => {
            t.put("gpt_safety_checks_nonfatal", list_value(text));
            mapped("gpt_safety_checks_nonfatal")
        }
        ("image_format", "require_image_format_match") => {
            let on = t.boolean(section, name, value)?;
            t.put("require_image_format_match", Toml::Boolean(on));
            mapped("require_image_format_match")
        }
        ("paste_deploy", "flavor") => flavor(t, value),
        ("paste_deploy", "config_file") => {
            ignored("glint has no paste pipeline: [paste_deploy] flavor chooses its auth")
        }
        ("keystone_authtoken", _) => keystone_authtoken(t, name, value),

        // ---- harmless or not, by value
        ("DEFAULT", "use_keystone_limits") => when_true(
            t,
            "off, as glint: limits come from [quotas] in glint's TOML file",
            "glint does not read Keystone's unified limits: set per-project limits in [quotas] \
             of glint's TOML file",
        ),
        ("DEFAULT", "allow_anonymous_access") => when_true(
            t,
            "off, as glint",
            "glint refuses requests without a token when Keystone is on",
        ),
        ("DEFAULT", "delayed_delete") => when_true(
            t,
            "off, as glint",
            "glint deletes image data at once (no pending_delete, no scrubber)",
        ),
        ("DEFAULT", "show_image_direct_url") => {
            when_true(t, "off, as glint", "glint does not show direct_url")
        }
        ("DEFAULT", "show_multiple_locations") => {
            when_true(t, "off, as glint", "glint does not show or edit locations")
        }
        ("DEFAULT", "enabled_import_methods") => {
            let methods = import::bounded_list(text);
            if let Some(other) = methods
                .iter()
                .find(|m| !crate::config::IMPORT_METHODS.contains(&m.as_str()))
            {
                return Err(t.invalid(
                    section,
                    name,
                    value.line,
                    &format!("unknown import method {other:?}"),
                ));
            }
            t.put(
                "enabled_import_methods",
                Toml::Array(methods.into_iter().map(Toml::String).collect()),
            );
            mapped("enabled_import_methods")
        }
        // Glance's default, a folder under /tmp: glint keeps its own default (the staging
        // folder under data_dir, on the data's file system, surviving reboots).
        ("DEFAULT", "node_staging_uri") if text == "file:///tmp/staging/" => {
            ignored("Glance's default: glint stages under <data_dir>/staging")
        }
        ("DEFAULT", "node_staging_uri") => match text.strip_prefix("file://") {
            Some(path) if path.starts_with('/') => {
                t.put("node_staging_dir", Toml::String(path.to_owned()));
                mapped("node_staging_dir")
            }
            _ => {
                unsupported("glint stages into a local folder: node_staging_uri must be file:///…")
            }
        },
        ("task", "task_time_to_live") => {
            if let Some(n) = t.int(section, name, value, 0)? {
                t.put("task_time_to_live", Toml::Integer(clamp_i64(n)));
            }
            mapped("task_time_to_live")
        }
        ("DEFAULT", "property_protection_file") => {
            if text.is_empty() {
                ignored("no property protections, as glint")
            } else {
                unsupported("glint does not apply property protections")
            }
        }
        ("DEFAULT", "metadata_encryption_key") => {
            if text.is_empty() {
                ignored("no encryption of locations, as glint")
            } else {
                unsupported(
                    "glint stores locations unencrypted (and migrate-from-glance cannot read \
                     encrypted ones)",
                )
            }
        }
        ("DEFAULT", "enabled_backends") => Ok(stores::enabled_backends(t)),
        ("DEFAULT", "cert_file" | "key_file" | "ca_file") => {
            unsupported("glint serves plain HTTP: put TLS in front of it")
        }
        ("DEFAULT", n) if n.starts_with("image_cache_") => image_cache(t, name, value),
        ("database", "connection") => database_connection_option(t, value),
        ("DEFAULT", n) if is_logging_or_messaging(n) => {
            ignored("glint logs to stderr (log_filter, log_format) and sends no notifications")
        }
        ("DEFAULT", _) if catalog_has(section, name) => ignored(default_harmless_reason(name)),
        ("image_format", _) if catalog_has(section, name) => {
            ignored("not used by glint's format checks")
        }
        ("oslo_policy", "enforce_new_defaults" | "enforce_scope") => when_false(
            t,
            section,
            name,
            value,
            "on, as glint: Glance's secure-RBAC default policy",
            "glint always applies Glance's secure-RBAC default policy (with Keystone)",
        ),
        ("oslo_policy", _) if catalog_has(section, name) => unsupported(
            "glint applies Glance's default policy only: rules in a policy file are not read",
        ),
        ("oslo_middleware", "enable_proxy_headers_parsing") => when_true(
            t,
            "off, as glint",
            "glint does not read X-Forwarded-* headers: set public_endpoint for links",
        ),
        ("oslo_messaging_notifications", "driver") => {
            let drivers = glance_ini::parse_list(text);
            if drivers.iter().all(|d| d.is_empty() || d == "noop") {
                ignored("no notifications, as glint")
            } else {
                unsupported("glint sends no notifications")
            }
        }
        ("oslo_messaging_notifications", _) => ignored("glint sends no notifications"),
        ("glance_store", _) => stores::glance_store_option(t, name, value),
        (s, _) if t.stores.section_kind(s).is_some() => {
            stores::backend_option(t, section, name, value)
        }
        ("file" | "glance.store.http.store" | "glance.store.s3.store", _)
            if catalog_has(section, name) =>
        {
            ignored(
                "Glance does not read this section: store options belong in [glance_store], \
                 or in a section named by enabled_backends",
            )
        }
        (s, _) if catalog_has(s, name) => {
            if let Some((_, why)) = HARMLESS_SECTIONS.iter().find(|(h, _)| *h == s) {
                ignored(why)
            } else if let Some((_, why)) = UNSUPPORTED_SECTIONS.iter().find(|(u, _)| *u == s) {
                unsupported(why)
            } else {
                ignored("not used by glint")
            }
        }
        (s, _) if HARMLESS_SECTIONS.iter().any(|(h, _)| *h == s) => {
            let why = HARMLESS_SECTIONS
                .iter()
                .find(|(h, _)| *h == s)
                .map_or("", |(_, why)| why);
            if s.starts_with("os_glance_") {
                ignored(why)
            } else {
                Ok(unknown(s, name))
            }
        }
        (s, _) => Ok(unknown(s, name)),
    }
}

fn when_false(
    t: &Translation<'_>,
    section: &str,
    name: &str,
    value: &Value,
    harmless: &str,
    why: &str,
) -> Result<Verdict, ConfigError> {
    if t.boolean(section, name, value)? {
        Ok(Verdict::Ignored(harmless.to_owned()))
    } else {
        Ok(Verdict::Unsupported(why.to_owned()))
    }
}

fn default_harmless_reason(name: &str) -> &'static str {
    match name {
        "http_retries" | "do_secure_hash" | "image_location_quota" => {
            "about locations added through the API, which glint does not offer"
        }
        "scrub_time" | "scrub_pool_size" => "the scrubber of delayed delete",
        "pydev_worker_debug_host" | "pydev_worker_debug_port" => "a debugger for Glance",
        "digest_algorithm" => "about signing certificates",
        "backlog" | "tcp_keepidle" | "http_keepalive" | "max_header_line" => {
            "a setting of Glance's eventlet server"
        }
        _ => "not used by glint",
    }
}

fn catalog_has(section: &str, name: &str) -> bool {
    catalog()
        .options
        .contains_key(&(section.to_owned(), name.to_owned()))
}

fn unknown(section: &str, name: &str) -> Verdict {
    let candidates: Vec<&str> = catalog()
        .options
        .keys()
        .filter(|(s, _)| s == section)
        .map(|(_, n)| n.as_str())
        .collect();
    Verdict::Unknown {
        nearest: nearest(name, candidates).map(str::to_owned),
    }
}

fn clamp_i64(n: i128) -> i64 {
    i64::try_from(n).unwrap_or(if n < 0 { i64::MIN } else { i64::MAX })
}

/// `[paste_deploy] flavor`: which of Glance's paste pipelines, so which auth.
fn flavor(t: &mut Translation<'_>, value: &Value) -> Result<Verdict, ConfigError> {
    let (strategy, caching) = match value.text.as_str() {
        "" => ("noauth", false),
        "keystone" => ("keystone", false),
        "keystone+caching" | "keystone+cachemanagement" => ("keystone", true),
        "caching" | "cachemanagement" => ("noauth", true),
        other => {
            return Err(t.invalid(
                "paste_deploy",
                "flavor",
                value.line,
                &format!(
                    "glint serves the flavors \"\" (no auth) and keystone (with or without \
                     +caching/+cachemanagement), not {other:?}"
                ),
            ))
        }
    };
    t.put("auth.strategy", Toml::String(strategy.to_owned()));
    if caching {
        // Glance's cache middleware with its default size unless the file sets one.
        if t.value("DEFAULT", "image_cache_max_size")?.is_none() {
            t.put(
                "image_cache_max_size",
                Toml::Integer(GLANCE_IMAGE_CACHE_MAX_SIZE),
            );
        }
        return Ok(Verdict::Mapped {
            key: "auth.strategy".into(),
            note: Some(
                "and the image cache is on (image_cache_dir, image_cache_max_size; Glance's \
                 default size 10 GiB when unset)"
                    .into(),
            ),
        });
    }
    Ok(Verdict::mapped("auth.strategy"))
}

/// Glance's default `image_cache_max_size`: 10 GiB.
const GLANCE_IMAGE_CACHE_MAX_SIZE: i64 = 10 << 30;

/// Whether `[paste_deploy] flavor` puts Glance's cache middleware in the pipeline: only then
/// does Glance cache images, and only then do the `image_cache_*` options mean anything.
fn caching_flavor(t: &Translation<'_>) -> Result<bool, ConfigError> {
    Ok(t.value("paste_deploy", "flavor")?.is_some_and(|flavor| {
        flavor.text.contains("caching") || flavor.text.contains("cachemanagement")
    }))
}

/// `image_cache_*`: mapped with a caching flavor, ignored otherwise (as in Glance).
fn image_cache(t: &mut Translation<'_>, name: &str, value: &Value) -> Result<Verdict, ConfigError> {
    if !caching_flavor(t)? {
        return Ok(Verdict::Ignored(
            "the image cache is used only by a caching flavor (see [paste_deploy] flavor)".into(),
        ));
    }
    match name {
        "image_cache_dir" if value.text.is_empty() => Ok(Verdict::Ignored(
            "unset: glint caches in <data_dir>/image-cache".into(),
        )),
        "image_cache_dir" => {
            t.put("image_cache_dir", Toml::String(value.text.clone()));
            Ok(Verdict::mapped("image_cache_dir"))
        }
        "image_cache_max_size" => {
            let bytes = t.int("DEFAULT", name, value, 0)?.unwrap_or(0);
            t.put("image_cache_max_size", Toml::Integer(clamp_i64(bytes)));
            Ok(Verdict::Mapped {
                key: "image_cache_max_size".into(),
                note: Some(
                    "a hard limit in glint (least recently used entries are evicted before a \
                     fill; no glance-cache-pruner); 0 turns the cache off"
                        .into(),
                ),
            })
        }
        "image_cache_stall_time" => Ok(Verdict::Ignored(
            "glint removes a failed fill's partial file at once, and those a crash left at \
             start-up"
                .into(),
        )),
        "image_cache_driver" | "image_cache_sqlite_db" => Ok(Verdict::Ignored(
            "glint's cache keeps its own index (one file per image, verified before use)".into(),
        )),
        _ if catalog_has("DEFAULT", name) => {
            Ok(Verdict::Ignored("not used by glint's cache".into()))
        }
        _ => Ok(unknown("DEFAULT", name)),
    }
}

/// `[database] connection`: a PostgreSQL URL becomes glint's shared metadata database
/// (`[database]`), its password moved out of the URL into the secret `database.password`;
/// any other database (Glance's SQLite or MySQL) is only what `glint migrate-from-glance`
/// reads.
fn database_connection_option(
    t: &mut Translation<'_>,
    value: &Value,
) -> Result<Verdict, ConfigError> {
    let text = value.text.trim();
    let Some((scheme, rest)) = text.split_once("://") else {
        return Ok(Verdict::Ignored(DATABASE_NOT_GLINTS.into()));
    };
    let dialect = scheme.split('+').next().unwrap_or("");
    if !matches!(dialect, "postgresql" | "postgres") {
        return Ok(Verdict::Ignored(DATABASE_NOT_GLINTS.into()));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((userinfo, host)) => (Some(userinfo), host),
        None => (None, authority),
    };
    let (user, password) = match userinfo {
        Some(info) => match info.split_once(':') {
            Some((user, password)) => (Some(user), Some(percent_decode(password))),
            None => (Some(info), None),
        },
        None => (None, None),
    };
    let connection = match user {
        Some(user) => format!("postgresql://{user}@{host}{path}"),
        None => format!("postgresql://{host}{path}"),
    };
    t.put("database.connection", Toml::String(connection));
    if let Some(password) = password {
        t.put("database.password", Toml::String(password));
    }
    Ok(Verdict::Mapped {
        key: "database.connection".into(),
        note: Some(
            "glint's metadata in this PostgreSQL, in glint's own tables (`glint db sync` \
             creates them): give glint a database Glance does not use"
                .into(),
        ),
    })
}

const DATABASE_NOT_GLINTS: &str = "Glance's database: glint keeps its metadata in \
     <data_dir>/meta.redb or a PostgreSQL ([database] connection = postgresql://…); \
     `glint migrate-from-glance` reads this one";

/// `%XX` escapes of a URL's userinfo decoded (anything malformed kept as written).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `[keystone_authtoken]`: keystonemiddleware's options and the password plugin's.
fn keystone_authtoken(
    t: &mut Translation<'_>,
    name: &str,
    value: &Value,
) -> Result<Verdict, ConfigError> {
    const SECTION: &str = "keystone_authtoken";
    let text = value.text.as_str();
    let key = |k: &str| format!("{SECTION}.{k}");
    match name {
        "auth_url"
        | "username"
        | "password"
        | "project_name"
        | "user_domain_name"
        | "project_domain_name"
        | "www_authenticate_uri"
        | "region_name" => {
            t.put(&key(name), Toml::String(text.to_owned()));
            Ok(Verdict::mapped(&key(name)))
        }
        "auth_type" => {
            // keystoneauth's `v3password` is the password plugin pinned to v3.
            let kind = if text == "v3password" {
                "password"
            } else {
                text
            };
            t.put(&key("auth_type"), Toml::String(kind.to_owned()));
            Ok(Verdict::mapped(&key("auth_type")))
        }
        "memcached_servers" => {
            t.put(&key(name), Toml::String(text.to_owned()));
            Ok(Verdict::Mapped {
                key: key(name),
                note: Some("accepted and unused: glint caches tokens in memory".into()),
            })
        }
        "token_cache_time" | "http_connect_timeout" => {
            if let Some(n) = t.int(SECTION, name, value, 0)? {
                t.put(&key(name), Toml::Integer(clamp_i64(n)));
            }
            Ok(Verdict::mapped(&key(name)))
        }
        "service_token_roles" => {
            t.put(&key(name), list_value(text));
            Ok(Verdict::mapped(&key(name)))
        }
        "service_token_roles_required" => {
            let on = t.boolean(SECTION, name, value)?;
            t.put(&key(name), Toml::Boolean(on));
            Ok(Verdict::mapped(&key(name)))
        }
        "delay_auth_decision" => when_false_inverted(t, name, value),
        "cafile" | "certfile" | "keyfile" | "insecure" => Ok(Verdict::Unsupported(
            "glint reaches Keystone with the system's CA certificates and no client certificate"
                .into(),
        )),
        "auth_section" => Ok(Verdict::Unsupported(
            "glint reads the service user's options from [keystone_authtoken] itself".into(),
        )),
        "user_id"
        | "user_domain_id"
        | "project_id"
        | "project_domain_id"
        | "domain_id"
        | "domain_name"
        | "trust_id"
        | "system_scope"
        | "default_domain_id"
        | "default_domain_name"
        | "tenant_id"
        | "tenant_name" => Ok(Verdict::Unsupported(
            "glint's service user authenticates by user name, project name and domain names".into(),
        )),
        _ if catalog_has(SECTION, name) => Ok(Verdict::Ignored(
            "a keystonemiddleware setting glint has no use for (it caches tokens in memory)".into(),
        )),
        _ => Ok(unknown(SECTION, name)),
    }
}

/// `delay_auth_decision = true` lets requests without a valid token through to the
/// application; glint refuses them.
fn when_false_inverted(
    t: &Translation<'_>,
    name: &str,
    value: &Value,
) -> Result<Verdict, ConfigError> {
    if t.boolean("keystone_authtoken", name, value)? {
        Ok(Verdict::Unsupported(
            "glint refuses requests without a valid token (401)".into(),
        ))
    } else {
        Ok(Verdict::Ignored("off, as glint".into()))
    }
}

/// Reads `path` and translates it.
pub fn read(path: &Path) -> Result<(Table, GlanceReport), ConfigError> {
    let ini = IniFile::read(path).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.message.clone() + &e.line.map(|l| format!(" (line {l})")).unwrap_or_default(),
    })?;
    translate(&ini)
}

/// Glance's `[database] connection` in the file at `path` (interpolated), if set: the
/// database `glint migrate-from-glance` reads.
pub fn database_connection(path: &Path) -> Result<Option<super::Secret>, ConfigError> {
    let ini = IniFile::read(path).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.message.clone(),
    })?;
    let value = ini
        .get("database", "connection")
        .map_err(|e| ConfigError::Invalid {
            key: "[database] connection".into(),
            message: e.to_string(),
        })?;
    Ok(value
        .filter(|v| !v.text.is_empty())
        .map(|v| super::Secret::new(v.text)))
}

/// The catalog's option names of `section`, for tests.
#[cfg(test)]
fn catalog_names(section: &str) -> Vec<String> {
    catalog()
        .options
        .keys()
        .filter(|(s, _)| s == section)
        .map(|(_, n)| n.clone())
        .collect()
}

#[cfg(test)]
mod tests;
