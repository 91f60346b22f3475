//! `glance-download`: an image imported from another region's Image service, as Glance's
//! `_ImportMetadata` and `GlanceDownload` tasks do it.
//!
//! 1. The Image service of `glance_region` on `glance_service_interface` is looked up in the
//!    caller's service catalog (Keystone's, fetched with the caller's token: validation keeps
//!    asking without the catalog, see `auth::catalog`). Without Keystone there is no catalog
//!    and the task fails saying so.
//! 2. `GET {endpoint}/v2/images/{glance_image_id}` with the caller's token: the remote image
//!    must be `active`; its `size`, `disk_format` and `container_format` and the properties
//!    named by `[glance_download_properties] extra_properties` (prefixes; `os_glance*` never)
//!    are what the local image takes.
//! 3. `GET {endpoint}/v2/images/{id}/file` with the caller's token into the staging area. Both
//!    requests go through `net::fetch`, so the catalog's endpoint meets the same
//!    `[import_filtering_opts]` policy as a web-download URL (a private or loopback endpoint
//!    must be named in `allowed_hosts`). The data must be as large as the remote says
//!    (Glance's check) and, beyond Glance, hash to the remote's `checksum` and, when both
//!    sides use the same `os_hash_algo`, its `os_hash_value`.
//!
//! From the staging area the import goes on as glance-direct's (plugins, stores). The remote
//! image's formats and properties are written by `end_import` with the rest, so a failed
//! import leaves the local image as it was (Glance writes them first and undoes them on
//! revert; the outcome is the same).

use std::collections::BTreeMap;

use http::{HeaderMap, HeaderValue};
use serde_json::Value;

use super::Shared;
use crate::auth::keystone::CatalogError;
use crate::config::Secret;
use crate::datapath::checksum::Digests;
use crate::net::client::{ClientSettings, HttpClient};
use crate::net::fetch::{FetchError, FetchRequest, Fetcher};

/// The remote image's metadata document is refused beyond this size.
const METADATA_MAX_BYTES: u64 = 1 << 20;

/// What a glance-download import asks for (the body's `method`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// `glance_region`: the region whose Image service holds the image.
    pub region: String,
    /// `glance_image_id`: the image there.
    pub image_id: uuid::Uuid,
    /// `glance_service_interface`: `public` (the default), `internal` or `admin`.
    pub interface: String,
}

/// The remote image, as far as the import uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RemoteImage {
    /// Where its data is (`…/v2/images/{id}/file`).
    pub(super) file_url: String,
    pub(super) size: u64,
    pub(super) disk_format: String,
    pub(super) container_format: String,
    checksum: Option<String>,
    os_hash_algo: Option<String>,
    os_hash_value: Option<String>,
    /// The properties copied onto the local image.
    pub(super) properties: BTreeMap<String, String>,
}

/// Finds the remote Image service and reads the image's metadata (steps 1 and 2).
pub(super) async fn remote_image(
    shared: &Shared,
    source: &Source,
    token: Option<&Secret>,
    base_attribute: fn(&str) -> bool,
) -> Result<RemoteImage, String> {
    let Some(catalogs) = &shared.catalogs else {
        return Err(
            "glance-download needs the caller's service catalog, and this glint \
                    validates no tokens (auth strategy noauth): configure Keystone auth to \
                    import from another region."
                .to_owned(),
        );
    };
    let token = token.ok_or("The import request carried no token.")?;
    let catalog = catalogs
        .catalog(token.expose())
        .await
        .map_err(|e| match e {
            CatalogError::InvalidToken => format!("Cannot read the service catalog: {e}."),
            e => format!("Cannot read the service catalog: {e}"),
        })?;
    let endpoint = catalog
        .image_endpoint(&source.region, &source.interface)
        .ok_or_else(|| {
            // Glance's GlanceEndpointNotFound.
            format!(
                "{} glance endpoint not found for region {}",
                source.interface, source.region
            )
        })?;
    let url = format!("{endpoint}/v2/images/{}", source.image_id);
    tracing::info!(url = %url, "fetching the remote image's metadata");
    let policy = (*shared.fetch_policy)
        .clone()
        .with_max_bytes(METADATA_MAX_BYTES);
    let fetcher = Fetcher::new(
        HttpClient::new(ClientSettings::default()),
        std::sync::Arc::new(policy),
    );
    let fetched = fetcher
        .fetch(authorized(&url, token)?)
        .await
        .map_err(|e| fetch_failure(&url, "fetch the remote image's metadata", e))?;
    let body = fetched
        .body
        .bytes(METADATA_MAX_BYTES as usize)
        .await
        .map_err(|e| format!("Cannot read the remote image's metadata from {url}: {e}"))?;
    let document: Value = serde_json::from_slice(&body)
        .map_err(|_| format!("The remote image's metadata from {url} is not JSON."))?;
    let remote = parse_remote(
        &document,
        source,
        &format!("{url}/file"),
        &shared.config.glance_download_properties.extra_properties,
        base_attribute,
    )?;
    // The local image takes the remote's formats: they must be formats of this site.
    let config = &shared.config;
    for (key, value, allowed) in [
        ("disk_format", &remote.disk_format, &config.disk_formats),
        (
            "container_format",
            &remote.container_format,
            &config.container_formats,
        ),
    ] {
        if !allowed.contains(value) {
            return Err(format!(
                "The remote image's {key} {value} is not one of this site's {key}s: {}",
                allowed.join(", ")
            ));
        }
    }
    Ok(remote)
}

