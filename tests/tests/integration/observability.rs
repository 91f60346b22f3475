//! Operations: `/metrics` in the Prometheus text format after real transfers (checked by
//! `promtool`), the Grafana dashboard and alert rules against what glint exports, a real
//! Prometheus server scraping glint, the access log and request ids, and `/healthcheck`.
//!
//! `promtool` and `prometheus` come from Debian's `prometheus` package. Without them the parts
//! that need them are skipped with a message, unless `GLINT_REQUIRE_PROMETHEUS` is set (as
//! `scripts/test` does), in which case their absence fails the test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use glint_tests::TestServer;
use serde_json::{json, Value};

const MIB: usize = 1 << 20;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn dashboard() -> PathBuf {
    repo().join("deploy/grafana/glint.json")
}

fn alerts() -> PathBuf {
    repo().join("deploy/prometheus/alerts.yml")
}

/// `name` on `PATH`, or `None` (and a message) when it is missing and not required.
fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("GLINT_REQUIRE_PROMETHEUS").is_none(),
            "{name} is not installed but GLINT_REQUIRE_PROMETHEUS is set"
        );
        eprintln!("skipping the {name} part: not installed (apt-get install prometheus)");
    }
    found
}

fn scrape(srv: &TestServer) -> String {
    let resp = srv.get("/metrics").expect_status(200);
    assert_eq!(
        resp.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    resp.text()
}

/// The value of one series, written exactly as in the exposition (labels in glint's order).
#[track_caller]
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
        .parse()
        .unwrap()
}

fn upload_series(outcome: &str, reason: &str) -> String {
    format!("glint_uploads_total{{outcome=\"{outcome}\",reason=\"{reason}\"}}")
}

/// An accepted upload and its download, a refused content type and a size mismatch.
fn transfers(srv: &TestServer) -> (String, Vec<u8>) {
    let data: Vec<u8> = (0..MIB).map(|i| (i * 7 % 251) as u8).collect();
    let id = srv.create_active_image(json!({"name": "metered"}), &data);
    assert_eq!(srv.download(&id).expect_status(200).body, data);
    let other = srv.create_raw_image(json!({}));
    srv.request("PUT", &format!("/v2/images/{other}/file"))
        .header("content-type", "text/plain")
        .body(b"x".to_vec())
        .send()
        .expect_status(415);
    srv.request("PUT", &format!("/v2/images/{other}/file"))
        .header("content-type", "application/octet-stream")
        .header("x-openstack-image-size", "10")
        .body(vec![1u8; 100])
        .send()
        .expect_status(400);
    (id, data)
}

