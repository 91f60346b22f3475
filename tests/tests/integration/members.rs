//! Image members over HTTP, in noauth mode (every caller is an admin of project "glint"):
//! `/v2/images/{id}/members[/{member_id}]`, their schemas, statuses and errors (§4.13).

use glint_tests::{id_of, TestServer};
use serde_json::{json, Value};

fn members_path(id: &str) -> String {
    format!("/v2/images/{id}/members")
}

fn add(srv: &TestServer, id: &str, member: &str) -> glint_tests::Resp {
    srv.post_json(&members_path(id), &json!({ "member": member }))
}

fn set_status(srv: &TestServer, id: &str, member: &str, body: &Value) -> glint_tests::Resp {
    srv.request("PUT", &format!("{}/{member}", members_path(id)))
        .json(body)
        .send()
}

#[test]
fn add_list_show_update_delete() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({"name": "to share"})));
    // POST answers 200, not 201, with a pending member.
    let member = add(&srv, &id, "B").expect_status(200).json();
    assert_eq!(member["member_id"], "B");
    assert_eq!(member["image_id"], id.as_str());
    assert_eq!(member["status"], "pending");
    assert_eq!(member["schema"], "/v2/schemas/member");
    assert!(member["created_at"].as_str().unwrap().ends_with('Z'));
    add(&srv, &id, "C").expect_status(200);

    let list = srv.get_json(&members_path(&id));
    assert_eq!(list["schema"], "/v2/schemas/members");
    let ids: Vec<&str> = list["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["member_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["B", "C"]);

    let accepted = set_status(&srv, &id, "B", &json!({"status": "accepted"}))
        .expect_status(200)
        .json();
    assert_eq!(accepted["status"], "accepted");
    let shown = srv.get_json(&format!("{}/B", members_path(&id)));
    assert_eq!(shown["status"], "accepted");

    srv.delete(&format!("{}/B", members_path(&id)))
        .expect_status(204);
    srv.get(&format!("{}/B", members_path(&id)))
        .expect_status(404);
    srv.delete(&format!("{}/B", members_path(&id)))
        .expect_status(404);
}

#[test]
fn glance_errors() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({})));
    let missing = srv
        .post_json(&members_path(&id), &json!({}))
        .expect_status(400);
    assert!(
        missing.text().contains("Member to be added not specified"),
        "{}",
        missing.text()
    );
    srv.post_json(&members_path(&id), &json!({"member": ""}))
        .expect_status(400);
    srv.request("POST", &members_path(&id))
        .send()
        .expect_status(400);
    add(&srv, &id, "B").expect_status(200);
    let duplicate = add(&srv, &id, "B").expect_status(409);
    assert!(
        duplicate
            .text()
            .contains(&format!("Member B is duplicated for image {id}")),
        "{}",
        duplicate.text()
    );
    let no_status = set_status(&srv, &id, "B", &json!({})).expect_status(400);
    assert!(no_status.text().contains("Status not specified"));
    set_status(&srv, &id, "B", &json!({"status": "maybe"})).expect_status(400);
    set_status(&srv, &id, "Z", &json!({"status": "accepted"})).expect_status(404);
    srv.request("PATCH", &format!("{}/B", members_path(&id)))
        .send()
        .expect_status(405);
    // Unknown image and non-UUID ids are 404.
    add(&srv, "00000000-0000-4000-8000-000000000000", "B").expect_status(404);
    srv.get(&members_path("not-a-uuid")).expect_status(404);
}

#[test]
fn only_shared_images_have_members() {
    let srv = TestServer::start();
    let private = id_of(&srv.create_image(json!({"visibility": "private"})));
    add(&srv, &private, "B").expect_status(403);
    let list = srv.get(&members_path(&private)).expect_status(403);
    assert!(
        list.text().contains("Only shared images have members."),
        "{}",
        list.text()
    );
    srv.get(&format!("{}/B", members_path(&private)))
        .expect_status(404);

    // Rows survive a visibility change but only count while the image is shared.
    let shared = id_of(&srv.create_image(json!({})));
    add(&srv, &shared, "B").expect_status(200);
    let to = |v: &str| json!([{"op": "replace", "path": "/visibility", "value": v}]);
    srv.patch(&shared, to("private")).expect_status(200);
    srv.get(&members_path(&shared)).expect_status(403);
    srv.patch(&shared, to("shared")).expect_status(200);
    assert_eq!(
        srv.get_json(&members_path(&shared))["members"][0]["member_id"],
        "B"
    );
}

#[test]
fn member_quota_is_413() {
    let srv = TestServer::start_with_config("image_member_quota = 2\n");
    let id = id_of(&srv.create_image(json!({})));
    add(&srv, &id, "B").expect_status(200);
    add(&srv, &id, "C").expect_status(200);
    let over = add(&srv, &id, "D").expect_status(413);
    assert!(over.text().contains("Maximum: 2"), "{}", over.text());
}

#[test]
fn deleting_the_image_deletes_its_members() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({})));
    add(&srv, &id, "B").expect_status(200);
    srv.delete(&format!("/v2/images/{id}")).expect_status(204);
    srv.get(&members_path(&id)).expect_status(404);
}

#[test]
fn member_schemas() {
    let srv = TestServer::start();
    let member = srv.get_json("/v2/schemas/member");
    assert_eq!(member["name"], "member");
    assert_eq!(
        member["properties"]["status"]["enum"],
        json!(["pending", "accepted", "rejected"])
    );
    assert_eq!(member["additionalProperties"], false);
    let members = srv.get_json("/v2/schemas/members");
    assert_eq!(members["name"], "members");
    assert_eq!(members["properties"]["members"]["items"]["name"], "member");
}
