//! Outbound network: everything glint fetches from or sends to another server.
//!
//! - [`client`]: an HTTP/1.1 client that runs on a worker core (hyper's client connection over
//!   monoio TCP, io_uring or epoll), with streaming request and response bodies, a connect
//!   timeout and a stall timeout, https, and a small per-core keep-alive pool.
//! - [`fetch`]: the one way to fetch a URL a *user* supplied (web-download, glance-download,
//!   the http store, location adds): Glance's `[import_filtering_opts]` lists, then the
//!   addresses the name resolves to are checked (loopback, private, link-local, metadata… are
//!   refused unless `allowed_hosts` names the host), the connection goes to the address that
//!   was checked, every redirect is checked again, and the body is capped while it streams.
//! - [`s3`]: the S3 protocol (SigV4 in headers, objects, multipart uploads, buckets) on top of
//!   [`client`], for the S3 store.
//! - [`url`] parses those URLs (numeric IPv4 forms such as `http://2130706433/` are read as the
//!   address they denote); [`addr`] classifies addresses; [`resolve`] looks names up off the
//!   core; [`tls`] builds the TLS settings (system roots, an optional CA file).
//!
//! Nothing here knows about images, stores or Glance's API: stores, tasks and handlers build on
//! these pieces.

pub mod addr;
pub mod client;
pub mod fetch;
mod io;
pub mod resolve;
pub mod s3;
pub mod tls;
pub mod url;

#[cfg(test)]
pub(crate) mod test_origin;
