//! The Ceph RGW that `tests/e2e/rgw.sh` starts for the S3 tests (`GLINT_S3_TEST_ENDPOINT`,
//! `GLINT_S3_TEST_ACCESS_KEY`, `GLINT_S3_TEST_SECRET_KEY`).

/// Where the test RGW is, and its user's keys.
pub struct Rgw {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The S3 access key.
    pub access_key: String,
    /// The S3 secret key.
    pub secret_key: String,
}

/// The RGW to test against, or `None` (after saying so) when none was started and none is
/// required (`GLINT_REQUIRE_S3=1` makes its absence a failure).
pub fn rgw() -> Option<Rgw> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match var("GLINT_S3_TEST_ENDPOINT") {
        Some(endpoint) => Some(Rgw {
            endpoint,
            access_key: var("GLINT_S3_TEST_ACCESS_KEY").expect("GLINT_S3_TEST_ACCESS_KEY"),
            secret_key: var("GLINT_S3_TEST_SECRET_KEY").expect("GLINT_S3_TEST_SECRET_KEY"),
        }),
        None if var("GLINT_REQUIRE_S3").as_deref() == Some("1") => {
            panic!("GLINT_REQUIRE_S3=1 but GLINT_S3_TEST_ENDPOINT is not set")
        }
        None => {
            eprintln!("no GLINT_S3_TEST_ENDPOINT: S3 store tests not run (use tests/e2e/rgw.sh)");
            None
        }
    }
}

/// A fresh bucket name for one test.
pub fn bucket_name() -> String {
    format!(
        "glint-it-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}
