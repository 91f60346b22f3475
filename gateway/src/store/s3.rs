//! The S3 store: images as objects of one bucket of any S3 API (Ceph RGW, AWS S3, …), keyed by
//! image id, as Glance's s3 driver stores them.
//!
//! Writing (`S3Writer`):
//! - an upload whose size is announced and below `s3_store_large_object_size` goes up as one
//!   PutObject whose body is fed with the frames as they arrive (a declared `Content-Length`,
//!   nothing buffered);
//! - an announced size above it goes up as a multipart upload whose parts stream the same
//!   way: each part's length is known, so its UploadPart starts at once and the frames go into
//!   its body as they arrive (nothing gathered; memory is a few frames whatever the size),
//!   with at most `s3_store_thread_pools` parts in flight (a part's request finishing while
//!   the next one fills);
//! - an unknown size (a chunked body) is cut into parts of `s3_store_large_object_chunk_size`
//!   gathered first (their length must be known before they are sent): a part is the frames
//!   received, kept as they are (no copy) and sent as one UploadPart body, with at most
//!   `s3_store_thread_pools` parts in flight while the next fills — so such an upload holds
//!   about `(thread_pools + 1) × chunk_size`. The part size doubles every 2,000 parts (an
//!   announced size gets parts of at least size / 10,000). An upload of unknown size that ends
//!   within its first part goes up as one PutObject after all.
//! - every failure aborts the multipart upload (AbortMultipartUpload); when even that fails
//!   (the service is down), the janitor retries it until it succeeds, and start-up recovery
//!   aborts what is still left of uploads no gateway is running.
//!
//! Reading is a ranged GetObject relayed frame by frame ([`super::ResponseStream`]).
//!
//! Locations are `s3://host[:port]/bucket/<image id>` (`s3+https://` for an https endpoint):
//! Glance's form without the credentials it puts in its URLs — glint never writes a secret
//! into a location. Locations with credentials (written by Glance) are still recognised.
//!
//! Connections belong to a core: each core (and the janitor) builds its own [`S3Client`] on
//! first use.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use meta::{ImageId, Location};
use monoio::task::JoinHandle;

use super::{
    janitor, BoxStream, LocalBoxFuture, Recovered, ResponseStream, Store, StoreError, StoreKind,
    StoreWriter,
};
use crate::config::stores::{BucketUrlFormat, StoreSettings};
use crate::net::client::{BodySender, ClientSettings, HttpClient, RequestBody};
use crate::net::fetch::ByteRange;
use crate::net::s3::{
    Addressing, CompletedPart, ETag, S3Client, S3Error, S3Settings, SecretKey, UploadId, MAX_PARTS,
    MIN_PART_BYTES,
};
use crate::net::tls::TlsSettings;
use crate::net::url::FetchUrl;

const MIB: u64 = 1 << 20;
/// Frames queued for a streamed PutObject before the writer waits.
const PUT_QUEUE_FRAMES: usize = 16;
/// Parts of an upload of unknown size keep one size for this many parts, then double.
const PARTS_PER_SIZE_STEP: u32 = 2_000;

/// An S3 store (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct S3Store {
    inner: Arc<Inner>,
}

struct Inner {
    id: String,
    /// Tells this store's per-core clients apart from other stores'.
    uid: u64,
    s3: S3Settings,
    client: ClientSettings,
    /// `scheme`, `host[:port]` and bucket as written in locations.
    location_scheme: &'static str,
    location_authority: String,
    large_object_bytes: u64,
    chunk_bytes: u64,
    parts_in_flight: usize,
    create_bucket_on_put: bool,
    bucket_ready: AtomicBool,
    /// What `/v2/info/stores/detail` shows (Glance's names and units).
    properties: serde_json::Map<String, serde_json::Value>,
    description: Option<String>,
    weight: i64,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("id", &self.inner.id)
            .field("endpoint", &self.inner.s3.endpoint)
            .field("bucket", &self.inner.s3.bucket)
            .finish_non_exhaustive()
    }
}

