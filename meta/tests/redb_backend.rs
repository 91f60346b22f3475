//! The backend conformance suite (`suite/`) on the embedded redb engine.

#[macro_use]
mod suite;

backend_tests!(suite::RedbEngine);
