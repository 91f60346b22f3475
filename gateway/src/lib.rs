//! glint's gateway: an OpenStack Image service (Glance's Image API v2) as a streaming server.
//!
//! A request's life:
//! 1. `runtime` runs one monoio runtime per core, each accepting on its own `SO_REUSEPORT`
//!    listener; `server` serves each connection with hyper's HTTP/1.1 on that core.
//! 2. `app::App::handle` names the request (`x-openstack-request-id`), `router` maps it to a
//!    `Route`, and `auth` builds the request context (`context`): who is asking.
//!    `policy` decides, per image and rule, allow / 403 / 404 (Glance's secure-RBAC defaults).
//! 3. A handler in `handlers` parses and validates, reads `meta` directly, and sends every
//!    write to the `writer` thread, where `meta` enforces status rules in one transaction.
//! 4. Image bytes move through `datapath`: uploads stream socket → `<id>.part`, hashed and
//!    inspected on the way, fdatasync'ed, renamed, then committed `active`; downloads stream
//!    the file back in bounded frames.
//! 5. Errors are `error::ApiError`, rendered as Glance renders them; every response carries
//!    the request id, and one access-log line is written; `metrics` counts it per core.

#![recursion_limit = "256"]

pub mod app;
pub mod auth;
pub mod body;
pub mod config;
pub mod context;
pub mod datapath;
pub mod error;
pub mod handlers;
pub mod hyper_io;
pub mod metadefs_admin;
pub mod metrics;
pub mod policy;
pub mod router;
pub mod runtime;
pub mod serve;
pub mod server;
pub mod store;
#[cfg(test)]
mod test_util;
pub mod timer;
pub mod writer;