/// Settings that cannot make a working store (the message names the key, never a secret).
#[derive(Debug, thiserror::Error)]
#[error("store {store}: {key}: {message}")]
pub struct S3ConfigError {
    /// The store.
    pub store: String,
    /// The setting at fault.
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

thread_local! {
    /// This thread's client of each S3 store, by store uid.
    static CLIENTS: RefCell<HashMap<u64, S3Client>> = RefCell::new(HashMap::new());
}

impl S3Store {
    /// A store named `id` from its settings. Nothing is sent yet: [`Store::recover`] checks
    /// the credentials and the bucket at start-up.
    pub fn new(id: &str, store: &StoreSettings) -> Result<S3Store, S3ConfigError> {
        static NEXT_UID: AtomicU64 = AtomicU64::new(1);
        let settings = store.s3();
        let bad = |key: &'static str, message: String| S3ConfigError {
            store: id.to_owned(),
            key,
            message,
        };
        let host = settings.host.trim().trim_end_matches('/');
        if host.is_empty() {
            return Err(bad("s3_store_host", "is required".into()));
        }
        let endpoint = if host.contains("://") {
            host.to_owned()
        } else {
            format!("http://{host}")
        };
        let parsed = FetchUrl::parse(&endpoint).map_err(|e| bad("s3_store_host", e.to_string()))?;
        if settings.large_object_chunk_size_mib < MIN_PART_BYTES / MIB {
            return Err(bad(
                "s3_store_large_object_chunk_size",
                format!("must be at least {} (MiB)", MIN_PART_BYTES / MIB),
            ));
        }
        if settings.thread_pools == 0 {
            return Err(bad("s3_store_thread_pools", "must be at least 1".into()));
        }
        let addressing = match settings.bucket_url_format {
            BucketUrlFormat::Path => Addressing::Path,
            BucketUrlFormat::Virtual => Addressing::Virtual,
            // Virtual-host names need DNS for every bucket: only AWS's own endpoints are
            // known to have it; anything else (RGW by address, most private clouds) is path.
            BucketUrlFormat::Auto => {
                let name = parsed.host().list_name();
                if name.ends_with(".amazonaws.com") && !settings.bucket.contains('.') {
                    Addressing::Virtual
                } else {
                    Addressing::Path
                }
            }
        };
        let s3 = S3Settings {
            endpoint: format!("{}://{}", parsed.scheme(), parsed.host_header()),
            region: settings.region.clone(),
            access_key: settings.access_key.clone(),
            secret_key: SecretKey::new(settings.secret_key.expose()),
            bucket: settings.bucket.clone(),
            addressing,
        };
        let client = ClientSettings {
            tls: TlsSettings {
                ca_file: settings.cacert.clone(),
                ..TlsSettings::default()
            },
            ..ClientSettings::default()
        };
        // The client checks endpoint, bucket name and keys; building one sends nothing.
        S3Client::new(HttpClient::new(client.clone()), &s3).map_err(|e| {
            let key = match &e {
                S3Error::Settings(m) if m.contains("bucket") => "s3_store_bucket",
                S3Error::Settings(m) if m.contains("key") => "s3_store_access_key",
                _ => "s3_store_host",
            };
            bad(key, e.to_string())
        })?;
        let location_scheme = if parsed.scheme() == "https" {
            "s3+https"
        } else {
            "s3"
        };
        let mut properties = serde_json::Map::new();
        properties.insert(
            "s3_store_large_object_size".into(),
            settings.large_object_size_mib.into(),
        );
        properties.insert(
            "s3_store_large_object_chunk_size".into(),
            settings.large_object_chunk_size_mib.into(),
        );
        properties.insert("s3_store_thread_pools".into(), settings.thread_pools.into());
        Ok(S3Store {
            inner: Arc::new(Inner {
                id: id.to_owned(),
                uid: NEXT_UID.fetch_add(1, Ordering::Relaxed),
                location_scheme,
                location_authority: parsed.host_header(),
                large_object_bytes: settings.large_object_size_mib.saturating_mul(MIB),
                chunk_bytes: settings.large_object_chunk_size_mib.saturating_mul(MIB),
                parts_in_flight: settings.thread_pools,
                create_bucket_on_put: settings.create_bucket_on_put,
                bucket_ready: AtomicBool::new(false),
                s3,
                client,
                properties,
                description: store.description.clone(),
                weight: store.weight.unwrap_or(0),
            }),
        })
    }

    /// This thread's client.
    fn client(&self) -> S3Client {
        CLIENTS.with(|clients| {
            clients
                .borrow_mut()
                .entry(self.inner.uid)
                .or_insert_with(|| {
                    S3Client::new(HttpClient::new(self.inner.client.clone()), &self.inner.s3)
                        .expect("settings were checked when the store was built")
                })
                .clone()
        })
    }

    fn id(&self) -> &str {
        &self.inner.id
    }

