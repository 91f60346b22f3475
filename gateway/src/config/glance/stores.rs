//! glance-api.conf's stores → glint's `[stores]`, in both of Glance's forms:
//!
//! - **single-store** (legacy): `[glance_store] stores = file,http`, `default_store`, and every
//!   store's options in `[glance_store]` itself. Each enabled kind glint has becomes a store of
//!   that name (`stores.file`, `stores.http`, `stores.s3`) and `multi_store = false`: uploads go
//!   to the default store, the others stay readable, the multi-store API stays off.
//! - **multi-store**: `[DEFAULT] enabled_backends = fast:file, cold:s3`, `[glance_store]
//!   default_backend`, and one section per store holding its options (`[fast]
//!   filesystem_store_datadir`, `[cold] s3_store_host`, …, `store_description`, `weight`).
//!
//! Which kind an option belongs to comes from the catalog's per-driver groups (`file`,
//! `glance.store.s3.store`, …). Secrets (`s3_store_secret_key`) are copied into the table,
//! which the loader turns into a [`crate::config::Secret`]: never into a verdict or an error.

use std::collections::BTreeMap;

use toml::Value as Toml;

use super::{catalog_has, glance_ini, unknown, ConfigError, Translation, Value, Verdict};

/// The store kinds glint has.
const GLINT_KINDS: &[&str] = &["file", "http", "s3"];

/// How the file lays out its stores (read before the options are classified: an option's
/// meaning depends on which stores are enabled, wherever it is in the file).
#[derive(Debug, Default)]
pub(super) struct Layout {
    /// `enabled_backends` is set: Glance's multi-store mode.
    multi: bool,
    /// The stores glint serves: id → kind (single-store: the kind names of `stores`).
    stores: BTreeMap<String, String>,
    /// Stores of kinds glint lacks: id → kind.
    lacking: BTreeMap<String, String>,
}

impl Layout {
    /// The kind of the store whose options section `section` holds (multi-store only),
    /// whether glint has that kind or not.
    pub(super) fn section_kind(&self, section: &str) -> Option<&str> {
        if !self.multi {
            return None;
        }
        fn find<'m>(map: &'m BTreeMap<String, String>, section: &str) -> Option<&'m str> {
            map.iter()
                .find(|(id, _)| glance_ini::normalize_section(id) == section)
                .map(|(_, kind)| kind.as_str())
        }
        find(&self.stores, section).or_else(|| find(&self.lacking, section))
    }
}

/// A store name of `[glance_store] stores` as glance_store reads it: a scheme-less store
/// name, or the class path older releases wrote.
fn legacy_kind(name: &str) -> String {
    match name {
        "glance.store.filesystem.Store" | "filesystem" => "file".into(),
        "glance.store.http.Store" => "http".into(),
        "glance.store.s3.Store" => "s3".into(),
        "glance.store.rbd.Store" => "rbd".into(),
        "glance.store.swift.Store" => "swift".into(),
        "glance.store.cinder.Store" => "cinder".into(),
        "glance.store.vmware_datastore.Store" => "vmware".into(),
        other => other.to_owned(),
    }
}

