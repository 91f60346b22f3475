//! Disk-format inspection on upload (§3.4 and disk-formats.md §3.2), for
//! `container_format=bare`: the declared `disk_format` must match the data (415 otherwise,
//! image back to `queued`, nothing left on disk), unsafe images are refused, and
//! `virtual_size` comes from the header. Fixtures are made with `qemu-img` at test time.

use std::path::{Path, PathBuf};
use std::process::Command;

use glint_tests::{random_bytes, TestServer};
use serde_json::{json, Value};

use crate::upload::assert_reset_to_queued;

const MIB: u64 = 1 << 20;

fn qemu_img(args: &[&str]) {
    let out = Command::new("qemu-img")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("qemu-img is required (apt-get install qemu-utils): {e}"));
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Make an image file with `qemu-img create -f FORMAT [extra...] FILE SIZE`.
fn make(dir: &Path, name: &str, format: &str, size: &str, extra: &[&str]) -> Vec<u8> {
    let path = dir.join(name);
    let path_str = path.to_str().unwrap();
    let mut args = vec!["create", "-q", "-f", format];
    args.extend_from_slice(extra);
    args.push(path_str);
    args.push(size);
    qemu_img(&args);
    std::fs::read(&path).unwrap()
}

fn fixtures() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    (dir, path)
}

fn create(srv: &TestServer, disk: &str, container: &str) -> String {
    srv.create_raw_image(json!({"disk_format": disk, "container_format": container}))
}

#[test]
fn qcow2_declared_qcow2_gets_header_virtual_size() {
    let (_tmp, dir) = fixtures();
    let data = make(&dir, "a.qcow2", "qcow2", "10M", &[]);
    let srv = TestServer::start();
    let id = create(&srv, "qcow2", "bare");
    srv.upload(&id, &data).expect_status(204);
    let image = srv.image(&id);
    assert_eq!(image["status"], "active");
    assert_eq!(image["virtual_size"], 10 * MIB);
    assert_eq!(image["size"], data.len());
}

#[test]
fn vmdk_declared_vmdk_gets_header_virtual_size() {
    let (_tmp, dir) = fixtures();
    let data = make(&dir, "a.vmdk", "vmdk", "12M", &[]);
    let srv = TestServer::start();
    let id = create(&srv, "vmdk", "bare");
    srv.upload(&id, &data).expect_status(204);
    assert_eq!(srv.image(&id)["virtual_size"], 12 * MIB);
}

#[test]
fn vhd_declared_vhd_gets_header_virtual_size() {
    let (_tmp, dir) = fixtures();
    let data = make(&dir, "a.vhd", "vpc", "8M", &[]);
    // The header's current size (u64 BE at offset 40), which qemu rounds to its geometry.
    let expected = u64::from_be_bytes(data[40..48].try_into().unwrap());
    let srv = TestServer::start();
    let id = create(&srv, "vhd", "bare");
    srv.upload(&id, &data).expect_status(204);
    assert_eq!(srv.image(&id)["virtual_size"], expected);
}

#[test]
fn raw_declared_raw_gets_byte_length_virtual_size() {
    let srv = TestServer::start();
    let data = random_bytes(1_000_003, 60);
    let id = create(&srv, "raw", "bare");
    srv.upload(&id, &data).expect_status(204);
    assert_eq!(srv.image(&id)["virtual_size"], 1_000_003);
}

#[test]
fn qcow2_declared_vmdk_is_415_and_image_reset() {
    let (_tmp, dir) = fixtures();
    let data = make(&dir, "a.qcow2", "qcow2", "10M", &[]);
    let srv = TestServer::start();
    for declared in ["vmdk", "vhd", "vdi", "iso"] {
        let id = create(&srv, declared, "bare");
        let resp = srv.upload(&id, &data);
        assert_eq!(resp.status, 415, "qcow2 data declared {declared}: {resp:?}");
        assert_reset_to_queued(&srv, &id);
    }
}

#[test]
fn random_bytes_declared_qcow2_is_415() {
    let srv = TestServer::start();
    let id = create(&srv, "qcow2", "bare");
    let resp = srv.upload(&id, &random_bytes(100_000, 61));
    assert_eq!(resp.status, 415, "{resp:?}");
    assert_reset_to_queued(&srv, &id);
}

