//! The model test (`suite/model.rs`) on the embedded redb engine: random operations against
//! the store and a `BTreeMap` model must agree at every step.

mod suite;

use proptest::prelude::*;

proptest! {
    // 64 cases by default (each op commits with fsync); PROPTEST_CASES=n for a longer run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]

    #[test]
    fn store_matches_model(ops in proptest::collection::vec(suite::model::op(), 1..60)) {
        suite::model::run::<suite::RedbEngine>(ops)?;
    }
}
