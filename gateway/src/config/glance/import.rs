//! The import options of `glance-image-import.conf` set in glance-api.conf. Glance's API reads
//! both files into one configuration (`glance-image-import.conf` first), so an operator may
//! keep these sections in either; the ones in the file given to `--glance-config` map to
//! glint's tables of the same names:
//!
//! - `[import_filtering_opts]`: which URLs web-download (and every other fetch) may reach;
//! - `[image_import_opts] image_import_plugins` → `image_import_plugins`;
//! - `[image_conversion] output_format`, `[inject_metadata_properties] ignore_user_roles` and
//!   `inject`;
//! - `[glance_download_properties] extra_properties` (registered by Glance's import flow,
//!   which the API loads, so it is read from glance-api.conf too).

use toml::Value as Toml;

use super::{glance_ini, ConfigError, Kind, Translation, Value, Verdict};

/// The options of `glance-image-import.conf` glint knows (Glance's sample of the API's file
/// does not list them): section, name, kind.
pub(super) const OPTIONS: &[(&str, &str, Kind)] = &[
    ("import_filtering_opts", "allowed_schemes", Kind::List),
    ("import_filtering_opts", "disallowed_schemes", Kind::List),
    ("import_filtering_opts", "allowed_hosts", Kind::List),
    ("import_filtering_opts", "disallowed_hosts", Kind::List),
    ("import_filtering_opts", "allowed_ports", Kind::List),
    ("import_filtering_opts", "disallowed_ports", Kind::List),
    ("image_import_opts", "image_import_plugins", Kind::List),
    ("image_conversion", "output_format", Kind::Str),
    (
        "inject_metadata_properties",
        "ignore_user_roles",
        Kind::List,
    ),
    ("inject_metadata_properties", "inject", Kind::Dict),
    ("glance_download_properties", "extra_properties", Kind::List),
];

/// A ListOpt written with or without its brackets (`[http, https]`, `http,https`), items
/// optionally quoted, as Glance's `bounds=True, quotes=True` lists are.
pub(super) fn bounded_list(text: &str) -> Vec<String> {
    let inner = text.trim().trim_start_matches('[').trim_end_matches(']');
    glance_ini::parse_list(inner)
        .into_iter()
        .map(|item| item.trim_matches(|c| c == '\'' || c == '"').to_owned())
        .collect()
}

/// The verdict on `[section] name`, when it is one of [`OPTIONS`].
pub(super) fn classify(
    t: &mut Translation<'_>,
    section: &str,
    name: &str,
    value: &Value,
) -> Option<Result<Verdict, ConfigError>> {
    let text = value.text.as_str();
    let strings = |items: Vec<String>| Toml::Array(items.into_iter().map(Toml::String).collect());
    let key = match (section, name) {
        ("import_filtering_opts", port @ ("allowed_ports" | "disallowed_ports")) => {
            let mut ports = Vec::new();
            for item in bounded_list(text) {
                match item.parse::<u16>() {
                    Ok(port) if port > 0 => ports.push(Toml::Integer(i64::from(port))),
                    _ => {
                        let message = format!("{item:?} is not a port (1 to 65535)");
                        return Some(Err(t.invalid(section, name, value.line, &message)));
                    }
                }
            }
            let key = format!("import_filtering_opts.{port}");
            t.put(&key, Toml::Array(ports));
            key
        }
        (
            "import_filtering_opts",
            list
            @ ("allowed_schemes" | "disallowed_schemes" | "allowed_hosts" | "disallowed_hosts"),
        ) => {
            let key = format!("import_filtering_opts.{list}");
            t.put(&key, strings(bounded_list(text)));
            key
        }
        ("image_import_opts", "image_import_plugins") => {
            t.put("image_import_plugins", strings(bounded_list(text)));
            "image_import_plugins".to_owned()
        }
        ("image_conversion", "output_format") => {
            t.put(
                "image_conversion.output_format",
                Toml::String(text.trim().to_owned()),
            );
            "image_conversion.output_format".to_owned()
        }
        ("inject_metadata_properties", "ignore_user_roles") => {
            // A plain ListOpt: `admin,reader`.
            let roles = glance_ini::parse_list(text);
            t.put(
                "inject_metadata_properties.ignore_user_roles",
                strings(roles),
            );
            "inject_metadata_properties.ignore_user_roles".to_owned()
        }
        ("glance_download_properties", "extra_properties") => {
            // `bounds=True, quotes=True`, as the filtering lists.
            let key = "glance_download_properties.extra_properties";
            t.put(key, strings(bounded_list(text)));
            key.to_owned()
        }
        ("inject_metadata_properties", "inject") => {
            let pairs = match glance_ini::parse_dict(text) {
                Ok(pairs) => pairs,
                Err(message) => return Some(Err(t.invalid(section, name, value.line, &message))),
            };
            let table = pairs
                .into_iter()
                .map(|(k, v)| (k, Toml::String(v)))
                .collect::<toml::Table>();
            t.put("inject_metadata_properties.inject", Toml::Table(table));
            "inject_metadata_properties.inject".to_owned()
        }
        _ => return None,
    };
    Some(Ok(Verdict::mapped(&key)))
}
