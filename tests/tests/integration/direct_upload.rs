//! Uploads written with O_DIRECT from 2 MiB aligned buffers (`direct_io_upload = true`):
//! sizes around the buffer and sector boundaries land byte-exact on disk with the right
//! digests, and the default buffered path does the same. Each test also checks the path
//! taken (`glint_direct_io_bytes_total`, `glint_direct_io_refused_total`): the server falls
//! back to buffered writes where the file system refuses O_DIRECT, which would otherwise let
//! the first test pass without testing its point.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use glint_tests::{digest_hex, md5_hex, random_bytes, TestServer};
use serde_json::json;

const MIB: usize = 1 << 20;
/// The alignment of glint's O_DIRECT writes: bytes past the last multiple are written
/// buffered.
const ALIGN: usize = 4096;

fn check(srv: &TestServer, size: usize, seed: u64) {
    let data = random_bytes(size, seed);
    let id = srv.create_raw_image(json!({}));
    srv.upload_chunked(&id, &data).expect_status(204);
    let image = srv.image(&id);
    assert_eq!(image["status"], "active", "{size}");
    assert_eq!(image["size"], size, "{size}");
    assert_eq!(image["checksum"], md5_hex(&data).as_str(), "{size}");
    assert_eq!(
        image["os_hash_value"],
        digest_hex("sha512", &data).as_str(),
        "{size}"
    );
    let on_disk = std::fs::read(srv.image_file(&id)).expect("image file");
    assert!(on_disk == data, "file on disk differs for size {size}");
    assert_eq!(
        md5_hex(&srv.download(&id).expect_status(200).body),
        md5_hex(&data)
    );
}

const SIZES: [usize; 8] = [
    1,
    4095,
    4096,
    4097,
    2 * MIB - 1,
    2 * MIB,
    2 * MIB + 1,
    5 * MIB + 4097,
];

/// `(glint_direct_io_bytes_total, glint_direct_io_refused_total)`.
fn direct_io_counts(srv: &TestServer) -> (f64, f64) {
    let text = srv.get("/metrics").expect_status(200).text();
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
    };
    (
        value("glint_direct_io_bytes_total"),
        value("glint_direct_io_refused_total"),
    )
}

/// A folder on the file system of the build's target dir, which must allow O_DIRECT (the
/// system's temporary folder is often tmpfs, which may not).
fn direct_io_capable_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&dir).expect("create the target tmp dir");
    if let Err(e) = set_direct(&dir) {
        panic!(
            "{} refuses O_DIRECT ({e}), so this test cannot test its point there: \
             build with CARGO_TARGET_DIR on a file system that allows it (ext4, xfs, btrfs)",
            dir.display()
        );
    }
    dir
}

/// What glint does to an upload's file: F_SETFL O_DIRECT on an open file.
fn set_direct(dir: &Path) -> std::io::Result<()> {
    let probe = tempfile::tempfile_in(dir)?;
    let fd = probe.as_raw_fd();
    // SAFETY: F_GETFL/F_SETFL on a descriptor we own; no memory is passed.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_DIRECT) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[test]
fn sizes_around_buffer_and_sector_boundaries() {
    let srv = TestServer::builder()
        .config("direct_io_upload = true\n")
        .dir_in(&direct_io_capable_dir())
        .start();
    for (i, size) in SIZES.into_iter().enumerate() {
        check(&srv, size, 70 + i as u64);
    }
    // Every aligned byte went through O_DIRECT; nothing fell back.
    let aligned: usize = SIZES.iter().map(|size| size / ALIGN * ALIGN).sum();
    assert_eq!(direct_io_counts(&srv), (aligned as f64, 0.0));
}

#[test]
fn the_buffered_path_by_default() {
    let srv = TestServer::start();
    for (i, size) in SIZES.into_iter().enumerate() {
        check(&srv, size, 80 + i as u64);
    }
    assert_eq!(direct_io_counts(&srv), (0.0, 0.0));
}
