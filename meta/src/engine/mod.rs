//! The engines behind [`crate::Backend`]. Each one owns its storage layout, encoding and
//! migrations, and leans on the crate's shared rules (`rules.rs`, `quota.rs`, `filter.rs`) for
//! what a write may do and what a listing returns.
//!
//! - `redb`: one embedded file, for one gateway (the default);
//! - `postgres`: one PostgreSQL database, shared by several gateways.

pub(crate) mod postgres;
pub(crate) mod redb;
