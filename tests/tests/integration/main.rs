//! glint's end-to-end tests. Every test starts the real `glint` binary on 127.0.0.1:0 with a
//! fresh data directory (`glint_tests::TestServer`) and checks the wire behaviour against
//! `spec/glance-api-v2.md` (section numbers below refer to it).

// This whole binary is test code; clippy's allow-unwrap-in-tests only covers #[test]
// functions themselves, not the helpers beside them.
#![allow(clippy::unwrap_used)]

// Version documents, version prefixes and /healthcheck (§0, §1).
mod versions;
// The image and images JSON schemas (§3.2, §4.18).
mod schemas;
// POST /v2/images: defaults, Location, validation, read-only and reserved keys (§4.1, §3.3).
mod create;
// GET and DELETE /v2/images/{id} (§4.2, §4.5).
mod show_delete;
// PATCH /v2/images/{id} in both dialects: op semantics, pointers, media types (§4.4).
mod update;
// POST /v2/images/{id}/actions/deactivate|reactivate (§4.6).
mod actions;
// PUT /v2/images/{id}/file: hashes, size cap, expected size, failures reset to queued (§4.7).
mod upload;
// The same uploads written with O_DIRECT: sizes around the aligned-buffer boundaries.
mod direct_upload;
// GET /v2/images/{id}/file: headers, 204 without data, single ranges (§4.8).
mod download;
// The same downloads sent with splice: pipelining, slow readers, the path switched off.
mod zero_copy;
// PUT/DELETE /v2/images/{id}/tags/{tag} and the tag quota (§4.12).
mod tags;
// /v2/images/{id}/members: sharing, statuses, errors, the member quota, schemas (§4.13).
mod members;
// [quotas] limits enforced on create and upload, and GET /v2/info/usage (§4.16).
mod quotas;
// GET /v2/images paging: limit, marker, first/next links (§5.1).
mod list_paging;
// GET /v2/images sorting: sort_key/sort_dir and sort= (§5.2).
mod list_sort;
// GET /v2/images filters and what is listed by default (§5.3, §5.4).
mod list_filters;
// Request ids, error bodies by Accept, 404/405, bodies where none is expected (§2, §6).
mod protocol;
// Concurrent requests on one image: unique ids, kept writes, quotas that hold.
mod races;
// The image cache: single-flight fills, ranges, the cache API (§4.17), faults (issue 14).
mod cache;
// Egress caps on downloads, changed by SIGHUP (issue 14).
mod egress;
// Several gateways over one PostgreSQL database: shared metadata, caches invalidated
// across gateways, a database outage (issue 14).
mod scale;
// Restart persistence, crash recovery of half-done uploads, clean exit on SIGTERM.
mod persistence;
// The crash campaign: SIGKILL at random points under concurrent writes, then every
// acknowledged change and byte checked, and no orphan file left (GLINT_CRASH_* to lengthen).
mod crash;
// A full disk (the data dir on a small tmpfs): 413 for the upload that fills it, nothing left,
// reads and small writes go on; metadata writes on a full disk fail cleanly and recover.
mod disk_full;
// Hostile clients: slow headers and bodies, idle connections, oversized requests, Glance's
// per-image limits; bystanders served throughout, peak RSS reported (GLINT_HOSTILE_SCALE).
mod hostile;
// The data path under load: 64 MiB round trip, concurrent uploads, client disconnects,
// the epoll driver.
mod datapath;
// Answers sent before the request body ends reach the client: lingering close (issue 18).
mod early_refusals;
// Stores: several named stores, upload to one, fallback across locations, the http store,
// the locations API, and the S3 store on a real Ceph RGW when one is up (issue 11).
mod stores;
// Disk-format inspection on upload: 415 on mismatch or unsafe images (§3.4, disk-formats.md).
mod inspection;
// Keystone auth: token validation, its cache, 401/403/503, service tokens (§2.1).
mod keystone;
// Image import and tasks: stage, glance-direct, web-download, copy-image, the import lock,
// reverts and crash recovery (issue 12).
mod import;
// The legacy tasks API's POST /v2/tasks (the `import` task) and the quotas of an import.
mod tasks;
// glance-download: an image imported from another glint found in a (fake) Keystone's
// service catalog, through the fetch policy (issue 12, §4.10).
mod glance_download;
// The configuration: secrets redacted, GLINT_* variables, unknown keys refused.
mod config;
// Operations: /metrics and promtool, dashboard and alerts, a real Prometheus, logs, healthcheck.
mod observability;
// Metadata definitions: every route, errors, paging, schemas, policy, load/export (§9).
mod metadefs;