/// Reads the stores' layout and writes the skeleton of `[stores]`: each store's `type`, the
/// default, and (single-store) `multi_store = false`. Nothing is written for a file that
/// has neither `enabled_backends` nor a `[glance_store]` section (glint's own default).
pub(super) fn prepare(t: &mut Translation<'_>) -> Result<(), ConfigError> {
    let mut layout = Layout::default();
    if let Some(value) = t.value("DEFAULT", "enabled_backends")? {
        let pairs = glance_ini::parse_dict(&value.text)
            .map_err(|m| t.invalid("DEFAULT", "enabled_backends", value.line, &m))?;
        layout.multi = true;
        for (id, kind) in pairs {
            if GLINT_KINDS.contains(&kind.as_str()) {
                t.put(&format!("stores.{id}.type"), Toml::String(kind.clone()));
                layout.stores.insert(id, kind);
            } else {
                layout.lacking.insert(id, kind);
            }
        }
        if let Some(value) = t.value("glance_store", "default_backend")? {
            let id = value.text.trim();
            if let Some(kind) = layout.lacking.get(id) {
                return Err(t.invalid(
                    "glance_store",
                    "default_backend",
                    value.line,
                    &format!("store {id:?} is a {kind} store, which glint does not have"),
                ));
            }
            if !id.is_empty() {
                t.put("stores.default", Toml::String(id.to_owned()));
            }
        }
    } else if t.ini.has_section("glance_store") {
        let kinds = match t.value("glance_store", "stores")? {
            Some(value) => glance_ini::parse_list(&value.text),
            // glance_store's default.
            None => vec!["file".into(), "http".into()],
        };
        for kind in kinds.iter().map(|k| legacy_kind(k)) {
            if GLINT_KINDS.contains(&kind.as_str()) {
                t.put(&format!("stores.{kind}.type"), Toml::String(kind.clone()));
                layout.stores.insert(kind.clone(), kind);
            } else if !kind.is_empty() {
                layout.lacking.insert(kind.clone(), kind);
            }
        }
        let (default, line) = match t.value("glance_store", "default_store")? {
            Some(value) => (legacy_kind(value.text.trim()), value.line),
            None => ("file".to_owned(), 0),
        };
        if !layout.stores.contains_key(&default) {
            let why = if GLINT_KINDS.contains(&default.as_str()) {
                format!("{default:?} is not one of [glance_store] stores")
            } else {
                format!("glint has no {default} store")
            };
            return Err(t.invalid("glance_store", "default_store", line, &why));
        }
        t.put("stores.default", Toml::String(default));
        t.put("stores.multi_store", Toml::Boolean(false));
    }
    t.stores = layout;
    Ok(())
}

/// The verdict on `[DEFAULT] enabled_backends` (its stores were written by [`prepare`]).
pub(super) fn enabled_backends(t: &Translation<'_>) -> Verdict {
    let layout = &t.stores;
    if layout.lacking.is_empty() {
        return Verdict::mapped("stores");
    }
    let lacking: Vec<String> = layout
        .lacking
        .iter()
        .map(|(id, kind)| format!("{id} ({kind})"))
        .collect();
    Verdict::Unsupported(format!(
        "glint has file, s3 and http stores only: {} left out, with the images they hold",
        lacking.join(", ")
    ))
}

/// The driver (kind) whose option `name` is, by the catalog's per-driver groups.
fn option_kind(name: &str) -> Option<&'static str> {
    const GROUPS: &[(&str, &str)] = &[
        ("file", "file"),
        ("glance.store.http.store", "http"),
        ("glance.store.s3.store", "s3"),
        ("glance.store.rbd.store", "rbd"),
        ("glance.store.swift.store", "swift"),
        ("glance.store.vmware_datastore.store", "vmware"),
    ];
    GROUPS
        .iter()
        .find(|(group, _)| catalog_has(group, name))
        .map(|(_, kind)| *kind)
        .or_else(|| (name.starts_with("cinder_") || name == "rootwrap_config").then_some("cinder"))
}

