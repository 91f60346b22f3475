//! Building a [`Config`] from its layers: the TOML file, then `GLINT_*` variables, then the
//! files secrets are read from. Every step is driven by the configuration's shape
//! ([`Config::schema`]), so the settings structs stay the one list of keys:
//!
//! - a key `a.b_c` is the variable `GLINT_A_B_C`, parsed as the key's kind (a list can only
//!   be set in the file);
//! - a [`super::Secret`] `k` can instead be given as `k_file = "/run/secrets/…"` (or
//!   `GLINT_…_K_FILE`): the file's content, without its trailing newline, is the value. A later
//!   layer replaces an earlier one whichever form each uses; one layer giving both is an error;
//! - a key of the file or a `GLINT_*` variable that names no setting is an error naming the
//!   nearest known name. An error, not a warning: a misspelt `image_size_cap` would otherwise
//!   leave the default in force while the operator believes it set, and a warning scrolls by.
//!   The variables of glint's own test tools ([`NOT_SETTINGS`]) are not settings and are left
//!   alone.
//!
//! Messages name keys, variables and files, never values: a secret's value never reaches one
//! (a syntax error is reported by line and column, without the line itself).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use toml::{Table, Value};

use super::schema::{nearest, Node};
use super::{Config, ConfigError};

/// `GLINT_*` variables that are not settings: they belong to glint's test and benchmark tools
/// (`scripts/test`, `tests/`), which run the server with them in its environment. An entry
/// ending in `_` names a family (`GLINT_REQUIRE_PROMETHEUS`, `GLINT_S3_TEST_ENDPOINT`,
/// `GLINT_CRASH_CYCLES`, `GLINT_HOSTILE_SCALE`, `GLINT_PG_TEST_URL`, …). `GLINT_CONFIG` and `GLINT_GLANCE_CONFIG`
/// are the end-to-end scripts' (`tests/e2e/lib.sh` passes them as `--config` and
/// `--glance-config`).
pub const NOT_SETTINGS: &[&str] = &[
    "GLINT_BIN",
    "GLINT_CONFIG",
    "GLINT_CRASH_",
    "GLINT_GLANCE_CONFIG",
    "GLINT_HOSTILE_",
    "GLINT_PG_TEST_",
    "GLINT_REQUIRE_",
    "GLINT_S3_TEST_",
];

/// Whether `name` is one of [`NOT_SETTINGS`].
pub fn is_tool_variable(name: &str) -> bool {
    NOT_SETTINGS
        .iter()
        .any(|entry| match entry.strip_suffix('_') {
            Some(_) => name.starts_with(entry),
            None => name == *entry,
        })
}

const ENV_PREFIX: &str = "GLINT_";
const FILE_SUFFIX: &str = "_file";

/// A key or variable glint does not know, with the known name nearest to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    /// The key (dotted path) or variable as given.
    pub name: String,
    /// Where it was given: the config file's path, or `environment`.
    pub origin: String,
    /// The known key or variable nearest to it.
    pub nearest: Option<String>,
}

impl UnknownName {
    pub(super) fn describe_all(names: &[UnknownName]) -> String {
        let described: Vec<String> = names.iter().map(UnknownName::describe).collect();
        described.join("; ")
    }

    fn describe(&self) -> String {
        let what = if self.origin == "environment" {
            format!("unknown environment variable {}", self.name)
        } else {
            format!("unknown key `{}` in {}", self.name, self.origin)
        };
        match &self.nearest {
            Some(nearest) if self.origin == "environment" => {
                format!("{what} (did you mean {nearest}?)")
            }
            Some(nearest) => format!("{what} (did you mean `{nearest}`?)"),
            None => what,
        }
    }
}

/// See the module docs. `file` is the TOML text and the path it came from.
pub(super) fn load(
    file: Option<(&str, &Path)>,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    load_over(None, file, vars)
}

