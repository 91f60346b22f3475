//! Several gateways over one PostgreSQL database (issue 14): each with its own data folder,
//! node id and image cache, sharing the metadata and one store: a file-store folder, as a file
//! store on a shared file system, or (with `tests/e2e/rgw.sh`) one Ceph RGW bucket. Needs the cluster `tests/e2e/pg.sh` starts; without it each
//! test says so and passes, unless `GLINT_REQUIRE_PG` is set.

use std::path::Path;
use std::time::{Duration, Instant};

use glint_tests::eventually;
use glint_tests::pg::TestDatabase;
use glint_tests::TestServer;
use serde_json::json;

fn gateway(db: &TestDatabase, images: &Path, extra: &str) -> TestServer {
    TestServer::builder()
        .config(&format!(
            "image_cache_max_size = 67108864\n{extra}{}",
            db.config_toml()
        ))
        .shared_images(images)
        .start()
}

#[test]
fn three_gateways_share_images_and_a_delete_reaches_every_cache() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let images = tempfile::tempdir().unwrap();
    let gateways: Vec<TestServer> = (0..3).map(|_| gateway(&db, images.path(), "")).collect();
    let (one, two, three) = (&gateways[0], &gateways[1], &gateways[2]);
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let id = one.create_active_image(json!({"name": "shared", "visibility": "public"}), &data);
    for other in [two, three] {
        assert_eq!(other.image(&id)["status"], "active");
        assert_eq!(other.list_ids("name=shared"), [id.as_str()]);
        assert_eq!(other.download(&id).expect_status(200).body, data);
        eventually("a cache fill", || other.cached_ids() == [id.clone()]);
    }
    one.download(&id).expect_status(200);
    eventually("the first gateway's fill", || {
        one.cached_ids() == [id.clone()]
    });
    // Node ids differ: each gateway's uploads are its own.
    let node = |srv: &TestServer| std::fs::read_to_string(srv.data_dir().join("node_id")).unwrap();
    assert_ne!(node(one), node(two));

    two.delete(&format!("/v2/images/{id}")).expect_status(204);
    for other in [one, three] {
        other.get(&format!("/v2/images/{id}")).expect_status(404);
        other.download(&id).expect_status(404);
        eventually("the entry to leave every cache", || {
            other.cached_ids().is_empty()
        });
        assert!(!other.data_dir().join("image-cache").join(&id).exists());
    }
    assert!(two.cached_ids().is_empty());
}

#[test]
fn a_database_outage_is_503_and_the_gateway_reconnects_by_itself() {
    let Some(mut db) = TestDatabase::create() else {
        return;
    };
    let images = tempfile::tempdir().unwrap();
    let srv = gateway(&db, images.path(), "");
    let id = srv.create_active_image(json!({}), b"kept across the outage");
    assert!(db.terminate_connections() >= 1);
    let mut statuses = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = srv.get(&format!("/v2/images/{id}"));
        statuses.push(response.status);
        if response.status == 200 && statuses.contains(&503) {
            break;
        }
        if response.status == 503 {
            assert_eq!(response.header("retry-after"), Some("1"));
        }
        assert!(
            Instant::now() < deadline,
            "no 503 then 200 within 10 s: {statuses:?}\n{}",
            srv.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(srv.log_tail(200).contains("metadata database unavailable"));
    assert_eq!(srv.image(&id)["status"], "active");
    assert_eq!(
        srv.download(&id).expect_status(200).body,
        b"kept across the outage"
    );
}

#[test]
fn glint_db_sync_migrates_and_check_config_hides_the_password() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("glint.toml");
    let toml = db.config_toml().replace("sync_on_start = true\n", "");
    std::fs::write(&config, &toml).unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(glint_tests::glint_bin())
            .args(args)
            .arg("--config")
            .arg(&config)
            .env_remove("GLINT_BIN")
            .output()
            .unwrap()
    };
    let sync = run(&["db", "sync"]);
    assert!(sync.status.success(), "{sync:?}");
    let said = String::from_utf8_lossy(&sync.stdout);
    let version = meta::PG_SCHEMA_VERSION;
    assert!(
        said.contains(&format!("database schema at version {version} (was 0)")),
        "{said}"
    );
    let again = run(&["db", "sync"]);
    assert!(String::from_utf8_lossy(&again.stdout)
        .contains(&format!("at version {version} (was {version})")));
    let shown = run(&["check-config"]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    let password = toml
        .lines()
        .find_map(|l| l.strip_prefix("password = \""))
        .unwrap()
        .trim_end_matches('"');
    assert!(!password.is_empty() && !shown.contains(password), "{shown}");
    assert!(shown.contains("password = \"***\""), "{shown}");
}

