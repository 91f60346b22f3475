//! The versions document (`/`, `/versions`, unknown prefixes), `/v2.N` prefixes and
//! `/healthcheck`.

use glint_tests::TestServer;
use serde_json::{json, Value};

/// Ids that name features glint serves, so they MUST be listed (§1.3):
/// 2.0 base API, 2.3 deactivate/reactivate, 2.5 community visibility, 2.7 os_hidden and
/// multihash; 2.1 members, 2.13 quota usage. (§1.2 recommends the full 2.0–2.18 list once members, import, multi-store and
/// the cache exist; until then the list may stop lower.)
const REQUIRED_IDS: [&str; 6] = ["v2.0", "v2.1", "v2.3", "v2.5", "v2.7", "v2.13"];

fn minor(id: &str) -> u32 {
    id.strip_prefix("v2.")
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("version id {id:?} is not v2.N"))
}

/// The advertised ids, checked for shape: v2.N (N ≤ 18), unique, the required ones present,
/// `links` = one self link to `<endpoint>/v2/`, and exactly one CURRENT: the highest.
fn check_versions_body(srv: &TestServer, body: &Value) -> Vec<String> {
    let versions = body["versions"].as_array().expect("versions array");
    let mut ids: Vec<String> = versions
        .iter()
        .map(|v| v["id"].as_str().expect("id").to_owned())
        .collect();
    ids.sort_by_key(|id| minor(id));
    let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "duplicate ids: {body}");
    assert!(ids.iter().all(|id| minor(id) <= 18), "{ids:?}");
    for required in REQUIRED_IDS {
        assert!(
            ids.iter().any(|id| id == required),
            "{required} not listed: {ids:?}"
        );
    }
    let href = format!("{}/v2/", srv.url());
    for v in versions {
        assert!(
            v["status"] == "CURRENT" || v["status"] == "SUPPORTED",
            "status of {v}"
        );
        assert_eq!(
            v["links"],
            json!([{"rel": "self", "href": href}]),
            "links of {v}"
        );
    }
    let current: Vec<&Value> = versions
        .iter()
        .filter(|v| v["status"] == "CURRENT")
        .collect();
    assert_eq!(current.len(), 1, "exactly one CURRENT: {body}");
    assert_eq!(
        current[0]["id"].as_str(),
        ids.last().map(String::as_str),
        "the highest version is CURRENT"
    );
    ids
}

#[test]
fn versions_path_returns_200_with_version_list() {
    let srv = TestServer::start();
    let resp = srv.get("/versions").expect_status(200);
    assert_eq!(resp.content_type().as_deref(), Some("application/json"));
    check_versions_body(&srv, &resp.json());
}

#[test]
fn root_returns_300_with_versions_body() {
    let srv = TestServer::start();
    let resp = srv.get("/").expect_status(300);
    assert_eq!(resp.content_type().as_deref(), Some("application/json"));
    check_versions_body(&srv, &resp.json());
}

#[test]
fn unknown_version_prefixes_return_300_with_versions_body() {
    let srv = TestServer::start();
    for path in [
        "/v1/images",
        "/v3/",
        "/foo",
        "/v2.19/images",
        "/v2.x/images",
        "/images",
    ] {
        let resp = srv.get(path);
        assert_eq!(resp.status, 300, "{path}: {resp:?}");
        check_versions_body(&srv, &resp.json());
    }
}

#[test]
fn every_advertised_minor_version_prefix_is_the_same_api() {
    let srv = TestServer::start();
    let ids = check_versions_body(&srv, &srv.get_json("/versions"));
    let created = srv
        .post_json(
            &format!("/{}/images", ids[ids.len() - 1]),
            &json!({"name": "via-minor"}),
        )
        .expect_status(201)
        .json();
    let id = created["id"].as_str().unwrap();
    let plain = srv.get_json("/v2/images");
    for version in &ids {
        assert_eq!(
            srv.get_json(&format!("/{version}/images/{id}"))["name"],
            "via-minor",
            "{version}"
        );
        assert_eq!(
            srv.get_json(&format!("/{version}/images"))["images"],
            plain["images"]
        );
        assert_eq!(
            srv.get_json(&format!("/{version}/schemas/image")),
            srv.get_json("/v2/schemas/image"),
            "{version}"
        );
    }
}

#[test]
fn healthcheck_returns_ok() {
    let srv = TestServer::start();
    let resp = srv.get("/healthcheck").expect_status(200);
    assert_eq!(resp.text().trim(), "OK");
}

#[test]
fn version_hrefs_use_public_endpoint_when_configured() {
    let srv = TestServer::start_with_config(
        "public_endpoint = \"https://images.example.com:9443/image/\"\n",
    );
    let body = srv.get_json("/versions");
    for v in body["versions"].as_array().unwrap() {
        assert_eq!(
            v["links"],
            json!([{"rel": "self", "href": "https://images.example.com:9443/image/v2/"}]),
            "{v}"
        );
    }
}

#[test]
fn version_hrefs_honour_forwarded_proto_and_host() {
    // §1.1: behind a proxy, X-Forwarded-Proto / X-Forwarded-Host give the base.
    let srv = TestServer::start();
    let resp = srv
        .request("GET", "/versions")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "glance.example.com")
        .send()
        .expect_status(200);
    for v in resp.json()["versions"].as_array().unwrap() {
        assert_eq!(
            v["links"],
            json!([{"rel": "self", "href": "https://glance.example.com/v2/"}]),
            "{v}"
        );
    }
}