/// The remote image's data request: `…/file` with the caller's token.
pub(super) fn file_request(
    remote: &RemoteImage,
    token: Option<&Secret>,
) -> Result<FetchRequest, String> {
    let token = token.ok_or("The import request carried no token.")?;
    authorized(&remote.file_url, token)
}

/// The words of a failed fetch of `url`: a refusal by the policy names the filter, as Glance.
pub(super) fn fetch_failure(url: &str, what: &str, e: FetchError) -> String {
    if e.is_refusal() {
        format!("Processed URI for glance-download does not pass filtering: {url} ({e})")
    } else {
        format!("Cannot {what}: {e}")
    }
}

fn authorized(url: &str, token: &Secret) -> Result<FetchRequest, String> {
    let mut value = HeaderValue::from_str(token.expose())
        .map_err(|_| "The request's token cannot be sent on.".to_owned())?;
    value.set_sensitive(true);
    let mut headers = HeaderMap::new();
    headers.insert("x-auth-token", value);
    let mut request = FetchRequest::get(url);
    request.headers = headers;
    Ok(request)
}

/// The remote image from its `GET /v2/images/{id}` document, with the properties whose names
/// start with one of `prefixes` (string values only, never `os_glance*` nor a base
/// attribute).
fn parse_remote(
    document: &Value,
    source: &Source,
    file_url: &str,
    prefixes: &[String],
    is_base_attribute: fn(&str) -> bool,
) -> Result<RemoteImage, String> {
    let Some(fields) = document.as_object() else {
        return Err("The remote image's metadata is not a JSON object.".to_owned());
    };
    let text = |key: &str| fields.get(key).and_then(Value::as_str).map(str::to_owned);
    let status = text("status").unwrap_or_default();
    if status != "active" {
        return Err(format!(
            "Source image status should be active instead of {status}"
        ));
    }
    let size = fields.get("size").and_then(Value::as_u64).ok_or_else(|| {
        format!(
            "Size attribute of remote image {} could not be determined.",
            source.image_id
        )
    })?;
    let format = |key: &str| {
        text(key).ok_or_else(|| format!("The remote image {} has no {key}.", source.image_id))
    };
    let properties = fields
        .iter()
        .filter(|(key, _)| {
            prefixes.iter().any(|p| key.starts_with(p.as_str()))
                && !key.starts_with("os_glance")
                && !is_base_attribute(key)
        })
        .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned())))
        .collect();
    Ok(RemoteImage {
        file_url: file_url.to_owned(),
        size,
        disk_format: format("disk_format")?,
        container_format: format("container_format")?,
        checksum: text("checksum"),
        os_hash_algo: text("os_hash_algo"),
        os_hash_value: text("os_hash_value"),
        properties,
    })
}

/// `image_property_quota` (negative: unlimited) on the local image with the remote's
/// properties added, checked before any byte moves (Glance's save of the image refuses it).
pub(super) fn check_property_quota(
    local: &BTreeMap<String, String>,
    remote: &RemoteImage,
    quota: i64,
) -> Result<(), String> {
    let added = remote
        .properties
        .keys()
        .filter(|k| !local.contains_key(*k))
        .count();
    let attempted = local.len() + added;
    if quota >= 0 && attempted as u64 > quota as u64 {
        return Err(format!(
            "The limit has been exceeded on the number of allowed image properties. \
             Attempted: {attempted}, Maximum: {quota}"
        ));
    }
    Ok(())
}

