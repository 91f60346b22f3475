//! glint's gateway: an OpenStack Image service (Glance's Image API v2) as a streaming server.
//!
//! A request's life:
//! 1. `runtime` runs one monoio runtime per core, each accepting on its own `SO_REUSEPORT`
//!    listener; `server` serves each connection with hyper's HTTP/1.1 on that core.
//! 2. `dispatch::handle` names the request (`x-openstack-request-id`), finds its entry in the
//!    route table (`routes`, matched by `router`), and `auth` builds the request context
//!    (`context`): who is asking. `policy` decides, per image and rule, allow / 403 / 404
//!    (Glance's secure-RBAC defaults).
//! 3. A handler in `handlers` parses and validates, and calls `meta` through the async
//!    `catalog`, which runs every write on the `writer` thread (where `meta` enforces status
//!    rules in one transaction) and keeps reads that could wait on a network off the cores.
//! 4. Image bytes move through `datapath` to and from a `store` (file, S3, web): uploads
//!    stream socket → store writer, hashed and inspected on the way (`datapath::ingest`),
//!    committed by the store then `active` in `meta`; downloads stream a store's data back in
//!    bounded frames, falling back across an image's locations.
//! 5. Errors are `error::ApiError`, rendered as Glance renders them; every response carries
//!    the request id, and one access-log line is written; the body meters itself into
//!    `metrics`, counted per core.
//! 6. A connection that answered before its request body ended (a refusal) is not closed at
//!    once: `server::linger` discards what the client still sends, within bounds, so that no
//!    reset cuts the client off before it has read the answer.
//!
//! # Module order
//!
//! The modules form a DAG. Each may use only the modules listed before it (and the crates
//! `meta` and `formats`); `gateway/tests/module_order.rs`, run by `scripts/test`, fails when a
//! module names (`crate::x`, `super::…`) one listed after it. Test code (`#[cfg(test)]`) may
//! use anything. A new module takes its place in this list.
//!
//! <!-- module order: begin -->
//! - `config` — every settings struct, secrets, loading the layers (a leaf)
//! - `metrics` — counters, names and labels (a leaf)
//! - `single_flight` — a cache whose misses are fetched once (a leaf)
//! - `timer` — the timer thread for connection timeouts (a leaf)
//! - `context` — who is asking (a leaf)
//! - `net` — outbound HTTP (client, URL-fetch policy, S3) on the cores
//! - `store` — where image bytes live: the `Store` trait, its backends, the registry
//! - `writer` — the thread that runs blocking work
//! - `catalog` — the async facade over `meta` (writes on the writer, networked reads off the cores)
//! - `body` — the response body, metering itself
//! - `egress` — caps on downloads: concurrency and bandwidth, changeable while running
//! - `error` — `ApiError`, the one mapping to HTTP
//! - `router` — matching a path against route templates
//! - `policy` — Glance's authorization rules
//! - `auth` — the auth strategies, built from their settings
//! - `datapath` — image bytes between sockets and stores
//! - `cache` — the image cache: verified, bounded, single-flight fills
//! - `hyper_io` — monoio streams as hyper I/O
//! - `tasks` — image import tasks: the staging area, the import thread, leases, reverts
//! - `app` — the shared state, built once
//! - `handlers` — one module per Glance resource
//! - `metadefs_admin` — `glint metadefs load|export`: definition files, the admin socket
//! - `routes` — the route table
//! - `dispatch` — a request's life
//! - `server` — serving connections on one core
//! - `runtime` — the worker threads
//! - `migrate` — `glint migrate-from-glance`: a Glance database, its image data and metadefs
//!   into meta and glint's stores (an offline admin command, on a runtime of its own thread)
//! - `serve` — start-up and shutdown
//! <!-- module order: end -->

#![recursion_limit = "256"]

pub mod app;
pub mod auth;
pub mod body;
pub mod cache;
pub mod catalog;
pub mod config;
pub mod context;
pub mod datapath;
pub mod dispatch;
pub mod egress;
pub mod error;
pub mod handlers;
pub mod hyper_io;
pub mod metadefs_admin;
pub mod metrics;
pub mod migrate;
pub mod net;
pub mod policy;
pub mod router;
pub mod routes;
pub mod runtime;
pub mod serve;
pub mod server;
pub mod single_flight;
pub mod store;
pub mod tasks;
#[cfg(test)]
mod test_util;
pub mod timer;
pub mod writer;
