//! `GET /v2/images` sorting (§5.2): classic `sort_key`/`sort_dir`, the `sort=` syntax, and
//! their errors.

use glint_tests::{id_of, TestServer};
use serde_json::{json, Value};

/// Four images with distinct (disk_format, name) pairs and distinct names.
fn create_sample(srv: &TestServer) {
    for (name, disk) in [
        ("alpha", "raw"),
        ("delta", "qcow2"),
        ("charlie", "raw"),
        ("bravo", "qcow2"),
    ] {
        srv.create_image(json!({"name": name, "disk_format": disk}));
    }
}

fn field_seq(page: &Value, field: &str) -> Vec<String> {
    page["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i[field].as_str().unwrap_or("").to_owned())
        .collect()
}

fn pairs(page: &Value) -> Vec<(String, String)> {
    field_seq(page, "disk_format")
        .into_iter()
        .zip(field_seq(page, "name"))
        .collect()
}

fn p(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

#[test]
fn sort_key_with_direction() {
    let srv = TestServer::start();
    create_sample(&srv);
    let page = srv.list("sort_key=name&sort_dir=asc");
    assert_eq!(
        field_seq(&page, "name"),
        ["alpha", "bravo", "charlie", "delta"]
    );
    let page = srv.list("sort_key=name&sort_dir=desc");
    assert_eq!(
        field_seq(&page, "name"),
        ["delta", "charlie", "bravo", "alpha"]
    );
}

#[test]
fn sort_key_without_direction_is_descending() {
    let srv = TestServer::start();
    create_sample(&srv);
    let page = srv.list("sort_key=name");
    assert_eq!(
        field_seq(&page, "name"),
        ["delta", "charlie", "bravo", "alpha"]
    );
}

#[test]
fn repeated_sort_keys_with_one_direction_each() {
    let srv = TestServer::start();
    create_sample(&srv);
    let page = srv.list("sort_key=disk_format&sort_key=name&sort_dir=asc&sort_dir=desc");
    assert_eq!(
        pairs(&page),
        p(&[
            ("qcow2", "delta"),
            ("qcow2", "bravo"),
            ("raw", "charlie"),
            ("raw", "alpha")
        ])
    );
}

#[test]
fn one_sort_dir_applies_to_every_key() {
    let srv = TestServer::start();
    create_sample(&srv);
    let page = srv.list("sort_key=disk_format&sort_key=name&sort_dir=asc");
    assert_eq!(
        pairs(&page),
        p(&[
            ("qcow2", "bravo"),
            ("qcow2", "delta"),
            ("raw", "alpha"),
            ("raw", "charlie")
        ])
    );
}

#[test]
fn mismatched_number_of_sort_dirs_is_bad_request() {
    let srv = TestServer::start();
    create_sample(&srv);
    for query in [
        "sort_key=name&sort_key=status&sort_dir=asc&sort_dir=desc&sort_dir=asc",
        "sort_key=name&sort_dir=asc&sort_dir=desc",
    ] {
        let resp = srv.get(&format!("/v2/images?{query}"));
        assert_eq!(resp.status, 400, "{query}: {resp:?}");
    }
}

#[test]
fn invalid_sort_key_or_direction_is_bad_request() {
    let srv = TestServer::start();
    create_sample(&srv);
    for query in [
        "sort_key=bogus",
        "sort_key=name&sort_dir=up",
        "sort_dir=sideways",
        "sort_key=self",
    ] {
        let resp = srv.get(&format!("/v2/images?{query}"));
        assert_eq!(resp.status, 400, "{query}: {resp:?}");
    }
}

#[test]
fn new_sort_syntax_orders_by_each_key() {
    let srv = TestServer::start();
    create_sample(&srv);
    let page = srv.list("sort=name:asc");
    assert_eq!(
        field_seq(&page, "name"),
        ["alpha", "bravo", "charlie", "delta"]
    );
    let page = srv.list("sort=name");
    assert_eq!(
        field_seq(&page, "name"),
        ["delta", "charlie", "bravo", "alpha"],
        "missing direction means desc"
    );
    let page = srv.list("sort=disk_format:asc,name:asc");
    assert_eq!(
        pairs(&page),
        p(&[
            ("qcow2", "bravo"),
            ("qcow2", "delta"),
            ("raw", "alpha"),
            ("raw", "charlie")
        ])
    );
    let page = srv.list("sort=disk_format:desc,name");
    assert_eq!(
        pairs(&page),
        p(&[
            ("raw", "charlie"),
            ("raw", "alpha"),
            ("qcow2", "delta"),
            ("qcow2", "bravo")
        ])
    );
}

#[test]
fn combining_old_and_new_sort_syntax_is_bad_request() {
    let srv = TestServer::start();
    create_sample(&srv);
    for query in ["sort=name:asc&sort_key=name", "sort=name:asc&sort_dir=asc"] {
        let resp = srv.get(&format!("/v2/images?{query}"));
        assert_eq!(resp.status, 400, "{query}: {resp:?}");
    }
}

#[test]
fn invalid_new_sort_syntax_is_bad_request() {
    let srv = TestServer::start();
    create_sample(&srv);
    for query in [
        "sort=bogus:asc",
        "sort=name:sideways",
        "sort=name:asc,owner_x:desc",
    ] {
        let resp = srv.get(&format!("/v2/images?{query}"));
        assert_eq!(resp.status, 400, "{query}: {resp:?}");
    }
}

#[test]
fn sorted_paging_matches_single_page() {
    let srv = TestServer::start();
    for i in 0..9 {
        // Names collide in pairs so the tie-breakers matter for the marker.
        srv.create_image(json!({"name": format!("n{}", i / 2)}));
    }
    for query in [
        "sort_key=name&sort_dir=asc",
        "sort=name:desc",
        "sort_key=status",
    ] {
        let whole = srv.list_ids(query);
        assert_eq!(whole.len(), 9);
        let paged = srv.list_all_ids(&format!("{query}&limit=2"));
        assert_eq!(paged, whole, "{query}");
    }
}

#[test]
fn sort_by_size_puts_images_without_data_first_when_ascending() {
    let srv = TestServer::start();
    let s30 = srv.create_active_image(json!({}), &[1; 30]);
    let s10 = srv.create_active_image(json!({}), &[1; 10]);
    let s20 = srv.create_active_image(json!({}), &[1; 20]);
    let queued = id_of(&srv.create_image(json!({})));
    assert_eq!(
        srv.list_ids("sort_key=size&sort_dir=asc"),
        [queued, s10, s20, s30]
    );
}

#[test]
fn sort_by_status() {
    let srv = TestServer::start();
    let active = srv.create_active_image(json!({}), b"x");
    let queued = id_of(&srv.create_image(json!({})));
    assert_eq!(
        srv.list_ids("sort_key=status&sort_dir=asc"),
        [active.clone(), queued.clone()]
    );
    assert_eq!(srv.list_ids("sort=status:desc"), [queued, active]);
}
