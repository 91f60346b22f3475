//! Image data stores. Today one backend, the local file store ([`fs::FsStore`]); the trait that
//! the http and S3 backends will share is drawn when the second backend lands, from what two
//! real implementations need rather than guessed now.

pub mod fs;