#[test]
fn qcow2_declared_raw_is_accepted_with_byte_length_virtual_size() {
    // disk-formats.md §3.2 step 4: declared raw, detected something else → allowed.
    let (_tmp, dir) = fixtures();
    let data = make(&dir, "a.qcow2", "qcow2", "10M", &[]);
    let srv = TestServer::start();
    let id = create(&srv, "raw", "bare");
    srv.upload(&id, &data).expect_status(204);
    assert_eq!(srv.image(&id)["virtual_size"], data.len());
}

#[test]
fn qcow2_with_backing_file_is_415_and_nothing_is_kept() {
    let (_tmp, dir) = fixtures();
    make(&dir, "base.qcow2", "qcow2", "10M", &[]);
    let base = dir.join("base.qcow2");
    let data = make(
        &dir,
        "top.qcow2",
        "qcow2",
        "10M",
        &["-b", base.to_str().unwrap(), "-F", "qcow2"],
    );
    let srv = TestServer::start();
    // Declared qcow2 (match, but unsafe) and declared raw (allowed mismatch, but the
    // detected format's safety checks still run).
    for declared in ["qcow2", "raw"] {
        let id = create(&srv, declared, "bare");
        let resp = srv.upload(&id, &data);
        assert_eq!(
            resp.status, 415,
            "backing file, declared {declared}: {resp:?}"
        );
        assert_reset_to_queued(&srv, &id);
    }
}

#[test]
fn qcow2_with_external_data_file_is_415() {
    let (_tmp, dir) = fixtures();
    let data_file = dir.join("external.raw");
    let data = make(
        &dir,
        "ext.qcow2",
        "qcow2",
        "4M",
        &["-o", &format!("data_file={}", data_file.display())],
    );
    let srv = TestServer::start();
    let id = create(&srv, "qcow2", "bare");
    let resp = srv.upload(&id, &data);
    assert_eq!(resp.status, 415, "{resp:?}");
    assert_reset_to_queued(&srv, &id);
}

#[test]
fn uninspectable_disk_format_accepts_raw_data_without_virtual_size() {
    let srv = TestServer::start();
    let id = create(&srv, "ami", "bare");
    srv.upload(&id, &random_bytes(50_000, 62))
        .expect_status(204);
    let image = srv.image(&id);
    assert_eq!(image["status"], "active");
    assert_eq!(image["virtual_size"], Value::Null);
}

#[test]
fn non_bare_container_is_not_inspected() {
    let (_tmp, dir) = fixtures();
    let data = make(&dir, "a.qcow2", "qcow2", "10M", &[]);
    let srv = TestServer::start();
    let id = create(&srv, "vmdk", "ovf");
    srv.upload(&id, &data).expect_status(204);
    let image = srv.image(&id);
    assert_eq!(image["status"], "active");
    assert_eq!(image["virtual_size"], Value::Null);
}

#[test]
fn refused_chunked_upload_of_unsafe_image_leaves_nothing() {
    let (_tmp, dir) = fixtures();
    make(&dir, "base.qcow2", "qcow2", "10M", &[]);
    let base = dir.join("base.qcow2");
    let mut data = make(
        &dir,
        "top.qcow2",
        "qcow2",
        "10M",
        &["-b", base.to_str().unwrap(), "-F", "qcow2"],
    );
    // A few MiB after the header, as a real image would have.
    data.extend(random_bytes(3 << 20, 63));
    let srv = TestServer::start();
    let id = create(&srv, "qcow2", "bare");
    let resp = srv.upload_streaming(&id, &data, true);
    assert_eq!(resp.status, 415, "{resp:?}");
    assert_reset_to_queued(&srv, &id);
    // The image is still usable with good data.
    let good = make(&dir, "good.qcow2", "qcow2", "10M", &[]);
    srv.upload(&id, &good).expect_status(204);
    assert_eq!(srv.image(&id)["virtual_size"], 10 * MIB);
}

