//! Egress caps (issue 14): at most `max_concurrent_downloads` downloads at once (the next waits
//! `download_queue_timeout_ms`, then gets 503), a bandwidth cap, and both changed while the
//! server runs by SIGHUP, which reloads the configuration file.

use std::time::{Duration, Instant};

use glint_tests::TestServer;
use serde_json::json;

fn metric(srv: &TestServer, series: &str) -> f64 {
    let text = srv.get("/metrics").expect_status(200).text();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().expect("a number"))
}

#[test]
fn downloads_beyond_the_cap_get_503_until_sighup_raises_it() {
    let capped = "max_concurrent_downloads = 1\ndownload_queue_timeout_ms = 100\n\
                  download_bandwidth_limit = 1000000\n";
    let srv = TestServer::start_with_config(capped);
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 249) as u8).collect();
    let id = srv.create_active_image(json!({}), &data);
    std::thread::scope(|scope| {
        // 3 MB at 1 MB/s (after a second's burst): this one holds the only slot a while.
        let slow = scope.spawn(|| srv.download(&id).expect_status(200).body);
        let deadline = Instant::now() + Duration::from_secs(10);
        while metric(&srv, "glint_downloads_in_flight") < 1.0 {
            assert!(
                Instant::now() < deadline,
                "the first download never started"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let refused = srv.download(&id);
        assert_eq!(refused.status, 503, "{}", refused.text());
        assert_eq!(refused.header("retry-after"), Some("1"));

        let config = srv.config_file().unwrap();
        std::fs::write(config, "max_concurrent_downloads = 4\n").unwrap();
        // SAFETY: signalling the child process this test started.
        assert_eq!(unsafe { libc::kill(srv.pid() as i32, libc::SIGHUP) }, 0);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !srv.log_tail(50).contains("egress caps applied") {
            assert!(Instant::now() < deadline, "SIGHUP was not applied");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(srv.download(&id).expect_status(200).body, data);
        assert_eq!(slow.join().unwrap(), data);
    });
    // A second SIGHUP with a broken file changes nothing and keeps serving.
    std::fs::write(
        srv.config_file().unwrap(),
        "max_concurrent_downloads = \"x\"\n",
    )
    .unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(srv.pid() as i32, libc::SIGHUP) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !srv.log_tail(50).contains("cannot be reloaded") {
        assert!(Instant::now() < deadline, "the bad reload was not reported");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(srv.download(&id).expect_status(200).body, data);
}