    /// The object key of a location of this store.
    fn key_of(&self, url: &str) -> Option<String> {
        let (scheme, rest) = url.split_once("://")?;
        if !matches!(scheme, "s3" | "s3+http" | "s3+https") {
            return None;
        }
        // Glance writes `access:secret@host/…`; AWS secrets may contain '/', so the
        // credentials end at the last '@'.
        let rest = rest.rsplit_once('@').map_or(rest, |(_, after)| after);
        let (authority, path) = rest.split_once('/')?;
        let (bucket, key) = path.split_once('/')?;
        let same_host = authority.eq_ignore_ascii_case(&self.inner.location_authority)
            || authority
                .eq_ignore_ascii_case(self.inner.s3.endpoint.split_once("://").map_or("", |p| p.1));
        (same_host && bucket == self.inner.s3.bucket && !key.is_empty() && !key.contains('/'))
            .then(|| key.to_owned())
    }

    fn location(&self, key: &str) -> Location {
        Location {
            url: format!(
                "{}://{}/{}/{key}",
                self.inner.location_scheme, self.inner.location_authority, self.inner.s3.bucket
            ),
            store: self.inner.id.clone(),
        }
    }

    fn error(&self, e: S3Error) -> StoreError {
        map_error(&self.inner.id, e)
    }

    /// Makes sure the bucket exists (creating it when `s3_store_create_bucket_on_put` is set).
    async fn ensure_bucket(&self, client: &S3Client) -> Result<(), StoreError> {
        if self.inner.bucket_ready.load(Ordering::Relaxed) {
            return Ok(());
        }
        if !client.head_bucket().await.map_err(|e| self.error(e))? {
            if !self.inner.create_bucket_on_put {
                return Err(StoreError::Unavailable {
                    store: self.inner.id.clone(),
                    message: format!(
                        "bucket {} does not exist (set s3_store_create_bucket_on_put to create \
                         it)",
                        self.inner.s3.bucket
                    ),
                });
            }
            client.create_bucket().await.map_err(|e| self.error(e))?;
            tracing::info!(store = %self.inner.id, bucket = %self.inner.s3.bucket, "created bucket");
        }
        self.inner.bucket_ready.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// The size of part `number` (1-based) of an upload of `size` bytes (`None`: unknown).
    fn part_size(&self, size: Option<u64>, number: u32) -> u64 {
        part_size(self.inner.chunk_bytes, size, number)
    }
}

/// See [`S3Store::part_size`].
fn part_size(chunk: u64, size: Option<u64>, number: u32) -> u64 {
    match size {
        Some(size) => {
            let needed = size.div_ceil(u64::from(MAX_PARTS));
            chunk.max(needed.div_ceil(MIB) * MIB)
        }
        None => chunk << ((number.saturating_sub(1) / PARTS_PER_SIZE_STEP).min(16)),
    }
}

/// The most bytes an upload of unknown size can hold with `chunk`-byte first parts.
#[cfg(test)]
fn max_unknown_size(chunk: u64) -> u64 {
    (0..MAX_PARTS / PARTS_PER_SIZE_STEP)
        .map(|step| (chunk << step) * u64::from(PARTS_PER_SIZE_STEP))
        .sum()
}

/// An S3 failure as a store error (no secret is in an [`S3Error`]).
fn map_error(store: &str, e: S3Error) -> StoreError {
    let store = store.to_owned();
    match e {
        S3Error::NotFound { .. } => StoreError::NotFound {
            store,
            what: e.to_string(),
        },
        S3Error::Credentials { .. } | S3Error::Denied { .. } => StoreError::Denied {
            store,
            message: e.to_string(),
        },
        ref err if err.code() == Some("EntityTooLarge") => StoreError::TooLarge {
            store,
            message: e.to_string(),
        },
        ref err if err.code() == Some("QuotaExceeded") => StoreError::Full { store },
        ref err if err.is_unavailable() => StoreError::Unavailable {
            store,
            message: e.to_string(),
        },
        S3Error::Service { .. } => StoreError::Remote {
            store,
            message: e.to_string(),
        },
        _ => StoreError::Io {
            store,
            source: std::io::Error::other(e.to_string()),
        },
    }
}

impl Store for S3Store {
    fn id(&self) -> &str {
        &self.inner.id
    }

    fn kind(&self) -> StoreKind {
        StoreKind::S3
    }

    fn description(&self) -> Option<&str> {
        self.inner.description.as_deref()
    }

    fn weight(&self) -> i64 {
        self.inner.weight
    }

    fn properties(&self) -> serde_json::Map<String, serde_json::Value> {
        self.inner.properties.clone()
    }

    fn owns(&self, url: &str) -> bool {
        self.key_of(url).is_some()
    }

