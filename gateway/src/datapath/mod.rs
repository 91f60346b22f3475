//! The data path: image bytes between sockets and stores. `checksum` hashes them inline,
//! `ingest` streams any source (a request body today) through the checks into a store,
//! `download` turns a store's stream into a response body, `splice` sends a file without a
//! copy.

pub mod checksum;
pub mod download;
pub mod ingest;
pub mod splice;
