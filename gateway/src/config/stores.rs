//! `[stores]`: the named image stores (Glance's `enabled_backends`), with Glance's option
//! names, so that a `glance-api.conf` store section translates line by line.
//!
//! ```toml
//! [stores]
//! default = "local"                  # Glance: [glance_store] default_backend
//!
//! [stores.local]
//! type = "file"                      # file | s3 | http
//! filesystem_store_datadir = "/var/lib/glint/images"
//! description = "Local disk"
//!
//! [stores.ceph]
//! type = "s3"
//! s3_store_host = "http://127.0.0.1:7480"
//! s3_store_access_key = "…"
//! s3_store_secret_key_file = "/run/secrets/s3"   # or s3_store_secret_key; shown as "***"
//! s3_store_bucket = "images"
//! s3_store_create_bucket_on_put = true
//! ```
//!
//! Without a `[stores]` table glint serves one `file` store under the data folder and the
//! multi-store API is off (Glance's single-store mode). Every store table has one shape (the
//! union of the three kinds' keys, so the loader knows every key, and `<key>_file` for the S3
//! secret); [`StoreSettings::check`] refuses a key that does not belong to the store's
//! `type`, naming it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret};

/// `[stores]` (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoresConfig {
    /// The stores, by id. (Declared first: the configuration's shape is read off the first
    /// entry serialized.)
    #[serde(flatten)]
    pub stores: BTreeMap<String, StoreSettings>,
    /// The store uploads go to without `X-Image-Meta-Store` (Glance `default_backend`);
    /// required when more than one store is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// `false`: serve these stores in Glance's single-store mode (its legacy `[glance_store]
    /// stores` / `default_store` form): uploads go to the default store, images in the others
    /// stay readable, and the multi-store API is off. Unset: on (Glance `enabled_backends`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_store: Option<bool>,
}

/// A store's kind (Glance's `enabled_backends` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreType {
    /// Local files.
    #[default]
    File,
    /// An S3 API: Ceph RGW, AWS S3, …
    S3,
    /// Read-only images on web servers.
    Http,
}

impl StoreType {
    /// The name in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreType::File => "file",
            StoreType::S3 => "s3",
            StoreType::Http => "http",
        }
    }
}

/// `s3_store_bucket_url_format`: how the bucket is named in requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BucketUrlFormat {
    /// Virtual-host style for AWS endpoints, path style for any other endpoint.
    #[default]
    Auto,
    /// `http://host/bucket/key`.
    Path,
    /// `http://bucket.host/key` (needs DNS for the bucket's name).
    Virtual,
}

/// One `[stores.<id>]` table. Keys left out take the defaults of the typed views
/// ([`FileStoreSettings`], [`S3StoreSettings`], [`HttpStoreSettings`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    /// `file`, `s3` or `http`.
    #[serde(rename = "type")]
    pub kind: StoreType,
    /// Shown by `/v2/info/stores` (Glance `store_description`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Download preference among an image's locations: higher first (Glance `weight`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,

    /// file: the folder (Glance `filesystem_store_datadir`); unset: `<data_dir>/images`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filesystem_store_datadir: Option<PathBuf>,
    /// file: Glance's `filesystem_store_chunk_size` (reported; glint reads 256 KiB frames).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filesystem_store_chunk_size: Option<u64>,

    /// s3: `http(s)://host[:port]` (Glance `s3_store_host`; no scheme means `http://`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_store_host: Option<String>,
    /// s3: signing region (Glance `s3_store_region_name`; unset: `us-east-1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_store_region_name: Option<String>,
    /// s3: access key id (Glance `s3_store_access_key`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_store_access_key: Option<String>,
    /// s3: secret key (Glance `s3_store_secret_key`), or `s3_store_secret_key_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_store_secret_key: Option<Secret>,
    /// s3: the bucket (Glance `s3_store_bucket`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_store_bucket: Option<String>,
    /// s3: create the bucket when missing (Glance `s3_store_create_bucket_on_put`, false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_store_create_bucket_on_put: Option<bool>,
    /// s3: `auto`, `path` or `virtual` (Glance `s3_store_bucket_url_format`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_store_bucket_url_format: Option<BucketUrlFormat>,
    /// s3: MiB from which an upload is multipart (Glance `s3_store_large_object_size`, 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_store_large_object_size: Option<u64>,
    /// s3: MiB per part, at least 5 (Glance `s3_store_large_object_chunk_size`, 10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_store_large_object_chunk_size: Option<u64>,
    /// s3: parts of one upload in flight at once (Glance `s3_store_thread_pools`; glint's
    /// default is 3, not Glance's 10: an upload of unknown size (a chunked body) holds about
    /// `(this + 1) × chunk size`; one of announced size streams its parts and holds little).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_store_thread_pools: Option<usize>,
    /// s3: CA bundle for an https endpoint (Glance `s3_store_cacert`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_store_cacert: Option<PathBuf>,

    /// http: CA bundle for https origins (Glance `https_ca_certificates_file`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub https_ca_certificates_file: Option<PathBuf>,
    /// http: redirects followed (Glance's http store: 5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_max_redirects: Option<u32>,
}