// Issue 15: Glance and Nova's inspector refuse qcow2's extended_l2 feature, so glint does by
// default; `qcow2_allow_extended_l2 = true` accepts it.
#[test]
fn qcow2_extended_l2_is_415_unless_the_config_allows_it() {
    let (_tmp, dir) = fixtures();
    let data = make(&dir, "l2.qcow2", "qcow2", "4M", &["-o", "extended_l2=on"]);
    let srv = TestServer::start();
    let id = create(&srv, "qcow2", "bare");
    let resp = srv.upload(&id, &data);
    assert_eq!(resp.status, 415, "{resp:?}");
    assert_reset_to_queued(&srv, &id);
    drop(srv);

    let srv = TestServer::start_with_config("qcow2_allow_extended_l2 = true\n");
    let id = create(&srv, "qcow2", "bare");
    srv.upload(&id, &data).expect_status(204);
    let image = srv.image(&id);
    assert_eq!(image["status"], "active");
    assert_eq!(image["virtual_size"], 4 * MIB);
}

// Issue 15: text that starts like a VMDK descriptor but names no createType is a raw disk for
// Glance and qemu alike.
#[test]
fn descriptor_like_text_without_create_type_is_accepted_as_raw() {
    let mut data = b"# Disk DescriptorFile\nversion=1\nCID=fffffffe\n".to_vec();
    data.resize(100_000, b'\n');
    let srv = TestServer::start();
    let id = create(&srv, "raw", "bare");
    srv.upload(&id, &data).expect_status(204);
    assert_eq!(srv.image(&id)["virtual_size"], data.len());
}

/// Runs `glint inspect ARGS`, with `stdin` written to it through a pipe, and returns its JSON
/// and exit code.
fn glint_inspect(args: &[&str], stdin: Option<Vec<u8>>) -> (Value, i32) {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(glint_tests::glint_bin())
        .arg("inspect")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run glint inspect");
    let mut pipe = child.stdin.take().expect("stdin pipe");
    let writer = std::thread::spawn(move || {
        // glint may stop reading early (a refusal); a broken pipe is fine then.
        let _ = pipe.write_all(&stdin.unwrap_or_default());
    });
    let out = child.wait_with_output().expect("wait for glint inspect");
    writer.join().expect("stdin writer");
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "glint inspect {args:?}: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (json, out.status.code().unwrap_or(-1))
}

// Issue 15: `glint inspect` on a file reads only what the inspector asks for (it read the
// whole file: 6.3 s for 10 GiB of sparse raw); from a pipe it reads the whole stream.
#[test]
fn glint_inspect_reads_a_file_only_where_the_inspector_asks() {
    let (_tmp, dir) = fixtures();
    let raw = dir.join("big.raw");
    std::fs::File::create(&raw)
        .and_then(|f| f.set_len(10 << 30))
        .unwrap();
    let (out, code) = glint_inspect(&[raw.to_str().unwrap()], None);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["format"], "raw");
    assert_eq!(out["virtual_size"], 10u64 << 30);
    assert_eq!(out["whole_stream_read"], false);
    assert!(out["bytes_read"].as_u64().unwrap() <= 64 << 10, "{out}");

    // Its L2 tables written out: a 10 GiB file (not read into memory, unlike `make`).
    let qcow2 = dir.join("big.qcow2");
    let qcow2 = qcow2.to_str().unwrap();
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-o",
        "preallocation=metadata",
        qcow2,
        "10G",
    ]);
    let (out, code) = glint_inspect(&["--disk-format", "qcow2", qcow2], None);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["format"], "qcow2");
    assert_eq!(out["virtual_size"], 10u64 << 30);
    assert!(out["bytes_read"].as_u64().unwrap() <= 64 << 10, "{out}");

    let (out, code) = glint_inspect(&["/dev/stdin"], Some(random_bytes(300_000, 15)));
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["bytes_read"], 300_000);
    assert_eq!(out["whole_stream_read"], true);

    make(&dir, "l2.qcow2", "qcow2", "1G", &["-o", "extended_l2=on"]);
    let (out, code) = glint_inspect(&[dir.join("l2.qcow2").to_str().unwrap()], None);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out["safe"], false);
    assert!(
        out["reason"].as_str().unwrap().contains("extended_l2"),
        "{out}"
    );
}
