//! Uploads written with O_DIRECT from 2 MiB aligned buffers (`direct_io_upload = true`):
//! sizes around the buffer and sector boundaries land byte-exact on disk with the right
//! digests, and the default buffered path does the same.

use glint_tests::{digest_hex, md5_hex, random_bytes, TestServer};
use serde_json::json;

const MIB: usize = 1 << 20;

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

#[test]
fn sizes_around_buffer_and_sector_boundaries() {
    let srv = TestServer::start_with_config("direct_io_upload = true\n");
    for (i, size) in SIZES.into_iter().enumerate() {
        check(&srv, size, 70 + i as u64);
    }
}

#[test]
fn the_buffered_path_by_default() {
    let srv = TestServer::start();
    for (i, size) in SIZES.into_iter().enumerate() {
        check(&srv, size, 80 + i as u64);
    }
}