/// A file store's settings, defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct FileStoreSettings {
    /// `filesystem_store_datadir`, resolved.
    pub datadir: PathBuf,
    /// `filesystem_store_chunk_size` (64 KiB).
    pub chunk_size: u64,
}

/// An S3 store's settings, defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct S3StoreSettings {
    /// `s3_store_host`.
    pub host: String,
    /// `s3_store_region_name`.
    pub region: String,
    /// `s3_store_access_key`.
    pub access_key: String,
    /// `s3_store_secret_key`.
    pub secret_key: Secret,
    /// `s3_store_bucket`.
    pub bucket: String,
    /// `s3_store_create_bucket_on_put`.
    pub create_bucket_on_put: bool,
    /// `s3_store_bucket_url_format`.
    pub bucket_url_format: BucketUrlFormat,
    /// `s3_store_large_object_size`, MiB.
    pub large_object_size_mib: u64,
    /// `s3_store_large_object_chunk_size`, MiB.
    pub large_object_chunk_size_mib: u64,
    /// `s3_store_thread_pools`.
    pub thread_pools: usize,
    /// `s3_store_cacert`.
    pub cacert: Option<PathBuf>,
}

impl Default for S3StoreSettings {
    fn default() -> Self {
        S3StoreSettings {
            host: String::new(),
            region: String::new(),
            access_key: String::new(),
            secret_key: Secret::default(),
            bucket: String::new(),
            create_bucket_on_put: false,
            bucket_url_format: BucketUrlFormat::Auto,
            large_object_size_mib: 100,
            large_object_chunk_size_mib: 10,
            thread_pools: 3,
            cacert: None,
        }
    }
}

/// An http store's settings, defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpStoreSettings {
    /// `https_ca_certificates_file`.
    pub ca_file: Option<PathBuf>,
    /// `http_max_redirects`.
    pub max_redirects: u32,
}

impl Default for HttpStoreSettings {
    fn default() -> Self {
        HttpStoreSettings {
            ca_file: None,
            max_redirects: 5,
        }
    }
}

impl StoreSettings {
    /// A sample with every key present, for the configuration's shape.
    pub(super) fn sample() -> StoreSettings {
        StoreSettings {
            kind: StoreType::File,
            description: Some(String::new()),
            weight: Some(0),
            filesystem_store_datadir: Some(PathBuf::new()),
            filesystem_store_chunk_size: Some(0),
            s3_store_host: Some(String::new()),
            s3_store_region_name: Some(String::new()),
            s3_store_access_key: Some(String::new()),
            s3_store_secret_key: Some(Secret::default()),
            s3_store_bucket: Some(String::new()),
            s3_store_create_bucket_on_put: Some(false),
            s3_store_bucket_url_format: Some(BucketUrlFormat::Auto),
            s3_store_large_object_size: Some(0),
            s3_store_large_object_chunk_size: Some(0),
            s3_store_thread_pools: Some(0),
            s3_store_cacert: Some(PathBuf::new()),
            https_ca_certificates_file: Some(PathBuf::new()),
            http_max_redirects: Some(0),
        }
    }

