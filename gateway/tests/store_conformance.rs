//! One conformance suite for every writable store: the file store (always) and the S3 store
//! against a real Ceph RGW (started by `tests/e2e/rgw.sh`, which sets `GLINT_S3_TEST_*`; with
//! `GLINT_REQUIRE_S3=1` and no endpoint the S3 half fails instead of being skipped).
//!
//! Each case runs on io_uring (when the kernel offers it) and on epoll. What a case checks is
//! the [`Store`] contract: what was written comes back byte for byte, whole and by range;
//! every way an upload can fail — abort, a dropped writer, a failed commit — leaves nothing in
//! the store (no `.part` file; no object and no incomplete multipart upload); a missing object
//! is an error, never a short stream; start-up recovery removes the partial data of uploads no
//! one runs, and keeps those still in flight.
//!
//! ```sh
//! cargo test -p gateway --test store_conformance                 # file store only
//! bash tests/e2e/rgw.sh cargo test -p gateway --test store_conformance
//! ```

#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway::config::{Secret, StoreSettings, StoreType};
use gateway::net::client::{ClientSettings, HttpClient};
use gateway::net::s3::{Addressing, S3Client, S3Settings, SecretKey};
use gateway::store::fs::{FsOptions, FsStore};
use gateway::store::s3::S3Store;
use gateway::store::{BoxStream, Inventory, Store, StoreError};
use meta::{ImageId, Location};

const MIB: usize = 1 << 20;

/// A store under test and a way to see what it holds behind its back.
trait Harness {
    fn store(&self) -> Arc<dyn Store>;
    /// Everything the store holds for `id` that is not a committed image: partial files,
    /// incomplete multipart uploads. And the committed data, if any.
    fn leftovers(&self, id: ImageId) -> impl Future<Output = Vec<String>>;
    /// Leaves partial data of an upload of `id`, as a crash would.
    fn plant_partial(&self, id: ImageId) -> impl Future<Output = ()>;
    /// Whether the store's big-object path (O_DIRECT or multipart) starts at this size.
    fn large_bytes(&self) -> usize;
}

struct Files {
    dir: tempfile::TempDir,
    store: Arc<FsStore>,
}

impl Files {
    fn new(direct_io: bool) -> Files {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open_named(
            "local",
            &dir.path().join("images"),
            FsOptions {
                direct_io,
                ..FsOptions::default()
            },
        )
        .unwrap();
        Files {
            dir,
            store: Arc::new(store),
        }
    }

    fn images(&self) -> PathBuf {
        self.dir.path().join("images")
    }
}

impl Harness for Files {
    fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store) as Arc<dyn Store>
    }

    async fn leftovers(&self, id: ImageId) -> Vec<String> {
        let prefix = id.to_string();
        let mut names: Vec<String> = std::fs::read_dir(self.images())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&prefix))
            .collect();
        names.sort();
        names
    }

    async fn plant_partial(&self, id: ImageId) {
        std::fs::write(self.images().join(format!("{id}.abc.part")), b"half").unwrap();
    }

    fn large_bytes(&self) -> usize {
        2 * MIB
    }
}

struct Rgw {
    store: Arc<S3Store>,
    client_settings: S3Settings,
}

/// The RGW under test, or `None` (after saying so) when none was started and none is required.
fn rgw_settings() -> Option<(String, String, String)> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match var("GLINT_S3_TEST_ENDPOINT") {
        Some(endpoint) => Some((
            endpoint,
            var("GLINT_S3_TEST_ACCESS_KEY").expect("GLINT_S3_TEST_ACCESS_KEY"),
            var("GLINT_S3_TEST_SECRET_KEY").expect("GLINT_S3_TEST_SECRET_KEY"),
        )),
        None if var("GLINT_REQUIRE_S3").as_deref() == Some("1") => {
            panic!("GLINT_REQUIRE_S3=1 but GLINT_S3_TEST_ENDPOINT is not set: start RGW with tests/e2e/rgw.sh")
        }
        None => {
            eprintln!("no GLINT_S3_TEST_ENDPOINT: S3 conformance not run (use tests/e2e/rgw.sh)");
            None
        }
    }
}