/// Runs `promtool` with `args` (and `stdin`), asserting success and returning its output.
fn promtool(promtool: &Path, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut child = Command::new(promtool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn metrics_after_transfers_count_them_and_pass_promtool() {
    let srv = TestServer::start();
    let (id, data) = transfers(&srv);
    let text = scrape(&srv);

    assert_eq!(sample(&text, &upload_series("active", "none")), 1.0);
    assert_eq!(
        sample(&text, &upload_series("refused", "content_type")),
        1.0
    );
    assert_eq!(
        sample(&text, &upload_series("refused", "size_mismatch")),
        1.0
    );
    assert_eq!(sample(&text, "glint_uploads_in_flight"), 0.0);
    assert_eq!(sample(&text, "glint_downloads_in_flight"), 0.0);
    let file = r#"route="/v2/images/{id}/file""#;
    assert_eq!(
        sample(
            &text,
            &format!("glint_requests_total{{{file},method=\"GET\",status=\"2xx\"}}")
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            &format!("glint_requests_total{{{file},method=\"PUT\",status=\"4xx\"}}")
        ),
        2.0
    );
    let size = data.len() as f64;
    assert!(sample(&text, "glint_received_bytes_total") >= size);
    assert!(sample(&text, "glint_sent_bytes_total") >= size);
    // md5 and sha512 each see every accepted byte.
    assert!(sample(&text, "glint_hashed_bytes_total") >= 2.0 * size);
    assert!(sample(&text, "glint_inspected_bytes_total") > 0.0);
    assert_eq!(sample(&text, "glint_upload_size_bytes_count"), 1.0);
    assert_eq!(sample(&text, "glint_upload_size_bytes_sum"), size);
    assert_eq!(
        sample(&text, "glint_download_first_byte_seconds_count"),
        1.0
    );
    assert!(sample(&text, "glint_meta_commit_duration_seconds_count") >= 3.0);
    assert_eq!(sample(&text, "glint_images{status=\"active\"}"), 1.0);
    assert_eq!(sample(&text, "glint_images{status=\"queued\"}"), 1.0);
    assert!(sample(&text, "glint_store_free_bytes{store=\"file\"}") > 0.0);
    assert_eq!(sample(&text, "glint_build_info{version=\"0.1.0\"}"), 1.0);
    assert!(
        text.contains("glint_io_driver_info{driver=\"io_uring\"} 1")
            || text.contains("glint_io_driver_info{driver=\"epoll\"} 1"),
        "{text}"
    );
    let accepted: f64 = text
        .lines()
        .filter(|l| l.starts_with("glint_connections_total{worker="))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert!(accepted >= 1.0, "{text}");
    assert!(!text.contains(&id), "an image id leaked into a label");

    if let Some(promtool_bin) = tool("promtool") {
        let out = promtool(&promtool_bin, &["check", "metrics"], Some(&text));
        assert!(out.trim().is_empty(), "promtool lint findings:\n{out}");
    }
}

// Issue 10: the members routes, /v2/info/usage and /v2/schemas/member(s) were counted as
// route="other": the metrics kept their own route list, which had drifted from the router's.
#[test]
fn every_route_the_router_knows_is_counted_under_its_template() {
    let srv = TestServer::start();
    let mut requested = Vec::new();
    for route in gateway::routes::ROUTES {
        // Every `{name}` parameter gets a value: a UUID for image ids, a word otherwise.
        let path = route
            .template
            .split('/')
            .map(|segment| match segment {
                "{id}" => "3c1f0d7e-8a4b-4f7e-9d2c-6b5a4e3d2c1b".to_owned(),
                _ if segment.starts_with('{') => format!("a-{}", segment.trim_matches(['{', '}'])),
                _ => segment.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("/");
        for method in route.methods {
            // Whatever the answer (mostly 404: no such image), it is one request of this route.
            srv.request(method.as_str(), &path).send();
            requested.push((route.template, method.as_str()));
        }
    }
    assert!(requested.len() >= 25, "{requested:?}");
    let text = scrape(&srv);
    for (template, method) in requested {
        let series = format!("glint_requests_total{{route=\"{template}\",method=\"{method}\",");
        let counted: f64 = text
            .lines()
            .filter_map(|line| {
                line.strip_prefix(&series)?
                    .split(' ')
                    .nth(1)?
                    .parse::<f64>()
                    .ok()
            })
            .sum();
        assert_eq!(counted, 1.0, "{method} {template} in:\n{text}");
    }
    assert!(!text.contains("route=\"other\""), "{text}");
}

#[test]
fn metrics_switched_off_answer_404_and_uploads_still_work() {
    let srv = TestServer::start_with_config("metrics_enabled = false\n");
    let resp = srv.get("/metrics").expect_status(404);
    assert!(resp.text().contains("404"), "{resp:?}");
    srv.create_active_image(json!({}), b"data");
}

#[test]
fn dashboard_and_alerts_use_only_exported_metrics() {
    let srv = TestServer::start();
    transfers(&srv);
    let text = scrape(&srv);
    let dir = tempfile::tempdir().unwrap();
    let metrics = dir.path().join("metrics.txt");
    std::fs::write(&metrics, &text).unwrap();
    let script = repo().join("scripts/observability.py");
    let run = |args: &[&Path]| {
        let out = Command::new("python3")
            .arg(&script)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let word = |s: &'static str| Path::new(s);

    let (code, used, err) = run(&[word("names"), &dashboard(), &alerts()]);
    assert_eq!(code, Some(0), "{err}");
    let used: Vec<&str> = used.lines().collect();
    for name in [
        "glint_requests_total",
        "glint_request_duration_seconds_bucket",
        "glint_uploads_total",
        "glint_store_free_bytes",
        "glint_open_connections",
        "glint_build_info",
    ] {
        assert!(used.contains(&name), "{name} not used: {used:?}");
    }

    let (code, missing, err) = run(&[word("missing"), &metrics, &dashboard(), &alerts()]);
    assert_eq!(
        (code, missing.as_str()),
        (Some(0), ""),
        "queries name metrics glint does not export: {err}"
    );

    // The check itself can fail: without glint_uploads_total it must say so.
    let partial = dir.path().join("partial.txt");
    let kept: String = text
        .lines()
        .filter(|l| !l.contains("glint_uploads_total"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&partial, kept).unwrap();
    let (code, missing, _) = run(&[word("missing"), &partial, &dashboard(), &alerts()]);
    assert_eq!((code, missing.trim()), (Some(1), "glint_uploads_total"));

    let (code, rules, err) = run(&[word("rules"), &dashboard()]);
    assert_eq!(code, Some(0), "{err}");
    let rules_file = dir.path().join("dashboard-rules.yml");
    std::fs::write(&rules_file, &rules).unwrap();
    let queries = rules.matches("record:").count();
    assert!(queries >= 20, "only {queries} dashboard queries:\n{rules}");
    if let Some(promtool_bin) = tool("promtool") {
        for file in [rules_file, alerts()] {
            promtool(
                &promtool_bin,
                &["check", "rules", file.to_str().unwrap()],
                None,
            );
        }
    }
}

/// A Prometheus server of our own on loopback, stopped (SIGTERM, then SIGKILL) on drop.
struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(bin: &Path, target: std::net::SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {alerts}\n\
                 scrape_configs:\n  - job_name: glint\n    static_configs:\n      \
                 - targets: ['{target}']\n",
                alerts = alerts().display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let prom = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if ureq::get(&format!("{}/-/ready", prom.url)).call().is_ok() {
                break prom;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready after 60 s:\n{}",
                prom.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// The instant-query result vector.
    fn query(&self, promql: &str) -> Vec<Value> {
        let mut resp = ureq::get(&format!("{}/api/v1/query", self.url))
            .query("query", promql)
            .call()
            .unwrap();
        let body: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
        assert_eq!(body["status"], "success", "{body}");
        body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn prometheus_scrapes_glint_and_counts_the_upload() {
    let Some(bin) = tool("prometheus") else {
        return;
    };
    let srv = TestServer::start();
    let prom = Prometheus::start(&bin, srv.addr());
    srv.create_active_image(json!({"name": "scraped"}), &vec![5u8; 256 * 1024]);

    let query = r#"sum(glint_uploads_total{job="glint",outcome="active"})"#;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let result = prom.query(query);
        let value = result
            .first()
            .and_then(|r| r["value"][1].as_str())
            .and_then(|v| v.parse::<f64>().ok());
        if value == Some(1.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus never saw the upload (last {result:?}); targets: {:?}\n{}",
            prom.query("up"),
            prom.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // The byte counters moved too, and the alert rules loaded without error.
    let bytes = prom.query(r#"glint_received_bytes_total{job="glint"}"#);
    let received: f64 = bytes[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(received >= 256.0 * 1024.0, "{bytes:?}");
    let rules = ureq::get(&format!("{}/api/v1/rules", prom.url))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let rules: Value = serde_json::from_str(&rules).unwrap();
    let loaded = rules["data"]["groups"][0]["rules"].as_array().unwrap();
    assert!(loaded.len() >= 5, "{rules}");
    for rule in loaded {
        assert_eq!(rule["health"], "ok", "{rule}");
    }
}

#[test]
fn access_log_carries_request_ids_and_never_tokens() {
    let srv = TestServer::start();
    let global = "req-0b5e7f3c-2d41-4c1e-9a7b-5f6e8d9c0a1b";
    let token = "gAAAAABsecret-token-value";
    let resp = srv
        .request("GET", "/v2/images")
        .header("x-openstack-request-id", global)
        .header("x-auth-token", token)
        .send()
        .expect_status(200);
    let own = resp.header("x-openstack-request-id").unwrap().to_owned();
    assert_ne!(own, global, "glint answers with its own id");
    // A malformed id is not adopted.
    srv.request("GET", "/healthcheck")
        .header("x-openstack-request-id", "req-not-a-uuid")
        .send()
        .expect_status(200);
    let log = srv.log_tail(50);
    let line = log
        .lines()
        .find(|l| l.contains(&own) && l.contains("glint::access"))
        .unwrap_or_else(|| panic!("no access line for {own}:\n{log}"));
    for part in [
        "method=GET",
        "route=\"/v2/images\"",
        "status=200",
        "bytes_out=",
        "duration_ms=",
        &format!("global_request_id=\"{global}\""),
    ] {
        assert!(line.contains(part), "{part} missing from {line}");
    }
    assert!(!log.contains("req-not-a-uuid"), "{log}");
    assert!(!log.contains(token), "a token was logged:\n{log}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let srv = TestServer::builder()
        .env("GLINT_LOG_FORMAT", "json")
        .start();
    let id = srv.create_active_image(json!({}), b"json logs");
    let log = srv.log_tail(40);
    let access: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .filter(|v| v["target"] == "glint::access")
        .collect();
    let upload = access
        .iter()
        .find(|v| v["fields"]["method"] == "PUT")
        .unwrap_or_else(|| panic!("no PUT access line:\n{log}"));
    assert_eq!(upload["fields"]["status"], 204);
    assert_eq!(upload["fields"]["route"], "/v2/images/{id}/file");
    assert_eq!(upload["fields"]["bytes_in"], 9);
    assert!(upload["span"]["request_id"]
        .as_str()
        .unwrap()
        .starts_with("req-"));
    assert!(!log.contains(&format!("\"route\":\"/v2/images/{id}/file\"")));
}

#[test]
fn healthcheck_is_oslo_like_and_fails_when_the_store_is_gone() {
    let srv = TestServer::start();
    let resp = srv.get("/healthcheck").expect_status(200);
    assert_eq!(resp.text(), "OK");
    assert_eq!(resp.content_type().as_deref(), Some("text/plain"));
    srv.request("HEAD", "/healthcheck")
        .send()
        .expect_status(204);
    // Root ignores permissions, so make the store folder vanish instead.
    let images = srv.data_dir().join("images");
    std::fs::remove_dir_all(&images).unwrap();
    srv.get("/healthcheck").expect_status(503);
    srv.request("HEAD", "/healthcheck")
        .send()
        .expect_status(503);
    std::fs::create_dir(&images).unwrap();
    srv.get("/healthcheck").expect_status(200);
}