/// An option of `[glance_store]`.
pub(super) fn glance_store_option(
    t: &mut Translation<'_>,
    name: &str,
    value: &Value,
) -> Result<Verdict, ConfigError> {
    const SECTION: &str = "glance_store";
    let multi = t.stores.multi;
    let ignored = |why: &str| Ok(Verdict::Ignored(why.to_owned()));
    match name {
        "default_backend" if multi => Ok(Verdict::mapped("stores.default")),
        "default_backend" => ignored("used only with [DEFAULT] enabled_backends"),
        "stores" | "default_store" if multi => {
            ignored("superseded by [DEFAULT] enabled_backends and default_backend")
        }
        "stores" => {
            if t.stores.lacking.is_empty() {
                Ok(Verdict::Mapped {
                    key: "stores".into(),
                    note: Some("single-store mode: stores.multi_store = false".into()),
                })
            } else {
                let lacking: Vec<&str> = t.stores.lacking.keys().map(String::as_str).collect();
                Ok(Verdict::Unsupported(format!(
                    "glint has file, s3 and http stores only: {} left out, with the images \
                     they hold",
                    lacking.join(", ")
                )))
            }
        }
        "default_store" => Ok(Verdict::mapped("stores.default")),
        _ => {
            let Some(kind) = option_kind(name) else {
                return Ok(unknown(SECTION, name));
            };
            if multi {
                return ignored(
                    "with enabled_backends, Glance reads store options from each store's own \
                     section",
                );
            }
            if t.stores.stores.contains_key(kind) {
                store_option(t, SECTION, kind, kind, name, value)
            } else if t.stores.lacking.contains_key(kind) {
                Ok(Verdict::Unsupported(format!("glint has no {kind} store")))
            } else {
                ignored(&format!("no {kind} store in [glance_store] stores"))
            }
        }
    }
}

/// An option of a store's own section (multi-store): `section` is the store `id`'s.
pub(super) fn backend_option(
    t: &mut Translation<'_>,
    section: &str,
    name: &str,
    value: &Value,
) -> Result<Verdict, ConfigError> {
    let Some(kind) = t.stores.section_kind(section).map(str::to_owned) else {
        return Ok(unknown(section, name));
    };
    let Some(id) = t
        .stores
        .stores
        .keys()
        .find(|id| glance_ini::normalize_section(id) == section)
        .cloned()
    else {
        // A store of a kind glint lacks: its own options are known to Glance.
        return Ok(match option_kind(name) {
            Some(k) if k == kind => Verdict::Unsupported(format!("glint has no {kind} store")),
            _ if matches!(name, "store_description" | "weight") => {
                Verdict::Unsupported(format!("glint has no {kind} store"))
            }
            _ => unknown(section, name),
        });
    };
    let key = |k: &str| format!("stores.{id}.{k}");
    match name {
        "store_description" => {
            t.put(&key("description"), Toml::String(value.text.clone()));
            Ok(Verdict::mapped(&key("description")))
        }
        "weight" => {
            if let Some(n) = t.int(section, name, value, i128::from(i64::MIN))? {
                t.put(&key("weight"), Toml::Integer(super::clamp_i64(n)));
            }
            Ok(Verdict::mapped(&key("weight")))
        }
        _ if option_kind(name) == Some(kind.as_str()) => {
            store_option(t, section, &id, &kind, name, value)
        }
        _ => Ok(unknown(store_group(&kind).unwrap_or(section), name)),
    }
}

/// The catalog group of a kind's options.
fn store_group(kind: &str) -> Option<&'static str> {
    super::store_type_group(kind)
}

