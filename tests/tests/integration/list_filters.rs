//! `GET /v2/images` filters (§5.3) and what an admin sees by default (§5.4).

use std::collections::BTreeSet;

use glint_tests::{id_of, md5_hex, urlencode, TestServer};
use serde_json::json;

fn set(ids: Vec<String>) -> BTreeSet<String> {
    ids.into_iter().collect()
}

fn set_of(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).clone()).collect()
}

#[track_caller]
fn assert_bad_request(srv: &TestServer, query: &str) {
    let resp = srv.get(&format!("/v2/images?{query}"));
    assert_eq!(resp.status, 400, "{query}: {resp:?}");
}

#[test]
fn name_filter_is_exact() {
    let srv = TestServer::start();
    let a = id_of(&srv.create_image(json!({"name": "cirros"})));
    let b = id_of(&srv.create_image(json!({"name": "cirros"})));
    srv.create_image(json!({"name": "cirros-2"}));
    srv.create_image(json!({"name": "Cirros"}));
    assert_eq!(set(srv.list_ids("name=cirros")), set_of(&[&a, &b]));
    assert_eq!(set(srv.list_ids("name=eq:cirros")), set_of(&[&a, &b]));
    assert!(srv.list_ids("name=cirr").is_empty());
}

#[test]
fn name_in_operator_with_quoted_commas() {
    let srv = TestServer::start();
    let glass = id_of(&srv.create_image(json!({"name": "glass, darkly"})));
    let plain = id_of(&srv.create_image(json!({"name": "plain"})));
    let other = id_of(&srv.create_image(json!({"name": "other"})));
    srv.create_image(json!({"name": "glass"}));
    assert_eq!(
        set(srv.list_ids("name=in:plain,other")),
        set_of(&[&plain, &other])
    );
    let query = format!("name={}", urlencode("in:\"glass, darkly\",plain"));
    assert_eq!(set(srv.list_ids(&query)), set_of(&[&glass, &plain]));
    assert_bad_request(
        &srv,
        &format!("name={}", urlencode("in:\"glass, darkly,plain")),
    );
}

#[test]
fn name_in_operator_with_escaped_quote() {
    let srv = TestServer::start();
    let quoted = id_of(&srv.create_image(json!({"name": "say \"hi\", ok"})));
    let plain = id_of(&srv.create_image(json!({"name": "plain"})));
    let query = format!("name={}", urlencode(r#"in:"say \"hi\", ok",plain"#));
    assert_eq!(set(srv.list_ids(&query)), set_of(&[&quoted, &plain]));
}

#[test]
fn name_with_colon_needs_eq_operator() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({"name": "foo:bar"})));
    assert_bad_request(&srv, "name=foo:bar");
    assert_eq!(srv.list_ids("name=eq:foo:bar"), [id]);
}

#[test]
fn status_filter_with_and_without_in() {
    let srv = TestServer::start();
    let active = srv.create_active_image(json!({}), b"x");
    let queued = id_of(&srv.create_image(json!({})));
    let deactivated = srv.create_active_image(json!({}), b"y");
    srv.post_empty(&format!("/v2/images/{deactivated}/actions/deactivate"))
        .expect_status(204);
    assert_eq!(srv.list_ids("status=active"), [active.as_str()]);
    assert_eq!(srv.list_ids("status=queued"), [queued.as_str()]);
    assert_eq!(srv.list_ids("status=deactivated"), [deactivated]);
    assert_eq!(
        set(srv.list_ids("status=in:active,queued")),
        set_of(&[&active, &queued])
    );
    assert!(srv.list_ids("status=saving").is_empty());
}

#[test]
fn id_and_format_filters() {
    let srv = TestServer::start();
    let raw = id_of(&srv.create_image(json!({"disk_format": "raw", "container_format": "bare"})));
    let qcow = id_of(&srv.create_image(json!({"disk_format": "qcow2", "container_format": "ovf"})));
    let iso = id_of(&srv.create_image(json!({"disk_format": "iso", "container_format": "bare"})));
    assert_eq!(srv.list_ids("disk_format=qcow2"), [qcow.as_str()]);
    assert_eq!(
        set(srv.list_ids("disk_format=in:qcow2,raw")),
        set_of(&[&raw, &qcow])
    );
    assert_eq!(
        set(srv.list_ids("container_format=bare")),
        set_of(&[&raw, &iso])
    );
    assert_eq!(srv.list_ids(&format!("id={iso}")), [iso.as_str()]);
    assert_eq!(
        set(srv.list_ids(&format!("id=in:{iso},{raw}"))),
        set_of(&[&iso, &raw])
    );
}