fn unique_bucket() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "glint-conf-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl Rgw {
    fn new(endpoint: &str, access: &str, secret: &str) -> Rgw {
        let bucket = unique_bucket();
        let settings = StoreSettings {
            kind: StoreType::S3,
            s3_store_host: Some(endpoint.to_owned()),
            s3_store_access_key: Some(access.to_owned()),
            s3_store_secret_key: Some(Secret::new(secret)),
            s3_store_bucket: Some(bucket.clone()),
            s3_store_create_bucket_on_put: Some(true),
            // Small thresholds: the multipart path runs with a few MiB.
            s3_store_large_object_size: Some(6),
            s3_store_large_object_chunk_size: Some(5),
            s3_store_thread_pools: Some(2),
            ..StoreSettings::default()
        };
        Rgw {
            store: Arc::new(S3Store::new("ceph", &settings).unwrap()),
            client_settings: S3Settings {
                endpoint: endpoint.to_owned(),
                region: String::new(),
                access_key: access.to_owned(),
                secret_key: SecretKey::new(secret),
                bucket,
                addressing: Addressing::Path,
            },
        }
    }

    fn client(&self) -> S3Client {
        S3Client::new(
            HttpClient::new(ClientSettings::default()),
            &self.client_settings,
        )
        .unwrap()
    }
}

impl Harness for Rgw {
    fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store) as Arc<dyn Store>
    }

    async fn leftovers(&self, id: ImageId) -> Vec<String> {
        let client = self.client();
        let key = id.to_string();
        let mut found: Vec<String> = client
            .list_multipart_uploads(&key)
            .await
            .unwrap()
            .into_iter()
            .map(|u| format!("multipart upload of {}", u.key))
            .collect();
        match client.head_object(&key).await {
            Ok(_) => found.push(key),
            Err(e) if e.is_not_found() => {}
            Err(e) => panic!("head {key}: {e}"),
        }
        found
    }

    async fn plant_partial(&self, id: ImageId) {
        let client = self.client();
        if !client.head_bucket().await.unwrap() {
            client.create_bucket().await.unwrap();
        }
        client
            .create_multipart_upload(&id.to_string())
            .await
            .unwrap();
    }

    fn large_bytes(&self) -> usize {
        6 * MIB
    }
}

/// Runs `test` on io_uring (when the kernel offers it) and on epoll, each on a thread of its
/// own: a store keeps its connections per thread, as a worker core does, and a connection
/// belongs to the runtime that opened it.
fn on_each_driver<F, Fut>(test: F)
where
    F: Fn() -> Fut + Sync,
    Fut: Future<Output = ()>,
{
    std::thread::scope(|scope| {
        if monoio::utils::detect_uring() {
            scope
                .spawn(|| {
                    monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                        .enable_timer()
                        .build()
                        .unwrap()
                        .block_on(test())
                })
                .join()
                .unwrap();
        }
        scope
            .spawn(|| {
                monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                    .enable_timer()
                    .build()
                    .unwrap()
                    .block_on(test())
            })
            .join()
            .unwrap();
    });
}

/// `len` bytes that differ at every offset (so a shifted or reordered byte shows).
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Writes `bytes` in frames of `frame` bytes (as a socket would deliver them).
async fn write(
    store: &dyn Store,
    id: ImageId,
    bytes: &[u8],
    frame: usize,
    announce: bool,
) -> Result<Location, StoreError> {
    let mut writer = store
        .writer(id, announce.then_some(bytes.len() as u64))
        .await?;
    for piece in bytes.chunks(frame) {
        writer.write(Bytes::copy_from_slice(piece)).await?;
    }
    writer.commit().await
}

async fn read_all(mut stream: BoxStream) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(piece) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
        out.extend_from_slice(&piece?);
    }
    Ok(out)
}