/// Issue 14: a gateway killed in the middle of a boot storm: its clients resume on another
/// gateway with `Range` from the byte they had, and end with the image's exact bytes.
#[test]
fn clients_of_a_killed_gateway_resume_on_another_with_range() {
    use std::io::{Read, Write};
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let images = tempfile::tempdir().unwrap();
    let mut gateways: Vec<TestServer> = (0..3).map(|_| gateway(&db, images.path(), "")).collect();
    let data: Vec<u8> = (0..32_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let id = gateways[0].create_active_image(json!({"visibility": "public"}), &data);
    // Eight clients of gateway 1 read the head of the body, then the gateway dies.
    let head_bytes = 3_000_000;
    let mut clients: Vec<(std::net::TcpStream, Vec<u8>)> = (0..8)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(gateways[0].addr()).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            write!(
                stream,
                "GET /v2/images/{id}/file HTTP/1.1\r\nhost: x\r\n\r\n"
            )
            .unwrap();
            let mut got = Vec::new();
            let mut buf = vec![0u8; 65536];
            while got.len() < head_bytes {
                let n = stream.read(&mut buf).unwrap();
                assert!(n > 0, "the body ended early");
                got.extend_from_slice(&buf[..n]);
            }
            let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            assert!(got.starts_with(b"HTTP/1.1 200"));
            (stream, got.split_off(head_end))
        })
        .collect();
    gateways[0].kill9();
    for (i, (stream, body)) in clients.iter_mut().enumerate() {
        // Whatever else arrives before the connection drops is theirs too.
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
        body.extend_from_slice(&rest);
        assert!(body.len() < data.len(), "the kill came before the end");
        let other = &gateways[1 + i % 2];
        let resumed = other
            .request("GET", &format!("/v2/images/{id}/file"))
            .header("range", &format!("bytes={}-", body.len()))
            .send()
            .expect_status(206);
        assert_eq!(
            resumed.header("content-range"),
            Some(format!("bytes {}-{}/{}", body.len(), data.len() - 1, data.len()).as_str())
        );
        body.extend_from_slice(&resumed.body);
        assert!(*body == data, "client {i}: the bytes differ after resuming");
    }
}

