//! `POST /v2/images/{id}/actions/deactivate|reactivate` (§4.6).

use glint_tests::{id_of, raw, TestServer};
use serde_json::json;

fn action(srv: &TestServer, id: &str, name: &str) -> glint_tests::Resp {
    srv.post_empty(&format!("/v2/images/{id}/actions/{name}"))
}

#[test]
fn deactivate_and_reactivate_an_active_image() {
    let srv = TestServer::start();
    let id = srv.create_active_image(json!({}), b"payload");
    let resp = action(&srv, &id, "deactivate").expect_status(204);
    assert!(resp.body.is_empty());
    assert_eq!(srv.image(&id)["status"], "deactivated");
    assert!(
        srv.list_ids("").contains(&id),
        "deactivated images are still listed"
    );
    let resp = action(&srv, &id, "reactivate").expect_status(204);
    assert!(resp.body.is_empty());
    assert_eq!(srv.image(&id)["status"], "active");
    assert_eq!(srv.download(&id).expect_status(200).body, b"payload");
}

#[test]
fn repeated_deactivate_or_reactivate_is_a_no_op() {
    let srv = TestServer::start();
    let id = srv.create_active_image(json!({}), b"payload");
    action(&srv, &id, "reactivate").expect_status(204);
    assert_eq!(srv.image(&id)["status"], "active");
    action(&srv, &id, "deactivate").expect_status(204);
    action(&srv, &id, "deactivate").expect_status(204);
    assert_eq!(srv.image(&id)["status"], "deactivated");
}

#[test]
fn actions_on_queued_image_are_forbidden() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({})));
    for name in ["deactivate", "reactivate"] {
        let resp = action(&srv, &id, name);
        assert_eq!(resp.status, 403, "{name}: {resp:?}");
    }
    assert_eq!(srv.image(&id)["status"], "queued");
}

#[test]
fn actions_on_unknown_image_are_404() {
    let srv = TestServer::start();
    let id = uuid::Uuid::new_v4().to_string();
    for name in ["deactivate", "reactivate"] {
        assert_eq!(action(&srv, &id, name).status, 404, "{name}");
    }
}

#[test]
fn unknown_action_is_404() {
    let srv = TestServer::start();
    let id = srv.create_active_image(json!({}), b"x");
    let resp = action(&srv, &id, "explode");
    assert_eq!(resp.status, 404, "{resp:?}");
}

#[test]
fn actions_with_a_body_are_bad_request() {
    let srv = TestServer::start();
    let id = srv.create_active_image(json!({}), b"x");
    let resp = srv.raw(&raw::request(
        "POST",
        &format!("/v2/images/{id}/actions/deactivate"),
        &[("Content-Type", "application/json")],
        b"{}",
    ));
    assert_eq!(resp.status, 400, "{resp:?}");
    assert_eq!(srv.image(&id)["status"], "active");
}

#[test]
fn actions_refuse_other_methods_with_allow_post() {
    let srv = TestServer::start();
    let id = srv.create_active_image(json!({}), b"x");
    for method in ["GET", "PUT", "DELETE"] {
        let resp = srv
            .request(method, &format!("/v2/images/{id}/actions/deactivate"))
            .send();
        assert_eq!(resp.status, 405, "{method}: {resp:?}");
        assert_eq!(resp.header("allow"), Some("POST"), "{method}");
    }
}

#[test]
fn admin_may_download_a_deactivated_image() {
    // In noauth mode every caller is admin, and admins are exempt from the 403 (§4.8).
    let srv = TestServer::start();
    let data = glint_tests::random_bytes(10_000, 7);
    let id = srv.create_active_image(json!({}), &data);
    action(&srv, &id, "deactivate").expect_status(204);
    let resp = srv.download(&id).expect_status(200);
    assert_eq!(resp.body, data);
}

#[test]
fn upload_to_deactivated_image_conflicts() {
    let srv = TestServer::start();
    let id = srv.create_active_image(json!({}), b"x");
    action(&srv, &id, "deactivate").expect_status(204);
    let resp = srv.upload(&id, b"y");
    assert_eq!(resp.status, 409, "{resp:?}");
    assert_eq!(srv.image(&id)["status"], "deactivated");
}