async fn read(store: &dyn Store, location: &Location, range: std::ops::Range<u64>) -> Vec<u8> {
    let stream = store.read(location, range.clone()).await.unwrap();
    assert_eq!(stream.remaining(), range.end - range.start);
    read_all(stream).await.unwrap()
}

/// Polls until `id` leaves nothing in the store (clean-ups may run in the background).
async fn assert_nothing_left(h: &impl Harness, id: ImageId, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = h.leftovers(id).await;
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: left behind {left:?}");
        monoio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn round_trips(h: &impl Harness) {
    let store = h.store();
    let store = &*store;
    let sizes = [0, 1, 1000, MIB + 7, h.large_bytes() + 3 * MIB + 11];
    for (i, &len) in sizes.iter().enumerate() {
        for announce in [true, false] {
            let id = ImageId::new_v4();
            let bytes = data(len, i as u64 + 1);
            let frame = if i % 2 == 0 { 65_536 } else { 16_381 };
            let location = write(store, id, &bytes, frame, announce).await.unwrap();
            assert_eq!(location.store, store.id());
            assert!(store.owns(&location.url), "{}", location.url);
            // Where a writer of `id` commits is known without the location (an import that
            // died before recording it left its data there).
            assert_eq!(store.data_location(id).as_ref(), Some(&location));
            assert!(store.is_data_location(&location.url, id));
            assert!(!store.is_data_location(&location.url, ImageId::new_v4()));
            assert_eq!(store.size(&location).await.unwrap(), len as u64);
            assert_eq!(
                read(store, &location, 0..len as u64).await,
                bytes,
                "{len} bytes"
            );
            if len > 10 {
                let (a, b) = (len as u64 / 3, len as u64 - 5);
                assert_eq!(
                    read(store, &location, a..b).await,
                    &bytes[a as usize..b as usize]
                );
                assert_eq!(
                    read(store, &location, b..len as u64).await,
                    &bytes[b as usize..]
                );
            }
            assert_eq!(
                h.leftovers(id).await,
                [id.to_string()],
                "only the image itself"
            );
            store.delete(&location).await.unwrap();
            assert_nothing_left(h, id, "after delete").await;
            // Deleting again is fine; reading is an error, never an empty success.
            store.delete(&location).await.unwrap();
            let gone = store.read(&location, 0..len.max(1) as u64).await;
            assert!(
                matches!(gone, Err(StoreError::NotFound { .. })),
                "read after delete: {gone:?}"
            );
        }
    }
}

async fn failures_leave_nothing(h: &impl Harness) {
    let store = h.store();
    let store = &*store;
    let big = data(h.large_bytes() + 6 * MIB, 9);
    for announce in [true, false] {
        // Aborted after most of the data.
        let id = ImageId::new_v4();
        let mut writer = store
            .writer(id, announce.then_some(big.len() as u64))
            .await
            .unwrap();
        for piece in big[..big.len() - MIB].chunks(MIB) {
            writer.write(Bytes::copy_from_slice(piece)).await.unwrap();
        }
        writer.abort().await;
        assert_nothing_left(h, id, "after abort").await;

        // Dropped midway (the client vanished).
        let id = ImageId::new_v4();
        let mut writer = store
            .writer(id, announce.then_some(big.len() as u64))
            .await
            .unwrap();
        for piece in big[..big.len() / 2].chunks(MIB) {
            writer.write(Bytes::copy_from_slice(piece)).await.unwrap();
        }
        drop(writer);
        assert_nothing_left(h, id, "after drop").await;
    }
    // Committing fewer bytes than announced (small, and past the big-object threshold)
    // fails, and leaves nothing.
    let big_len = h.large_bytes() as u64 + 6 * MIB as u64;
    for (announced, sent) in [(1000, 500), (big_len, big_len - 2 * MIB as u64)] {
        let id = ImageId::new_v4();
        let mut writer = store.writer(id, Some(announced)).await.unwrap();
        for piece in data(sent as usize, 3).chunks(MIB) {
            writer.write(Bytes::copy_from_slice(piece)).await.unwrap();
        }
        match writer.commit().await {
            Err(_) => assert_nothing_left(h, id, "after a short commit").await,
            // The file store does not know the announced size (ingest checks it): then the
            // stored data is what was written.
            Ok(location) => {
                assert_eq!(store.size(&location).await.unwrap(), sent);
                store.delete(&location).await.unwrap();
                assert_nothing_left(h, id, "after delete").await;
            }
        }
    }
}

async fn missing_and_short_data_are_errors(h: &impl Harness) {
    let store = h.store();
    let store = &*store;
    let id = ImageId::new_v4();
    let bytes = data(3000, 5);
    let location = write(store, id, &bytes, 1000, true).await.unwrap();
    // The image says it is bigger than its data: the read fails, at once or midway.
    match store.read(&location, 0..5000).await {
        Err(_) => {}
        Ok(stream) => {
            let got = read_all(stream).await;
            assert!(
                got.is_err(),
                "a short read must fail, got {} bytes",
                got.unwrap().len()
            );
        }
    }
    store.delete(&location).await.unwrap();
    let missing = store.read(&location, 0..3000).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
    let size = store.size(&location).await;
    assert!(matches!(size, Err(StoreError::NotFound { .. })), "{size:?}");
    store.check().await.unwrap();
}

/// What start-up recovery reads from the metadata when `ids` are still receiving data (another
/// gateway's uploads) and nothing else exists.
fn receiving(ids: &[ImageId]) -> Inventory<'static> {
    let images = ids
        .iter()
        .map(|&id| {
            let mut image = meta::Image::new(id, meta::Timestamp::now());
            image.status = meta::ImageStatus::Saving;
            image
        })
        .collect();
    Inventory::of(images, Box::new(|_| false))
}