/// A boot storm: `clients` clients released at once, spread over `gateways` in turn, each
/// downloading image `id`; the md5 of every client's bytes.
fn boot_storm(gateways: &[TestServer], id: &str, clients: usize) -> Vec<String> {
    let barrier = std::sync::Barrier::new(clients);
    std::thread::scope(|scope| {
        let clients: Vec<_> = (0..clients)
            .map(|i| {
                let (srv, barrier) = (&gateways[i % gateways.len()], &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    glint_tests::md5_hex(&srv.download(id).expect_status(200).body)
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().unwrap()).collect()
    })
}

/// Issue 14: a boot storm through three gateways with cold caches, 64 clients × one image:
/// each gateway reads the image from the store exactly once (its
/// `glint_store_read_bytes_total`), and every client gets the image's bytes (md5).
#[test]
fn a_cold_boot_storm_reads_the_store_once_per_gateway() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let images = tempfile::tempdir().unwrap();
    let gateways: Vec<TestServer> = (0..3).map(|_| gateway(&db, images.path(), "")).collect();
    let data = glint_tests::random_bytes(6 << 20, 14);
    let want = glint_tests::md5_hex(&data);
    let id = gateways[0].create_active_image(json!({"visibility": "public"}), &data);
    let store_reads = |srv: &TestServer| srv.metric("glint_store_read_bytes_total{store=\"file\"}");
    let before: Vec<f64> = gateways.iter().map(store_reads).collect();
    let digests = boot_storm(&gateways, &id, 64);
    assert!(
        digests.iter().all(|d| *d == want),
        "every client's bytes verified"
    );
    for (srv, before) in gateways.iter().zip(before) {
        assert_eq!(
            store_reads(srv) - before,
            data.len() as f64,
            "each gateway reads the image from the store once"
        );
        let misses = srv.metric("glint_cache_requests_total{result=\"miss\"}");
        assert_eq!(misses, 1.0);
    }
}

/// Three gateways over one PostgreSQL and one Ceph RGW bucket (the S3 store, the default),
/// each with its own image cache: issue 14 as deployed. A cold boot storm of 64 clients reads
/// the image from RGW exactly once per gateway (`glint_store_read_bytes_total{store="ceph"}`),
/// every client gets the image's bytes, and a delete through one gateway empties the others'
/// caches and the bucket. Needs both `tests/e2e/pg.sh` and `tests/e2e/rgw.sh`.
#[test]
fn three_gateways_over_postgresql_and_one_rgw_bucket() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let Some(rgw) = glint_tests::rgw::rgw() else {
        return;
    };
    let bucket = glint_tests::rgw::bucket_name();
    let stores = format!(
        "\n[stores]\ndefault = \"ceph\"\n\n[stores.ceph]\ntype = \"s3\"\n\
         s3_store_host = \"{}\"\ns3_store_access_key = \"{}\"\ns3_store_secret_key = \"{}\"\n\
         s3_store_bucket = \"{bucket}\"\ns3_store_create_bucket_on_put = true\n",
        rgw.endpoint, rgw.access_key, rgw.secret_key
    );
    let gateways: Vec<TestServer> = (0..3)
        .map(|_| {
            TestServer::builder()
                .config(&format!(
                    "image_cache_max_size = 67108864\n{}{stores}",
                    db.config_toml()
                ))
                .start()
        })
        .collect();
    let data = glint_tests::random_bytes(6 << 20, 15);
    let want = glint_tests::md5_hex(&data);
    let id = gateways[1].create_active_image(json!({"visibility": "public"}), &data);
    assert_eq!(gateways[2].image(&id)["stores"], "ceph");
    let store_reads = |srv: &TestServer| srv.metric("glint_store_read_bytes_total{store=\"ceph\"}");
    let before: Vec<f64> = gateways.iter().map(store_reads).collect();
    let digests = boot_storm(&gateways, &id, 64);
    assert!(
        digests.iter().all(|d| *d == want),
        "every client's bytes verified"
    );
    for (srv, before) in gateways.iter().zip(&before) {
        assert_eq!(
            store_reads(srv) - before,
            data.len() as f64,
            "each gateway reads the image from RGW once"
        );
        assert_eq!(
            srv.metric("glint_cache_requests_total{result=\"miss\"}"),
            1.0
        );
        eventually("the fill to be published", || {
            srv.cached_ids() == [id.clone()]
        });
    }
    // Warm: served from each cache, RGW not read again; a range too.
    let ranged = gateways[2]
        .request("GET", &format!("/v2/images/{id}/file"))
        .header("Range", "bytes=1000-1999")
        .send()
        .expect_status(206);
    assert_eq!(ranged.body, &data[1000..2000]);
    for (srv, before) in gateways.iter().zip(&before) {
        assert_eq!(srv.download(&id).expect_status(200).body, data);
        assert_eq!(store_reads(srv) - before, data.len() as f64);
    }

    // A delete through one gateway reaches every cache (PostgreSQL NOTIFY) and the bucket.
    gateways[0]
        .delete(&format!("/v2/images/{id}"))
        .expect_status(204);
    for srv in &gateways {
        srv.download(&id).expect_status(404);
        eventually("the entry to leave every cache", || {
            srv.cached_ids().is_empty()
        });
        assert!(!srv.data_dir().join("image-cache").join(&id).exists());
    }
}

/// A loopback TCP relay standing for a gateway's own URL (`worker_self_reference_url`): its
/// port is known before the gateway starts, the gateway's only after. Relays each connection
/// to the target set later; stops relaying (connections refused) when dropped.
struct Relay {
    listener: Option<std::net::TcpListener>,
    port: u16,
    target: std::sync::Arc<std::sync::Mutex<Option<std::net::SocketAddr>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    fn new() -> Relay {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        Relay {
            listener: Some(listener),
            port,
            target: Default::default(),
            stop: Default::default(),
            thread: None,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts relaying to `target`.
    fn to(&mut self, target: std::net::SocketAddr) {
        use std::io::copy;
        *self.target.lock().unwrap() = Some(target);
        let listener = self.listener.take().unwrap();
        let (stop, target) = (self.stop.clone(), self.target.clone());
        self.thread = Some(std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Some(to) = *target.lock().unwrap() else {
                    continue;
                };
                let Ok(server) = std::net::TcpStream::connect(to) else {
                    continue;
                };
                let (mut c1, mut s1) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = copy(&mut c1, &mut s1);
                    let _ = s1.shutdown(std::net::Shutdown::Write);
                });
                let (mut c2, mut s2) = (client, server);
                std::thread::spawn(move || {
                    let _ = copy(&mut s2, &mut c2);
                    let _ = c2.shutdown(std::net::Shutdown::Write);
                });
            }
        }));
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wake the accept loop so that it sees the stop and closes the listener.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A gateway over `db` whose own URL is `relay`'s (relaying to it once it runs).
fn gateway_at(db: &TestDatabase, images: &Path, relay: &mut Relay, extra: &str) -> TestServer {
    let srv = gateway(
        db,
        images,
        &format!("worker_self_reference_url = \"{}\"\n{extra}", relay.url()),
    );
    relay.to(srv.addr());
    srv
}