    /// The keys given that belong to another kind of store.
    fn foreign_keys(&self) -> Vec<&'static str> {
        let file = [
            (
                "filesystem_store_datadir",
                self.filesystem_store_datadir.is_some(),
            ),
            (
                "filesystem_store_chunk_size",
                self.filesystem_store_chunk_size.is_some(),
            ),
        ];
        let s3 = [
            ("s3_store_host", self.s3_store_host.is_some()),
            ("s3_store_region_name", self.s3_store_region_name.is_some()),
            ("s3_store_access_key", self.s3_store_access_key.is_some()),
            ("s3_store_secret_key", self.s3_store_secret_key.is_some()),
            ("s3_store_bucket", self.s3_store_bucket.is_some()),
            (
                "s3_store_create_bucket_on_put",
                self.s3_store_create_bucket_on_put.is_some(),
            ),
            (
                "s3_store_bucket_url_format",
                self.s3_store_bucket_url_format.is_some(),
            ),
            (
                "s3_store_large_object_size",
                self.s3_store_large_object_size.is_some(),
            ),
            (
                "s3_store_large_object_chunk_size",
                self.s3_store_large_object_chunk_size.is_some(),
            ),
            (
                "s3_store_thread_pools",
                self.s3_store_thread_pools.is_some(),
            ),
            ("s3_store_cacert", self.s3_store_cacert.is_some()),
        ];
        let http = [
            (
                "https_ca_certificates_file",
                self.https_ca_certificates_file.is_some(),
            ),
            ("http_max_redirects", self.http_max_redirects.is_some()),
        ];
        let foreign: Vec<&[(&'static str, bool)]> = match self.kind {
            StoreType::File => vec![&s3, &http],
            StoreType::S3 => vec![&file, &http],
            StoreType::Http => vec![&file, &s3],
        };
        foreign
            .into_iter()
            .flatten()
            .filter(|(_, given)| *given)
            .map(|(key, _)| *key)
            .collect()
    }

    /// Checks the store `id`'s table: no key of another kind, the keys its kind needs.
    pub fn check(&self, id: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: format!("stores.{id}.{key}"),
            message,
        };
        if let Some(key) = self.foreign_keys().first() {
            return Err(invalid(
                key,
                format!("not a setting of a {} store", self.kind.as_str()),
            ));
        }
        if self.kind == StoreType::S3 {
            let s3 = self.s3();
            for (key, value) in [
                ("s3_store_host", s3.host.as_str()),
                ("s3_store_access_key", s3.access_key.as_str()),
                ("s3_store_secret_key", s3.secret_key.expose()),
                ("s3_store_bucket", s3.bucket.as_str()),
            ] {
                if value.trim().is_empty() {
                    return Err(invalid(key, "is required for an s3 store".into()));
                }
            }
            if s3.large_object_chunk_size_mib < 5 {
                return Err(invalid(
                    "s3_store_large_object_chunk_size",
                    "must be at least 5 (MiB)".into(),
                ));
            }
            if s3.thread_pools == 0 {
                return Err(invalid(
                    "s3_store_thread_pools",
                    "must be at least 1".into(),
                ));
            }
        }
        Ok(())
    }

    /// The file-store view; `default_dir` when `filesystem_store_datadir` is unset.
    pub fn file(&self, default_dir: PathBuf) -> FileStoreSettings {
        FileStoreSettings {
            datadir: self.filesystem_store_datadir.clone().unwrap_or(default_dir),
            chunk_size: self.filesystem_store_chunk_size.unwrap_or(64 * 1024),
        }
    }

    /// The S3 view.
    pub fn s3(&self) -> S3StoreSettings {
        let d = S3StoreSettings::default();
        S3StoreSettings {
            host: self.s3_store_host.clone().unwrap_or(d.host),
            region: self.s3_store_region_name.clone().unwrap_or(d.region),
            access_key: self.s3_store_access_key.clone().unwrap_or(d.access_key),
            secret_key: self.s3_store_secret_key.clone().unwrap_or(d.secret_key),
            bucket: self.s3_store_bucket.clone().unwrap_or(d.bucket),
            create_bucket_on_put: self
                .s3_store_create_bucket_on_put
                .unwrap_or(d.create_bucket_on_put),
            bucket_url_format: self
                .s3_store_bucket_url_format
                .unwrap_or(d.bucket_url_format),
            large_object_size_mib: self
                .s3_store_large_object_size
                .unwrap_or(d.large_object_size_mib),
            large_object_chunk_size_mib: self
                .s3_store_large_object_chunk_size
                .unwrap_or(d.large_object_chunk_size_mib),
            thread_pools: self.s3_store_thread_pools.unwrap_or(d.thread_pools),
            cacert: self.s3_store_cacert.clone(),
        }
    }

    /// The http view.
    pub fn http(&self) -> HttpStoreSettings {
        let d = HttpStoreSettings::default();
        HttpStoreSettings {
            ca_file: self.https_ca_certificates_file.clone(),
            max_redirects: self.http_max_redirects.unwrap_or(d.max_redirects),
        }
    }
}

