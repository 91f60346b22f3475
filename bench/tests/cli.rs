//! `glint-bench` run as a process against a real glint on loopback (the harness of
//! `glint-tests` starts it), with small sizes and bounded counts.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use glint_tests::TestServer;
use serde_json::Value;

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_glint-bench"))
        .args(args)
        .arg("--no-progress")
        .output()
        .expect("run glint-bench")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Run with `--json` and return the parsed file.
fn bench_json(args: &[&str]) -> (Output, Value) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("out.json");
    let mut all: Vec<&str> = args.to_vec();
    let p = path.to_str().expect("utf-8 temp path");
    all.extend(["--json", p]);
    let out = bench(&all);
    assert!(out.status.success(), "{}", text(&out));
    let json = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    (out, serde_json::from_str(&json).expect("valid JSON"))
}

fn op<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["ops"]
        .as_array()
        .expect("ops is an array")
        .iter()
        .find(|o| o["op"] == name)
        .unwrap_or_else(|| panic!("no op {name} in {report:#}"))
}

#[test]
fn download_verifies_md5_and_reports_the_json_shape() {
    let srv = TestServer::start();
    let url = srv.url();
    let pid = srv.pid().to_string();
    let (out, r) = bench_json(&[
        "download",
        "--url",
        &url,
        "--size",
        "300K",
        "-c",
        "3",
        "-n",
        "9",
        "--verify-md5",
        "--server-pid",
        &pid,
    ]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("p99 ms") && table.contains("download"),
        "{table}"
    );
    assert!(table.contains("CPU-s/GiB"), "{table}");

    assert_eq!(r["tool"], "glint-bench");
    assert_eq!(r["scenario"], "download");
    assert_eq!(r["params"]["concurrency"], 3);
    assert_eq!(r["params"]["count"], 9);
    assert_eq!(r["params"]["size"], 300 * 1024);
    assert!(r["command"].as_array().is_some_and(|c| c.len() > 3));
    assert!(r["machine"]["cpus"].as_u64().is_some_and(|n| n > 0));
    assert!(r["wall_s"].as_f64().is_some_and(|w| w > 0.0));
    let d = op(&r, "download");
    assert_eq!(d["requests"], 9);
    assert_eq!(d["errors"], 0);
    assert_eq!(d["bytes"], 9 * 300 * 1024);
    assert_eq!(d["bytes_verified"], 9 * 300 * 1024);
    for k in ["p50", "p90", "p99", "max", "mean"] {
        assert!(
            d["latency_ms"][k].as_f64().is_some_and(|v| v > 0.0),
            "{k}: {d:#}"
        );
    }
    let l = &d["latency_ms"];
    assert!(l["p50"].as_f64() <= l["p90"].as_f64() && l["p90"].as_f64() <= l["p99"].as_f64());
    assert!(l["p99"].as_f64() <= l["max"].as_f64());
    assert!(d["throughput_MBps"].as_f64().is_some_and(|v| v > 0.0));
    assert!(d["requests_per_s"].as_f64().is_some_and(|v| v > 0.0));
    assert_eq!(r["totals"]["errors"], 0);
    assert_eq!(r["server"]["pid"].as_u64(), Some(u64::from(srv.pid())));
    assert!(r["server"]["peak_rss_MiB"]
        .as_f64()
        .is_some_and(|v| v > 1.0));
    assert!(r["server"]["cpu_s_per_GiB"]
        .as_f64()
        .is_some_and(|v| v >= 0.0));
    // The image it uploaded first was deleted at the end.
    assert_eq!(srv.list_all_ids("").len(), 0);
}