    fn data_location(&self, id: ImageId) -> Option<Location> {
        Some(self.location(&id.to_string()))
    }

    fn is_data_location(&self, url: &str, id: ImageId) -> bool {
        self.key_of(url).is_some_and(|key| key == id.to_string())
    }

    fn writer(
        &self,
        id: ImageId,
        size_hint: Option<u64>,
    ) -> LocalBoxFuture<'_, Result<Box<dyn StoreWriter>, StoreError>> {
        Box::pin(async move {
            let client = self.client();
            self.ensure_bucket(&client).await?;
            let key = id.to_string();
            let mode = match size_hint {
                Some(size) if size < self.inner.large_object_bytes => {
                    let (sender, body) = RequestBody::channel(size, PUT_QUEUE_FRAMES);
                    let (put_client, put_key) = (client.clone(), key.clone());
                    let put =
                        monoio::spawn(async move { put_client.put_object(&put_key, body).await });
                    Mode::Single {
                        sender: Some(sender),
                        put: Some(put),
                    }
                }
                _ => Mode::Parts(Parts {
                    size: size_hint,
                    upload: None,
                    filling: Vec::new(),
                    filling_bytes: 0,
                    open: None,
                    assigned: 0,
                    next_number: 1,
                    in_flight: VecDeque::new(),
                    done: Vec::new(),
                }),
            };
            Ok(Box::new(S3Writer {
                store: self.clone(),
                client,
                key,
                mode,
                written: 0,
                settled: false,
            }) as Box<dyn StoreWriter>)
        })
    }

    fn read<'a>(
        &'a self,
        location: &'a Location,
        range: Range<u64>,
    ) -> LocalBoxFuture<'a, Result<BoxStream, StoreError>> {
        Box::pin(async move {
            let key = self
                .key_of(&location.url)
                .ok_or_else(|| StoreError::BadLocation {
                    store: self.id().to_owned(),
                    message: "not an object of this store's bucket".into(),
                })?;
            let client = self.client();
            if range.is_empty() {
                // A zero-byte image: check the object is there, send nothing.
                client.head_object(&key).await.map_err(|e| self.error(e))?;
                return Ok(Box::pin(EmptyStream) as BoxStream);
            }
            let len = range.end - range.start;
            let object = client
                .get_object(&key, Some(ByteRange::Inclusive(range.start, range.end - 1)))
                .await
                .map_err(|e| self.error(e))?;
            let skip = match object.range {
                // The service sent the range asked for.
                Some((first, last)) if object.status == http::StatusCode::PARTIAL_CONTENT => {
                    if first != range.start || last + 1 != range.end {
                        return Err(StoreError::Remote {
                            store: self.id().to_owned(),
                            message: format!(
                                "object {key} holds {} bytes, fewer than the image's data",
                                object.object_size
                            ),
                        });
                    }
                    0
                }
                // The whole object: skip to the range while streaming.
                _ if object.object_size >= range.end => range.start,
                _ => {
                    return Err(StoreError::Remote {
                        store: self.id().to_owned(),
                        message: format!(
                            "object {key} holds {} bytes, fewer than the image's data",
                            object.object_size
                        ),
                    })
                }
            };
            Ok(Box::pin(ResponseStream::new(object.body, self.id(), skip, len)) as BoxStream)
        })
    }

    fn size<'a>(&'a self, location: &'a Location) -> LocalBoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let key = self
                .key_of(&location.url)
                .ok_or_else(|| StoreError::BadLocation {
                    store: self.id().to_owned(),
                    message: "not an object of this store's bucket".into(),
                })?;
            let info = self
                .client()
                .head_object(&key)
                .await
                .map_err(|e| self.error(e))?;
            Ok(info.size)
        })
    }

    fn delete<'a>(&'a self, location: &'a Location) -> LocalBoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let Some(key) = self.key_of(&location.url) else {
                return Ok(());
            };
            match self.client().delete_object(&key).await {
                Ok(()) => Ok(()),
                Err(e) if e.is_not_found() => Ok(()),
                Err(e) => Err(self.error(e)),
            }
        })
    }

    fn check(&self) -> LocalBoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            match self.client().head_bucket().await {
                Ok(true) => Ok(()),
                Ok(false) if self.inner.create_bucket_on_put => Ok(()),
                Ok(false) => Err(StoreError::Unavailable {
                    store: self.id().to_owned(),
                    message: format!("bucket {} does not exist", self.inner.s3.bucket),
                }),
                Err(e) => Err(self.error(e)),
            }
        })
    }

    fn recover<'a>(
        &'a self,
        inventory: &'a super::Inventory<'a>,
    ) -> LocalBoxFuture<'a, Result<Recovered, StoreError>> {
        Box::pin(async move {
            let client = self.client();
            client
                .check_credentials()
                .await
                .map_err(|e| self.error(e))?;
            self.ensure_bucket(&client).await?;
            let uploads = client
                .list_multipart_uploads("")
                .await
                .map_err(|e| self.error(e))?;
            let mut partial = 0;
            for upload in uploads {
                let Ok(image) = upload.key.parse::<ImageId>() else {
                    continue; // not ours
                };
                if inventory.is_receiving(image) {
                    continue;
                }
                match client
                    .abort_multipart_upload(&upload.key, &upload.upload_id)
                    .await
                {
                    Ok(()) => partial += 1,
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(self.error(e)),
                }
            }
            Ok(Recovered {
                partial,
                ..Recovered::default()
            })
        })
    }
}

