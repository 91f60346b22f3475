//! The S3 client (`gateway::net::s3`) against a real Ceph RGW, on io_uring and on epoll.
//!
//! RGW is started by `tests/e2e/rgw.sh` (see `tests/e2e/rgw_lib.sh`), which sets:
//! - `GLINT_S3_TEST_ENDPOINT` (`http://127.0.0.1:PORT`), `GLINT_S3_TEST_ACCESS_KEY`,
//!   `GLINT_S3_TEST_SECRET_KEY`, `GLINT_S3_TEST_REGION`;
//! - `GLINT_S3_TEST_VHOST_DOMAIN`: RGW's `rgw dns name`, for virtual-host addressing;
//! - `GLINT_REQUIRE_S3=1`: without the endpoint these tests then fail instead of passing
//!   without having run (the test command sets it; a plain `cargo test` does not).
//!
//! ```sh
//! bash tests/e2e/rgw.sh cargo test -p gateway --test s3_rgw
//! ```

#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use gateway::net::client::{ClientSettings, HttpClient, RequestBody};
use gateway::net::fetch::ByteRange;
use gateway::net::s3::{
    Addressing, CompletedPart, S3Client, S3Error, S3Settings, SecretKey, MIN_PART_BYTES,
};
use http::StatusCode;

struct Rgw {
    endpoint: String,
    access_key: String,
    secret_key: String,
    region: String,
    vhost_domain: Option<String>,
}

/// The RGW to test against, or `None` (after saying so) when none was started and none is
/// required.
fn rgw() -> Option<Rgw> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match var("GLINT_S3_TEST_ENDPOINT") {
        Some(endpoint) => Some(Rgw {
            endpoint,
            access_key: var("GLINT_S3_TEST_ACCESS_KEY").expect("GLINT_S3_TEST_ACCESS_KEY"),
            secret_key: var("GLINT_S3_TEST_SECRET_KEY").expect("GLINT_S3_TEST_SECRET_KEY"),
            region: var("GLINT_S3_TEST_REGION").unwrap_or_default(),
            vhost_domain: var("GLINT_S3_TEST_VHOST_DOMAIN"),
        }),
        None if var("GLINT_REQUIRE_S3").as_deref() == Some("1") => {
            panic!("GLINT_REQUIRE_S3=1 but GLINT_S3_TEST_ENDPOINT is not set: start RGW with tests/e2e/rgw.sh")
        }
        None => {
            eprintln!("no GLINT_S3_TEST_ENDPOINT: S3 test not run (use tests/e2e/rgw.sh)");
            None
        }
    }
}

fn on_each_driver<F, Fut>(test: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    if monoio::utils::detect_uring() {
        monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .enable_timer()
            .build()
            .unwrap()
            .block_on(test());
    }
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .unwrap()
        .block_on(test());
}

fn unique_bucket() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "glint-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

fn http() -> HttpClient {
    HttpClient::new(ClientSettings {
        connect_timeout: Duration::from_secs(5),
        stall_timeout: Duration::from_secs(30),
        ..ClientSettings::default()
    })
}

fn settings(rgw: &Rgw, bucket: &str) -> S3Settings {
    S3Settings {
        endpoint: rgw.endpoint.clone(),
        region: rgw.region.clone(),
        access_key: rgw.access_key.clone(),
        secret_key: SecretKey::new(rgw.secret_key.clone()),
        bucket: bucket.to_owned(),
        addressing: Addressing::Path,
    }
}

/// A client on a fresh bucket.
async fn fresh(rgw: &Rgw) -> S3Client {
    let client = S3Client::new(http(), &settings(rgw, &unique_bucket())).unwrap();
    assert!(!client.head_bucket().await.unwrap());
    client.create_bucket().await.unwrap();
    assert!(client.head_bucket().await.unwrap());
    // Creating it again is fine.
    client.create_bucket().await.unwrap();
    client
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u64 * 131 + seed as u64) as u8)
        .collect()
}

fn md5_hex(data: &[u8]) -> String {
    let digest = openssl::hash::hash(openssl::hash::MessageDigest::md5(), data).unwrap();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

async fn read_all(mut body: gateway::net::client::ResponseBody) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(piece) = body.next().await {
        out.extend_from_slice(&piece.unwrap());
    }
    out
}