impl StoresConfig {
    /// Whether a `[stores]` table was given and not `multi_store = false` (Glance's
    /// multi-store mode).
    pub fn is_multi(&self) -> bool {
        !self.stores.is_empty() && self.multi_store != Some(false)
    }

    /// The default store's id: `default`, or the only store.
    pub fn default_id(&self) -> Option<&str> {
        match (&self.default, self.stores.len()) {
            (Some(default), _) => Some(default),
            (None, 1) => self.stores.keys().next().map(String::as_str),
            (None, _) => None,
        }
    }

    /// Checks every store table and the default, naming the key at fault.
    pub fn check(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: key.into(),
            message,
        };
        for (id, store) in &self.stores {
            let valid_id = !id.is_empty()
                && id.len() <= 255
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid_id {
                return Err(invalid(
                    &format!("stores.{id}"),
                    "a store id is 1-255 of A-Z a-z 0-9 _ -".into(),
                ));
            }
            if id == "default" {
                return Err(invalid(
                    "stores.default",
                    "must be a store id, not a table".into(),
                ));
            }
            store.check(id)?;
        }
        if self.stores.is_empty() {
            if self.multi_store.is_some() {
                return Err(invalid(
                    "stores.multi_store",
                    "there are no stores: add a [stores.<id>] table".into(),
                ));
            }
            if self.default.is_some() {
                return Err(invalid(
                    "stores.default",
                    "names no store: add a [stores.<id>] table".into(),
                ));
            }
            return Ok(());
        }
        match self.default_id() {
            None => Err(invalid(
                "stores.default",
                "is required when several stores are configured".into(),
            )),
            Some(default) => match self.stores.get(default) {
                None => Err(invalid(
                    "stores.default",
                    format!("{default:?} is not a configured store"),
                )),
                Some(store) if store.kind == StoreType::Http => Err(invalid(
                    "stores.default",
                    format!("{default:?} is an http store, which is read-only"),
                )),
                Some(_) => Ok(()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("glint.toml")).and_then(|c| {
            c.validate()?;
            Ok(c)
        })
    }

    const TWO_STORES: &str = r#"
[stores]
default = "local"
[stores.local]
type = "file"
filesystem_store_datadir = "/var/lib/glint/images"
description = "Local disk"
[stores.ceph]
type = "s3"
s3_store_host = "http://127.0.0.1:7480"
s3_store_access_key = "AK"
s3_store_secret_key = "the-secret"
s3_store_bucket = "images"
s3_store_create_bucket_on_put = true
[stores.web]
type = "http"
"#;

    #[test]
    fn glance_names_parse_and_the_secret_prints_as_stars() {
        let config = load(TWO_STORES).unwrap();
        let stores = &config.stores;
        assert!(stores.is_multi());
        assert_eq!(stores.default_id(), Some("local"));
        let ceph = stores.stores["ceph"].s3();
        assert_eq!(ceph.secret_key.expose(), "the-secret");
        assert_eq!(ceph.large_object_size_mib, 100);
        assert_eq!(ceph.large_object_chunk_size_mib, 10);
        assert!(ceph.create_bucket_on_put);
        let local = stores.stores["local"].file(PathBuf::from("/x"));
        assert_eq!(local.datadir, PathBuf::from("/var/lib/glint/images"));
        let shown = toml::to_string(&config).unwrap();
        assert!(!shown.contains("the-secret"), "{shown}");
        assert!(shown.contains("s3_store_secret_key = \"***\""), "{shown}");
        assert!(shown.contains("default = \"local\""), "{shown}");
        // What check-config prints loads again (secrets aside).
        let again = Config::from_toml(&shown, Path::new("shown.toml")).unwrap();
        assert_eq!(again.stores.stores.len(), 3);
    }

    #[test]
    fn the_secret_can_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s3");
        std::fs::write(&file, "from-file\n").unwrap();
        let text = TWO_STORES.replace(
            "s3_store_secret_key = \"the-secret\"",
            &format!(
                "s3_store_secret_key_file = {:?}",
                file.display().to_string()
            ),
        );
        let config = load(&text).unwrap();
        assert_eq!(
            config.stores.stores["ceph"].s3().secret_key.expose(),
            "from-file"
        );
    }