#[test]
fn a_wrong_md5_is_an_error_per_download() {
    let srv = TestServer::start();
    let id = srv.create_active_image(serde_json::json!({}), b"twelve bytes");
    let url = srv.url();
    let out = bench(&[
        "download",
        "--url",
        &url,
        "--image",
        &id,
        "-n",
        "3",
        "--verify-md5",
        "--expect-md5",
        "00000000000000000000000000000000",
        "--fail-on-error",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("md5 mismatch"), "{table}");
    // Against the checksum glint recorded, the same image verifies.
    let (_, r) = bench_json(&[
        "download",
        "--url",
        &url,
        "--image",
        &id,
        "-n",
        "3",
        "--verify-md5",
    ]);
    assert_eq!(op(&r, "download")["bytes_verified"], 36);
    // An image the run did not create is kept.
    assert_eq!(srv.image(&id)["status"], "active");
}

#[test]
fn upload_sends_exact_bytes_and_cleans_up() {
    let srv = TestServer::start();
    let url = srv.url();
    let (_, r) = bench_json(&[
        "upload", "--url", &url, "--size", "100000", "-c", "2", "-n", "4", "--keep",
    ]);
    let u = op(&r, "upload");
    assert_eq!(
        (u["requests"].as_u64(), u["errors"].as_u64()),
        (Some(4), Some(0))
    );
    assert_eq!(u["bytes"], 400_000);
    let ids = srv.list_all_ids("");
    assert_eq!(ids.len(), 4);
    for id in ids {
        let image = srv.image(&id);
        assert_eq!(image["status"], "active");
        assert_eq!(image["size"], 100_000);
    }
    bench_json(&["upload", "--url", &url, "--size", "1K", "-n", "2"]);
    assert_eq!(
        srv.list_all_ids("").len(),
        4,
        "images of a run without --keep are deleted"
    );
}

#[test]
fn list_and_boot_storm_and_mixed() {
    let srv = TestServer::start();
    let url = srv.url();
    let (_, r) = bench_json(&[
        "list",
        "--url",
        &url,
        "--populate",
        "30",
        "-c",
        "2",
        "-n",
        "40",
        "--limit",
        "5",
    ]);
    let l = op(&r, "list");
    assert_eq!(
        (l["requests"].as_u64(), l["errors"].as_u64()),
        (Some(40), Some(0))
    );
    assert!(l["bytes"].as_u64().is_some_and(|b| b > 40 * 100));

    let (_, r) = bench_json(&[
        "boot-storm",
        "--url",
        &url,
        "--size",
        "64K",
        "-c",
        "8",
        "--verify-md5",
    ]);
    assert_eq!(r["params"]["concurrency"], 8);
    let d = op(&r, "download");
    assert_eq!(
        (d["requests"].as_u64(), d["errors"].as_u64()),
        (Some(8), Some(0))
    );
    assert_eq!(d["bytes_verified"], 8 * 65536);

    let (_, r) = bench_json(&[
        "mixed",
        "--url",
        &url,
        "--size",
        "16K",
        "-c",
        "2",
        "-n",
        "20",
        "--mix",
        "download=2,list=1,upload=1",
        "--verify-md5",
    ]);
    assert_eq!(op(&r, "download")["requests"], 10);
    assert_eq!(op(&r, "list")["requests"], 5);
    assert_eq!(op(&r, "upload")["requests"], 5);
    assert_eq!(r["totals"]["errors"], 0);
    assert_eq!(
        srv.list_all_ids("").len(),
        0,
        "populated and uploaded images are deleted"
    );
}

#[test]
fn the_duration_bound_stops_a_long_run() {
    let srv = TestServer::start();
    let url = srv.url();
    let t0 = Instant::now();
    let (_, r) = bench_json(&["list", "--url", &url, "-n", "100000000", "-d", "1"]);
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    let n = op(&r, "list")["requests"].as_u64().expect("requests");
    assert!(n > 0 && n < 100_000_000, "{n}");
    assert!(
        r["wall_s"]
            .as_f64()
            .is_some_and(|w| (0.9..10.0).contains(&w)),
        "{r:#}"
    );
}

#[test]
fn refuses_non_loopback_and_bad_arguments() {
    let out = bench(&["list", "--url", "http://192.0.2.1:9292", "-n", "1"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--allow-remote"),
        "{}",
        text(&out)
    );
    for args in [
        &["upload", "-c", "0"][..],
        &["upload", "--size", "0"],
        &["upload", "--size", "ten"],
        &["fly"],
        &["list", "--api", "files"],
        &["download", "--server-pid", "not-a-pid"],
    ] {
        let out = bench(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
    }
    // A server that is not there: the run ends with errors, not a hang.
    let out = bench(&[
        "list",
        "--url",
        "http://127.0.0.1:9",
        "-n",
        "2",
        "--fail-on-error",
    ]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
}
