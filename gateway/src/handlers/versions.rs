//! The versions document (`GET /versions` → 200, `GET /` and unknown prefixes → 300).
//!
//! Glance's minor versions are feature markers, not negotiation: clients read the list to
//! learn what exists (python-glanceclient refuses its cache commands unless `v2.14` is listed,
//! for example). So glint lists exactly the minor versions whose features it serves; the table
//! below says what each one needs. A version joins the list in the commit that completes it.

use http::HeaderMap;
use serde_json::{json, Value};

/// `(minor version, what it added, served by glint)`.
const MINOR_VERSIONS: &[(u32, &str, bool)] = &[
    (
        0,
        "images CRUD, JSON patch, data upload/download, tags, schemas",
        true,
    ),
    (1, "image members (sharing)", true),
    (2, "tasks, metadata definitions", false),
    (3, "deactivate/reactivate", true),
    // Location rules only bite when locations are exposed (show_multiple_locations); off,
    // as Glance's default, every location patch is refused, as in Glance.
    (4, "location rules", true),
    (5, "community visibility; shared as the default", true),
    (6, "interoperable import (stage/import)", false),
    (
        7,
        "os_hidden and multihash (os_hash_algo/os_hash_value)",
        true,
    ),
    // /v2/info/stores, X-Image-Meta-Store, `stores` (multi-store: 404 without `[stores]`,
    // as Glance answers).
    (8, "multiple stores discovery", true),
    (9, "import into several stores", false),
    (10, "delete from one store; copy-image", false),
    (11, "import robustness", false),
    (12, "tasks of an image", false),
    (13, "quota usage", true),
    (14, "cache management API", true),
    (15, "stores detail", true),
    (16, "cache queue returns 202", true),
    (17, "new location API", true),
    (18, "cache clean/prune/nodes", true),
];

/// The versions that exist only with an image cache (Glance lists them only with
/// `image_cache_dir`; python-glanceclient's cache commands look for 2.14).
const CACHE_VERSIONS: [u32; 3] = [14, 16, 18];

static CACHE_ON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Says whether this gateway has an image cache, once at start-up: the cache versions are
/// listed only then.
pub fn set_cache_enabled(on: bool) {
    CACHE_ON.store(on, std::sync::atomic::Ordering::Relaxed);
}

fn served() -> impl DoubleEndedIterator<Item = u32> {
    served_for(CACHE_ON.load(std::sync::atomic::Ordering::Relaxed))
}

/// The served minor versions, with or without an image cache.
fn served_for(cache: bool) -> impl DoubleEndedIterator<Item = u32> {
    MINOR_VERSIONS
        .iter()
        .filter(move |(minor, _, served)| *served && (cache || !CACHE_VERSIONS.contains(minor)))
        .map(|(minor, _, _)| *minor)
}

/// Whether a path's first segment names the v2 API: `v2` or `v2.N` for a listed N.
pub fn is_advertised(segment: &str) -> bool {
    match segment.strip_prefix("v2") {
        Some("") => true,
        Some(rest) => rest
            .strip_prefix('.')
            .and_then(|minor| minor.parse::<u32>().ok())
            .is_some_and(|minor| served().any(|m| m == minor)),
        None => false,
    }
}

/// The versions document; links use `public_endpoint` or the request's own host.
pub fn document(public_endpoint: Option<&str>, headers: &HeaderMap) -> Value {
    let base = match public_endpoint {
        Some(endpoint) => endpoint.trim_end_matches('/').to_owned(),
        None => request_base(headers),
    };
    let href = format!("{base}/v2/");
    let current = served().next_back().unwrap_or(0);
    let versions: Vec<Value> = served()
        .rev()
        .map(|minor| {
            json!({
                "id": format!("v2.{minor}"),
                "status": if minor == current { "CURRENT" } else { "SUPPORTED" },
                "links": [{"rel": "self", "href": href}],
            })
        })
        .collect();
    json!({ "versions": versions })
}

/// `scheme://host[:port]` as the client addressed us, honouring `X-Forwarded-Proto` and
/// `X-Forwarded-Host` from a proxy in front.
pub fn request_base(headers: &HeaderMap) -> String {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let scheme = get("x-forwarded-proto").unwrap_or("http");
    let host = get("x-forwarded-host")
        .or_else(|| get("host"))
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

impl crate::app::App {
    /// `scheme://host[:port]` for absolute links: `public_endpoint`, else as the client
    /// addressed us.
    pub fn base_url(&self, headers: &HeaderMap) -> String {
        match &self.config.public_endpoint {
            Some(endpoint) => endpoint.trim_end_matches('/').to_owned(),
            None => request_base(headers),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_served_versions_newest_current() {
        let doc = document(Some("http://glint:9292/"), &HeaderMap::new());
        let versions = doc["versions"].as_array().unwrap();
        assert_eq!(versions[0]["id"], "v2.17");
        assert_eq!(versions[0]["status"], "CURRENT");
        assert_eq!(versions[0]["links"][0]["href"], "http://glint:9292/v2/");
        assert!(versions.iter().any(|v| v["id"] == "v2.1"), "members");
        assert!(
            versions.iter().all(|v| v["id"] != "v2.6"),
            "import is not served yet"
        );
        assert_eq!(versions.last().unwrap()["id"], "v2.0");
    }

    #[test]
    fn cache_versions_are_listed_with_a_cache_only() {
        let without: Vec<u32> = served_for(false).collect();
        assert!(!without.iter().any(|m| CACHE_VERSIONS.contains(m)));
        let with: Vec<u32> = served_for(true).collect();
        assert_eq!(with.last(), Some(&18));
        assert!(with.contains(&14) && with.contains(&16));
        assert!(without.contains(&17) && without.contains(&15));
    }

    #[test]
    fn prefixes() {
        assert!(is_advertised("v2"));
        assert!(is_advertised("v2.0"));
        assert!(is_advertised("v2.7"));
        assert!(!is_advertised("v2.6"));
        assert!(!is_advertised("v1"));
        assert!(!is_advertised("v2.x"));
    }
}
