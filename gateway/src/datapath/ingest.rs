//! Ingest: image bytes from any frame source into any store, checked and hashed on the way.
//!
//! ```text
//! FrameSource ─frame─► size limits (image_size_cap, the owner's quota, the announced size)
//!  (HTTP body,     └─► format inspector (first frames, until it has a verdict)
//!   a remote URL,  └─► md5 + os_hash_algo, on the hashing threads
//!   another store) └─► StoreWriter::write (the frame itself, moved, not copied)
//! end ─► inspector's final verdict ─► digests ∥ StoreWriter::commit ─► Landed { location, … }
//! ```
//!
//! The sources today: a request body (`PUT /file`); the import tasks add a staging file, a
//! remote URL ([`crate::net::client::ResponseBody`]) and another store's stream
//! ([`StoreSource`]). One frame is handed to the store at a time, and the store's `write`
//! returns only when it can take the next: a slow store slows the source (TCP backpressure on a
//! client), and the memory an upload holds is bounded whatever the image's size.
//!
//! Failure, whatever its cause (a refusal, the source breaking off, the store failing), removes
//! every byte the store took before [`land`] returns; a `land` future dropped midway (the client
//! vanished and hyper dropped the request) leaves that to the store writer's `Drop`. Returning
//! the image to `queued` is the caller's [`Guard`]: armed when the upload begins, it requeues
//! on failure — awaited on the error path, in the background when dropped — and is disarmed
//! once the image is `active`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use meta::{ImageId, Location};

use super::checksum::{Checksums, Digests, HashPoolGone};
use crate::metrics::UploadEnd;
use crate::store::{BoxStream, Store, StoreError, StoreWriter};

/// Where image bytes come from, frame by frame.
pub trait FrameSource {
    /// What a failing source says.
    type Error: std::error::Error + 'static;

    /// The next frame (never empty), `None` at the end.
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>>;
}

impl FrameSource for crate::body::RequestBody {
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, hyper::Error>>> {
        loop {
            match std::task::ready!(http_body::Body::poll_frame(self.as_mut(), cx)) {
                None => return Poll::Ready(None),
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                // Trailers carry no image bytes; empty frames carry nothing.
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if !data.is_empty() => return Poll::Ready(Some(Ok(data))),
                    _ => continue,
                },
            }
        }
    }
}

impl FrameSource for crate::net::client::ResponseBody {
    type Error = crate::net::client::ClientError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        self.poll_next(cx)
    }
}

/// Another store's data as a frame source (copying an image between stores).
pub struct StoreSource(pub BoxStream);

impl FrameSource for StoreSource {
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, std::io::Error>>> {
        let stream = &mut self.get_mut().0;
        loop {
            match std::task::ready!(stream.as_mut().poll_next(cx)) {
                Some(Ok(data)) if data.is_empty() => continue,
                other => return Poll::Ready(other),
            }
        }
    }
}

async fn next_frame<S: FrameSource>(source: &mut Pin<&mut S>) -> Option<Result<Bytes, S::Error>> {
    std::future::poll_fn(|cx| source.as_mut().poll_frame(cx)).await
}

/// What the bytes are checked against, and how they are hashed.
pub struct Checks {
    /// The most bytes accepted: `image_size_cap`, or less when the owner's
    /// `image_size_total` quota leaves less (the caller tells the two apart).
    pub cap_bytes: u64,
    /// The size announced (`x-openstack-image-size`, else `Content-Length`), if any: more or
    /// fewer bytes are refused.
    pub expected_bytes: Option<u64>,
    /// The format inspector, when the upload is inspected (`container_format` `bare`).
    pub inspector: Option<formats::Inspector>,
    /// md5 and `os_hash_algo`, hashed as the bytes pass, or known already
    /// ([`Checksums::precomputed`]: an import of staged data hashed when it was staged).
    pub checksums: Checksums,
    /// The longest wait for the source's next frame (`client_socket_timeout` for a request
    /// body): a stalled source must not hold the upload — its partial data, its `saving`
    /// image — forever. `None` waits as long as the source does.
    pub idle_timeout: Option<Duration>,
}

/// Bytes that landed in a store, durably.
#[derive(Debug)]
pub struct Landed {
    /// Where they are.
    pub location: Location,
    /// How many.
    pub size: u64,
    /// md5 and `os_hash_value`.
    pub digests: Digests,
    /// The inspector's verdict, when inspected.
    pub inspection: Option<formats::Inspection>,
}

