//! The data path: image bytes between sockets and stores. `checksum` hashes them inline,
//! `upload` streams a request body to a store, `download` streams a store file to a response, `splice` sends it without a copy.

pub mod checksum;
pub mod download;
pub mod splice;
pub mod upload;