/// [`load`] over `base`: settings translated from another file (a glance-api.conf, named by
/// the path), which the TOML file's keys replace.
pub(super) fn load_over(
    base: Option<(Table, &Path)>,
    file: Option<(&str, &Path)>,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let schema = Config::schema();
    let mut unknown = Vec::new();
    let mut table = match base {
        Some((table, path)) => {
            let origin = path.display().to_string();
            check_keys(
                &schema,
                &schema,
                &table,
                &mut Vec::new(),
                &origin,
                &mut unknown,
            );
            table
        }
        None => Table::new(),
    };
    if let Some((text, path)) = file {
        let upper = parse(text, path)?;
        let origin = path.display().to_string();
        check_keys(
            &schema,
            &schema,
            &upper,
            &mut Vec::new(),
            &origin,
            &mut unknown,
        );
        overlay(&schema, &mut table, upper);
    }
    apply_env(&schema, &mut table, vars, &mut unknown)?;
    if !unknown.is_empty() {
        return Err(ConfigError::Unknown(unknown));
    }
    read_secret_files(&schema, &mut table, &mut Vec::new())?;
    Config::deserialize(Value::Table(table.clone())).map_err(|e| {
        let message = e.message().to_owned();
        match key_at_fault(&schema, table) {
            Some(key) => ConfigError::Invalid { key, message },
            None => ConfigError::Parse {
                path: file.map_or_else(|| "environment".into(), |(_, path)| path.to_owned()),
                message,
            },
        }
    })
}

/// Writes `upper`'s keys over `lower`'s: tables merge key by key, values replace. A secret
/// given in either form (`k` or `k_file`) replaces both forms below it.
fn overlay(node: &Node, lower: &mut Table, upper: Table) {
    let keys = node.keys();
    for (key, value) in upper {
        let child = keys.and_then(|k| k.get(key.as_str()));
        match (child, value, lower.get_mut(&key)) {
            (Some(child @ Node::Table(_)), Value::Table(sub), Some(Value::Table(below))) => {
                overlay(child, below, sub);
            }
            (Some(Node::Map(shape)), Value::Table(entries), Some(Value::Table(below))) => {
                for (entry, value) in entries {
                    match (value, below.get_mut(&entry)) {
                        (Value::Table(sub), Some(Value::Table(under))) => {
                            overlay(shape, under, sub)
                        }
                        (value, _) => {
                            below.insert(entry, value);
                        }
                    }
                }
            }
            (_, value, _) => {
                let secret = key.strip_suffix(FILE_SUFFIX).unwrap_or(&key).to_owned();
                let is_secret = keys.and_then(|k| k.get(&secret)) == Some(&Node::Secret);
                if is_secret {
                    lower.remove(&secret);
                    lower.remove(&format!("{secret}{FILE_SUFFIX}"));
                }
                lower.insert(key, value);
            }
        }
    }
}

/// The key a failed deserialization stumbled on. Deserializing a table loses positions, so
/// the table (secrets redacted) is written out and read again as text, whose error has a
/// position, and the key is read off that line and the table header above it. Only the key
/// is taken from that text, never a value.
fn key_at_fault(schema: &Node, mut table: Table) -> Option<String> {
    redact(schema, &mut table);
    let text = toml::to_string(&table).ok()?;
    let span = toml::from_str::<Config>(&text).err()?.span()?;
    let before = &text[..span.start.min(text.len())];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let table_of = |header: &str| header.trim().trim_matches(['[', ']']).trim().to_owned();
    if line.trim_start().starts_with('[') {
        return Some(table_of(line));
    }
    let key = line.split('=').next()?.trim().trim_matches('"');
    let header = before[..line_start]
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('['));
    Some(match header {
        Some(header) => format!("{}.{key}", table_of(header)),
        None => key.to_owned(),
    })
}