/// The stream of a zero-byte image.
struct EmptyStream;

impl super::DataStream for EmptyStream {
    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<std::io::Result<Bytes>>> {
        std::task::Poll::Ready(None)
    }

    fn remaining(&self) -> u64 {
        0
    }
}

/// How an upload goes up.
enum Mode {
    /// One PutObject, fed frame by frame (the size was announced and is small).
    Single {
        sender: Option<BodySender>,
        put: Option<JoinHandle<Result<ETag, S3Error>>>,
    },
    /// Parts (multipart), or one PutObject if the data ends within the first part.
    Parts(Parts),
}

struct Parts {
    /// The announced size, if any: parts then stream (their lengths are known), else they
    /// are gathered first.
    size: Option<u64>,
    /// The multipart upload, once the first part is under way.
    upload: Option<UploadId>,
    /// Unknown size: frames of the part being filled.
    filling: Vec<Bytes>,
    filling_bytes: u64,
    /// Known size: the part whose body is being fed, and what it still needs.
    open: Option<(BodySender, u64)>,
    /// Known size: bytes given to parts so far.
    assigned: u64,
    next_number: u32,
    in_flight: VecDeque<JoinHandle<Result<CompletedPart, S3Error>>>,
    done: Vec<CompletedPart>,
}

/// One upload into an [`S3Store`] (see the module docs).
struct S3Writer {
    store: S3Store,
    client: S3Client,
    key: String,
    mode: Mode,
    written: u64,
    /// Committed or cleaned up: nothing left for `Drop`.
    settled: bool,
}

impl S3Writer {
    /// The single PutObject's own error, once its body was refused.
    async fn put_failure(&mut self) -> StoreError {
        if let Mode::Single { sender, put } = &mut self.mode {
            sender.take();
            if let Some(put) = put.take() {
                return match put.await {
                    Err(e) => self.store.error(e),
                    Ok(_) => StoreError::Io {
                        store: self.store.id().to_owned(),
                        source: std::io::Error::other("the object was stored before its end"),
                    },
                };
            }
        }
        StoreError::Io {
            store: self.store.id().to_owned(),
            source: std::io::Error::other("the upload request ended"),
        }
    }

    /// Sends the part being filled (creating the multipart upload first if needed), waiting
    /// while `s3_store_thread_pools` parts are in flight.
    async fn send_part(&mut self) -> Result<(), StoreError> {
        let Mode::Parts(parts) = &mut self.mode else {
            return Ok(());
        };
        let upload = match &parts.upload {
            Some(upload) => upload.clone(),
            None => {
                let upload = self
                    .client
                    .create_multipart_upload(&self.key)
                    .await
                    .map_err(|e| map_error(&self.store.inner.id, e))?;
                parts.upload = Some(upload.clone());
                upload
            }
        };
        while parts.in_flight.len() >= self.store.inner.parts_in_flight {
            let oldest = parts.in_flight.pop_front().expect("not empty");
            let part = oldest
                .await
                .map_err(|e| map_error(&self.store.inner.id, e))?;
            parts.done.push(part);
        }
        if parts.next_number > MAX_PARTS {
            return Err(StoreError::TooLarge {
                store: self.store.id().to_owned(),
                message: format!("the image needs more than {MAX_PARTS} parts"),
            });
        }
        let number = parts.next_number;
        parts.next_number += 1;
        let body = RequestBody::chunks(std::mem::take(&mut parts.filling));
        parts.filling_bytes = 0;
        let (client, key) = (self.client.clone(), self.key.clone());
        parts.in_flight.push_back(monoio::spawn(async move {
            let etag = client.upload_part(&key, &upload, number, body).await?;
            Ok(CompletedPart {
                part_number: number,
                etag,
            })
        }));
        Ok(())
    }

