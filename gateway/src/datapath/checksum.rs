//! md5 (`checksum`) and the `os_hash_algo` digest (`os_hash_value`) of an upload, computed on
//! hashing threads while the core that owns the connection keeps reading and writing.
//!
//! Hashing is the most expensive thing an upload does (~3.5 CPU-s/GiB for md5+sha512 even with
//! OpenSSL here), and neither digest can be split across cores. So each upload's two digests
//! run on two different threads of a [`HashPool`], in parallel with each other and with the
//! socket and disk work, fed the very frames the store writes (`Bytes` are reference-counted:
//! nothing is copied). A bounded number of frames may wait to be hashed; beyond that the upload
//! waits for the hashers, so memory stays bounded and a slow hasher slows the socket.
//!
//! The implementation sits behind [`Digest`], chosen by measurement: OpenSSL's EVP digests
//! were ~1.4× faster than the pure-Rust ones for this pair on our machines (DESIGN.md).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::thread;

use bytes::Bytes;
use futures_channel::oneshot;
use openssl::hash::{Hasher, MessageDigest};

/// Frames of one upload that may be queued for one digest before the upload waits.
const MAX_QUEUED_FRAMES: usize = 4;

/// One running digest.
pub trait Digest: Send {
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

/// A new digest of `algorithm` (`md5`, `sha1`, `sha256`, `sha384`, `sha512`), for hashing
/// outside an upload (`glint migrate-from-glance --verify`).
pub fn digest(algorithm: &str) -> Option<Box<dyn Digest>> {
    openssl_digest(algorithm)
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

type SharedDigest = Arc<Mutex<Option<Box<dyn Digest>>>>;

/// A frame for one digest, and where to say it is done.
struct HashJob {
    digest: SharedDigest,
    data: Bytes,
    done: oneshot::Sender<()>,
}

/// The hashing threads, shared by every core.
pub struct HashPool {
    threads: Vec<mpsc::Sender<HashJob>>,
    next: AtomicUsize,
}

/// The hashing threads have stopped (one panicked).
#[derive(Debug, thiserror::Error)]
#[error("the hashing threads have stopped")]
pub struct HashPoolGone;

/// The configured algorithm is not one glint can compute.
#[derive(Debug, thiserror::Error)]
#[error("unsupported hashing algorithm {0:?}")]
pub struct UnsupportedAlgorithm(pub String);

impl HashPool {
    /// Starts `threads` hashing threads (at least one).
    pub fn start(threads: usize) -> std::io::Result<HashPool> {
        let mut senders = Vec::new();
        for index in 0..threads.max(1) {
            let (tx, rx) = mpsc::channel::<HashJob>();
            thread::Builder::new()
                .name(format!("glint-hash-{index}"))
                .spawn(move || {
                    for job in rx {
                        let mut slot = job.digest.lock().unwrap_or_else(PoisonError::into_inner);
                        if let Some(digest) = slot.as_mut() {
                            crate::metrics::hashing(job.data.len(), || digest.update(&job.data));
                        }
                        drop(slot);
                        // The upload may have been abandoned meanwhile; nothing to tell then.
                        let _ = job.done.send(());
                    }
                })?;
            senders.push(tx);
        }
        Ok(HashPool {
            threads: senders,
            next: AtomicUsize::new(0),
        })
    }

    /// Starts md5 plus `os_hash_algo` (one of `config::HASH_ALGORITHMS`) for one upload, on
    /// two different threads when there are two.
    pub fn checksums(&self, os_hash_algo: &str) -> Result<Checksums, UnsupportedAlgorithm> {
        let unsupported = || UnsupportedAlgorithm(os_hash_algo.to_owned());
        let first = self.next.fetch_add(2, Ordering::Relaxed);
        let lane = |offset: usize, digest: Box<dyn Digest>| Lane {
            digest: Arc::new(Mutex::new(Some(digest))),
            thread: self.threads[(first + offset) % self.threads.len()].clone(),
            queued: VecDeque::new(),
        };
        Ok(Checksums(Mode::Hashing {
            md5: lane(0, openssl_digest("md5").ok_or_else(unsupported)?),
            os_hash: lane(1, openssl_digest(os_hash_algo).ok_or_else(unsupported)?),
            os_hash_algo: os_hash_algo.to_owned(),
        }))
    }
}

/// One digest of one upload, running on one hashing thread.
struct Lane {
    digest: SharedDigest,
    thread: mpsc::Sender<HashJob>,
    /// Frames sent and not yet hashed, oldest first.
    queued: VecDeque<oneshot::Receiver<()>>,
}

impl Lane {
    async fn update(&mut self, data: &Bytes) -> Result<(), HashPoolGone> {
        while self.queued.len() >= MAX_QUEUED_FRAMES {
            self.wait_oldest().await?;
        }
        let (done, hashed) = oneshot::channel();
        let job = HashJob {
            digest: Arc::clone(&self.digest),
            data: data.clone(),
            done,
        };
        self.thread.send(job).map_err(|_| HashPoolGone)?;
        self.queued.push_back(hashed);
        Ok(())
    }

    async fn wait_oldest(&mut self) -> Result<(), HashPoolGone> {
        match self.queued.pop_front() {
            Some(hashed) => hashed.await.map_err(|_| HashPoolGone),
            None => Ok(()),
        }
    }

    async fn finish(mut self) -> Result<String, HashPoolGone> {
        while !self.queued.is_empty() {
            self.wait_oldest().await?;
        }
        let digest = self
            .digest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        digest.map(Digest::finish_hex).ok_or(HashPoolGone)
    }
}

/// The two digests of one upload.
pub struct Checksums(Mode);

enum Mode {
    /// Every frame hashed on the hashing threads.
    Hashing {
        md5: Lane,
        os_hash: Lane,
        os_hash_algo: String,
    },
    /// The digests of exactly these bytes, computed when they were first received (an import
    /// of staged data that no plugin rewrote): frames pass unhashed.
    Precomputed(Digests),
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

impl Checksums {
    /// The digests of bytes that were hashed before, whole, when they first arrived: the
    /// bytes pass unhashed and [`Checksums::finish`] returns `digests`. Only for bytes known
    /// unchanged since (the caller's proof; ingest still checks their count).
    pub fn precomputed(digests: Digests) -> Checksums {
        Checksums(Mode::Precomputed(digests))
    }

    /// Queues the next frame for both digests; waits while too many frames are unhashed.
    pub async fn update(&mut self, data: &Bytes) -> Result<(), HashPoolGone> {
        match &mut self.0 {
            Mode::Hashing { md5, os_hash, .. } => {
                md5.update(data).await?;
                os_hash.update(data).await
            }
            Mode::Precomputed(_) => Ok(()),
        }
    }

    /// Waits for every queued frame, then finishes both digests.
    pub async fn finish(self) -> Result<Digests, HashPoolGone> {
        match self.0 {
            Mode::Hashing {
                md5,
                os_hash,
                os_hash_algo,
            } => Ok(Digests {
                checksum: md5.finish().await?,
                os_hash_value: os_hash.finish().await?,
                os_hash_algo,
            }),
            Mode::Precomputed(digests) => Ok(digests),
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
    use crate::test_util::block_on;

    fn digests(pool: &HashPool, algo: &str, pieces: &[&[u8]]) -> Digests {
        let mut c = pool.checksums(algo).unwrap();
        block_on(async {
            for piece in pieces {
                c.update(&Bytes::copy_from_slice(piece)).await.unwrap();
            }
            c.finish().await.unwrap()
        })
    }

    #[test]
    fn known_vectors_in_pieces() {
        let pool = HashPool::start(2).unwrap();
        let d = digests(&pool, "sha512", &[b"a", b"bc"]);
        assert_eq!(d.checksum, "900150983cd24fb0d6963f7d28e17f72");
        assert!(d.os_hash_value.starts_with("ddaf35a193617aba"));
        assert_eq!(d.os_hash_value.len(), 128);
    }

    #[test]
    fn many_frames_keep_their_order_on_one_thread() {
        let pool = HashPool::start(1).unwrap();
        let frames: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; 1000 + usize::from(i)]).collect();
        let pieces: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        let whole: Vec<u8> = frames.concat();
        assert_eq!(
            digests(&pool, "sha256", &pieces),
            digests(&pool, "sha256", &[&whole])
        );
    }

    #[test]
    fn other_algorithms() {
        let pool = HashPool::start(2).unwrap();
        assert_eq!(
            digests(&pool, "sha256", &[b"abc"]).os_hash_value,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(pool.checksums("crc32").is_err());
    }

    #[test]
    fn precomputed_digests_pass_the_bytes_unhashed() {
        let known = Digests {
            checksum: "c".into(),
            os_hash_algo: "sha512".into(),
            os_hash_value: "v".into(),
        };
        let mut c = Checksums::precomputed(known.clone());
        let finished = block_on(async {
            c.update(&Bytes::from_static(b"abc")).await.unwrap();
            c.finish().await.unwrap()
        });
        assert_eq!(finished, known);
    }
}
