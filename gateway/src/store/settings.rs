//! The settings of each kind of store, with Glance's option names (`filesystem_store_datadir`,
//! `s3_store_host`, …), so that a `glance-api.conf` store section translates line by line.
//!
//! ```toml
//! [stores]
//! default = "local"                  # Glance: [glance_store] default_backend
//!
//! [stores.local]
//! type = "file"                      # file | s3 | http  (Glance: enabled_backends)
//! filesystem_store_datadir = "/var/lib/glint/images"
//! description = "Local disk"
//!
//! [stores.ceph]
//! type = "s3"
//! s3_store_host = "http://127.0.0.1:7480"
//! s3_store_access_key = "…"
//! s3_store_secret_key = "…"
//! s3_store_bucket = "images"
//! s3_store_create_bucket_on_put = true
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::net::s3::SecretKey;

/// `[stores]`: the named stores, and which takes uploads by default. Without the table glint
/// serves one `file` store under the data folder (Glance's single-store mode).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoresConfig {
    /// The store uploads go to without `X-Image-Meta-Store` (Glance `default_backend`);
    /// required when more than one store is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// The stores, by id (Glance `enabled_backends`, one table per store).
    #[serde(flatten)]
    pub stores: BTreeMap<String, StoreSettings>,
}

/// One store's settings, by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum StoreSettings {
    /// Local files.
    File(FileStoreSettings),
    /// An S3 API (Ceph RGW, AWS S3, …).
    S3(S3StoreSettings),
    /// Read-only images on web servers.
    Http(HttpStoreSettings),
}

impl StoreSettings {
    /// The store's `description`.
    pub fn description(&self) -> Option<&str> {
        match self {
            StoreSettings::File(s) => s.description.as_deref(),
            StoreSettings::S3(s) => s.description.as_deref(),
            StoreSettings::Http(s) => s.description.as_deref(),
        }
    }

    /// The store's `weight`.
    pub fn weight(&self) -> i64 {
        match self {
            StoreSettings::File(s) => s.weight,
            StoreSettings::S3(s) => s.weight,
            StoreSettings::Http(s) => s.weight,
        }
    }
}

/// `type = "file"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileStoreSettings {
    /// The folder holding the images (Glance `filesystem_store_datadir`); created if missing.
    /// Unset: `<data_dir>/images`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filesystem_store_datadir: Option<PathBuf>,
    /// Bytes read per download frame (Glance `filesystem_store_chunk_size`, 64 KiB; glint
    /// reads 256 KiB frames and reports this value).
    pub filesystem_store_chunk_size: u64,
    /// Shown by `/v2/info/stores` (Glance `store_description`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Download preference among an image's locations: higher first (Glance `weight`).
    pub weight: i64,
}

impl Default for FileStoreSettings {
    fn default() -> Self {
        FileStoreSettings {
            filesystem_store_datadir: None,
            filesystem_store_chunk_size: 64 * 1024,
            description: None,
            weight: 0,
        }
    }
}

/// `s3_store_bucket_url_format`: how the bucket is named in requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BucketUrlFormat {
    /// Virtual-host style when the host is a name and the bucket a valid DNS label, else path.
    #[default]
    Auto,
    /// `http://host/bucket/key`.
    Path,
    /// `http://bucket.host/key`.
    Virtual,
}