    #[test]
    fn mistakes_name_their_key() {
        let err = |text: &str| load(text).unwrap_err().to_string();
        let typo = err("[stores.local]\ntype = \"file\"\nfilesystem_store_dir = \"/x\"\n");
        assert!(typo.contains("filesystem_store_datadir"), "{typo}");
        let foreign = err("[stores.local]\ntype = \"file\"\ns3_store_bucket = \"b\"\n");
        assert!(
            foreign.contains("stores.local.s3_store_bucket"),
            "{foreign}"
        );
        let missing = err("[stores.ceph]\ntype = \"s3\"\ns3_store_host = \"h\"\n");
        assert!(
            missing.contains("stores.ceph.s3_store_access_key"),
            "{missing}"
        );
        let two = err("[stores.a]\ntype = \"file\"\n[stores.b]\ntype = \"file\"\n");
        assert!(two.contains("stores.default"), "{two}");
        let unknown = err("[stores]\ndefault = \"nope\"\n[stores.a]\ntype = \"file\"\n");
        assert!(unknown.contains("nope"), "{unknown}");
        let http = err("[stores]\ndefault = \"w\"\n[stores.w]\ntype = \"http\"\n");
        assert!(http.contains("read-only"), "{http}");
        let kind = err("[stores.a]\ntype = \"swift\"\n");
        assert!(kind.contains("swift") || kind.contains("type"), "{kind}");
        assert!(!err(&TWO_STORES.replace("AK", "")).contains("the-secret"));
    }

    #[test]
    fn no_stores_table_is_single_store_mode() {
        let config = load("").unwrap();
        assert!(!config.stores.is_multi());
        assert!(load("[stores]\ndefault = \"x\"\n").is_err());
        assert!(load("[stores]\nmulti_store = false\n").is_err());
    }

    #[test]
    fn multi_store_false_serves_the_stores_in_single_store_mode() {
        let text = TWO_STORES.replace(
            "default = \"local\"",
            "default = \"local\"\nmulti_store = false",
        );
        let config = load(&text).unwrap();
        assert!(!config.stores.is_multi());
        assert_eq!(config.stores.stores.len(), 3);
        assert_eq!(config.stores.default_id(), Some("local"));
        assert!(load(TWO_STORES).unwrap().stores.is_multi());
    }
}
