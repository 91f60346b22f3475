//! The metadefs model test (`suite/metadefs_model.rs`) on the PostgreSQL engine
//! (`GLINT_PG_TEST_URL`, started by `tests/e2e/pg.sh`): random catalog operations against the
//! store and a `BTreeMap` model must agree at every step.

mod suite;

use proptest::prelude::*;

proptest! {
    // 24 cases by default (each case has a schema of its own); PROPTEST_CASES=n for more.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(24),
        ..ProptestConfig::default()
    })]

    #[test]
    fn catalog_matches_model(ops in proptest::collection::vec(suite::metadefs_model::op(), 1..50)) {
        if suite::pg_ready() {
            suite::metadefs_model::run::<suite::PgEngine>(ops)?;
        }
    }
}