fn stage(srv: &TestServer, id: &str, data: &[u8]) -> glint_tests::Resp {
    srv.request("PUT", &format!("/v2/images/{id}/stage"))
        .header("content-type", "application/octet-stream")
        .body(data.to_vec())
        .send()
}

fn import(srv: &TestServer, id: &str, body: serde_json::Value) -> glint_tests::Resp {
    srv.post_json(&format!("/v2/images/{id}/import"), &body)
}

/// The image's newest task once it has ended.
fn ended_task(srv: &TestServer, id: &str, within: Duration) -> serde_json::Value {
    glint_tests::poll_until(within, "the import task to end", || {
        let tasks = srv.get_json(&format!("/v2/images/{id}/tasks"));
        let last = tasks["tasks"].as_array()?.last()?.clone();
        matches!(last["status"].as_str(), Some("success" | "failure")).then_some(last)
    })
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Issue 12 with several gateways: staged data is node-local, so a glance-direct import or a
/// delete of a staged image reaching another gateway is proxied to the gateway that staged it
/// (its `worker_self_reference_url`, recorded as `os_glance_stage_host`), as Glance does.
#[test]
fn an_import_or_delete_of_data_staged_on_another_gateway_is_proxied_there() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let images = tempfile::tempdir().unwrap();
    let (mut relay_a, mut relay_b) = (Relay::new(), Relay::new());
    let a = gateway_at(&db, images.path(), &mut relay_a, "");
    let b = gateway_at(&db, images.path(), &mut relay_b, "");

    // Stage on A, import on B: B proxies the import to A, which imports its staged data.
    let data = glint_tests::random_bytes(3 << 20, 41);
    let id = a.create_raw_image(json!({"name": "staged on a"}));
    stage(&a, &id, &data).expect_status(204);
    assert_eq!(files_in(&a.data_dir().join("staging")), [id.as_str()]);
    import(&b, &id, json!({"method": {"name": "glance-direct"}})).expect_status(202);
    let task = ended_task(&b, &id, Duration::from_secs(30));
    assert_eq!(task["status"], "success", "{task}");
    let image = b.image(&id);
    assert_eq!(image["status"], "active");
    assert_eq!(image["checksum"], glint_tests::md5_hex(&data));
    assert!(image.get("os_glance_stage_host").is_none(), "{image}");
    assert_eq!(b.download(&id).expect_status(200).body, data);
    eventually("A's staged file to go", || {
        files_in(&a.data_dir().join("staging")).is_empty()
    });
    assert!(a.log_tail(400).contains("import finished"));

    // Stage on A, delete on B: B proxies the delete to A, which removes the staged file.
    let gone = a.create_raw_image(json!({"name": "deleted through b"}));
    stage(&a, &gone, b"staged, then deleted elsewhere").expect_status(204);
    assert_eq!(files_in(&a.data_dir().join("staging")), [gone.as_str()]);
    b.delete(&format!("/v2/images/{gone}")).expect_status(204);
    a.get(&format!("/v2/images/{gone}")).expect_status(404);
    assert!(files_in(&a.data_dir().join("staging")).is_empty());

    // The stage host unreachable: 504 "Stage host is unavailable" (Glance), nothing changes.
    let stuck = a.create_raw_image(json!({}));
    stage(&a, &stuck, b"staged on a gateway that goes away").expect_status(204);
    drop(relay_a);
    let answer = import(&b, &stuck, json!({"method": {"name": "glance-direct"}}));
    assert_eq!(answer.status, 504, "{}", answer.text());
    assert!(answer.text().contains("Stage host is unavailable"));
    assert_eq!(b.image(&stuck)["status"], "uploading");

    // A request proxied once is not proxied again: B (not the stage host) refuses it.
    let looped = b
        .request("POST", &format!("/v2/images/{stuck}/import"))
        .header("x-glint-stage-proxied", "1")
        .json(&json!({"method": {"name": "glance-direct"}}))
        .send();
    assert_eq!(looped.status, 409, "{}", looped.text());
    assert!(looped.text().contains("already proxied once"));

    // Without worker_self_reference_url a gateway records its node id: another gateway cannot
    // reach it and says so.
    let c = gateway(&db, images.path(), "");
    let local = c.create_raw_image(json!({}));
    stage(&c, &local, b"staged where no URL is known").expect_status(204);
    let refused = import(&b, &local, json!({"method": {"name": "glance-direct"}}));
    assert_eq!(refused.status, 409, "{}", refused.text());
    assert!(
        refused.text().contains("set worker_self_reference_url"),
        "{}",
        refused.text()
    );
    import(&c, &local, json!({"method": {"name": "glance-direct"}})).expect_status(202);
    assert_eq!(
        ended_task(&c, &local, Duration::from_secs(30))["status"],
        "success"
    );
}