#[test]
fn visibility_filter_and_admin_default_listing() {
    let srv = TestServer::start();
    let mut by_vis = std::collections::BTreeMap::new();
    for vis in ["public", "private", "shared", "community"] {
        by_vis.insert(vis, id_of(&srv.create_image(json!({"visibility": vis}))));
    }
    let foreign_community =
        id_of(&srv.create_image(json!({"visibility": "community", "owner": "someoneelse"})));
    let foreign_private =
        id_of(&srv.create_image(json!({"visibility": "private", "owner": "someoneelse"})));
    for vis in ["public", "shared"] {
        assert_eq!(
            set(srv.list_ids(&format!("visibility={vis}"))),
            BTreeSet::from([by_vis[vis].clone()]),
            "visibility={vis}"
        );
    }
    // An admin sees other projects' private images too.
    assert_eq!(
        set(srv.list_ids("visibility=private")),
        set_of(&[&by_vis["private"], &foreign_private])
    );
    assert_eq!(
        set(srv.list_ids("visibility=community")),
        set_of(&[&by_vis["community"], &foreign_community])
    );
    let mut all: BTreeSet<String> = by_vis.values().cloned().collect();
    all.insert(foreign_private.clone());
    // An admin sees every image except other projects' community images (§5.4).
    assert_eq!(set(srv.list_ids("")), all, "default listing");
    all.insert(foreign_community);
    assert_eq!(set(srv.list_ids("visibility=all")), all);
    assert_bad_request(&srv, "visibility=bogus");
}

#[test]
fn owner_filter() {
    let srv = TestServer::start();
    let mine = srv.create_image(json!({}));
    let theirs = id_of(&srv.create_image(json!({"owner": "otherproject"})));
    let owner = mine["owner"].as_str().unwrap();
    assert_eq!(srv.list_ids(&format!("owner={owner}")), [id_of(&mine)]);
    assert_eq!(srv.list_ids("owner=otherproject"), [theirs]);
    assert!(srv.list_ids("owner=nobody").is_empty());
}

#[test]
fn size_range_filters_are_inclusive() {
    let srv = TestServer::start();
    let s10 = srv.create_active_image(json!({}), &[0; 10]);
    let s20 = srv.create_active_image(json!({}), &[0; 20]);
    let s30 = srv.create_active_image(json!({}), &[0; 30]);
    assert_eq!(srv.list_ids("size_min=15&size_max=25"), [s20.as_str()]);
    assert_eq!(set(srv.list_ids("size_min=20")), set_of(&[&s20, &s30]));
    assert_eq!(set(srv.list_ids("size_max=20")), set_of(&[&s10, &s20]));
    assert_eq!(srv.list_ids("size_min=10&size_max=10"), [s10]);
    // The generic <column>_min/_max rule; raw/bare data has virtual_size = its length.
    assert_eq!(
        srv.list_ids("virtual_size_min=15&virtual_size_max=25"),
        [s20.as_str()]
    );
    assert_bad_request(&srv, "size_min=abc");
    assert_bad_request(&srv, "size_max=1.5x");
}

#[test]
fn created_at_and_updated_at_comparison_operators() {
    let srv = TestServer::start();
    let image = srv.create_image(json!({}));
    let id = id_of(&image);
    let created = image["created_at"].as_str().unwrap().to_owned();
    let updated = image["updated_at"].as_str().unwrap().to_owned();
    let found = |query: String| srv.list_ids(&query).contains(&id);
    assert!(
        !found(format!("created_at=gt:{created}")),
        "gt excludes equal"
    );
    assert!(found(format!("created_at=gte:{created}")));
    assert!(
        !found(format!("created_at=lt:{created}")),
        "lt excludes equal"
    );
    assert!(found(format!("created_at=lte:{created}")));
    assert!(found(format!("created_at=eq:{created}")));
    assert!(
        found(format!("created_at={created}")),
        "no operator means eq"
    );
    assert!(!found(format!("created_at=neq:{created}")));
    assert!(found("created_at=gt:2000-01-01T00:00:00Z".to_owned()));
    assert!(!found("created_at=lt:2000-01-01T00:00:00Z".to_owned()));
    assert!(found("created_at=lt:2999-01-01T00:00:00Z".to_owned()));
    assert!(found(format!("updated_at=gte:{updated}")));
    assert!(!found(format!("updated_at=gt:{updated}")));
    assert!(found("updated_at=neq:2000-01-01T00:00:00Z".to_owned()));
    // Any ISO 8601 offset works, not only Z (`+` must be percent-encoded in a query).
    assert!(found(
        "created_at=lt:2999-01-01T00:00:00%2B00:00".to_owned()
    ));
    assert!(!found(
        "created_at=lt:2000-01-01T02:00:00%2B02:00".to_owned()
    ));
}

#[test]
fn bad_time_filters_are_bad_request() {
    let srv = TestServer::start();
    srv.create_image(json!({}));
    for query in [
        "created_at=gt:notatime",
        "created_at=notatime",
        "created_at=bogus:2020-01-01T00:00:00Z",
        "updated_at=lte:2020-13-45T00:00:00Z",
        "changes-since=2020-01-01T00:00:00Z",
    ] {
        assert_bad_request(&srv, query);
    }
}

