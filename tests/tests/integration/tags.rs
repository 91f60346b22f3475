//! `PUT` / `DELETE /v2/images/{id}/tags/{tag}` (§4.12).

use glint_tests::{id_of, raw, urlencode, TestServer};
use serde_json::{json, Value};

fn sorted_tags(image: &Value) -> Vec<String> {
    let mut tags: Vec<String> = image["tags"]
        .as_array()
        .unwrap_or_else(|| panic!("tags array in {image}"))
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    tags.sort();
    tags
}

fn put_tag(srv: &TestServer, id: &str, tag: &str) -> glint_tests::Resp {
    srv.request("PUT", &format!("/v2/images/{id}/tags/{tag}"))
        .send()
}

#[test]
fn add_tag_returns_204_and_repeat_is_a_no_op() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({})));
    let resp = put_tag(&srv, &id, "alpha").expect_status(204);
    assert!(resp.body.is_empty());
    put_tag(&srv, &id, "beta").expect_status(204);
    put_tag(&srv, &id, "alpha").expect_status(204);
    assert_eq!(sorted_tags(&srv.image(&id)), ["alpha", "beta"]);
}

#[test]
fn delete_tag_returns_204_then_404() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({"tags": ["a", "b"]})));
    let resp = srv
        .delete(&format!("/v2/images/{id}/tags/a"))
        .expect_status(204);
    assert!(resp.body.is_empty());
    assert_eq!(sorted_tags(&srv.image(&id)), ["b"]);
    let resp = srv.delete(&format!("/v2/images/{id}/tags/a"));
    assert_eq!(resp.status, 404, "tag no longer there: {resp:?}");
    let resp = srv.delete(&format!("/v2/images/{id}/tags/never"));
    assert_eq!(resp.status, 404, "{resp:?}");
}

#[test]
fn tags_on_unknown_image_are_404() {
    let srv = TestServer::start();
    let id = uuid::Uuid::new_v4().to_string();
    assert_eq!(put_tag(&srv, &id, "a").status, 404);
    assert_eq!(srv.delete(&format!("/v2/images/{id}/tags/a")).status, 404);
}

#[test]
fn tag_in_path_is_url_decoded() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({})));
    let tag = "my tag ü:ok";
    put_tag(&srv, &id, &urlencode(tag)).expect_status(204);
    assert_eq!(sorted_tags(&srv.image(&id)), [tag]);
    srv.delete(&format!("/v2/images/{id}/tags/{}", urlencode(tag)))
        .expect_status(204);
    assert!(sorted_tags(&srv.image(&id)).is_empty());
}

#[test]
fn tag_longer_than_255_is_bad_request() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({})));
    let resp = put_tag(&srv, &id, &"t".repeat(256));
    assert_eq!(resp.status, 400, "{resp:?}");
    put_tag(&srv, &id, &"t".repeat(255)).expect_status(204);
}

#[test]
fn tag_over_quota_is_413() {
    let srv = TestServer::start_with_config("image_tag_quota = 2\n");
    let id = id_of(&srv.create_image(json!({})));
    put_tag(&srv, &id, "a").expect_status(204);
    put_tag(&srv, &id, "b").expect_status(204);
    let resp = put_tag(&srv, &id, "c");
    assert_eq!(resp.status, 413, "{resp:?}");
    // Re-adding an existing tag is a no-op, not a quota breach.
    put_tag(&srv, &id, "a").expect_status(204);
    assert_eq!(sorted_tags(&srv.image(&id)), ["a", "b"]);
}

#[test]
fn tag_routes_reject_a_body() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({})));
    for method in ["PUT", "DELETE"] {
        let resp = srv.raw(&raw::request(
            method,
            &format!("/v2/images/{id}/tags/x"),
            &[("Content-Type", "application/json")],
            b"{}",
        ));
        assert_eq!(resp.status, 400, "{method}: {resp:?}");
    }
    assert!(sorted_tags(&srv.image(&id)).is_empty());
}

#[test]
fn tag_route_refuses_other_methods_with_allow() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({})));
    for method in ["GET", "POST", "PATCH"] {
        let resp = srv
            .request(method, &format!("/v2/images/{id}/tags/x"))
            .send();
        assert_eq!(resp.status, 405, "{method}: {resp:?}");
        let mut allow: Vec<&str> = resp
            .header("allow")
            .unwrap_or_else(|| panic!("no Allow: {resp:?}"))
            .split(',')
            .map(str::trim)
            .collect();
        allow.sort_unstable();
        assert_eq!(allow, ["DELETE", "PUT"]);
    }
}

#[test]
fn tags_work_on_active_images_and_show_in_list_filter() {
    let srv = TestServer::start();
    let id = srv.create_active_image(json!({}), b"x");
    put_tag(&srv, &id, "gold").expect_status(204);
    assert_eq!(srv.list_ids("tag=gold"), [id]);
}