    /// A known size: the frame goes straight into the body of the part it belongs to (its
    /// length is known, so nothing is gathered), starting the next part when one is full.
    async fn stream_frame(&mut self, mut frame: Bytes) -> Result<(), StoreError> {
        while !frame.is_empty() {
            let Mode::Parts(parts) = &mut self.mode else {
                unreachable!("mode does not change")
            };
            if parts.open.is_none() {
                self.start_streamed_part().await?;
            }
            let Mode::Parts(parts) = &mut self.mode else {
                unreachable!("mode does not change")
            };
            let (sender, left) = parts.open.as_mut().expect("started above");
            let piece = if frame.len() as u64 > *left {
                frame.split_to(*left as usize)
            } else {
                std::mem::take(&mut frame)
            };
            *left -= piece.len() as u64;
            let full = *left == 0;
            if sender.send(piece).await.is_err() {
                // The part's request ended early: its own error says why.
                parts.open = None;
                let failed = parts
                    .in_flight
                    .pop_back()
                    .expect("the open part is in flight");
                return Err(match failed.await {
                    Err(e) => map_error(&self.store.inner.id, e),
                    Ok(_) => StoreError::Io {
                        store: self.store.id().to_owned(),
                        source: std::io::Error::other("a part was stored before its end"),
                    },
                });
            }
            if full {
                // Dropping the sender ends the part's body.
                parts.open = None;
            }
        }
        Ok(())
    }

    /// Starts the next part of a known-size upload: its request goes out now and its body is
    /// fed by [`S3Writer::stream_frame`]; at most `s3_store_thread_pools` parts are in flight.
    async fn start_streamed_part(&mut self) -> Result<(), StoreError> {
        let store_id = self.store.inner.id.clone();
        let Mode::Parts(parts) = &mut self.mode else {
            return Ok(());
        };
        let size = parts.size.expect("known-size parts");
        let upload = match &parts.upload {
            Some(upload) => upload.clone(),
            None => {
                let upload = self
                    .client
                    .create_multipart_upload(&self.key)
                    .await
                    .map_err(|e| map_error(&store_id, e))?;
                parts.upload = Some(upload.clone());
                upload
            }
        };
        while parts.in_flight.len() >= self.store.inner.parts_in_flight {
            let oldest = parts.in_flight.pop_front().expect("not empty");
            parts
                .done
                .push(oldest.await.map_err(|e| map_error(&store_id, e))?);
        }
        let len = self
            .store
            .part_size(Some(size), parts.next_number)
            .min(size.saturating_sub(parts.assigned));
        if len == 0 || parts.next_number > MAX_PARTS {
            return Err(StoreError::Io {
                store: store_id,
                source: std::io::Error::other("more data than the upload announced"),
            });
        }
        let number = parts.next_number;
        parts.next_number += 1;
        parts.assigned += len;
        let (sender, body) = RequestBody::channel(len, PUT_QUEUE_FRAMES);
        parts.open = Some((sender, len));
        let (client, key) = (self.client.clone(), self.key.clone());
        parts.in_flight.push_back(monoio::spawn(async move {
            let etag = client.upload_part(&key, &upload, number, body).await?;
            Ok(CompletedPart {
                part_number: number,
                etag,
            })
        }));
        Ok(())
    }

    async fn finish(&mut self) -> Result<Location, StoreError> {
        match &mut self.mode {
            Mode::Single { sender, put } => {
                sender.take(); // the body ends here
                let put = put.take().expect("a writer commits once");
                put.await.map_err(|e| self.store.error(e))?;
            }
            Mode::Parts(parts) if parts.upload.is_none() => {
                // Everything fit in the first part: one PutObject.
                let body = RequestBody::chunks(std::mem::take(&mut parts.filling));
                self.client
                    .put_object(&self.key, body)
                    .await
                    .map_err(|e| map_error(&self.store.inner.id, e))?;
            }
            Mode::Parts(parts) if parts.open.is_some() => {
                return Err(StoreError::Io {
                    store: self.store.id().to_owned(),
                    source: std::io::Error::other("the upload ended before its announced size"),
                });
            }
            Mode::Parts(_) => {
                let has_tail = matches!(&self.mode, Mode::Parts(p) if p.filling_bytes > 0);
                if has_tail {
                    self.send_part().await?;
                }
                let Mode::Parts(parts) = &mut self.mode else {
                    unreachable!("mode does not change")
                };
                while let Some(part) = parts.in_flight.pop_front() {
                    let part = part.await.map_err(|e| map_error(&self.store.inner.id, e))?;
                    parts.done.push(part);
                }
                parts.done.sort_by_key(|p| p.part_number);
                let upload = parts.upload.clone().expect("checked above");
                self.client
                    .complete_multipart_upload(&self.key, &upload, &parts.done)
                    .await
                    .map_err(|e| map_error(&self.store.inner.id, e))?;
            }
        }
        Ok(self.store.location(&self.key))
    }