/// Why ingest stopped. The store's bytes are gone whichever it is.
#[derive(Debug, thiserror::Error)]
pub enum IngestError<E: std::error::Error + 'static> {
    /// More than [`Checks::cap_bytes`].
    #[error("image exceeds the size limit of {cap} bytes")]
    TooLarge {
        /// The limit.
        cap: u64,
    },
    /// The data's length differs from the announced size.
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
    /// The source broke off or sent something malformed.
    #[error("reading the image data failed: {0}")]
    Source(#[source] E),
    /// The source sent nothing for [`Checks::idle_timeout`].
    #[error("no image data for {0:?}")]
    IdleTimeout(Duration),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The hashing threads are gone.
    #[error(transparent)]
    Hashing(#[from] HashPoolGone),
}

impl<E: std::error::Error + 'static> IngestError<E> {
    /// The `glint_uploads_total` outcome of an upload that stopped with this error.
    pub fn upload_end(&self) -> UploadEnd {
        match self {
            IngestError::TooLarge { .. } => UploadEnd::RefusedTooLarge,
            IngestError::SizeMismatch { .. } => UploadEnd::RefusedSizeMismatch,
            IngestError::Refused(_) => UploadEnd::RefusedFormat,
            IngestError::Source(_) | IngestError::IdleTimeout(_) => UploadEnd::FailedClient,
            IngestError::Store(StoreError::Full { .. }) => UploadEnd::RefusedStorageFull,
            IngestError::Store(_) | IngestError::Hashing(_) => UploadEnd::FailedIo,
        }
    }
}

/// Streams `source` into `store` as image `image`'s data (see the module docs).
pub async fn land<S: FrameSource>(
    source: S,
    store: &dyn Store,
    image: ImageId,
    checks: Checks,
) -> Result<Landed, IngestError<S::Error>> {
    let mut writer = store.writer(image, checks.expected_bytes).await?;
    let Checks {
        cap_bytes,
        expected_bytes,
        mut inspector,
        mut checksums,
        idle_timeout,
    } = checks;
    let source = std::pin::pin!(source);
    let fed = feed(
        source,
        &mut *writer,
        cap_bytes,
        expected_bytes,
        inspector.as_mut(),
        &mut checksums,
        idle_timeout,
    )
    .await;
    let size = match fed {
        Ok(size) => size,
        Err(e) => {
            writer.abort().await;
            return Err(e);
        }
    };
    let inspection = inspector.map(formats::Inspector::finish);
    if let Some(refusal) = inspection.as_ref().and_then(|i| i.verdict.as_ref().err()) {
        writer.abort().await;
        return Err(IngestError::Refused(refusal.clone()));
    }
    // The hashers finish while the store makes the data durable.
    let (digests, location) = monoio::join!(checksums.finish(), writer.commit());
    let location = location?;
    let digests = match digests {
        Ok(digests) => digests,
        Err(e) => {
            // Committed, but unusable without its digests.
            if let Err(delete) = store.delete(&location).await {
                tracing::error!(image_id = %image, error = %delete, "cannot remove data");
            }
            return Err(e.into());
        }
    };
    Ok(Landed {
        location,
        size,
        digests,
        inspection,
    })
}

/// The md5 and `os_hash_algo` digests of exactly `expected_bytes` from `source`, which stores
/// nothing: hashing data that is already in a store (a location added with
/// `do_secure_hash`).
pub async fn digest<S: FrameSource>(
    source: S,
    mut checksums: Checksums,
    expected_bytes: u64,
) -> Result<Digests, IngestError<S::Error>> {
    let mut source = std::pin::pin!(source);
    let mut size: u64 = 0;
    while let Some(frame) = next_frame(&mut source).await {
        let data = frame.map_err(IngestError::Source)?;
        size += data.len() as u64;
        if size > expected_bytes {
            break;
        }
        checksums.update(&data).await?;
    }
    if size != expected_bytes {
        return Err(IngestError::SizeMismatch {
            expected: expected_bytes,
            received: size,
        });
    }
    Ok(checksums.finish().await?)
}