async fn recovery_spares_uploads_in_flight(h: &impl Harness) {
    let store = h.store();
    let (crashed, running) = (ImageId::new_v4(), ImageId::new_v4());
    h.plant_partial(crashed).await;
    h.plant_partial(running).await;
    let recovered = store.recover(&receiving(&[running])).await.unwrap();
    assert!(recovered.partial >= 1, "{recovered:?}");
    assert_nothing_left(h, crashed, "after recovery").await;
    assert_eq!(
        h.leftovers(running).await.len(),
        1,
        "the running upload's data stays"
    );
    store.recover(&receiving(&[])).await.unwrap();
    assert_nothing_left(h, running, "after the second recovery").await;
}

fn suite(h: &(impl Harness + Sync)) {
    on_each_driver(|| async {
        round_trips(h).await;
        failures_leave_nothing(h).await;
        missing_and_short_data_are_errors(h).await;
        recovery_spares_uploads_in_flight(h).await;
    });
}

#[test]
fn file_store_conforms() {
    suite(&Files::new(false));
}

#[test]
fn file_store_with_direct_io_conforms() {
    suite(&Files::new(true));
}

#[test]
fn s3_store_on_ceph_rgw_conforms() {
    let Some((endpoint, access, secret)) = rgw_settings() else {
        return;
    };
    suite(&Rgw::new(&endpoint, &access, &secret));
}

#[test]
fn s3_store_names_itself_when_the_credentials_are_wrong() {
    let Some((endpoint, access, _)) = rgw_settings() else {
        return;
    };
    let h = Rgw::new(&endpoint, &access, "not-the-secret");
    on_each_driver(|| async {
        let err = h.store.recover(&receiving(&[])).await.unwrap_err();
        assert!(matches!(err, StoreError::Denied { .. }), "{err:?}");
        let shown = err.to_string();
        assert!(shown.contains("ceph"), "{shown}");
        assert!(!shown.contains("not-the-secret"), "{shown}");
        let check = h.store.check().await.unwrap_err();
        assert!(check.to_string().contains("ceph"), "{check}");
    });
}