    /// Removes what this upload left: the multipart upload, or the object a finished
    /// PutObject made. Tried here first; left to the janitor when the service is down.
    async fn clean_up(&mut self) {
        self.settled = true;
        let job = match &mut self.mode {
            Mode::Single { sender, put } => {
                sender.take();
                let stored = match put.take() {
                    Some(put) => put.await.is_ok(),
                    None => true,
                };
                if !stored {
                    // The body was cut short: the service stored nothing.
                    return;
                }
                Cleanup::DeleteObject
            }
            Mode::Parts(parts) => {
                // A part being fed is cut short (its request fails); parts still going up
                // would land after the abort: let them end first.
                parts.open = None;
                while let Some(part) = parts.in_flight.pop_front() {
                    let _ = part.await;
                }
                match parts.upload.take() {
                    Some(upload) => Cleanup::Abort(upload),
                    None => return,
                }
            }
        };
        let job = CleanupJob {
            store: self.store.clone(),
            key: self.key.clone(),
            what: job,
        };
        if let Err(e) = job.run_with(&self.client).await {
            tracing::warn!(store = %self.store.id(), key = %self.key, error = %e,
                "cannot clean up a failed upload now; the janitor will retry");
            janitor::submit(Box::new(job));
        }
    }
}

impl StoreWriter for S3Writer {
    fn write(&mut self, frame: Bytes) -> LocalBoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.written += frame.len() as u64;
            match &mut self.mode {
                Mode::Single { sender, .. } => {
                    let sent = match sender.as_mut() {
                        Some(sender) => sender.send(frame).await.is_ok(),
                        None => false,
                    };
                    if !sent {
                        return Err(self.put_failure().await);
                    }
                    Ok(())
                }
                Mode::Parts(Parts { size: Some(_), .. }) => self.stream_frame(frame).await,
                Mode::Parts(_) => {
                    let mut frame = frame;
                    while !frame.is_empty() {
                        let Mode::Parts(parts) = &mut self.mode else {
                            unreachable!("mode does not change")
                        };
                        let size = self.store.part_size(parts.size, parts.next_number);
                        let room = size - parts.filling_bytes;
                        let piece = if frame.len() as u64 > room {
                            frame.split_to(room as usize)
                        } else {
                            std::mem::take(&mut frame)
                        };
                        parts.filling_bytes += piece.len() as u64;
                        parts.filling.push(piece);
                        if parts.filling_bytes == size {
                            self.send_part().await?;
                        }
                    }
                    Ok(())
                }
            }
        })
    }

    fn commit(mut self: Box<Self>) -> LocalBoxFuture<'static, Result<Location, StoreError>> {
        Box::pin(async move {
            match self.finish().await {
                Ok(location) => {
                    self.settled = true;
                    Ok(location)
                }
                Err(e) => {
                    self.clean_up().await;
                    Err(e)
                }
            }
        })
    }

    fn abort(mut self: Box<Self>) -> LocalBoxFuture<'static, ()> {
        Box::pin(async move { self.clean_up().await })
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        // Dropped mid-upload: the PutObject's body ends short (the service discards it);
        // a multipart upload is aborted by the janitor.
        if let Mode::Parts(parts) = &mut self.mode {
            if let Some(upload) = parts.upload.take() {
                janitor::submit(Box::new(CleanupJob {
                    store: self.store.clone(),
                    key: self.key.clone(),
                    what: Cleanup::Abort(upload),
                }));
            }
        }
    }
}

enum Cleanup {
    Abort(UploadId),
    DeleteObject,
}

/// Removes what a failed upload left in the bucket (see [`S3Writer::clean_up`]).
struct CleanupJob {
    store: S3Store,
    key: String,
    what: Cleanup,
}

impl CleanupJob {
    async fn run_with(&self, client: &S3Client) -> Result<(), StoreError> {
        let result = match &self.what {
            Cleanup::Abort(upload) => client.abort_multipart_upload(&self.key, upload).await,
            Cleanup::DeleteObject => client.delete_object(&self.key).await,
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(self.store.error(e)),
        }
    }
}