/// Issue 12's import lease, end to end over two gateways: gateway A dies (`kill -9`) in the
/// middle of a web-download; once its lease lapses gateway B's sweeper fails the task with a
/// clear message and reverts the image, which B then imports; nothing is left behind.
#[test]
fn an_import_of_a_killed_gateway_is_reverted_by_another_once_its_lease_lapses() {
    use glint_tests::origin::{Behaviour, Origin};
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let origin = Origin::start();
    let data = glint_tests::random_bytes(4 << 20, 42);
    // An origin that sends a head of the body, then holds the import.
    origin.put_with("/slow.img", data.clone(), Behaviour::Stall(1 << 20));
    origin.put("/disk.img", data.clone());
    let images = tempfile::tempdir().unwrap();
    let extra = format!(
        "import_lease_seconds = 3\n\
         [import_filtering_opts]\nallowed_hosts = [\"127.0.0.1\"]\nallowed_ports = [{}]\n",
        origin.port()
    );
    let mut a = gateway(&db, images.path(), &extra);
    let b = gateway(&db, images.path(), &extra);
    let id = a.create_raw_image(json!({"name": "killed mid-import"}));
    import(
        &a,
        &id,
        json!({"method": {"name": "web-download", "uri": origin.url("/slow.img")}}),
    )
    .expect_status(202);
    glint_tests::poll_until(Duration::from_secs(20), "A to be downloading", || {
        let staging = a.data_dir().join("staging");
        let partial = files_in(&staging)
            .into_iter()
            .find(|f| f.starts_with(&id))?;
        std::fs::metadata(staging.join(partial))
            .ok()
            .filter(|m| m.len() > 0)
    });
    assert_eq!(b.image(&id)["status"], "importing");
    a.kill9();

    // B's sweeper (every lease) reverts the import whose lease lapsed.
    let task = ended_task(&b, &id, Duration::from_secs(30));
    assert_eq!(task["status"], "failure", "{task}");
    let message = task["message"].as_str().unwrap();
    assert!(
        message.contains("was interrupted: its gateway stopped renewing its lease"),
        "{message}"
    );
    let image = b.image(&id);
    assert_eq!(image["status"], "queued", "{image}");
    assert!(image.get("os_glance_import_task").is_none(), "{image}");
    assert!(image["size"].is_null(), "{image}");
    assert!(
        files_in(images.path()).is_empty(),
        "{:?}",
        files_in(images.path())
    );

    // B imports it now.
    import(
        &b,
        &id,
        json!({"method": {"name": "web-download", "uri": origin.url("/disk.img")}}),
    )
    .expect_status(202);
    assert_eq!(
        ended_task(&b, &id, Duration::from_secs(30))["status"],
        "success"
    );
    assert_eq!(b.download(&id).expect_status(200).body, data);
    assert_eq!(files_in(images.path()), [id.as_str()]);
    // A's half download is removed when A starts again.
    a.start_again();
    assert!(files_in(&a.data_dir().join("staging")).is_empty());
    assert_eq!(a.image(&id)["status"], "active");
}