/// One option of a `kind` store (`id`), read in `section`.
fn store_option(
    t: &mut Translation<'_>,
    section: &str,
    id: &str,
    kind: &str,
    name: &str,
    value: &Value,
) -> Result<Verdict, ConfigError> {
    let key = format!("stores.{id}.{name}");
    let text = value.text.trim();
    let mapped = |key: &str| Ok(Verdict::mapped(key));
    match (kind, name) {
        // Strings and paths; empty means unset, as oslo's `<None>` sample values.
        ("file", "filesystem_store_datadir")
        | (
            "s3",
            "s3_store_host"
            | "s3_store_region_name"
            | "s3_store_access_key"
            | "s3_store_secret_key"
            | "s3_store_bucket"
            | "s3_store_cacert",
        )
        | ("http", "https_ca_certificates_file") => {
            if !text.is_empty() {
                t.put(&key, Toml::String(text.to_owned()));
            }
            mapped(&key)
        }
        ("file", "filesystem_store_datadirs") => {
            let dirs = t
                .ini
                .get_all(section, name)
                .map_err(|e| ConfigError::Invalid {
                    key: format!("[{section}] {name}"),
                    message: e.to_string(),
                })?;
            let dirs: Vec<&str> = dirs
                .iter()
                .map(|v| v.text.trim())
                .filter(|d| !d.is_empty())
                .collect();
            match dirs.as_slice() {
                [] => Ok(Verdict::Ignored("no folders given".into())),
                [one] => {
                    // `path[:priority]`: one folder, whatever its priority.
                    let dir = one.rsplit_once(':').map_or(*one, |(path, priority)| {
                        if priority.trim().parse::<u64>().is_ok() {
                            path
                        } else {
                            one
                        }
                    });
                    let datadir = format!("stores.{id}.filesystem_store_datadir");
                    t.put(&datadir, Toml::String(dir.to_owned()));
                    Ok(Verdict::Mapped {
                        key: datadir,
                        note: Some("one folder".into()),
                    })
                }
                _ => Ok(Verdict::Unsupported(format!(
                    "glint's file store uses one folder, not {}",
                    dirs.len()
                ))),
            }
        }
        ("file", "filesystem_store_chunk_size")
        | ("s3", "s3_store_large_object_size" | "s3_store_large_object_chunk_size")
        | ("s3", "s3_store_thread_pools") => {
            let min = if name == "s3_store_thread_pools" {
                1
            } else {
                0
            };
            if let Some(n) = t.int(section, name, value, min)? {
                t.put(&key, Toml::Integer(super::clamp_i64(n)));
            }
            mapped(&key)
        }
        ("s3", "s3_store_create_bucket_on_put") => {
            let on = t.boolean(section, name, value)?;
            t.put(&key, Toml::Boolean(on));
            mapped(&key)
        }
        ("s3", "s3_store_bucket_url_format") => {
            let format = text.to_lowercase();
            if !matches!(format.as_str(), "auto" | "path" | "virtual") {
                return Err(t.invalid(section, name, value.line, "must be auto, path or virtual"));
            }
            t.put(&key, Toml::String(format));
            mapped(&key)
        }
        ("file", "filesystem_store_file_perm") => match t.int(section, name, value, 0)? {
            None | Some(0) => Ok(Verdict::Ignored(
                "0, as glint: files get the mode glint's umask gives".into(),
            )),
            Some(_) => Ok(Verdict::Unsupported(
                "glint does not change its files' mode (they get the mode its umask gives)".into(),
            )),
        },
        ("file", "filesystem_store_metadata_file") => Ok(if text.is_empty() {
            Verdict::Ignored("none, as glint".into())
        } else {
            Verdict::Unsupported("glint adds no metadata to file locations".into())
        }),
        ("file", "filesystem_thin_provisioning") => Ok(if t.boolean(section, name, value)? {
            Verdict::Unsupported("glint writes every byte (no sparse files)".into())
        } else {
            Verdict::Ignored("off, as glint".into())
        }),
        ("http", "https_insecure") => Ok(if t.boolean(section, name, value)? {
            Verdict::Unsupported(
                "glint checks https origins' certificates (https_ca_certificates_file, else \
                 the system's CAs)"
                    .into(),
            )
        } else {
            Verdict::Ignored("off, as glint: certificates are checked".into())
        }),
        ("http", "http_proxy_information") => {
            let proxies = glance_ini::parse_dict(text)
                .map_err(|m| t.invalid(section, name, value.line, &m))?;
            Ok(if proxies.is_empty() {
                Verdict::Ignored("no proxy, as glint".into())
            } else {
                Verdict::Unsupported(
                    "glint reaches http origins directly, not through a proxy".into(),
                )
            })
        }
        _ => Ok(Verdict::Unsupported(format!(
            "not a setting of glint's {kind} store"
        ))),
    }
}

#[cfg(test)]
mod tests;