impl janitor::Job for CleanupJob {
    fn describe(&self) -> String {
        match &self.what {
            Cleanup::Abort(upload) => format!(
                "store {}: abort multipart upload {upload} of {}",
                self.store.id(),
                self.key
            ),
            Cleanup::DeleteObject => format!("store {}: delete {}", self.store.id(), self.key),
        }
    }

    fn run(&self) -> LocalBoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move { self.run_with(&self.store.client()).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Secret, StoreType};

    fn settings() -> StoreSettings {
        StoreSettings {
            kind: StoreType::S3,
            s3_store_host: Some("127.0.0.1:7480".into()),
            s3_store_access_key: Some("AK".into()),
            s3_store_secret_key: Some(Secret::new("very-secret")),
            s3_store_bucket: Some("images".into()),
            ..StoreSettings::default()
        }
    }

    #[test]
    fn locations_carry_no_credentials_and_glance_forms_are_recognised() {
        let store = S3Store::new("ceph", &settings()).unwrap();
        let location = store.location("6f1f4a6e-7c8b-4d37-9a59-3f4c1b2a9e10");
        assert_eq!(
            location.url,
            "s3://127.0.0.1:7480/images/6f1f4a6e-7c8b-4d37-9a59-3f4c1b2a9e10"
        );
        assert_eq!(location.store, "ceph");
        assert!(store.owns(&location.url));
        // Glance's form, with credentials (a secret may hold '/').
        assert!(store.owns("s3://AK:se/cr@et@127.0.0.1:7480/images/abc"));
        assert!(!store.owns("s3://127.0.0.1:7480/other/abc"));
        assert!(!store.owns("s3://10.0.0.1:7480/images/abc"));
        assert!(!store.owns("file:///images/abc"));
        assert!(!store.owns("s3://127.0.0.1:7480/images/"));
        assert!(!format!("{store:?}").contains("very-secret"));
    }

    #[test]
    fn an_image_data_location_is_its_writers_key_in_any_spelling() {
        let store = S3Store::new("ceph", &settings()).unwrap();
        let id: ImageId = "6f1f4a6e-7c8b-4d37-9a59-3f4c1b2a9e10".parse().unwrap();
        let other: ImageId = "7f1f4a6e-7c8b-4d37-9a59-3f4c1b2a9e10".parse().unwrap();
        let location = store.data_location(id).unwrap();
        assert_eq!(location, store.location(&id.to_string()));
        assert!(store.is_data_location(&location.url, id));
        assert!(store.is_data_location(&format!("s3://AK:SK@127.0.0.1:7480/images/{id}"), id));
        assert!(!store.is_data_location(&location.url, other));
        assert!(!store.is_data_location(&format!("s3://127.0.0.1:7480/other/{id}"), id));
    }

    #[test]
    fn bad_settings_name_their_key() {
        let mut s = settings();
        s.s3_store_large_object_chunk_size = Some(4);
        let err = S3Store::new("ceph", &s).unwrap_err().to_string();
        assert!(err.contains("s3_store_large_object_chunk_size"), "{err}");
        let mut s = settings();
        s.s3_store_bucket = Some("No_Such".into());
        let err = S3Store::new("ceph", &s).unwrap_err().to_string();
        assert!(
            err.contains("s3_store_bucket") && err.contains("ceph"),
            "{err}"
        );
        let mut s = settings();
        s.s3_store_host = None;
        let err = S3Store::new("ceph", &s).unwrap_err().to_string();
        assert!(err.contains("s3_store_host"), "{err}");
        assert!(!err.contains("very-secret"));
    }

    #[test]
    fn part_sizes_fit_ten_thousand_parts() {
        let chunk = 10 * MIB;
        assert_eq!(part_size(chunk, Some(50 * MIB), 1), chunk);
        // 1 TiB in at most 10,000 parts: 105 MiB each (rounded up to whole MiB).
        let tib = 1u64 << 40;
        let size = part_size(chunk, Some(tib), 1);
        assert!(tib.div_ceil(size) <= u64::from(MAX_PARTS), "{size}");
        assert_eq!(size % MIB, 0);
        // Unknown size: doubling every 2,000 parts.
        assert_eq!(part_size(chunk, None, 2000), chunk);
        assert_eq!(part_size(chunk, None, 2001), 2 * chunk);
        assert_eq!(part_size(chunk, None, 10_000), 16 * chunk);
        assert_eq!(max_unknown_size(chunk), 2000 * 31 * chunk);
    }
}
