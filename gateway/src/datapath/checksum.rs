//! md5 (`checksum`) and the `os_hash_algo` digest (`os_hash_value`), computed in one pass over
//! each frame as it streams by.
//!
//! Hashing is the most expensive thing an upload does (~2.5 CPU-s/GiB for md5+sha512 even with
//! OpenSSL), so the implementation sits behind [`Digest`] and is chosen by measurement:
//! OpenSSL's EVP digests were ~1.4× faster than the pure-Rust ones for this pair on our
//! machines (DESIGN.md), so they are the default.

use openssl::hash::{Hasher, MessageDigest};

/// One running digest.
pub trait Digest {
    /// Feeds bytes.
    fn update(&mut self, bytes: &[u8]);
    /// The lowercase hex digest.
    fn finish_hex(self: Box<Self>) -> String;
}

struct OpenSslDigest(Hasher);

impl Digest for OpenSslDigest {
    fn update(&mut self, bytes: &[u8]) {
        // EVP_DigestUpdate cannot fail for these software digests.
        self.0
            .update(bytes)
            .expect("EVP_DigestUpdate on an initialised context");
    }

    fn finish_hex(mut self: Box<Self>) -> String {
        let digest = self
            .0
            .finish()
            .expect("EVP_DigestFinal on an initialised context");
        hex(&digest)
    }
}

fn openssl_digest(algorithm: &str) -> Option<Box<dyn Digest>> {
    let md = match algorithm {
        "md5" => MessageDigest::md5(),
        "sha1" => MessageDigest::sha1(),
        "sha256" => MessageDigest::sha256(),
        "sha384" => MessageDigest::sha384(),
        "sha512" => MessageDigest::sha512(),
        _ => return None,
    };
    Hasher::new(md)
        .ok()
        .map(|h| Box::new(OpenSslDigest(h)) as Box<dyn Digest>)
}

/// The two digests an image gets.
pub struct Checksums {
    md5: Box<dyn Digest>,
    os_hash: Box<dyn Digest>,
    os_hash_algo: String,
}

/// The finished digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// Hex md5 (`checksum`).
    pub checksum: String,
    /// `os_hash_algo`.
    pub os_hash_algo: String,
    /// Hex digest with `os_hash_algo` (`os_hash_value`).
    pub os_hash_value: String,
}

/// The configured algorithm is not one glint can compute.
#[derive(Debug, thiserror::Error)]
#[error("unsupported hashing algorithm {0:?}")]
pub struct UnsupportedAlgorithm(pub String);

impl Checksums {
    /// Starts md5 plus `os_hash_algo` (one of `config::HASH_ALGORITHMS`).
    pub fn new(os_hash_algo: &str) -> Result<Checksums, UnsupportedAlgorithm> {
        let unsupported = || UnsupportedAlgorithm(os_hash_algo.to_owned());
        Ok(Checksums {
            md5: openssl_digest("md5").ok_or_else(unsupported)?,
            os_hash: openssl_digest(os_hash_algo).ok_or_else(unsupported)?,
            os_hash_algo: os_hash_algo.to_owned(),
        })
    }

    /// Feeds the next frame to both digests.
    pub fn update(&mut self, bytes: &[u8]) {
        self.md5.update(bytes);
        self.os_hash.update(bytes);
    }

    /// Finishes both digests.
    pub fn finish(self) -> Digests {
        Digests {
            checksum: self.md5.finish_hex(),
            os_hash_value: self.os_hash.finish_hex(),
            os_hash_algo: self.os_hash_algo,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors_in_pieces() {
        let mut c = Checksums::new("sha512").unwrap();
        c.update(b"a");
        c.update(b"bc");
        let d = c.finish();
        assert_eq!(d.checksum, "900150983cd24fb0d6963f7d28e17f72");
        assert!(d.os_hash_value.starts_with("ddaf35a193617aba"));
        assert_eq!(d.os_hash_value.len(), 128);
    }

    #[test]
    fn other_algorithms() {
        let mut c = Checksums::new("sha256").unwrap();
        c.update(b"abc");
        assert_eq!(
            c.finish().os_hash_value,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(Checksums::new("crc32").is_err());
    }
}
