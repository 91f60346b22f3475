//! Upload: a request body streamed to a partial file, hashed and inspected on the way.
//!
//! Each frame hyper hands over is a slice of its read buffer (`Bytes`, no copy). It is
//! checked against the size limits, shown to the format inspector (which stops looking once it
//! has decided), queued for both digests on the hashing threads, and *moved* into an io_uring
//! `write_at` — so image bytes are never copied in user space. The write runs as its own task while the next frame
//! is read and hashed; before a second write is started the first must have finished, so at
//! most two frames per upload are held here, and a slow disk slows the socket (TCP
//! backpressure) instead of growing memory.

use bytes::Bytes;
use http_body_util::BodyExt;
use std::rc::Rc;

use monoio::fs::File;
use monoio::task::JoinHandle;

use super::checksum::{Checksums, Digests};

/// What the client promised and what the operator allows.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `image_size_cap`.
    pub cap_bytes: u64,
    /// `x-openstack-image-size`, else `Content-Length`, when given.
    pub expected_bytes: Option<u64>,
}

/// A body received completely and durably written (fdatasync'ed).
pub struct Received {
    /// Bytes received.
    pub size: u64,
    /// md5 and `os_hash_value`.
    pub digests: Digests,
    /// The inspector's verdict, when the upload was inspected.
    pub inspection: Option<formats::Inspection>,
}

/// Why an upload stopped.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// More than `image_size_cap`.
    #[error("image exceeds the size cap of {cap} bytes")]
    TooLarge {
        /// The cap.
        cap: u64,
    },
    /// The body's length differs from what the client announced.
    #[error("expected {expected} bytes but received {received}")]
    SizeMismatch {
        /// Announced.
        expected: u64,
        /// Received (so far, when too many).
        received: u64,
    },
    /// The inspector refused the content.
    #[error("{0}")]
    Refused(formats::Refusal),
    /// The client went away or sent a malformed body.
    #[error("error reading the request body: {0}")]
    Client(#[source] hyper::Error),
    /// Writing to the store failed.
    #[error("store write failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Streams `body` into `file` from offset 0 and makes it durable.
pub async fn receive(
    mut body: hyper::body::Incoming,
    file: &Rc<File>,
    mut checksums: Checksums,
    mut inspector: Option<formats::Inspector>,
    limits: Limits,
) -> Result<Received, UploadError> {
    let mut size: u64 = 0;
    let mut in_flight: Option<JoinHandle<std::io::Result<()>>> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(UploadError::Client)?;
        let Ok(data) = frame.into_data() else {
            continue;
        }; // trailers carry no image bytes
        if data.is_empty() {
            continue;
        }
        crate::metrics::received(data.len());
        let received = size + data.len() as u64;
        if received > limits.cap_bytes {
            return Err(UploadError::TooLarge {
                cap: limits.cap_bytes,
            });
        }
        if let Some(expected) = limits.expected_bytes.filter(|&e| received > e) {
            return Err(UploadError::SizeMismatch { expected, received });
        }
        if let Some(inspector) = inspector.as_mut() {
            crate::metrics::inspecting(data.len(), || inspector.feed(&data))
                .map_err(UploadError::Refused)?;
        }
        checksums
            .update(&data)
            .await
            .map_err(std::io::Error::other)?;
        if let Some(previous) = in_flight.take() {
            previous.await?;
        }
        in_flight = Some(monoio::spawn(write_frame(Rc::clone(file), data, size)));
        size = received;
    }
    if let Some(last) = in_flight.take() {
        last.await?;
    }
    if let Some(expected) = limits.expected_bytes.filter(|&e| e != size) {
        return Err(UploadError::SizeMismatch {
            expected,
            received: size,
        });
    }
    let inspection = inspector.map(formats::Inspector::finish);
    if let Some(refusal) = inspection.as_ref().and_then(|i| i.verdict.as_ref().err()) {
        return Err(UploadError::Refused(refusal.clone()));
    }
    // The hashers work while the disk flushes.
    let (digests, synced) = monoio::join!(checksums.finish(), file.sync_data());
    synced?;
    let digests = digests.map_err(std::io::Error::other)?;
    Ok(Received {
        size,
        digests,
        inspection,
    })
}

async fn write_frame(file: Rc<File>, data: Bytes, offset: u64) -> std::io::Result<()> {
    let (result, _data) = file.write_all_at(data, offset).await;
    result
}