#[test]
fn put_head_get_ranges_and_delete() {
    let Some(rgw) = rgw() else { return };
    on_each_driver(|| async {
        let s3 = fresh(&rgw).await;
        let key = "dir/img 1+é~(x).raw";
        let content = data((1 << 20) + 17, 3);
        let etag = s3
            .put_object(key, RequestBody::full(content.clone()))
            .await
            .unwrap();
        assert_eq!(etag.unquoted(), md5_hex(&content));

        let info = s3.head_object(key).await.unwrap();
        assert_eq!(info.size, content.len() as u64);
        assert_eq!(info.etag.as_ref(), Some(&etag));
        assert!(info.last_modified.is_some());

        let whole = s3.get_object(key, None).await.unwrap();
        assert_eq!(whole.status, StatusCode::OK);
        assert_eq!(whole.object_size, content.len() as u64);
        assert_eq!(read_all(whole.body).await, content);

        let len = content.len() as u64;
        for (range, first, last) in [
            (ByteRange::Inclusive(100, 199), 100, 199),
            (ByteRange::Suffix(10), len - 10, len - 1),
            (ByteRange::From(len - 5), len - 5, len - 1),
            (ByteRange::Inclusive(0, 0), 0, 0),
        ] {
            let part = s3.get_object(key, Some(range)).await.unwrap();
            assert_eq!(part.status, StatusCode::PARTIAL_CONTENT, "{range:?}");
            assert_eq!(part.range, Some((first, last)), "{range:?}");
            assert_eq!(part.object_size, len);
            assert_eq!(
                read_all(part.body).await,
                content[first as usize..=last as usize],
                "{range:?}"
            );
        }
        let err = s3
            .get_object(key, Some(ByteRange::From(len + 10)))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("InvalidRange"), "{err}");

        s3.delete_object(key).await.unwrap();
        let err = s3.head_object(key).await.unwrap_err();
        assert!(err.is_not_found(), "{err}");
        let err = s3.get_object(key, None).await.unwrap_err();
        assert!(err.is_not_found(), "{err}");
        assert_eq!(err.code(), Some("NoSuchKey"));
        assert!(err.to_string().contains(key), "{err}");
        // Deleting what is not there succeeds, as in S3.
        s3.delete_object(key).await.unwrap();
    });
}

#[test]
fn a_streamed_put_needs_only_its_length() {
    let Some(rgw) = rgw() else { return };
    on_each_driver(|| async {
        let s3 = fresh(&rgw).await;
        let content = data(12 << 20, 9);
        let (mut sender, body) = RequestBody::channel(content.len() as u64, 4);
        let frames: Vec<Bytes> = content
            .chunks(256 << 10)
            .map(Bytes::copy_from_slice)
            .collect();
        let producer = monoio::spawn(async move {
            for frame in frames {
                sender.send(frame).await.unwrap();
            }
        });
        let etag = s3.put_object("streamed", body).await.unwrap();
        producer.await;
        assert_eq!(etag.unquoted(), md5_hex(&content));
        let got = s3.get_object("streamed", None).await.unwrap();
        assert_eq!(read_all(got.body).await, content);
        // A stream that ends early fails, and leaves no object.
        let (mut sender, body) = RequestBody::channel(1 << 20, 1);
        let producer = monoio::spawn(async move {
            let _ = sender.send(Bytes::from(vec![1u8; 1000])).await;
        });
        let err = s3.put_object("short", body).await.unwrap_err();
        producer.await;
        assert!(matches!(err, S3Error::Http { .. }), "{err}");
        assert!(s3.head_object("short").await.unwrap_err().is_not_found());
    });
}

#[test]
fn multipart_upload_list_and_complete() {
    let Some(rgw) = rgw() else { return };
    on_each_driver(|| async {
        let s3 = fresh(&rgw).await;
        let key = "images/multi";
        let part_len = MIN_PART_BYTES as usize;
        let content = data(2 * part_len + (1 << 20) + 3, 5);
        let upload = s3.create_multipart_upload(key).await.unwrap();
        let listed = s3.list_multipart_uploads("images/").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].key, key);
        assert_eq!(listed[0].upload_id, upload);
        assert!(s3
            .list_multipart_uploads("other/")
            .await
            .unwrap()
            .is_empty());

        let mut parts = Vec::new();
        for (index, piece) in content.chunks(part_len).enumerate() {
            // A part gathered from upload frames goes up as a list of buffers.
            let frames: Vec<Bytes> = piece.chunks(300_000).map(Bytes::copy_from_slice).collect();
            let part_number = index as u32 + 1;
            let etag = s3
                .upload_part(key, &upload, part_number, RequestBody::chunks(frames))
                .await
                .unwrap();
            assert_eq!(etag.unquoted(), md5_hex(piece));
            parts.push(CompletedPart { part_number, etag });
        }
        assert_eq!(parts.len(), 3);
        let etag = s3
            .complete_multipart_upload(key, &upload, &parts)
            .await
            .unwrap();
        assert!(etag.unquoted().ends_with("-3"), "{etag}");
        assert!(s3.list_multipart_uploads("").await.unwrap().is_empty());

        assert_eq!(
            s3.head_object(key).await.unwrap().size,
            content.len() as u64
        );
        let whole = s3.get_object(key, None).await.unwrap();
        assert_eq!(read_all(whole.body).await, content);
        // A range across the first part boundary.
        let first = part_len as u64 - 100;
        let across = s3
            .get_object(key, Some(ByteRange::Inclusive(first, first + 199)))
            .await
            .unwrap();
        assert_eq!(
            read_all(across.body).await,
            content[first as usize..first as usize + 200]
        );
        let err = s3.upload_part(key, &upload, 0, RequestBody::empty()).await;
        assert!(matches!(err, Err(S3Error::Settings(_))));
    });
}

