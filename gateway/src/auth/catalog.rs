//! The Keystone service catalog of a token, as far as glint reads it: where another region's
//! Image service is, for `glance-download`.
//!
//! Glance reads the catalog keystonemiddleware hands it (`X-Service-Catalog`, Keystone's v3
//! catalog turned into v2's shape: per region, a `publicURL`, `internalURL`, `adminURL`) and
//! takes the first `image` service's endpoint whose region equals the asked one, ignoring
//! case, on the asked interface. [`ServiceCatalog::image_endpoint`] gives the same answer
//! from the v3 catalog itself. Token validation does not ask for the catalog (`?nocatalog`:
//! it is large and every request would pay for it); a glance-download fetches it once, when
//! its task starts (`keystone::CatalogSource`).

use serde::Deserialize;

/// A token's service catalog (Keystone v3 `token.catalog`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct ServiceCatalog {
    services: Vec<Service>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct Service {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    endpoints: Vec<Endpoint>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct Endpoint {
    interface: String,
    /// Keystone sends both `region_id` and the older `region` (the same id).
    region_id: Option<String>,
    region: Option<String>,
    url: String,
}

impl Endpoint {
    fn region(&self) -> Option<&str> {
        self.region_id.as_deref().or(self.region.as_deref())
    }
}

impl ServiceCatalog {
    /// Parses the `catalog` array of a Keystone v3 token body.
    pub fn parse(catalog: serde_json::Value) -> Result<ServiceCatalog, String> {
        serde_json::from_value(catalog).map_err(|e| format!("unexpected service catalog: {e}"))
    }

    /// The URL of the Image service in `region` (any case) on `interface` (`public`,
    /// `internal`, `admin`), without a trailing `/`; `None` when the catalog has none.
    pub fn image_endpoint(&self, region: &str, interface: &str) -> Option<String> {
        self.services
            .iter()
            .filter(|s| s.kind == "image")
            .flat_map(|s| s.endpoints.iter())
            .find(|e| {
                e.interface == interface
                    && e.region().is_some_and(|r| r.eq_ignore_ascii_case(region))
            })
            .map(|e| e.url.trim_end_matches('/').to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn catalog() -> ServiceCatalog {
        ServiceCatalog::parse(json!([
            {"type": "identity", "name": "keystone", "id": "k", "endpoints": [
                {"id": "1", "interface": "public", "region_id": "RegionTwo",
                 "region": "RegionTwo", "url": "http://keystone:5000/v3"}]},
            {"type": "image", "name": "glance", "id": "g", "endpoints": [
                {"id": "2", "interface": "public", "region_id": "RegionOne",
                 "region": "RegionOne", "url": "http://one:9292"},
                {"id": "3", "interface": "internal", "region_id": "RegionTwo",
                 "region": "RegionTwo", "url": "http://two-internal:9292/"},
                {"id": "4", "interface": "public", "region_id": "RegionTwo",
                 "region": "RegionTwo", "url": "https://two.example.com/image/"},
                {"id": "5", "interface": "admin", "region": "RegionThree",
                 "url": "http://three-admin:9292"}]}
        ]))
        .unwrap()
    }

    #[test]
    fn finds_the_image_endpoint_by_region_and_interface() {
        let c = catalog();
        assert_eq!(
            c.image_endpoint("RegionTwo", "public").as_deref(),
            Some("https://two.example.com/image")
        );
        assert_eq!(
            c.image_endpoint("RegionTwo", "internal").as_deref(),
            Some("http://two-internal:9292")
        );
        assert_eq!(
            c.image_endpoint("RegionOne", "public").as_deref(),
            Some("http://one:9292")
        );
    }

    #[test]
    fn region_matches_in_any_case_and_the_older_region_key_counts() {
        let c = catalog();
        assert_eq!(
            c.image_endpoint("regiontwo", "public").as_deref(),
            Some("https://two.example.com/image")
        );
        assert_eq!(
            c.image_endpoint("REGIONTHREE", "admin").as_deref(),
            Some("http://three-admin:9292")
        );
    }

    #[test]
    fn a_missing_region_interface_or_service_is_none() {
        let c = catalog();
        assert_eq!(c.image_endpoint("RegionFour", "public"), None);
        assert_eq!(c.image_endpoint("RegionOne", "internal"), None);
        // Only the `image` service counts: RegionTwo's identity endpoint is not an answer.
        assert_eq!(c.image_endpoint("RegionThree", "public"), None);
        assert_eq!(
            ServiceCatalog::default().image_endpoint("RegionOne", "public"),
            None
        );
        // Interfaces are Keystone's lower-case names, compared exactly.
        assert_eq!(c.image_endpoint("RegionOne", "Public"), None);
    }

    #[test]
    fn a_catalog_that_is_not_one_is_an_error() {
        assert!(ServiceCatalog::parse(json!({"image": "x"})).is_err());
        assert!(ServiceCatalog::parse(json!([{"type": "image", "endpoints": [{}]}])).is_err());
    }
}
