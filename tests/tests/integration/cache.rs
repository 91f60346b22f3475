//! The image cache on one gateway (issue 14): single-flight fills that concurrent downloads
//! join, ranges, the cache API of spec §4.17 (Glance 2.14–2.18), invalidation on delete, and
//! its faults — a store failing mid-fill, a corrupted cache file, a restart mid-fill.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use glint_tests::TestServer;
use serde_json::{json, Value};

const CACHE: &str = "image_cache_max_size = 67108864\n";

/// One series of `/metrics` (`name{labels}` as printed), 0 when absent.
fn metric(srv: &TestServer, series: &str) -> f64 {
    let text = srv.get("/metrics").expect_status(200).text();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().expect("a number"))
}

fn store_reads(srv: &TestServer) -> f64 {
    metric(srv, "glint_store_read_bytes_total{store=\"file\"}")
}

fn image_data(size: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn cached_ids(srv: &TestServer) -> Vec<String> {
    srv.get_json("/v2/cache")["cached_images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["image_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Polls until `cond` holds (10 s at most).
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn concurrent_cold_downloads_read_the_store_once_then_hit() {
    let srv = TestServer::start_with_config(CACHE);
    let data = image_data(8 << 20, 1);
    let id = srv.create_active_image(json!({}), &data);
    let before = store_reads(&srv);
    let bodies: Vec<Vec<u8>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..16)
            .map(|_| scope.spawn(|| srv.download(&id).expect_status(200).body))
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    assert!(
        bodies.iter().all(|b| *b == data),
        "every client gets the image"
    );
    assert_eq!(
        store_reads(&srv) - before,
        data.len() as f64,
        "the store is read once for 16 cold downloads"
    );
    let (miss, join, hit) = (
        metric(&srv, "glint_cache_requests_total{result=\"miss\"}"),
        metric(&srv, "glint_cache_requests_total{result=\"join\"}"),
        metric(&srv, "glint_cache_requests_total{result=\"hit\"}"),
    );
    assert_eq!((miss, join + hit), (1.0, 15.0));
    eventually("the entry to be published", || {
        cached_ids(&srv) == [id.clone()]
    });
    assert_eq!(srv.download(&id).expect_status(200).body, data);
    assert_eq!(
        store_reads(&srv) - before,
        data.len() as f64,
        "a hit reads no store"
    );
    assert_eq!(metric(&srv, "glint_cache_fills_total{result=\"ok\"}"), 1.0);
    assert_eq!(metric(&srv, "glint_cache_bytes"), data.len() as f64);
}

#[test]
fn a_range_miss_is_served_from_the_store_and_fills_in_the_background() {
    let srv = TestServer::start_with_config(CACHE);
    let data = image_data(1 << 20, 2);
    let id = srv.create_active_image(json!({}), &data);
    let ranged = |srv: &TestServer| {
        srv.request("GET", &format!("/v2/images/{id}/file"))
            .header("range", "bytes=1000-1999")
            .send()
            .expect_status(206)
            .body
    };
    let before = store_reads(&srv);
    assert_eq!(ranged(&srv), &data[1000..2000]);
    eventually("the background fill", || cached_ids(&srv) == [id.clone()]);
    let read = store_reads(&srv) - before;
    assert_eq!(
        read,
        (1000 + data.len()) as f64,
        "the range, then one whole-image fill"
    );
    assert_eq!(ranged(&srv), &data[1000..2000]);
    assert_eq!(
        store_reads(&srv) - before,
        read,
        "a cached range reads no store"
    );
}

#[test]
fn the_cache_api_lists_queues_deletes_and_clears() {
    let srv = TestServer::start_with_config(CACHE);
    let versions = srv.get_json("/versions");
    assert_eq!(versions["versions"][0]["id"], "v2.18");
    assert_eq!(versions["versions"][0]["status"], "CURRENT");
    let data = image_data(300_000, 3);
    let id = srv.create_active_image(json!({}), &data);
    assert_eq!(
        srv.get_json("/v2/cache"),
        json!({"cached_images": [], "queued_images": []})
    );
    srv.request("PUT", &format!("/v2/cache/{id}"))
        .send()
        .expect_status(202);
    eventually("the prefetch", || cached_ids(&srv) == [id.clone()]);
    let listed = srv.get_json("/v2/cache");
    let entry = &listed["cached_images"][0];
    assert_eq!(entry["size"], data.len());
    assert!(entry["last_modified"].as_f64().unwrap() > 1.6e9);
    assert!(entry["hits"].is_u64() && entry["last_accessed"].is_f64());
    // Downloads are hits now.
    let before = store_reads(&srv);
    assert_eq!(srv.download(&id).expect_status(200).body, data);
    assert_eq!(store_reads(&srv), before);

    let queued = srv.create_raw_image(json!({}));
    srv.request("PUT", &format!("/v2/cache/{queued}"))
        .send()
        .expect_status(400);
    let unknown = uuid::Uuid::new_v4();
    srv.request("PUT", &format!("/v2/cache/{unknown}"))
        .send()
        .expect_status(404);
    srv.delete(&format!("/v2/cache/{unknown}"))
        .expect_status(404);
    srv.get(&format!("/v2/cache/nodes/{id}")).expect_status(409);
    let pruned = srv.post_empty("/v2/cache/prune").expect_status(200).json();
    assert_eq!(
        pruned,
        json!({"total_files_pruned": 0, "total_bytes_pruned": 0})
    );
    srv.post_empty("/v2/cache/clean").expect_status(200);
    assert_eq!(cached_ids(&srv), [id.as_str()], "clean keeps a good entry");

    srv.delete(&format!("/v2/cache/{id}")).expect_status(204);
    assert!(cached_ids(&srv).is_empty());
    srv.delete(&format!("/v2/cache/{id}")).expect_status(204);
    srv.request("DELETE", "/v2/cache")
        .header("x-image-cache-clear-target", "everything")
        .send()
        .expect_status(400);
    srv.download(&id).expect_status(200);
    eventually("the refill", || cached_ids(&srv) == [id.clone()]);
    srv.request("DELETE", "/v2/cache")
        .header("x-image-cache-clear-target", "cache")
        .send()
        .expect_status(204);
    assert!(cached_ids(&srv).is_empty());
    assert!(!srv.data_dir().join("image-cache").join(&id).exists());
}

#[test]
fn without_a_cache_the_api_is_404_and_its_versions_are_not_listed() {
    let srv = TestServer::start();
    srv.get("/v2/cache").expect_status(404);
    let versions: Vec<Value> = srv.get_json("/versions")["versions"]
        .as_array()
        .unwrap()
        .clone();
    assert!(versions
        .iter()
        .all(|v| v["id"] != "v2.14" && v["id"] != "v2.18"));
    assert!(srv
        .get("/metrics")
        .text()
        .contains("glint_store_read_bytes_total"));
}

#[test]
fn a_deleted_image_is_never_served_from_the_cache() {
    let srv = TestServer::start_with_config(CACHE);
    let data = image_data(200_000, 4);
    let id = srv.create_active_image(json!({}), &data);
    srv.download(&id).expect_status(200);
    eventually("the fill", || cached_ids(&srv) == [id.clone()]);
    srv.post_empty(&format!("/v2/images/{id}/actions/deactivate"))
        .expect_status(204);
    // Admins may still download a deactivated image (from the cache).
    assert_eq!(srv.download(&id).expect_status(200).body, data);
    srv.delete(&format!("/v2/images/{id}")).expect_status(204);
    srv.download(&id).expect_status(404);
    assert!(cached_ids(&srv).is_empty());
    assert!(!srv.data_dir().join("image-cache").join(&id).exists());
}

/// A download whose body breaks off: the status and the bytes that came before the close.
fn raw_download(srv: &TestServer, id: &str) -> (String, usize, usize) {
    let mut stream = std::net::TcpStream::connect(srv.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "GET /v2/images/{id}/file HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    let head_end = text.find("\r\n\r\n").expect("a response head") + 4;
    let head = text[..head_end].to_ascii_lowercase();
    let status = head.lines().next().unwrap().to_owned();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    (status, length, response.len() - head_end)
}

#[test]
fn a_store_failing_mid_fill_gives_an_error_never_a_short_body_and_caches_nothing() {
    let srv = TestServer::start_with_config(CACHE);
    let data = image_data(2 << 20, 5);
    let id = srv.create_active_image(json!({}), &data);
    // The store loses the second half of the image.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(srv.image_file(&id))
        .unwrap();
    file.set_len(1 << 20).unwrap();
    let (status, length, got) = raw_download(&srv, &id);
    assert!(status.contains("200"), "{status}");
    assert_eq!(length, data.len());
    assert!(
        got < length,
        "the body breaks off ({got} of {length} bytes)"
    );
    eventually("the failed fill to be counted", || {
        metric(&srv, "glint_cache_fills_total{result=\"failed\"}") == 1.0
    });
    assert!(cached_ids(&srv).is_empty());
    let leftovers: Vec<_> = std::fs::read_dir(srv.data_dir().join("image-cache"))
        .unwrap()
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(metric(&srv, "glint_cache_bytes"), 0.0);
}

#[test]
fn a_corrupted_cache_file_is_detected_evicted_and_refetched() {
    let mut srv = TestServer::start_with_config(CACHE);
    let data = image_data(500_000, 6);
    let id = srv.create_active_image(json!({}), &data);
    srv.download(&id).expect_status(200);
    eventually("the fill", || cached_ids(&srv) == [id.clone()]);
    srv.stop();
    let path = srv.data_dir().join("image-cache").join(&id);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[12_345] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    // A fill a restart cut short.
    let partial = srv
        .data_dir()
        .join("image-cache")
        .join(format!("{}.fill", uuid::Uuid::new_v4()));
    std::fs::write(&partial, b"half an image").unwrap();
    srv.start_again();
    assert!(!partial.exists(), "partial fills are removed at start");
    eventually("the corrupted entry to go", || cached_ids(&srv).is_empty());
    assert_eq!(srv.download(&id).expect_status(200).body, data);
    eventually("the refetch", || cached_ids(&srv) == [id.clone()]);
    assert_eq!(std::fs::read(&path).unwrap(), data);
}

#[test]
fn entries_survive_a_restart() {
    let mut srv = TestServer::start_with_config(CACHE);
    let data = image_data(400_000, 7);
    let id = srv.create_active_image(json!({}), &data);
    srv.download(&id).expect_status(200);
    eventually("the fill", || cached_ids(&srv) == [id.clone()]);
    srv.restart();
    assert_eq!(cached_ids(&srv), [id.as_str()]);
    // Verified in the background, then served without the store.
    eventually("a hit", || {
        let before = store_reads(&srv);
        assert_eq!(srv.download(&id).expect_status(200).body, data);
        store_reads(&srv) == before
    });
}

/// A 1 MiB tmpfs mounted on `dir` (root only): `None`, with a note, where mounting is not
/// allowed. Unmounted on drop.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &std::path::Path) -> Option<SmallDisk> {
        std::fs::create_dir_all(dir).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(dir)
            .status();
        if status.is_ok_and(|s| s.success()) {
            Some(SmallDisk(dir.to_owned()))
        } else {
            eprintln!("cannot mount a tmpfs here (not root?): disk-full test skipped");
            None
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_cache_disk_fails_the_fill_not_the_later_downloads() {
    let root = tempfile::tempdir().unwrap();
    let cache_dir = root.path().join("cache");
    let Some(disk) = SmallDisk::mount(&cache_dir) else {
        return;
    };
    // The limit says 64 MiB; the disk holds 1 MiB.
    let mut srv = TestServer::start_with_config(&format!(
        "{CACHE}image_cache_dir = \"{}\"\n",
        cache_dir.display()
    ));
    let data = image_data(3 << 20, 8);
    let id = srv.create_active_image(json!({}), &data);
    let (status, length, got) = raw_download(&srv, &id);
    assert!(status.contains("200"), "{status}");
    assert!(
        got < length,
        "the filling download breaks off ({got} of {length})"
    );
    eventually("the failed fill", || {
        metric(&srv, "glint_cache_fills_total{result=\"failed\"}") == 1.0
    });
    assert!(srv.log_tail(50).contains("the cache's disk is full"));
    assert_eq!(std::fs::read_dir(&cache_dir).unwrap().count(), 0);
    // Meanwhile downloads come from the store, whole.
    assert_eq!(srv.download(&id).expect_status(200).body, data);
    srv.stop();
    drop(disk);
}