/// Feeds every frame of `source` to `writer` under the limits; returns the byte count.
async fn feed<S: FrameSource>(
    mut source: Pin<&mut S>,
    writer: &mut dyn StoreWriter,
    cap_bytes: u64,
    expected_bytes: Option<u64>,
    mut inspector: Option<&mut formats::Inspector>,
    checksums: &mut Checksums,
    idle_timeout: Option<Duration>,
) -> Result<u64, IngestError<S::Error>> {
    let mut size: u64 = 0;
    loop {
        let next = match idle_timeout {
            Some(idle) => monoio::time::timeout(idle, next_frame(&mut source))
                .await
                .map_err(|_| IngestError::IdleTimeout(idle))?,
            None => next_frame(&mut source).await,
        };
        let Some(frame) = next else { break };
        let data = frame.map_err(IngestError::Source)?;
        crate::metrics::received(data.len());
        let received = size + data.len() as u64;
        if received > cap_bytes {
            return Err(IngestError::TooLarge { cap: cap_bytes });
        }
        if let Some(expected) = expected_bytes.filter(|&e| received > e) {
            return Err(IngestError::SizeMismatch { expected, received });
        }
        if let Some(inspector) = inspector.as_deref_mut() {
            crate::metrics::inspecting(data.len(), || inspector.feed(&data))
                .map_err(IngestError::Refused)?;
        }
        checksums.update(&data).await?;
        writer.write(data).await?;
        size = received;
    }
    if let Some(expected) = expected_bytes.filter(|&e| e != size) {
        return Err(IngestError::SizeMismatch {
            expected,
            received: size,
        });
    }
    Ok(size)
}

/// Returns an image to `queued` when its data does not land (see [`Guard`]).
pub trait Requeue {
    /// Requeues `image` and waits until it is done (the error path).
    fn requeue(&self, image: ImageId) -> Pin<Box<dyn Future<Output = ()> + '_>>;
    /// Requeues `image` in the background (from `Drop`, which cannot wait).
    fn requeue_detached(&self, image: ImageId);
}

/// Armed when an upload begins (the image left `queued`): unless disarmed, returns the image
/// to `queued` — awaited by [`Guard::undo`], or in the background when dropped (the request
/// was dropped mid-upload).
pub struct Guard<R: Requeue> {
    image: ImageId,
    requeue: R,
    armed: bool,
}

impl<R: Requeue> Guard<R> {
    /// A guard for `image`'s upload.
    pub fn new(image: ImageId, requeue: R) -> Guard<R> {
        Guard {
            image,
            requeue,
            armed: true,
        }
    }

    /// The upload failed: requeue now and wait for it.
    pub async fn undo(mut self) {
        self.armed = false;
        self.requeue.requeue(self.image).await;
    }

    /// The image is `active`: nothing to undo.
    pub fn disarm(mut self) {
        self.armed = false;
    }
}

