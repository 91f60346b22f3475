//! The metadefs model test (`suite/metadefs_model.rs`) on the embedded redb engine: random
//! catalog operations against the store and a `BTreeMap` model must agree at every step.

mod suite;

use proptest::prelude::*;

proptest! {
    // 48 cases by default (each write commits with fsync); PROPTEST_CASES=n for a longer run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    #[test]
    fn catalog_matches_model(ops in proptest::collection::vec(suite::metadefs_model::op(), 1..50)) {
        suite::metadefs_model::run::<suite::RedbEngine>(ops)?;
    }
}
