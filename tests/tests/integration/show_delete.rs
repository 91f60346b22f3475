//! `GET /v2/images/{id}` (§4.2) and `DELETE /v2/images/{id}` (§4.5).

use glint_tests::{id_of, raw, TestServer};
use serde_json::json;

#[test]
fn show_unknown_or_non_uuid_id_is_404() {
    let srv = TestServer::start();
    let unknown = uuid::Uuid::new_v4();
    assert_eq!(srv.get(&format!("/v2/images/{unknown}")).status, 404);
    // openstackclient relies on a non-UUID giving 404 (then it searches by name).
    for id in ["cirros", "not-a-uuid", "12345", "%20"] {
        let resp = srv.get(&format!("/v2/images/{id}"));
        assert_eq!(resp.status, 404, "{id}: {resp:?}");
    }
}

#[test]
fn show_with_a_body_is_bad_request() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({})));
    let resp = srv.raw(&raw::request(
        "GET",
        &format!("/v2/images/{id}"),
        &[("Content-Type", "application/json")],
        b"{}",
    ));
    assert_eq!(resp.status, 400, "{resp:?}");
}

#[test]
fn delete_returns_204_then_image_is_gone() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({"name": "doomed"})));
    let resp = srv.delete(&format!("/v2/images/{id}")).expect_status(204);
    assert!(resp.body.is_empty(), "204 has no body");
    assert_eq!(srv.get(&format!("/v2/images/{id}")).status, 404);
    assert!(
        !srv.list_ids("").contains(&id),
        "deleted images are not listed"
    );
    let resp = srv.delete(&format!("/v2/images/{id}"));
    assert_eq!(resp.status, 404, "second delete: {resp:?}");
}

#[test]
fn delete_unknown_image_is_404() {
    let srv = TestServer::start();
    let resp = srv.delete(&format!("/v2/images/{}", uuid::Uuid::new_v4()));
    assert_eq!(resp.status, 404, "{resp:?}");
    assert_eq!(srv.delete("/v2/images/not-a-uuid").status, 404);
}

#[test]
fn delete_active_image_removes_its_data_file() {
    let srv = TestServer::start();
    let id = srv.create_active_image(json!({}), b"some image bytes");
    assert!(srv.image_file(&id).is_file(), "data lives at images/<id>");
    srv.delete(&format!("/v2/images/{id}")).expect_status(204);
    assert!(!srv.image_file(&id).exists(), "data file removed on delete");
    assert_eq!(srv.download(&id).status, 404);
}

#[test]
fn delete_protected_image_is_forbidden_until_unprotected() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({"protected": true})));
    let resp = srv.delete(&format!("/v2/images/{id}"));
    assert_eq!(resp.status, 403, "{resp:?}");
    assert_eq!(srv.image(&id)["status"], "queued", "still there");
    srv.patch(
        &id,
        json!([{"op": "replace", "path": "/protected", "value": false}]),
    )
    .expect_status(200);
    srv.delete(&format!("/v2/images/{id}")).expect_status(204);
}

#[test]
fn delete_with_a_body_is_bad_request() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({})));
    let resp = srv.raw(&raw::request(
        "DELETE",
        &format!("/v2/images/{id}"),
        &[("Content-Type", "application/json")],
        b"{}",
    ));
    assert_eq!(resp.status, 400, "{resp:?}");
    assert_eq!(srv.image(&id)["status"], "queued", "not deleted");
}

#[test]
fn delete_deactivated_image_works() {
    let srv = TestServer::start();
    let id = srv.create_active_image(json!({}), b"data");
    srv.post_empty(&format!("/v2/images/{id}/actions/deactivate"))
        .expect_status(204);
    srv.delete(&format!("/v2/images/{id}")).expect_status(204);
    assert_eq!(srv.get(&format!("/v2/images/{id}")).status, 404);
}