#[test]
fn tag_filters_require_every_tag() {
    let srv = TestServer::start();
    let ab = id_of(&srv.create_image(json!({"tags": ["a", "b"]})));
    let a = id_of(&srv.create_image(json!({"tags": ["a"]})));
    srv.create_image(json!({"tags": ["b", "c"]}));
    assert_eq!(srv.list_ids("tag=a&tag=b"), [ab.as_str()]);
    assert_eq!(set(srv.list_ids("tag=a")), set_of(&[&ab, &a]));
    assert!(srv.list_ids("tag=a&tag=c").is_empty());
    assert!(srv.list_ids("tag=zzz").is_empty());
}

#[test]
fn extra_property_and_base_column_equality_filters() {
    let srv = TestServer::start();
    let ubuntu = id_of(&srv.create_image(json!({"os_distro": "ubuntu", "min_ram": 512})));
    let fedora = id_of(&srv.create_image(
        json!({"os_distro": "fedora", "hw_disk_bus": "virtio", "owner_specified.openstack.md5": "abc"}),
    ));
    srv.create_image(json!({}));
    assert_eq!(srv.list_ids("os_distro=ubuntu"), [ubuntu.as_str()]);
    assert_eq!(srv.list_ids("hw_disk_bus=virtio"), [fedora.as_str()]);
    assert_eq!(srv.list_ids("owner_specified.openstack.md5=abc"), [fedora]);
    assert!(srv.list_ids("os_distro=debian").is_empty());
    assert_eq!(srv.list_ids("min_ram=512"), [ubuntu.as_str()]);
    assert_eq!(srv.list_ids("os_distro=ubuntu&min_ram=512"), [ubuntu]);
    assert!(srv.list_ids("os_distro=ubuntu&min_ram=0").is_empty());
}

#[test]
fn hidden_images_are_excluded_unless_asked_for() {
    let srv = TestServer::start();
    let visible = id_of(&srv.create_image(json!({})));
    let hidden = id_of(&srv.create_image(json!({"os_hidden": true})));
    assert_eq!(srv.list_ids(""), [visible.as_str()]);
    assert_eq!(srv.list_ids("os_hidden=false"), [visible]);
    assert_eq!(srv.list_ids("os_hidden=true"), [hidden.as_str()]);
    // Hidden images are still shown by id.
    assert_eq!(srv.image(&hidden)["os_hidden"], true);
    assert_bad_request(&srv, "os_hidden=yes");
}

#[test]
fn os_hidden_filter_ignores_case() {
    // openstacksdk looks hidden images up by name with `os_hidden=True` (capital T), and
    // Glance lower-cases this value before checking it (§10.2: clients must keep working).
    let srv = TestServer::start();
    srv.create_image(json!({"name": "shown"}));
    let hidden = id_of(&srv.create_image(json!({"name": "hush", "os_hidden": true})));
    assert_eq!(srv.list_ids("os_hidden=True"), [hidden.as_str()]);
    assert_eq!(srv.list_ids("os_hidden=TRUE&name=hush"), [hidden.as_str()]);
    assert_eq!(srv.list_ids("os_hidden=False").len(), 1);
}

#[test]
fn protected_filter() {
    let srv = TestServer::start();
    let open = id_of(&srv.create_image(json!({})));
    let guarded = id_of(&srv.create_image(json!({"protected": true})));
    assert_eq!(srv.list_ids("protected=true"), [guarded]);
    assert_eq!(srv.list_ids("protected=false"), [open]);
    assert_bad_request(&srv, "protected=maybe");
}

#[test]
fn checksum_and_hash_filters_find_duplicates() {
    let srv = TestServer::start();
    let data = b"same bytes";
    let a = srv.create_active_image(json!({}), data);
    let b = srv.create_active_image(json!({}), data);
    srv.create_active_image(json!({}), b"other bytes");
    assert_eq!(
        set(srv.list_ids(&format!("checksum={}", md5_hex(data)))),
        set_of(&[&a, &b])
    );
    let hash = srv.image(&a)["os_hash_value"].as_str().unwrap().to_owned();
    assert_eq!(
        set(srv.list_ids(&format!("os_hash_value={hash}"))),
        set_of(&[&a, &b])
    );
}

#[test]
fn filters_combine_with_and() {
    let srv = TestServer::start();
    let hit = srv.create_active_image(json!({"name": "x"}), b"x");
    srv.create_image(json!({"name": "x"}));
    srv.create_active_image(json!({"name": "y"}), b"y");
    assert_eq!(srv.list_ids("name=x&status=active"), [hit]);
}

#[test]
fn os_hash_algo_filter_matches_the_column() {
    // Issue 2: os_hash_algo is an image column, so it filters by equality on it (it was
    // first taken for an extra property, which no image has).
    let srv = TestServer::start();
    let hashed = srv.create_active_image(json!({}), b"bytes");
    srv.create_image(json!({}));
    assert_eq!(srv.list_ids("os_hash_algo=sha512"), [hashed.as_str()]);
    assert!(srv.list_ids("os_hash_algo=md5").is_empty());
}