#[test]
fn an_aborted_upload_leaves_nothing() {
    let Some(rgw) = rgw() else { return };
    on_each_driver(|| async {
        let s3 = fresh(&rgw).await;
        let key = "aborted";
        let upload = s3.create_multipart_upload(key).await.unwrap();
        let other = s3.create_multipart_upload("kept").await.unwrap();
        s3.upload_part(
            key,
            &upload,
            1,
            RequestBody::full(data(MIN_PART_BYTES as usize, 1)),
        )
        .await
        .unwrap();
        assert_eq!(s3.list_multipart_uploads("").await.unwrap().len(), 2);
        s3.abort_multipart_upload(key, &upload).await.unwrap();
        let left = s3.list_multipart_uploads("").await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].upload_id, other);
        let err = s3.abort_multipart_upload(key, &upload).await.unwrap_err();
        assert_eq!(err.code(), Some("NoSuchUpload"), "{err}");
        assert!(s3.head_object(key).await.unwrap_err().is_not_found());
        s3.abort_multipart_upload("kept", &other).await.unwrap();
        assert!(s3.list_multipart_uploads("").await.unwrap().is_empty());
    });
}

#[test]
fn wrong_credentials_are_named_and_never_shown() {
    let Some(rgw) = rgw() else { return };
    on_each_driver(|| async {
        let good = fresh(&rgw).await;
        good.check_credentials().await.unwrap();
        let wrong_secret = "not-the-secret-0123456789";
        let mut bad = settings(&rgw, good.bucket());
        bad.secret_key = SecretKey::new(wrong_secret);
        let s3 = S3Client::new(http(), &bad).unwrap();
        let err = s3.check_credentials().await.unwrap_err();
        assert!(err.is_credentials(), "{err}");
        assert_eq!(err.code(), Some("SignatureDoesNotMatch"));
        let err = s3
            .put_object("x", RequestBody::full(&b"abc"[..]))
            .await
            .unwrap_err();
        assert!(err.is_credentials(), "{err}");
        let shown = format!("{err} {err:?} {s3:?}");
        assert!(!shown.contains(wrong_secret), "{shown}");
        assert!(!shown.contains(&rgw.secret_key), "{shown}");
        // HEAD answers carry no error document: a refusal is still an error, not "missing".
        assert!(s3.head_bucket().await.is_err());

        let mut unknown = settings(&rgw, good.bucket());
        unknown.access_key = "NOSUCHKEY0000".into();
        let err = S3Client::new(http(), &unknown)
            .unwrap()
            .check_credentials()
            .await
            .unwrap_err();
        assert!(err.is_credentials(), "{err}");
        assert_eq!(err.code(), Some("InvalidAccessKeyId"));
    });
}

#[test]
fn a_missing_bucket_is_not_found() {
    let Some(rgw) = rgw() else { return };
    on_each_driver(|| async {
        let s3 = S3Client::new(http(), &settings(&rgw, &unique_bucket())).unwrap();
        assert!(!s3.head_bucket().await.unwrap());
        let err = s3
            .put_object("k", RequestBody::full(&b"abc"[..]))
            .await
            .unwrap_err();
        assert!(err.is_not_found(), "{err}");
        assert_eq!(err.code(), Some("NoSuchBucket"));
    });
}

#[test]
fn virtual_host_addressing() {
    let Some(rgw) = rgw() else { return };
    let Some(domain) = rgw.vhost_domain.clone() else {
        panic!("GLINT_S3_TEST_VHOST_DOMAIN is not set: rgw.sh sets it with `rgw dns name`");
    };
    on_each_driver(|| async {
        let bucket = unique_bucket();
        let endpoint: std::net::SocketAddr =
            rgw.endpoint.trim_start_matches("http://").parse().unwrap();
        let mut vhost = settings(&rgw, &bucket);
        vhost.endpoint = format!("http://{domain}:{}", endpoint.port());
        vhost.addressing = Addressing::Virtual;
        // No DNS knows the bucket's name: connect to RGW's address.
        let s3 = S3Client::new(http(), &vhost)
            .unwrap()
            .with_connect_addrs(vec![endpoint]);
        s3.create_bucket().await.unwrap();
        s3.put_object("v/key", RequestBody::full(&b"virtual"[..]))
            .await
            .unwrap();
        // The same object, seen path-style.
        let path_style = S3Client::new(http(), &settings(&rgw, &bucket)).unwrap();
        let got = path_style.get_object("v/key", None).await.unwrap();
        assert_eq!(read_all(got.body).await, b"virtual");
        s3.delete_object("v/key").await.unwrap();
        assert!(path_style
            .head_object("v/key")
            .await
            .unwrap_err()
            .is_not_found());
    });
}