/// Issue 12: a gateway dying between the store's commit of an import's data and `end_import`
/// leaves data no location names; the gateway that reverts the import (here B's sweeper, once
/// A's lease lapsed) removes it, and never data a location names.
#[test]
fn data_of_an_import_killed_before_it_was_recorded_is_removed_by_another_gateway() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let images = tempfile::tempdir().unwrap();
    let mut a = TestServer::builder()
        .config(&format!("import_lease_seconds = 3\n{}", db.config_toml()))
        .shared_images(images.path())
        .env("GLINT_CRASH_AT", "import-before-end")
        .start();
    let b = gateway(&db, images.path(), "import_lease_seconds = 3\n");
    let kept = b.create_active_image(json!({"name": "untouched"}), b"another image's data");
    let id = a.create_raw_image(json!({"name": "orphaned"}));
    stage(&a, &id, b"committed to the store, never recorded").expect_status(204);
    import(&a, &id, json!({"method": {"name": "glance-direct"}})).expect_status(202);
    // A aborts at the crash point, after the file store's commit.
    glint_tests::poll_until(Duration::from_secs(20), "A to abort", || {
        a.request("GET", "/versions").try_send().err()
    });
    a.kill9();
    assert_eq!(files_in(images.path()), {
        let mut both = vec![id.clone(), kept.clone()];
        both.sort();
        both
    });

    let task = ended_task(&b, &id, Duration::from_secs(30));
    assert_eq!(task["status"], "failure", "{task}");
    assert_eq!(b.image(&id)["status"], "queued");
    assert_eq!(files_in(images.path()), [kept.as_str()]);
    assert_eq!(
        b.download(&kept).expect_status(200).body,
        b"another image's data"
    );
}

/// Issue 12: the same, when the next import takes the lapsed lock over (a copy-image on
/// gateway B, whose own sweeper would wait a minute): the take-over removes what the dead
/// copy committed to its store before the new copy starts; the image's own data stays.
#[test]
fn a_take_over_removes_the_data_a_killed_copy_left_unrecorded() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut stores = String::from("\n[stores]\ndefault = \"one\"\n");
    for (name, dir) in ["one", "two", "three"].iter().zip(&dirs) {
        stores.push_str(&format!(
            "[stores.{name}]\ntype = \"file\"\nfilesystem_store_datadir = \"{}\"\n",
            dir.path().display()
        ));
    }
    let start = |lease: u64, crash: bool| {
        let mut builder = TestServer::builder().config(&format!(
            "import_lease_seconds = {lease}\n{}{stores}",
            db.config_toml()
        ));
        if crash {
            builder = builder.env("GLINT_CRASH_AT", "import-before-end");
        }
        builder.start()
    };
    let mut a = start(3, true);
    let b = start(60, false);
    let data = glint_tests::random_bytes(1 << 20, 43);
    let id = b.create_active_image(json!({}), &data);
    let copy_to = |srv: &TestServer, store: &str| {
        import(
            srv,
            &id,
            json!({"method": {"name": "copy-image"}, "stores": [store]}),
        )
    };
    copy_to(&a, "two").expect_status(202);
    glint_tests::poll_until(Duration::from_secs(20), "A to abort", || {
        a.request("GET", "/versions").try_send().err()
    });
    a.kill9();
    assert_eq!(
        files_in(dirs[1].path()),
        [id.as_str()],
        "the copy was committed"
    );
    // Refused while A's lease runs; taken over once it lapsed.
    glint_tests::poll_until(Duration::from_secs(20), "a take-over", || {
        let answer = copy_to(&b, "three");
        (answer.status != 409).then_some(answer)
    })
    .expect_status(202);
    let task = ended_task(&b, &id, Duration::from_secs(30));
    assert_eq!(task["status"], "success", "{task}");
    let tasks = b.get_json(&format!("/v2/images/{id}/tasks"));
    let statuses: Vec<&str> = tasks["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["failure", "success"], "{tasks}");
    assert!(
        files_in(dirs[1].path()).is_empty(),
        "the dead copy's data is gone"
    );
    assert_eq!(files_in(dirs[0].path()), [id.as_str()]);
    assert_eq!(files_in(dirs[2].path()), [id.as_str()]);
    let image = b.image(&id);
    assert_eq!(image["stores"], "one,three", "{image}");
    assert_eq!(image["os_glance_failed_import"], "", "{image}");
    assert_eq!(b.download(&id).expect_status(200).body, data);
}