impl<R: Requeue> Drop for Guard<R> {
    fn drop(&mut self) {
        if self.armed {
            tracing::warn!(image_id = %self.image, "upload abandoned; resetting image to queued");
            self.requeue.requeue_detached(self.image);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::rc::Rc;

    use super::*;
    use crate::datapath::checksum::HashPool;
    use crate::net::test_origin::on_each_driver;
    use crate::store::fs::FsStore;

    /// Frames from a list, then maybe an error.
    struct Frames(VecDeque<Result<Bytes, std::io::Error>>);

    impl FrameSource for Frames {
        type Error = std::io::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Bytes, std::io::Error>>> {
            Poll::Ready(self.get_mut().0.pop_front())
        }
    }

    fn frames(pieces: &[&[u8]]) -> Frames {
        Frames(
            pieces
                .iter()
                .map(|p| Ok(Bytes::copy_from_slice(p)))
                .collect(),
        )
    }

    fn checks(pool: &HashPool, cap: u64, expected: Option<u64>) -> Checks {
        Checks {
            cap_bytes: cap,
            expected_bytes: expected,
            inspector: None,
            checksums: pool.checksums("sha256").unwrap(),
            idle_timeout: None,
        }
    }

    fn files(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Waits for the janitor to remove the partial files.
    fn wait_until_only(dir: &std::path::Path, expected: &[String]) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while files(dir) != expected {
            assert!(
                std::time::Instant::now() < deadline,
                "left behind: {:?}",
                files(dir)
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    #[test]
    fn frames_land_hashed_and_every_failure_removes_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        let pool = HashPool::start(2).unwrap();
        on_each_driver(|| async {
            let id = ImageId::new_v4();
            let landed = land(
                frames(&[b"ab", b"c"]),
                &store,
                id,
                checks(&pool, 10, Some(3)),
            )
            .await
            .unwrap();
            assert_eq!(landed.size, 3);
            assert_eq!(landed.digests.checksum, "900150983cd24fb0d6963f7d28e17f72");
            assert_eq!(
                std::fs::read(store.path_of(&landed.location).unwrap()).unwrap(),
                b"abc"
            );

            let cases: Vec<(Frames, Checks)> = vec![
                (frames(&[b"abcd", b"efgh"]), checks(&pool, 6, None)),
                (frames(&[b"abc"]), checks(&pool, 10, Some(4))),
                (frames(&[b"abcde"]), checks(&pool, 10, Some(4))),
                (
                    Frames(VecDeque::from([
                        Ok(Bytes::from_static(b"abc")),
                        Err(std::io::Error::other("client gone")),
                    ])),
                    checks(&pool, 10, None),
                ),
            ];
            let mut errors = Vec::new();
            for (source, checks) in cases {
                let err = land(source, &store, ImageId::new_v4(), checks)
                    .await
                    .unwrap_err();
                errors.push(err.upload_end());
            }
            assert_eq!(
                errors,
                [
                    UploadEnd::RefusedTooLarge,
                    UploadEnd::RefusedSizeMismatch,
                    UploadEnd::RefusedSizeMismatch,
                    UploadEnd::FailedClient
                ]
            );
            wait_until_only(dir.path(), &[id.to_string()]);
            std::fs::remove_file(store.image_path(id)).unwrap();
        });
    }

    /// Some frames, then nothing ever again (a client that stopped sending).
    struct Stalls(Frames);

    impl FrameSource for Stalls {
        type Error = std::io::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Bytes, std::io::Error>>> {
            match Pin::new(&mut self.get_mut().0).poll_frame(cx) {
                Poll::Ready(None) => Poll::Pending,
                other => other,
            }
        }
    }

    #[test]
    fn a_stalled_source_times_out_and_its_data_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        let pool = HashPool::start(1).unwrap();
        on_each_driver(|| async {
            let mut checks = checks(&pool, 1 << 20, Some(10));
            checks.idle_timeout = Some(Duration::from_millis(50));
            let err = land(Stalls(frames(&[b"abc"])), &store, ImageId::new_v4(), checks)
                .await
                .unwrap_err();
            assert!(matches!(err, IngestError::IdleTimeout(_)), "{err}");
            assert_eq!(err.upload_end(), UploadEnd::FailedClient);
            wait_until_only(dir.path(), &[]);
        });
    }

    #[test]
    fn refusals_by_the_inspector_remove_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        let pool = HashPool::start(1).unwrap();
        on_each_driver(|| async {
            // Declared qcow2, but raw zeros: refused at the end.
            let mut checks = checks(&pool, 1 << 20, None);
            checks.inspector = Some(formats::Inspector::new(
                Some("qcow2"),
                &formats::Policy::default(),
            ));
            let err = land(
                frames(&[&[0u8; 4096], &[0u8; 4096]]),
                &store,
                ImageId::new_v4(),
                checks,
            )
            .await
            .unwrap_err();
            assert!(matches!(err, IngestError::Refused(_)), "{err}");
            wait_until_only(dir.path(), &[]);
        });
    }

    struct Counting(Rc<std::cell::Cell<(u32, u32)>>);

    impl Requeue for Counting {
        fn requeue(&self, _image: ImageId) -> Pin<Box<dyn Future<Output = ()> + '_>> {
            let (awaited, detached) = self.0.get();
            self.0.set((awaited + 1, detached));
            Box::pin(async {})
        }

        fn requeue_detached(&self, _image: ImageId) {
            let (awaited, detached) = self.0.get();
            self.0.set((awaited, detached + 1));
        }
    }

    #[test]
    fn the_guard_requeues_unless_disarmed() {
        let counts = Rc::new(std::cell::Cell::new((0, 0)));
        let id = ImageId::new_v4();
        drop(Guard::new(id, Counting(Rc::clone(&counts))));
        assert_eq!(counts.get(), (0, 1));
        crate::test_util::block_on(Guard::new(id, Counting(Rc::clone(&counts))).undo());
        assert_eq!(counts.get(), (1, 1));
        Guard::new(id, Counting(Rc::clone(&counts))).disarm();
        assert_eq!(counts.get(), (1, 1));
    }
}