/// Replaces every secret under `table` with [`super::REDACTED`].
fn redact(node: &Node, table: &mut Table) {
    let Some(keys) = node.keys() else {
        return;
    };
    for (key, child) in keys {
        match (child, table.get_mut(key)) {
            // A secret of the wrong type is left for the second reading to stumble on; only
            // its key is taken from the text.
            (Node::Secret, Some(value @ Value::String(_))) => {
                *value = Value::String(super::REDACTED.to_owned())
            }
            (Node::Table(_), Some(Value::Table(sub))) => redact(child, sub),
            (Node::Map(shape), Some(Value::Table(entries))) => {
                for (_, value) in entries.iter_mut() {
                    if let Value::Table(sub) = value {
                        redact(shape, sub);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The file as a table. A syntax error is reported by position only: toml's own rendering
/// quotes the line, which may hold a secret.
fn parse(text: &str, path: &Path) -> Result<Table, ConfigError> {
    text.parse::<Table>().map_err(|e| {
        let message = e.message().trim().replace('\n', "; ");
        let message = match e.span() {
            Some(span) => {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!("line {line}, column {column}: {message}")
            }
            None => message,
        };
        ConfigError::Parse {
            path: path.to_owned(),
            message,
        }
    })
}

/// Records every key of `table` (at `path`) that `node` does not have.
fn check_keys(
    root: &Node,
    node: &Node,
    table: &Table,
    path: &mut Vec<String>,
    origin: &str,
    unknown: &mut Vec<UnknownName>,
) {
    let Some(keys) = node.keys() else {
        return;
    };
    for (key, value) in table {
        path.push(key.clone());
        match (keys.get(key.as_str()), value) {
            (Some(child @ Node::Table(_)), Value::Table(sub)) => {
                check_keys(root, child, sub, path, origin, unknown)
            }
            (Some(Node::Map(shape)), Value::Table(entries)) => {
                for (entry, value) in entries {
                    if let Value::Table(sub) = value {
                        path.push(entry.clone());
                        check_keys(root, shape, sub, path, origin, unknown);
                        path.pop();
                    }
                }
            }
            // Present, or a type mismatch serde will name.
            (Some(_), _) => {}
            (None, _) if is_secret_file(keys, key) => {}
            (None, _) => unknown.push(UnknownName {
                name: path.join("."),
                origin: origin.to_owned(),
                nearest: nearest_key(root, keys, path),
            }),
        }
        path.pop();
    }
}

/// `key` is `<secret>_file` for a secret of this table.
fn is_secret_file(keys: &BTreeMap<String, Node>, key: &str) -> bool {
    key.strip_suffix(FILE_SUFFIX)
        .is_some_and(|secret| keys.get(secret) == Some(&Node::Secret))
}

/// The known key nearest to the unknown `path`: the same name in another table if there is
/// one (a key put in the wrong table), else the nearest name in its own table.
fn nearest_key(root: &Node, siblings: &BTreeMap<String, Node>, path: &[String]) -> Option<String> {
    let (name, parent) = path.split_last()?;
    if let Some((elsewhere, _)) = root
        .leaves()
        .into_iter()
        .find(|(p, _)| p.last() == Some(&name.as_str()))
    {
        return Some(elsewhere.join("."));
    }
    let mut candidates: Vec<String> = siblings.keys().cloned().collect();
    candidates.extend(
        siblings
            .iter()
            .filter(|(_, node)| **node == Node::Secret)
            .map(|(key, _)| format!("{key}{FILE_SUFFIX}")),
    );
    let found = nearest(name, candidates.iter().map(String::as_str))?;
    let mut full: Vec<&str> = parent.iter().map(String::as_str).collect();
    full.push(found);
    Some(full.join("."))
}

/// A `GLINT_*` variable's target: the key's path, its kind, and whether it names a file.
struct EnvTarget<'s> {
    path: Vec<&'s str>,
    kind: &'s Node,
    from_file: bool,
}

/// Every variable the shape allows, by name.
fn env_targets(schema: &Node) -> BTreeMap<String, EnvTarget<'_>> {
    let mut targets = BTreeMap::new();
    for (path, kind) in schema.leaves() {
        let name = format!("{ENV_PREFIX}{}", path.join("_").to_ascii_uppercase());
        if *kind == Node::Secret {
            targets.insert(
                format!("{name}{}", FILE_SUFFIX.to_ascii_uppercase()),
                EnvTarget {
                    path: path.clone(),
                    kind,
                    from_file: true,
                },
            );
        }
        targets.insert(
            name,
            EnvTarget {
                path,
                kind,
                from_file: false,
            },
        );
    }
    targets
}

/// Writes the `GLINT_*` variables among `vars` into `table`, over what the file said.
fn apply_env(
    schema: &Node,
    table: &mut Table,
    vars: impl IntoIterator<Item = (String, String)>,
    unknown: &mut Vec<UnknownName>,
) -> Result<(), ConfigError> {
    let targets = env_targets(schema);
    // Which variable set each key, to refuse a secret given both ways.
    let mut set_by: BTreeMap<Vec<&str>, String> = BTreeMap::new();
    let mut vars: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(name, _)| name.starts_with(ENV_PREFIX) && !is_tool_variable(name))
        .collect();
    vars.sort();
    for (name, value) in vars {
        let Some(target) = targets.get(&name) else {
            unknown.push(UnknownName {
                nearest: nearest(&name, targets.keys().map(String::as_str)).map(str::to_owned),
                name,
                origin: "environment".to_owned(),
            });
            continue;
        };
        let invalid = |message: String| ConfigError::Invalid {
            key: name.clone(),
            message,
        };
        if let Some(other) = set_by.insert(target.path.clone(), name.clone()) {
            return Err(invalid(format!(
                "{other} sets the same key; give one of them"
            )));
        }
        let value = if target.from_file {
            Value::String(value)
        } else {
            env_value(target.kind, &value).map_err(invalid)?
        };
        let (leaf, parents) = target
            .path
            .split_last()
            .expect("a leaf has a non-empty path");
        let mut here = &mut *table;
        for parent in parents {
            let entry = here
                .entry(parent.to_string())
                .or_insert_with(|| Value::Table(Table::new()));
            here = match entry {
                Value::Table(sub) => sub,
                _ => return Err(invalid(format!("the file's `{parent}` is not a table"))),
            };
        }
        here.remove(*leaf);
        here.remove(&format!("{leaf}{FILE_SUFFIX}"));
        let key = if target.from_file {
            format!("{leaf}{FILE_SUFFIX}")
        } else {
            leaf.to_string()
        };
        here.insert(key, value);
    }
    Ok(())
}

/// A variable's text as a value of the key's kind (serde then checks the type itself).
fn env_value(kind: &Node, text: &str) -> Result<Value, String> {
    fn parse<T: std::str::FromStr>(text: &str) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        text.trim().parse().map_err(|e: T::Err| e.to_string())
    }
    Ok(match kind {
        Node::Bool => Value::Boolean(parse(text)?),
        Node::Integer => Value::Integer(parse(text)?),
        Node::Float => Value::Float(parse(text)?),
        Node::List => return Err("a list: set it in the config file".to_owned()),
        Node::Table(_) | Node::Map(_) => return Err("a table: set its keys".to_owned()),
        Node::Text | Node::Secret | Node::Unset => Value::String(text.to_owned()),
    })
}

/// Replaces every `<secret>_file` under `table` with the secret read from that file.
fn read_secret_files(
    node: &Node,
    table: &mut Table,
    path: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let Some(keys) = node.keys() else {
        return Ok(());
    };
    for (key, child) in keys {
        path.push(key.clone());
        match child {
            Node::Secret => {
                let file_key = format!("{key}{FILE_SUFFIX}");
                if let Some(file) = table.remove(&file_key) {
                    if table.contains_key(key) {
                        return Err(ConfigError::Invalid {
                            key: path.join("."),
                            message: format!("give either `{key}` or `{file_key}`, not both"),
                        });
                    }
                    let Value::String(file) = file else {
                        return Err(ConfigError::Invalid {
                            key: format!("{}{FILE_SUFFIX}", path.join(".")),
                            message: "must be a file path (a string)".to_owned(),
                        });
                    };
                    let text = std::fs::read_to_string(&file).map_err(|source| {
                        ConfigError::SecretFile {
                            key: path.join("."),
                            path: file.clone().into(),
                            source,
                        }
                    })?;
                    let secret = text.trim_end_matches(['\n', '\r']).to_owned();
                    table.insert(key.clone(), Value::String(secret));
                }
            }
            Node::Table(_) => {
                if let Some(Value::Table(sub)) = table.get_mut(key) {
                    read_secret_files(child, sub, path)?;
                }
            }
            Node::Map(shape) => {
                if let Some(Value::Table(entries)) = table.get_mut(key) {
                    for (entry, value) in entries.iter_mut() {
                        if let Value::Table(sub) = value {
                            path.push(entry.clone());
                            read_secret_files(shape, sub, path)?;
                            path.pop();
                        }
                    }
                }
            }
            _ => {}
        }
        path.pop();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{IoDriver, REDACTED};

    const KEYSTONE: &str = "[auth]\nstrategy = \"keystone\"\n[keystone_authtoken]\n\
        auth_url = \"http://127.0.0.1:5000/v3\"\nusername = \"glance\"\n\
        project_name = \"service\"\n";

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load_with(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        load(Some((text, Path::new("glint.toml"))), env(vars))
    }

    #[test]
    fn test_tool_variables_are_not_settings_but_near_misses_are_refused() {
        assert!(is_tool_variable("GLINT_BIN"));
        assert!(is_tool_variable("GLINT_REQUIRE_PROMETHEUS"));
        assert!(is_tool_variable("GLINT_S3_TEST_ENDPOINT"));
        assert!(is_tool_variable("GLINT_CRASH_CYCLES"));
        assert!(is_tool_variable("GLINT_HOSTILE_SCALE"));
        assert!(is_tool_variable("GLINT_REQUIRE_MOUNT"));
        assert!(is_tool_variable("GLINT_CONFIG"));
        assert!(is_tool_variable("GLINT_GLANCE_CONFIG"));
        assert!(!is_tool_variable("GLINT_CONFIGS"));
        assert!(!is_tool_variable("GLINT_BINARY"));
        assert!(!is_tool_variable("GLINT_CRASH"));
        let c = load_with(
            "",
            &[
                ("GLINT_S3_TEST_SECRET_KEY", "x"),
                ("GLINT_REQUIRE_S3", "1"),
                ("GLINT_REQUIRE_MOUNT", "1"),
                ("GLINT_CRASH_CYCLES", "20"),
                ("GLINT_CRASH_SEED", "1"),
                ("GLINT_HOSTILE_SCALE", "2"),
                ("GLINT_CRASH_SECS", "60"),
                ("GLINT_CONFIG", "/tmp/glint.toml"),
                ("GLINT_GLANCE_CONFIG", "/etc/glance/glance-api.conf"),
            ],
        );
        assert!(c.is_ok());
        assert!(load_with("", &[("GLINT_BINARY", "x")]).is_err());
    }

    #[test]
    fn env_overrides_the_file_and_is_typed_by_the_key() {
        let c = load_with(
            "workers = 3\nio_driver = \"auto\"\n",
            &[
                ("GLINT_IO_DRIVER", "epoll"),
                ("GLINT_WORKERS", "5"),
                ("GLINT_METRICS_ENABLED", "false"),
                ("GLINT_PUBLIC_ENDPOINT", "http://glint.example"),
                ("GLINT_AUTH_STRATEGY", "keystone"),
                ("GLINT_QUOTAS_IMAGE_COUNT_TOTAL", "7"),
                ("GLINT_BIN", "/not/a/setting"),
                ("PATH", "/usr/bin"),
            ],
        )
        .unwrap();
        assert_eq!(c.io_driver, IoDriver::Epoll);
        assert_eq!(c.workers, 5);
        assert!(!c.metrics_enabled);
        assert_eq!(c.public_endpoint.as_deref(), Some("http://glint.example"));
        assert_eq!(c.auth.strategy, crate::config::Strategy::Keystone);
        assert_eq!(c.quotas.image_count_total, 7);
    }

    #[test]
    fn a_bad_variable_value_names_the_variable() {
        let err = load_with("", &[("GLINT_IMAGE_SIZE_CAP", "lots")]).unwrap_err();
        assert!(err.to_string().contains("GLINT_IMAGE_SIZE_CAP"), "{err}");
        let err = load_with("", &[("GLINT_DISK_FORMATS", "raw")]).unwrap_err();
        assert!(err.to_string().contains("config file"), "{err}");
    }

    // Issue 10: a typo in a GLINT_* variable was ignored and left the default in force.
    #[test]
    fn an_unknown_variable_is_an_error_naming_the_nearest() {
        let err = load_with("", &[("GLINT_IMAGE_SIZE_CAPP", "1")]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("unknown environment variable GLINT_IMAGE_SIZE_CAPP"),
            "{text}"
        );
        assert!(
            text.contains("did you mean GLINT_IMAGE_SIZE_CAP?"),
            "{text}"
        );
        let err = load_with("", &[("GLINT_KEYSTONE_AUTHTOKEN_PASWORD", "x")]).unwrap_err();
        assert!(
            err.to_string()
                .contains("did you mean GLINT_KEYSTONE_AUTHTOKEN_PASSWORD?"),
            "{err}"
        );
        assert!(!err.to_string().contains("\"x\""), "{err}");
    }

    #[test]
    fn unknown_file_keys_are_all_named_with_the_nearest() {
        let err = load_with(
            "listne = \"127.0.0.1:1\"\n[quotas]\nimage_count = 1\n\
             [quotas.projects.p1]\nimage_size_totl = 3\n[keystone_authtoken]\npasword = \"s\"\n",
            &[],
        )
        .unwrap_err();
        let ConfigError::Unknown(names) = &err else {
            panic!("{err}")
        };
        let named: Vec<(&str, Option<&str>)> = names
            .iter()
            .map(|n| (n.name.as_str(), n.nearest.as_deref()))
            .collect();
        assert_eq!(
            named,
            [
                (
                    "keystone_authtoken.pasword",
                    Some("keystone_authtoken.password")
                ),
                ("listne", Some("listen")),
                ("quotas.image_count", Some("quotas.image_count_total")),
                (
                    "quotas.projects.p1.image_size_totl",
                    Some("quotas.projects.p1.image_size_total")
                ),
            ]
        );
        let text = err.to_string();
        assert!(
            text.contains("unknown key `listne` in glint.toml (did you mean `listen`?)"),
            "{text}"
        );
        // A key in the wrong table points at a table that has it (two have a `password`:
        // `[database]` and `[keystone_authtoken]`; the first in key order is named).
        let err = load_with("password = \"s\"\n", &[]).unwrap_err();
        assert!(
            err.to_string()
                .contains("did you mean `database.password`?"),
            "{err}"
        );
        let err = load_with("project_name = \"s\"\n", &[]).unwrap_err();
        assert!(
            err.to_string()
                .contains("did you mean `keystone_authtoken.project_name`?"),
            "{err}"
        );
    }

    #[test]
    fn a_secret_comes_from_the_file_a_variable_or_a_secret_file() {
        let dir = tempfile::tempdir().unwrap();
        let secret_file = dir.path().join("password");
        std::fs::write(&secret_file, "from-a-file\n").unwrap();
        let file_form = format!("{KEYSTONE}password_file = {:?}\n", secret_file);

        let c = load_with(&format!("{KEYSTONE}password = \"in-toml\"\n"), &[]).unwrap();
        assert_eq!(ks(&c), "in-toml");
        let c = load_with(&file_form, &[]).unwrap();
        assert_eq!(ks(&c), "from-a-file");
        // Env replaces the file's value whichever form each layer uses.
        let c = load_with(
            &file_form,
            &[("GLINT_KEYSTONE_AUTHTOKEN_PASSWORD", "from-env")],
        )
        .unwrap();
        assert_eq!(ks(&c), "from-env");
        let path = secret_file.to_str().unwrap();
        let c = load_with(
            &format!("{KEYSTONE}password = \"in-toml\"\n"),
            &[("GLINT_KEYSTONE_AUTHTOKEN_PASSWORD_FILE", path)],
        )
        .unwrap();
        assert_eq!(ks(&c), "from-a-file");
        c.validate().unwrap();
        // Without any [keystone_authtoken] in the file, the variables make one.
        let c = load(
            None,
            env(&[
                ("GLINT_KEYSTONE_AUTHTOKEN_PASSWORD", "p"),
                ("GLINT_KEYSTONE_AUTHTOKEN_USERNAME", "glance"),
            ]),
        )
        .unwrap();
        assert_eq!(ks(&c), "p");
    }

    fn ks(c: &Config) -> &str {
        c.keystone_authtoken.as_ref().unwrap().password.expose()
    }

    #[test]
    fn secret_given_twice_or_unreadable_is_refused_without_its_value() {
        let err = load_with(
            &format!("{KEYSTONE}password = \"hunter2\"\npassword_file = \"/x\"\n"),
            &[],
        )
        .unwrap_err();
        assert!(err.to_string().contains("not both"), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err = load_with(
            &format!("{KEYSTONE}password_file = \"/nonexistent/glint-secret\"\n"),
            &[],
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("keystone_authtoken.password"), "{text}");
        assert!(text.contains("/nonexistent/glint-secret"), "{text}");
        let err = load_with(
            "",
            &[
                ("GLINT_KEYSTONE_AUTHTOKEN_PASSWORD", "hunter2"),
                ("GLINT_KEYSTONE_AUTHTOKEN_PASSWORD_FILE", "/x"),
            ],
        )
        .unwrap_err();
        assert!(err.to_string().contains("give one"), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        // `_file` is for secrets only.
        let err = load_with("log_filter_file = \"/x\"\n", &[]).unwrap_err();
        assert!(matches!(err, ConfigError::Unknown(_)), "{err}");
    }

    // Issue 10: `glint check-config` printed the Keystone password in clear.
    #[test]
    fn the_effective_config_shows_secrets_redacted() {
        let c = load_with(&format!("{KEYSTONE}password = \"hunter2\"\n"), &[]).unwrap();
        let shown = toml::to_string_pretty(&c).unwrap();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains(&format!("password = \"{REDACTED}\"")),
            "{shown}"
        );
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn syntax_and_type_errors_never_quote_the_line() {
        let err = load_with(&format!("{KEYSTONE}password = \"hunter2\n"), &[]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("line 7"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        let err = load_with("workers = \"four\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("`workers`"), "{err}");
        let err = load_with("[quotas.projects.p]\nimage_count_total = \"x\"\n", &[]).unwrap_err();
        assert!(
            err.to_string()
                .contains("`quotas.projects.p.image_count_total`"),
            "{err}"
        );
        let err = load_with(&format!("{KEYSTONE}password = 12345\n"), &[]).unwrap_err();
        assert!(
            err.to_string().contains("`keystone_authtoken.password`"),
            "{err}"
        );
        assert!(!err.to_string().contains("12345"), "{err}");
    }

    #[test]
    fn every_variable_name_is_one_key() {
        let schema = Config::schema();
        let leaves = schema.leaves().len();
        let secrets = schema
            .leaves()
            .iter()
            .filter(|(_, n)| **n == Node::Secret)
            .count();
        assert!(secrets >= 1);
        assert_eq!(env_targets(&schema).len(), leaves + secrets);
    }
}