/// `type = "s3"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3StoreSettings {
    /// `http(s)://host[:port]` of the S3 service (Glance `s3_store_host`; a bare host means
    /// `http://`).
    pub s3_store_host: String,
    /// Signing region (Glance `s3_store_region_name`; empty: `us-east-1`).
    pub s3_store_region_name: String,
    /// Access key id (Glance `s3_store_access_key`).
    pub s3_store_access_key: String,
    /// Secret key (Glance `s3_store_secret_key`); shown as `***`.
    pub s3_store_secret_key: SecretKey,
    /// Bucket holding the images (Glance `s3_store_bucket`).
    pub s3_store_bucket: String,
    /// Create the bucket when it is missing (Glance `s3_store_create_bucket_on_put`).
    pub s3_store_create_bucket_on_put: bool,
    /// `auto`, `path` or `virtual` (Glance `s3_store_bucket_url_format`).
    pub s3_store_bucket_url_format: BucketUrlFormat,
    /// MiB from which an upload goes up as a multipart upload (Glance
    /// `s3_store_large_object_size`, 100). Uploads of unknown size start multipart once they
    /// pass one part.
    pub s3_store_large_object_size: u64,
    /// MiB per part of a multipart upload, at least 5 (Glance
    /// `s3_store_large_object_chunk_size`, 10). Larger for images that would need more than
    /// 10,000 parts.
    pub s3_store_large_object_chunk_size: u64,
    /// Parts of one upload sent at once (Glance `s3_store_thread_pools`). Memory held by an
    /// upload is about `(this + 1) × chunk size`.
    pub s3_store_thread_pools: usize,
    /// CA bundle for an https endpoint (Glance `s3_store_cacert`); unset: the system's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_store_cacert: Option<PathBuf>,
    /// Shown by `/v2/info/stores` (Glance `store_description`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Download preference among an image's locations: higher first (Glance `weight`).
    pub weight: i64,
}

impl Default for S3StoreSettings {
    fn default() -> Self {
        S3StoreSettings {
            s3_store_host: String::new(),
            s3_store_region_name: String::new(),
            s3_store_access_key: String::new(),
            s3_store_secret_key: SecretKey::new(""),
            s3_store_bucket: String::new(),
            s3_store_create_bucket_on_put: false,
            s3_store_bucket_url_format: BucketUrlFormat::Auto,
            s3_store_large_object_size: 100,
            s3_store_large_object_chunk_size: 10,
            s3_store_thread_pools: 4,
            s3_store_cacert: None,
            description: None,
            weight: 0,
        }
    }
}

/// `type = "http"`: images whose location is an `http(s)://` URL. Fetches go through the URL
/// policy (`[import_filtering_opts]`): a private or loopback origin must be named in
/// `allowed_hosts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpStoreSettings {
    /// CA bundle for https origins (Glance `https_ca_certificates_file`); unset: the system's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub https_ca_certificates_file: Option<PathBuf>,
    /// Redirects followed (Glance's http store follows at most 5).
    pub http_max_redirects: u32,
    /// Shown by `/v2/info/stores` (Glance `store_description`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Download preference among an image's locations: higher first (Glance `weight`).
    pub weight: i64,
}

impl Default for HttpStoreSettings {
    fn default() -> Self {
        HttpStoreSettings {
            https_ca_certificates_file: None,
            http_max_redirects: 5,
            description: None,
            weight: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_table_parses_with_glance_names_and_refuses_unknown_keys() {
        let config: StoresConfig = toml::from_str(
            r#"
default = "local"
[local]
type = "file"
filesystem_store_datadir = "/var/lib/glint/images"
description = "Local disk"
[ceph]
type = "s3"
s3_store_host = "http://127.0.0.1:7480"
s3_store_access_key = "AK"
s3_store_secret_key = "SK"
s3_store_bucket = "images"
s3_store_create_bucket_on_put = true
[web]
type = "http"
"#,
        )
        .unwrap();
        assert_eq!(config.default.as_deref(), Some("local"));
        assert_eq!(config.stores.len(), 3);
        let StoreSettings::S3(s3) = &config.stores["ceph"] else {
            panic!("ceph is s3")
        };
        assert_eq!(s3.s3_store_secret_key.expose(), "SK");
        assert_eq!(s3.s3_store_large_object_size, 100);
        assert_eq!(s3.s3_store_large_object_chunk_size, 10);
        let shown = toml::to_string(&config).unwrap();
        assert!(!shown.contains("SK\""), "{shown}");
        assert!(shown.contains("s3_store_secret_key = \"***\""), "{shown}");
        let err = toml::from_str::<StoresConfig>("[x]\ntype = \"file\"\nfilesystem_datadir = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("filesystem_datadir"), "{err}");
        let err = toml::from_str::<StoresConfig>("[x]\ntype = \"swift\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("swift"), "{err}");
    }
}
