//! Concurrent requests on one image: whatever the interleaving, each request's answer must be
//! true afterwards (a 204 tag add is kept), ids stay unique, and quotas are never exceeded
//! (status changes and quotas are decided inside one metadata transaction).

use std::collections::BTreeMap;

use glint_tests::{id_of, Resp, TestServer};
use serde_json::json;

/// Run `n` copies of `f(i)` at once and return their responses in index order.
fn all_at_once(n: usize, f: impl Fn(usize) -> Resp + Sync) -> Vec<Resp> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                s.spawn({
                    let f = &f;
                    move || f(i)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("request thread"))
            .collect()
    })
}

fn count_statuses(responses: &[Resp]) -> BTreeMap<u16, usize> {
    let mut counts = BTreeMap::new();
    for r in responses {
        *counts.entry(r.status).or_default() += 1;
    }
    counts
}

#[test]
fn concurrent_creates_with_one_id_make_exactly_one_image() {
    let srv = TestServer::start();
    let id = uuid::Uuid::new_v4().to_string();
    let responses = all_at_once(12, |i| {
        srv.post_json(
            "/v2/images",
            &json!({"id": id, "name": format!("racer-{i}")}),
        )
    });
    assert_eq!(
        count_statuses(&responses),
        BTreeMap::from([(201, 1), (409, 11)])
    );
    let winner = responses.iter().find(|r| r.status == 201).unwrap().json();
    assert_eq!(srv.image(&id)["name"], winner["name"]);
    assert_eq!(srv.list_ids(""), [id.as_str()]);
}

#[test]
fn concurrent_tag_adds_are_all_kept() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({})));
    let responses = all_at_once(16, |i| {
        srv.request("PUT", &format!("/v2/images/{id}/tags/t{i:02}"))
            .send()
    });
    assert_eq!(count_statuses(&responses), BTreeMap::from([(204, 16)]));
    let mut tags: Vec<String> = srv.image(&id)["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    tags.sort();
    let expected: Vec<String> = (0..16).map(|i| format!("t{i:02}")).collect();
    assert_eq!(tags, expected, "every 204 tag add is kept");
}

#[test]
fn concurrent_property_adds_are_all_kept() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({})));
    let responses = all_at_once(16, |i| {
        srv.patch(
            &id,
            json!([{"op": "add", "path": format!("/p{i:02}"), "value": "v"}]),
        )
    });
    assert_eq!(count_statuses(&responses), BTreeMap::from([(200, 16)]));
    let image = srv.image(&id);
    for i in 0..16 {
        assert_eq!(image[format!("p{i:02}")], "v", "p{i:02} lost: {image}");
    }
}

#[test]
fn tag_quota_holds_under_concurrent_adds() {
    let srv = TestServer::start_with_config("image_tag_quota = 5\n");
    let id = id_of(&srv.create_image(json!({})));
    let responses = all_at_once(16, |i| {
        srv.request("PUT", &format!("/v2/images/{id}/tags/q{i:02}"))
            .send()
    });
    assert_eq!(
        count_statuses(&responses),
        BTreeMap::from([(204, 5), (413, 11)])
    );
    assert_eq!(srv.image(&id)["tags"].as_array().unwrap().len(), 5);
}

#[test]
fn property_quota_holds_under_concurrent_adds() {
    let srv = TestServer::start_with_config("image_property_quota = 5\n");
    let id = id_of(&srv.create_image(json!({})));
    let responses = all_at_once(16, |i| {
        srv.patch(
            &id,
            json!([{"op": "add", "path": format!("/q{i:02}"), "value": "v"}]),
        )
    });
    assert_eq!(
        count_statuses(&responses),
        BTreeMap::from([(200, 5), (413, 11)])
    );
    let image = srv.image(&id);
    let extras = (0..16)
        .filter(|i| image.get(format!("q{i:02}")).is_some())
        .count();
    assert_eq!(extras, 5, "{image}");
}

#[test]
fn concurrent_deletes_succeed_once() {
    let srv = TestServer::start();
    let id = srv.create_active_image(json!({}), b"bytes");
    let responses = all_at_once(10, |_| srv.delete(&format!("/v2/images/{id}")));
    assert_eq!(
        count_statuses(&responses),
        BTreeMap::from([(204, 1), (404, 9)])
    );
    assert!(!srv.image_file(&id).exists());
}

#[test]
fn concurrent_uploads_to_one_image_store_exactly_one() {
    let srv = TestServer::start();
    let id = srv.create_raw_image(json!({}));
    let payloads: Vec<Vec<u8>> = (0..6)
        .map(|i| glint_tests::random_bytes(512 * 1024, 70 + i))
        .collect();
    let responses = all_at_once(6, |i| srv.upload_streaming(&id, &payloads[i], false));
    let counts = count_statuses(&responses);
    assert_eq!(counts.get(&204), Some(&1), "{counts:?}");
    assert_eq!(counts.get(&409), Some(&5), "{counts:?}");
    let winner = responses.iter().position(|r| r.status == 204).unwrap();
    let image = srv.image(&id);
    assert_eq!(image["checksum"], glint_tests::md5_hex(&payloads[winner]));
    assert!(srv.download(&id).expect_status(200).body == payloads[winner]);
}