/// Whether the downloaded data hashes as the remote image says it should.
pub(super) fn check_digests(remote: &RemoteImage, digests: &Digests) -> Result<(), String> {
    let corrupt = |what: &str| {
        format!(
            "The downloaded data's {what} differs from the remote image's: the data changed on \
             the way; try the import again."
        )
    };
    if remote
        .checksum
        .as_deref()
        .is_some_and(|c| c != digests.checksum)
    {
        return Err(corrupt("checksum"));
    }
    if remote.os_hash_algo.as_deref() == Some(digests.os_hash_algo.as_str())
        && remote
            .os_hash_value
            .as_deref()
            .is_some_and(|v| v != digests.os_hash_value)
    {
        return Err(corrupt("os_hash_value"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn source() -> Source {
        Source {
            region: "RegionTwo".into(),
            image_id: "1b1c2a8e-5f4e-4b0a-9d43-7d2f64f7c0a1".parse().unwrap(),
            interface: "public".into(),
        }
    }

    fn is_base(key: &str) -> bool {
        matches!(key, "os_hash_algo" | "os_hash_value" | "os_hidden" | "name")
    }

    fn prefixes() -> Vec<String> {
        crate::config::GlanceDownloadProperties::default().extra_properties
    }

    fn remote_doc() -> Value {
        json!({
            "id": "1b1c2a8e-5f4e-4b0a-9d43-7d2f64f7c0a1", "name": "cirros",
            "status": "active", "size": 1024, "disk_format": "qcow2",
            "container_format": "bare", "checksum": "abc", "os_hash_algo": "sha512",
            "os_hash_value": "def", "os_hidden": false, "visibility": "public",
            "hw_disk_bus": "virtio", "hw_qemu_guest_agent": "yes", "trait:CUSTOM_X": "required",
            "os_distro": "cirros", "os_type": "linux", "os_secure_boot": "required",
            "os_glance_importing_to_stores": "", "architecture": "x86_64", "owner_specified.x": "y",
            "hw_numbers": 4
        })
    }

    #[test]
    fn copies_only_the_configured_prefixes() {
        let remote =
            parse_remote(&remote_doc(), &source(), "u/file", &prefixes(), is_base).unwrap();
        let keys: Vec<&str> = remote.properties.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "hw_disk_bus",
                "hw_qemu_guest_agent",
                "os_distro",
                "os_secure_boot",
                "os_type",
                "trait:CUSTOM_X"
            ]
        );
        assert_eq!(remote.properties["hw_disk_bus"], "virtio");
        assert_eq!((remote.size, remote.disk_format.as_str()), (1024, "qcow2"));
        assert_eq!(remote.container_format, "bare");
    }

    #[test]
    fn a_broad_prefix_never_copies_reserved_or_base_attributes() {
        let prefixes = vec!["os_".to_owned(), "arch".to_owned()];
        let remote = parse_remote(&remote_doc(), &source(), "u/file", &prefixes, is_base).unwrap();
        let keys: Vec<&str> = remote.properties.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["architecture", "os_distro", "os_secure_boot", "os_type"]
        );
        let none = parse_remote(&remote_doc(), &source(), "u/file", &[], is_base).unwrap();
        assert!(none.properties.is_empty());
    }

    #[test]
    fn the_remote_image_must_be_active_with_a_size_and_formats() {
        let mut doc = remote_doc();
        doc["status"] = json!("queued");
        let err = parse_remote(&doc, &source(), "u", &prefixes(), is_base).unwrap_err();
        assert_eq!(
            err,
            "Source image status should be active instead of queued"
        );
        let mut doc = remote_doc();
        doc["size"] = Value::Null;
        let err = parse_remote(&doc, &source(), "u", &prefixes(), is_base).unwrap_err();
        assert_eq!(
            err,
            "Size attribute of remote image 1b1c2a8e-5f4e-4b0a-9d43-7d2f64f7c0a1 could not be \
             determined."
        );
        let mut doc = remote_doc();
        doc["disk_format"] = Value::Null;
        let err = parse_remote(&doc, &source(), "u", &prefixes(), is_base).unwrap_err();
        assert!(err.contains("has no disk_format"), "{err}");
        assert!(parse_remote(&json!([]), &source(), "u", &prefixes(), is_base).is_err());
    }

    #[test]
    fn the_copied_properties_count_against_the_property_quota() {
        let remote = parse_remote(&remote_doc(), &source(), "u", &prefixes(), is_base).unwrap();
        assert_eq!(remote.properties.len(), 6);
        let mut local = BTreeMap::new();
        local.insert("hw_disk_bus".to_owned(), "ide".to_owned());
        local.insert("mine".to_owned(), "x".to_owned());
        // 2 local + 5 new (hw_disk_bus is replaced, not added).
        assert!(check_property_quota(&local, &remote, 7).is_ok());
        assert!(check_property_quota(&local, &remote, -1).is_ok());
        let err = check_property_quota(&local, &remote, 6).unwrap_err();
        assert!(err.ends_with("Attempted: 7, Maximum: 6"), "{err}");
    }

    #[test]
    fn digests_must_match_the_remote_where_comparable() {
        let remote = parse_remote(&remote_doc(), &source(), "u", &prefixes(), is_base).unwrap();
        let digests = |checksum: &str, algo: &str, value: &str| Digests {
            checksum: checksum.into(),
            os_hash_algo: algo.into(),
            os_hash_value: value.into(),
        };
        assert!(check_digests(&remote, &digests("abc", "sha512", "def")).is_ok());
        assert!(check_digests(&remote, &digests("abd", "sha512", "def"))
            .unwrap_err()
            .contains("checksum"));
        assert!(check_digests(&remote, &digests("abc", "sha512", "xyz"))
            .unwrap_err()
            .contains("os_hash_value"));
        // Another algorithm here: the remote's value cannot be compared, md5 still is.
        assert!(check_digests(&remote, &digests("abc", "sha256", "xyz")).is_ok());
    }
}
