//! Handler-level tests of policy, visibility, members and quotas: an `App` on a temp dir, the
//! handlers called directly with contexts of several projects and roles (no HTTP, no auth).

use http::header::{HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use super::{image_data, images, info, list, members, patch, tags};
use crate::app::App;
use crate::config::Config;
use crate::context::{RequestContext, TokenScope};
use crate::test_util::{block_on, json_body, project_ctx, projectless_ctx, test_app};

fn member_of(project: &str) -> RequestContext {
    project_ctx(project, &["member", "reader"])
}

fn reader_of(project: &str) -> RequestContext {
    project_ctx(project, &["reader"])
}

fn admin() -> RequestContext {
    project_ctx("admin-project", &["admin", "member", "reader"])
}

/// Creates an image as `ctx` and returns its id.
fn create(app: &App, ctx: &RequestContext, body: Value) -> String {
    let response = block_on(images::create(
        app,
        ctx,
        &HeaderMap::new(),
        body.to_string().as_bytes(),
    ))
    .expect("create");
    json_body(&response)["id"].as_str().expect("id").to_owned()
}

fn status<T>(result: Result<T, crate::error::ApiError>) -> u16 {
    match result {
        Ok(_) => 200,
        Err(e) => e.status().as_u16(),
    }
}

fn show(app: &App, ctx: &RequestContext, id: &str) -> u16 {
    status(block_on(images::show(app, ctx, id)))
}

fn list_ids(app: &App, ctx: &RequestContext, query: &str) -> Vec<String> {
    let response = block_on(list::list(app, ctx, query)).expect("list");
    let mut ids: Vec<String> = json_body(&response)["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    ids
}

fn sorted(ids: &[&String]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

fn patch(app: &App, ctx: &RequestContext, id: &str, ops: Value) -> u16 {
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/openstack-images-v2.1-json-patch"),
    );
    status(block_on(patch::update(
        app,
        ctx,
        id,
        &headers,
        ops.to_string().as_bytes(),
    )))
}

fn add_member(app: &App, ctx: &RequestContext, id: &str, member: &str) -> u16 {
    let body = json!({ "member": member }).to_string();
    status(block_on(members::create(app, ctx, id, body.as_bytes())))
}

fn set_member_status(app: &App, ctx: &RequestContext, id: &str, member: &str, to: &str) -> u16 {
    let body = json!({ "status": to }).to_string();
    status(block_on(members::update(
        app,
        ctx,
        id,
        member,
        body.as_bytes(),
    )))
}

fn member_ids(app: &App, ctx: &RequestContext, id: &str) -> Result<Vec<String>, u16> {
    let response = block_on(members::list(app, ctx, id)).map_err(|e| e.status().as_u16())?;
    Ok(json_body(&response)["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["member_id"].as_str().expect("member_id").to_owned())
        .collect())
}

#[test]
fn sharing_between_projects_end_to_end() {
    let (_dir, app) = test_app(Config::default());
    sharing_between_projects(&app);
}

/// The same handlers on a catalog whose engine is networked: every read runs on the catalog's
/// read pool, none on the calling thread, and every answer is the same.
#[test]
fn handlers_run_unchanged_on_a_networked_catalog() {
    let (_dir, mut app) = test_app(Config::default());
    let meta_dir = tempfile::tempdir().expect("temp dir");
    let remote = std::sync::Arc::new(crate::catalog::testing::Remote::open(meta_dir.path()));
    app.catalog = std::sync::Arc::new(
        crate::catalog::Catalog::new(
            remote.clone(),
            "networked-test".parse().expect("node id"),
            app.writer.clone(),
        )
        .expect("catalog"),
    );
    sharing_between_projects(&app);
    let calls = remote.threads.lock().expect("lock").clone();
    assert!(calls.iter().any(|(call, _)| *call == "list_images"));
    assert!(calls.iter().any(|(call, _)| *call == "get_image"));
    let here = std::thread::current().name().unwrap_or("").to_owned();
    for (call, thread) in calls {
        assert_ne!(thread, here, "{call} ran on the calling thread");
        assert!(thread.starts_with("glint-"), "{call} ran on {thread}");
    }
}

fn sharing_between_projects(app: &App) {
    let (a, b, c) = (member_of("A"), member_of("B"), member_of("C"));
    let id = create(app, &a, json!({"name": "shared one"}));
    // Not shared with anybody yet: only A (and admins) see it.
    assert_eq!(show(app, &b, &id), 404);
    assert_eq!(show(app, &admin(), &id), 200);

    assert_eq!(add_member(app, &a, &id, "B"), 200);
    assert_eq!(add_member(app, &a, &id, "C"), 200);
    assert_eq!(add_member(app, &a, &id, "B"), 409);
    // Any member status can read the image at once...
    assert_eq!(show(app, &b, &id), 200);
    // ...but only accepted memberships are in the default list.
    assert!(list_ids(app, &b, "").is_empty());
    assert_eq!(list_ids(app, &b, "member_status=pending"), vec![id.clone()]);
    assert_eq!(list_ids(app, &b, "member_status=all"), vec![id.clone()]);
    assert_eq!(set_member_status(app, &b, &id, "B", "accepted"), 200);
    assert_eq!(list_ids(app, &b, ""), vec![id.clone()]);
    assert_eq!(list_ids(app, &b, "visibility=shared"), vec![id.clone()]);
    assert!(list_ids(app, &b, "member_status=pending").is_empty());
    assert_eq!(set_member_status(app, &b, &id, "B", "rejected"), 200);
    assert!(list_ids(app, &b, "").is_empty());
    assert_eq!(show(app, &b, &id), 200);

    // Only the member project answers for itself.
    assert_eq!(set_member_status(app, &a, &id, "B", "accepted"), 403);
    assert_eq!(set_member_status(app, &c, &id, "B", "accepted"), 404);
    assert_eq!(set_member_status(app, &admin(), &id, "B", "accepted"), 200);
    assert_eq!(set_member_status(app, &b, &id, "B", "maybe"), 400);

    // The owner lists every member; a member only itself; a stranger gets 404.
    assert_eq!(member_ids(app, &a, &id), Ok(vec!["B".into(), "C".into()]));
    assert_eq!(member_ids(app, &b, &id), Ok(vec!["B".into()]));
    assert_eq!(member_ids(app, &member_of("D"), &id), Err(404));
    assert_eq!(status(block_on(members::show(app, &b, &id, "B"))), 200);
    assert_eq!(status(block_on(members::show(app, &b, &id, "C"))), 404);
    assert_eq!(status(block_on(members::show(app, &a, &id, "Z"))), 404);

    // Members are read-only on the image, and cannot remove themselves.
    assert_eq!(
        patch(
            app,
            &b,
            &id,
            json!([{"op": "replace", "path": "/name", "value": "x"}])
        ),
        403
    );
    assert_eq!(status(block_on(members::delete(app, &b, &id, "B"))), 403);
    assert_eq!(add_member(app, &b, &id, "E"), 403);
    assert_eq!(status(block_on(members::delete(app, &a, &id, "B"))), 200);
    assert_eq!(status(block_on(members::delete(app, &a, &id, "B"))), 404);
    assert_eq!(show(app, &b, &id), 404);
}

#[test]
fn members_only_for_shared_images() {
    let (_dir, app) = test_app(Config::default());
    let a = member_of("A");
    let id = create(&app, &a, json!({"visibility": "private"}));
    assert_eq!(add_member(&app, &a, &id, "B"), 403);
    assert_eq!(member_ids(&app, &a, &id), Err(403));
    assert_eq!(status(block_on(members::show(&app, &a, &id, "B"))), 404);

    // Leaving `shared` freezes the members: they lose access until it is shared again.
    let shared = create(&app, &a, json!({}));
    assert_eq!(add_member(&app, &a, &shared, "B"), 200);
    let to = |v: &str| json!([{"op": "replace", "path": "/visibility", "value": v}]);
    assert_eq!(patch(&app, &a, &shared, to("private")), 200);
    assert_eq!(show(&app, &member_of("B"), &shared), 404);
    assert_eq!(member_ids(&app, &a, &shared), Err(403));
    assert_eq!(patch(&app, &a, &shared, to("shared")), 200);
    assert_eq!(show(&app, &member_of("B"), &shared), 200);
}

#[test]
fn member_request_bodies_and_quota() {
    let config = Config {
        image_member_quota: 1,
        ..Config::default()
    };
    let (_dir, app) = test_app(config);
    let a = member_of("A");
    let id = create(&app, &a, json!({}));
    let create_with =
        |body: &str| status(block_on(members::create(&app, &a, &id, body.as_bytes())));
    assert_eq!(create_with(""), 400);
    assert_eq!(create_with("{"), 400);
    assert_eq!(create_with("{}"), 400);
    assert_eq!(create_with(r#"{"member": ""}"#), 400);
    assert_eq!(create_with(r#"[1]"#), 400);
    assert_eq!(create_with(r#"{"member": "B"}"#), 200);
    assert_eq!(create_with(r#"{"member": "C"}"#), 413);
    let update_with = |body: &str| {
        status(block_on(members::update(
            &app,
            &member_of("B"),
            &id,
            "B",
            body.as_bytes(),
        )))
    };
    assert_eq!(update_with("{}"), 400);
    assert_eq!(update_with(r#"{"status": 1}"#), 400);
    assert_eq!(update_with(r#"{"status": "accepted"}"#), 200);
}

#[test]
fn deleting_an_image_removes_its_members() {
    let (_dir, app) = test_app(Config::default());
    let a = member_of("A");
    let id = create(&app, &a, json!({}));
    assert_eq!(add_member(&app, &a, &id, "B"), 200);
    assert_eq!(
        set_member_status(&app, &member_of("B"), &id, "B", "accepted"),
        200
    );
    assert_eq!(
        status(block_on(images::delete(
            &app,
            &a,
            &id,
            &http::HeaderMap::new()
        ))),
        200
    );
    assert!(block_on(app.catalog.images_shared_with("B"))
        .expect("index")
        .is_empty());
    assert!(list_ids(&app, &member_of("B"), "").is_empty());
}

#[test]
fn list_follows_visibility_rules_per_caller() {
    let (_dir, app) = test_app(Config::default());
    let a = member_of("A");
    let public = create(
        &app,
        &admin(),
        json!({"visibility": "public", "owner": "A"}),
    );
    let private = create(&app, &a, json!({"visibility": "private"}));
    let shared = create(&app, &a, json!({"visibility": "shared"}));
    let community = create(&app, &a, json!({"visibility": "community"}));
    let own_b = create(&app, &member_of("B"), json!({"visibility": "private"}));
    let b = reader_of("B");

    assert_eq!(list_ids(&app, &b, ""), sorted(&[&public, &own_b]));
    assert_eq!(
        list_ids(&app, &b, "visibility=community"),
        vec![community.clone()]
    );
    assert_eq!(
        list_ids(&app, &b, "visibility=all"),
        sorted(&[&public, &community, &own_b])
    );
    assert_eq!(
        list_ids(&app, &b, "visibility=private"),
        vec![own_b.clone()]
    );
    assert!(list_ids(&app, &b, "visibility=shared").is_empty());
    // The owner lists all of its own, community included.
    assert_eq!(
        list_ids(&app, &a, ""),
        sorted(&[&public, &private, &shared, &community])
    );
    // Admins list everything but other projects' community images, unless asked.
    assert_eq!(
        list_ids(&app, &admin(), ""),
        sorted(&[&public, &private, &shared, &own_b])
    );
    assert_eq!(list_ids(&app, &admin(), "visibility=all").len(), 5);
    // Without a role nothing may be listed.
    assert_eq!(
        status(block_on(list::list(&app, &project_ctx("B", &[]), ""))),
        403
    );
    // Show follows the same visibility: other projects' private and shared images are 404.
    assert_eq!(show(&app, &b, &private), 404);
    assert_eq!(show(&app, &b, &shared), 404);
    assert_eq!(show(&app, &b, &community), 200);
    assert_eq!(show(&app, &b, &public), 200);
}

#[test]
fn writes_need_the_member_role_in_the_owner_project() {
    let (_dir, app) = test_app(Config::default());
    let a = member_of("A");
    let public = create(
        &app,
        &admin(),
        json!({"visibility": "public", "owner": "A"}),
    );
    let private = create(&app, &a, json!({"visibility": "private"}));
    let rename = json!([{"op": "replace", "path": "/name", "value": "renamed"}]);
    // Visible but not theirs: 403; invisible: 404; a reader of the owner project: 403.
    assert_eq!(patch(&app, &member_of("B"), &public, rename.clone()), 403);
    assert_eq!(patch(&app, &member_of("B"), &private, rename.clone()), 404);
    assert_eq!(patch(&app, &reader_of("A"), &private, rename.clone()), 403);
    assert_eq!(patch(&app, &a, &private, rename), 200);
    assert_eq!(
        status(block_on(images::delete(
            &app,
            &member_of("B"),
            &public,
            &http::HeaderMap::new()
        ))),
        403
    );
    assert_eq!(
        status(block_on(images::delete(
            &app,
            &reader_of("A"),
            &public,
            &http::HeaderMap::new()
        ))),
        403
    );
    assert_eq!(
        status(block_on(images::set_active(
            &app,
            &member_of("B"),
            &public,
            false
        ))),
        403
    );
    assert_eq!(
        status(block_on(images::set_active(
            &app,
            &member_of("B"),
            &private,
            false
        ))),
        404
    );
    // Visibility changes: public needs admin, community the owner's member role.
    let to = |v: &str| json!([{"op": "replace", "path": "/visibility", "value": v}]);
    assert_eq!(patch(&app, &a, &private, to("public")), 403);
    assert_eq!(patch(&app, &a, &private, to("community")), 200);
    assert_eq!(patch(&app, &admin(), &private, to("public")), 200);
    // Only admins change owners.
    let owner = json!([{"op": "replace", "path": "/owner", "value": "B"}]);
    assert_eq!(patch(&app, &a, &private, owner.clone()), 403);
    assert_eq!(patch(&app, &admin(), &private, owner), 200);
    assert_eq!(
        status(block_on(images::delete(
            &app,
            &member_of("B"),
            &private,
            &http::HeaderMap::new()
        ))),
        200
    );
    assert_eq!(
        status(block_on(images::delete(
            &app,
            &admin(),
            &public,
            &http::HeaderMap::new()
        ))),
        200
    );
}

#[test]
fn create_needs_the_member_role_and_its_own_project() {
    let (_dir, app) = test_app(Config::default());
    let try_create = |ctx: &RequestContext, body: Value| {
        status(block_on(images::create(
            &app,
            ctx,
            &HeaderMap::new(),
            body.to_string().as_bytes(),
        )))
    };
    assert_eq!(try_create(&reader_of("A"), json!({})), 403);
    assert_eq!(try_create(&project_ctx("A", &[]), json!({})), 403);
    assert_eq!(try_create(&member_of("A"), json!({"owner": "B"})), 403);
    assert_eq!(
        try_create(&member_of("A"), json!({"visibility": "public"})),
        403
    );
    assert_eq!(
        try_create(&member_of("A"), json!({"visibility": "community"})),
        200
    );
    assert_eq!(
        try_create(&admin(), json!({"owner": "B", "visibility": "public"})),
        200
    );
}

#[test]
fn image_count_quota_and_usage() {
    let mut config = Config::default();
    config.quotas.image_count_total = 5;
    config.quotas.projects.insert(
        "A".into(),
        crate::config::QuotaOverrides {
            image_count_total: Some(1),
            ..Default::default()
        },
    );
    let (_dir, app) = test_app(config);
    let a = member_of("A");
    create(&app, &a, json!({}));
    let Err(refused) = block_on(images::create(&app, &a, &HeaderMap::new(), b"{}")) else {
        panic!("a second image is over the limit of 1");
    };
    assert_eq!(refused.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        refused.explanation().contains(
            "Project A is over a limit for [Resource image_count_total is over limit of 1 \
             due to current usage 1 and delta 1]"
        ),
        "{}",
        refused.explanation()
    );
    // Another project has the default limit.
    create(&app, &member_of("B"), json!({}));
    let usage = json_body(&block_on(info::usage(&app, &a)).expect("usage"));
    assert_eq!(
        usage["usage"]["image_count_total"],
        json!({"limit": 1, "usage": 1})
    );
    assert_eq!(
        usage["usage"]["image_size_total"],
        json!({"limit": -1, "usage": 0})
    );
    assert_eq!(
        usage["usage"]["image_stage_total"],
        json!({"limit": -1, "usage": 0})
    );
    assert_eq!(
        usage["usage"]["image_count_uploading"],
        json!({"limit": -1, "usage": 0})
    );
    let usage_b = json_body(&block_on(info::usage(&app, &member_of("B"))).expect("usage"));
    assert_eq!(
        usage_b["usage"]["image_count_total"],
        json!({"limit": 5, "usage": 1})
    );
}

// Issue 16: tokens without a project (system- or domain-scoped, or unscoped) are accepted and
// every route answers as Glance's does. Every image rule is project-scoped, so each one
// fails; what differs per route is what Glance checks before the rule, with a data layer that
// shows an admin (of any scope) every image and anybody public and community ones.
#[test]
fn tokens_without_a_project_get_glances_per_route_answers() {
    let (_dir, app) = test_app(Config::default());
    let a = member_of("A");
    let formats = json!({"disk_format": "raw", "container_format": "bare"});
    let private = create(&app, &a, json!({"visibility": "private"}));
    let shared = create(&app, &a, json!({"visibility": "shared"}));
    assert_eq!(add_member(&app, &a, &shared, "B"), 200);
    let community = create(&app, &a, json!({"visibility": "community"}));
    let mut public_body = formats.clone();
    public_body["visibility"] = json!("public");
    public_body["owner"] = json!("A");
    let public = create(&app, &admin(), public_body);
    // A deactivated public image: Glance refuses its data to non-admins before any rule.
    let mut deactivated_body = formats;
    deactivated_body["visibility"] = json!("public");
    deactivated_body["owner"] = json!("A");
    let deactivated = create(&app, &admin(), deactivated_body);
    let deactivated_id = deactivated.parse().expect("uuid");
    block_on(
        app.catalog
            .set_status(deactivated_id, meta::ImageStatus::Active),
    )
    .expect("active");
    block_on(
        app.catalog
            .set_status(deactivated_id, meta::ImageStatus::Deactivated),
    )
    .expect("deactivated");
    let unknown = meta::ImageId::new_v4().to_string();

    let all = ["admin", "member", "reader"];
    let callers = [
        ("system admin", projectless_ctx(TokenScope::System, &all)),
        (
            "system reader",
            projectless_ctx(TokenScope::System, &["reader"]),
        ),
        ("domain admin", projectless_ctx(TokenScope::Domain, &all)),
        (
            "domain reader",
            projectless_ctx(TokenScope::Domain, &["reader"]),
        ),
        ("unscoped", projectless_ctx(TokenScope::Project, &[])),
    ];
    let rename = json!([{"op": "replace", "path": "/name", "value": "x"}]);
    let mut wrong = Vec::new();
    for (who, caller) in &callers {
        let admin = caller.is_admin_role();
        let mut expect = |what: &str, want: u16, got: u16| {
            if want != got {
                wrong.push(format!("{who}: {what}: want {want}, got {got}"));
            }
        };
        let list = |query: &str| status(block_on(list::list(&app, caller, query)));
        expect("list", 403, list(""));
        // The request's own parameters are checked first; filter values after get_images.
        expect("list limit=x", 400, list("limit=x"));
        expect("list size_min=x", 403, list("size_min=x"));
        let try_create = |body: Value| {
            status(block_on(images::create(
                &app,
                caller,
                &HeaderMap::new(),
                body.to_string().as_bytes(),
            )))
        };
        expect("create", 403, try_create(json!({})));
        expect("create owned by A", 403, try_create(json!({"owner": "A"})));
        expect("usage", 200, status(block_on(info::usage(&app, caller))));
        for (name, id) in [
            ("private", &private),
            ("shared", &shared),
            ("community", &community),
            ("public", &public),
            ("deactivated", &deactivated),
            ("unknown", &unknown),
        ] {
            let exists = name != "unknown";
            // What the data layer shows this caller.
            let visible =
                exists && (admin || matches!(name, "community" | "public" | "deactivated"));
            let not_shared = visible && name != "shared";
            let what = |route: &str| format!("{route} {name}");
            expect(&what("show"), 404, show(&app, caller, id));
            expect(&what("patch"), 404, patch(&app, caller, id, rename.clone()));
            // An empty patch asks no rule: the image, to whoever the data layer shows it to.
            let empty = if visible { 200 } else { 404 };
            expect(
                &what("empty patch"),
                empty,
                patch(&app, caller, id, json!([])),
            );
            let delete = status(block_on(images::delete(
                &app,
                caller,
                id,
                &http::HeaderMap::new(),
            )));
            expect(&what("delete"), 404, delete);
            for active in [false, true] {
                let got = status(block_on(images::set_active(&app, caller, id, active)));
                expect(&what("deactivate/reactivate"), 404, got);
            }
            let add_tag = status(block_on(tags::add(&app, caller, id, "t".into())));
            expect(&what("add tag"), 404, add_tag);
            let delete_tag = status(block_on(tags::delete(&app, caller, id, "t".into())));
            expect(&what("delete tag"), 404, delete_tag);
            let download = status(block_on(image_data::download(
                &app,
                caller,
                id,
                &HeaderMap::new(),
            )));
            let refused_data = name == "deactivated" && !admin;
            expect(
                &what("download"),
                if refused_data { 403 } else { 404 },
                download,
            );
            // Members: a visible image that is not shared is refused first ("Only shared
            // images have members": 403, 404 on show); a shared one fails get_image (404).
            let members_answer = if not_shared { 403 } else { 404 };
            let listed = member_ids(&app, caller, id)
                .map(|_| 200)
                .unwrap_or_else(|s| s);
            expect(&what("list members"), members_answer, listed);
            expect(
                &what("show member"),
                404,
                status(block_on(members::show(&app, caller, id, "B"))),
            );
            expect(
                &what("add member"),
                members_answer,
                add_member(&app, caller, id, "C"),
            );
            expect(
                &what("update member"),
                members_answer,
                set_member_status(&app, caller, id, "B", "accepted"),
            );
            let delete_member = status(block_on(members::delete(&app, caller, id, "B")));
            expect(&what("delete member"), members_answer, delete_member);
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    // Nothing was changed by any of them.
    for id in [&private, &shared, &community, &public] {
        assert_eq!(show(&app, &a, id), 200);
    }
    assert_eq!(member_ids(&app, &a, &shared), Ok(vec!["B".to_owned()]));
    let image = json_body(&block_on(images::show(&app, &a, &private)).expect("show"));
    assert_eq!(image["name"], Value::Null);
    assert_eq!(image["tags"], json!([]));
}

#[test]
fn project_scoped_answers_are_unchanged_by_the_reordering() {
    // The checks now run in Glance's order (data layer, then route checks, then the rule);
    // for project-scoped callers with a role the answers are the ones they always were.
    let (_dir, app) = test_app(Config::default());
    let a = member_of("A");
    let private = create(&app, &a, json!({"visibility": "private"}));
    let public = create(
        &app,
        &admin(),
        json!({"visibility": "public", "owner": "A"}),
    );
    let b = member_of("B");
    assert_eq!(member_ids(&app, &b, &private), Err(404));
    assert_eq!(member_ids(&app, &b, &public), Err(403));
    assert_eq!(add_member(&app, &b, &private, "C"), 404);
    assert_eq!(add_member(&app, &b, &public, "C"), 403);
    assert_eq!(status(block_on(members::show(&app, &b, &public, "B"))), 404);
    let download = |ctx: &RequestContext, id: &str| {
        status(block_on(image_data::download(
            &app,
            ctx,
            id,
            &HeaderMap::new(),
        )))
    };
    assert_eq!(download(&b, &private), 404);
    assert_eq!(download(&reader_of("A"), &private), 403);
    assert_eq!(download(&a, &private), 200, "allowed (a 204: no data yet)");
}
