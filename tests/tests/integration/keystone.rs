//! `[auth] strategy = "keystone"` against a fake Keystone that counts what it is asked
//! (glint_tests::fake_keystone). The real Keystone and the real clients are in
//! tests/e2e/keystone.sh.

use std::time::Duration;

use glint_tests::fake_keystone::FakeKeystone;
use glint_tests::{Resp, TestServer};
use serde_json::json;

const HOUR: Duration = Duration::from_secs(3600);

fn start() -> (FakeKeystone, TestServer) {
    let keystone = FakeKeystone::start();
    let srv = TestServer::start_with_config(&keystone.glint_config());
    (keystone, srv)
}

fn get_as(srv: &TestServer, token: &str, path: &str) -> Resp {
    srv.request("GET", path)
        .header("x-auth-token", token)
        .send()
}

fn assert_unauthorized(resp: Resp, keystone: &FakeKeystone) {
    let resp = resp.expect_status(401);
    let challenge = resp.header("www-authenticate").unwrap_or("").to_owned();
    assert_eq!(challenge, format!("Keystone uri=\"{}\"", keystone.url()));
    assert!(
        resp.text().contains("requires authentication"),
        "{}",
        resp.text()
    );
}

#[test]
fn versions_and_healthcheck_need_no_token() {
    let (keystone, srv) = start();
    srv.get("/versions").expect_status(200);
    srv.get("/").expect_status(300);
    srv.get("/healthcheck").expect_status(200);
    assert_eq!(keystone.requests(), 0, "no Keystone call for public routes");
}

#[test]
fn missing_bogus_and_expired_tokens_get_401() {
    let (keystone, srv) = start();
    assert_unauthorized(srv.get("/v2/images"), &keystone);
    assert_unauthorized(srv.get("/v2/schemas/image"), &keystone);
    assert_unauthorized(get_as(&srv, "not-a-token", "/v2/images"), &keystone);
    let expired = keystone.issue("alice", "proj-a", &["reader"], Duration::ZERO);
    assert_unauthorized(get_as(&srv, &expired, "/v2/images"), &keystone);
    // Refusals are cached too: a retried bogus token costs Keystone nothing more.
    assert_unauthorized(get_as(&srv, "not-a-token", "/v2/images"), &keystone);
    assert_eq!(keystone.validations("not-a-token"), 1);
}

#[test]
fn token_identity_becomes_the_owner() {
    let (keystone, srv) = start();
    let token = keystone.issue("alice", "proj-a", &["member", "reader"], HOUR);
    let created = srv
        .request("POST", "/v2/images")
        .header("x-auth-token", &token)
        .json(&json!({"name": "mine", "disk_format": "raw", "container_format": "bare"}))
        .send()
        .expect_status(201)
        .json();
    assert_eq!(created["owner"], "proj-a");
    let id = created["id"].as_str().unwrap();
    let shown = get_as(&srv, &token, &format!("/v2/images/{id}"))
        .expect_status(200)
        .json();
    assert_eq!(shown["owner"], "proj-a");
}

#[test]
fn one_keystone_round_trip_per_token() {
    let (keystone, srv) = start();
    let token = keystone.issue("alice", "proj-a", &["reader"], HOUR);
    // Concurrent first requests share one validation.
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| get_as(&srv, &token, "/v2/images").expect_status(200));
        }
    });
    for _ in 0..20 {
        get_as(&srv, &token, "/v2/images").expect_status(200);
    }
    assert_eq!(keystone.validations(&token), 1);
    assert_eq!(keystone.logins(), 1, "the service user logs in once");
}

#[test]
fn revoked_service_token_means_one_new_login() {
    let (keystone, srv) = start();
    let first = keystone.issue("alice", "proj-a", &["reader"], HOUR);
    get_as(&srv, &first, "/v2/images").expect_status(200);
    keystone.revoke_service_tokens();
    let second = keystone.issue("bob", "proj-b", &["reader"], HOUR);
    get_as(&srv, &second, "/v2/images").expect_status(200);
    assert_eq!(keystone.logins(), 2);
}

#[test]
fn token_expiring_while_cached_is_refused_after_expiry() {
    let (keystone, srv) = start();
    let token = keystone.issue("alice", "proj-a", &["reader"], Duration::from_secs(2));
    get_as(&srv, &token, "/v2/images").expect_status(200);
    std::thread::sleep(Duration::from_millis(2500));
    assert_unauthorized(get_as(&srv, &token, "/v2/images"), &keystone);
}

/// Issue 16: system- and domain-scoped tokens (and unscoped ones) are accepted, as
/// keystonemiddleware accepts them in front of Glance, and each route answers as Glance's
/// policy does. Every image and member rule is project-scoped, so each fails for such a token;
/// what differs per route is what Glance checks before the rule, with a data layer that shows
/// an admin (of any scope) every image, and anybody public and community images.
mod scopes {
    use super::*;
    use serde_json::Value;

    const ALL_ROLES: [&str; 3] = ["admin", "member", "reader"];

    fn call(srv: &TestServer, token: &str, method: &str, path: &str, body: Option<Value>) -> Resp {
        let req = srv.request(method, path).header("x-auth-token", token);
        match (method, body) {
            ("PATCH", Some(ops)) => req
                .header("content-type", glint_tests::PATCH_V21)
                .body(ops.to_string().into_bytes())
                .send(),
            ("PUT", None) if path.ends_with("/file") => req
                .header("content-type", "application/octet-stream")
                .body(b"data".to_vec())
                .send(),
            (_, Some(body)) => req.json(&body).send(),
            (_, None) => req.send(),
        }
    }

    fn create(srv: &TestServer, token: &str, body: Value) -> String {
        let image = call(srv, token, "POST", "/v2/images", Some(body))
            .expect_status(201)
            .json();
        image["id"].as_str().unwrap().to_owned()
    }

    struct Images {
        /// (name, id, whether it is `shared`)
        all: Vec<(&'static str, String, bool)>,
        shared: String,
    }

    /// Alice (member of proj-a) owns a private image with data and a shared one with proj-b
    /// as a member; the project admin made a public image of proj-a with data, and a second
    /// one, deactivated.
    fn images(keystone: &FakeKeystone, srv: &TestServer) -> (Images, String) {
        let alice = keystone.issue("alice", "proj-a", &["member", "reader"], HOUR);
        let admin = keystone.issue("admin", "admin", &ALL_ROLES, HOUR);
        let raw = json!({"disk_format": "raw", "container_format": "bare"});
        let with = |extra: Value| {
            let mut body = raw.clone();
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            body
        };
        let upload = |token: &str, id: &str| {
            call(srv, token, "PUT", &format!("/v2/images/{id}/file"), None).expect_status(204);
        };
        let private = create(srv, &alice, with(json!({"visibility": "private"})));
        upload(&alice, &private);
        let shared = create(srv, &alice, with(json!({"visibility": "shared"})));
        let members = format!("/v2/images/{shared}/members");
        call(
            srv,
            &alice,
            "POST",
            &members,
            Some(json!({"member": "proj-b"})),
        )
        .expect_status(200);
        let public = create(
            srv,
            &admin,
            with(json!({"visibility": "public", "owner": "proj-a"})),
        );
        upload(&admin, &public);
        let deactivated = create(
            srv,
            &admin,
            with(json!({"visibility": "public", "owner": "proj-a"})),
        );
        upload(&admin, &deactivated);
        let path = format!("/v2/images/{deactivated}/actions/deactivate");
        call(srv, &admin, "POST", &path, None).expect_status(204);
        let images = Images {
            all: vec![
                ("private", private, false),
                ("shared", shared.clone(), true),
                ("public", public, false),
                ("deactivated", deactivated, false),
                ("unknown", uuid::Uuid::new_v4().to_string(), false),
            ],
            shared,
        };
        (images, alice)
    }

    /// Every route of the issue, for `token`; returns what differs from Glance's answers.
    fn check_routes(srv: &TestServer, token: &str, admin: bool, images: &Images) -> Vec<String> {
        let mut wrong = Vec::new();
        let mut expect = |what: String, want: u16, resp: Resp| {
            if resp.status != want {
                wrong.push(format!(
                    "{what}: want {want}, got {} {}",
                    resp.status,
                    resp.text()
                ));
            }
        };
        let list = call(srv, token, "GET", "/v2/images", None);
        let list_text = list.text();
        expect("list".into(), 403, list);
        let body = json!({"name": "n", "disk_format": "raw", "container_format": "bare"});
        expect(
            "create".into(),
            403,
            call(srv, token, "POST", "/v2/images", Some(body)),
        );
        for path in [
            "/v2/schemas/image",
            "/v2/info/usage",
            "/versions",
            "/healthcheck",
        ] {
            expect(path.into(), 200, call(srv, token, "GET", path, None));
        }
        for (name, id, shared) in &images.all {
            let exists = *name != "unknown";
            let visible = exists && (admin || matches!(*name, "public" | "deactivated"));
            let image = format!("/v2/images/{id}");
            let rename = json!([{"op": "replace", "path": "/name", "value": "x"}]);
            let download = if *name == "deactivated" && !admin {
                403
            } else {
                404
            };
            for (method, path, body, want) in [
                ("GET", image.clone(), None, 404),
                ("GET", format!("{image}/file"), None, download),
                ("PUT", format!("{image}/file"), None, 404),
                ("PATCH", image.clone(), Some(rename), 404),
                ("DELETE", image.clone(), None, 404),
                ("POST", format!("{image}/actions/deactivate"), None, 404),
                ("POST", format!("{image}/actions/reactivate"), None, 404),
                ("PUT", format!("{image}/tags/t"), None, 404),
                ("DELETE", format!("{image}/tags/t"), None, 404),
                ("GET", format!("{image}/members/proj-b"), None, 404),
            ] {
                let resp = call(srv, token, method, &path, body);
                expect(format!("{method} {name} {path}"), want, resp);
            }
            // Members of an image the data layer shows but that is not shared: Glance's
            // "Only shared images have members" (403); otherwise get_image fails (404).
            let members = if visible && !shared { 403 } else { 404 };
            let base = format!("{image}/members");
            for (method, path, body) in [
                ("GET", base.clone(), None),
                ("POST", base.clone(), Some(json!({"member": "proj-c"}))),
                (
                    "PUT",
                    format!("{base}/proj-b"),
                    Some(json!({"status": "accepted"})),
                ),
                ("DELETE", format!("{base}/proj-b"), None),
            ] {
                let resp = call(srv, token, method, &path, body);
                expect(format!("{method} {name} {path}"), members, resp);
            }
        }
        if !list_text.contains("get_images") {
            wrong.push(format!("the list's 403 names get_images: {list_text}"));
        }
        wrong
    }

    fn check_nothing_changed(srv: &TestServer, alice: &str, images: &Images) {
        for (name, id, _) in &images.all {
            let shown = call(srv, alice, "GET", &format!("/v2/images/{id}"), None);
            if *name == "unknown" {
                shown.expect_status(404);
                continue;
            }
            let shown = shown.expect_status(200).json();
            assert_ne!(shown["name"], "x", "{name}");
            assert_eq!(shown["tags"], json!([]), "{name}");
        }
        let members = call(
            srv,
            alice,
            "GET",
            &format!("/v2/images/{}/members", images.shared),
            None,
        )
        .expect_status(200)
        .json();
        assert_eq!(members["members"].as_array().unwrap().len(), 1, "{members}");
        assert_eq!(members["members"][0]["status"], "pending");
    }

    #[test]
    fn system_scoped_tokens_get_glances_answer_on_every_route() {
        let (keystone, srv) = start();
        let (images, alice) = images(&keystone, &srv);
        let mut wrong = Vec::new();
        let root = keystone.issue_system("root", &ALL_ROLES);
        wrong.extend(check_routes(&srv, &root, true, &images));
        let auditor = keystone.issue_system("auditor", &["reader"]);
        wrong.extend(check_routes(&srv, &auditor, false, &images));
        assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
        check_nothing_changed(&srv, &alice, &images);
    }

    #[test]
    fn domain_scoped_tokens_get_glances_answer_on_every_route() {
        let (keystone, srv) = start();
        let (images, alice) = images(&keystone, &srv);
        let mut wrong = Vec::new();
        let domain_admin = keystone.issue_domain("dadmin", "default", &ALL_ROLES);
        wrong.extend(check_routes(&srv, &domain_admin, true, &images));
        let domain_reader = keystone.issue_domain("dreader", "default", &["reader"]);
        wrong.extend(check_routes(&srv, &domain_reader, false, &images));
        assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
        check_nothing_changed(&srv, &alice, &images);
    }

    #[test]
    fn unscoped_tokens_get_glances_answer_on_every_route() {
        let (keystone, srv) = start();
        let (images, alice) = images(&keystone, &srv);
        let token = keystone.issue_unscoped("carol");
        let wrong = check_routes(&srv, &token, false, &images);
        assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
        check_nothing_changed(&srv, &alice, &images);
    }

    #[test]
    fn a_body_is_refused_only_after_authentication() {
        let (keystone, srv) = start();
        let id = uuid::Uuid::new_v4();
        let path = format!("/v2/images/{id}");
        let with_body = |token: Option<&str>| {
            let req = srv.request("GET", &path).body(b"{}".to_vec());
            match token {
                Some(t) => req.header("x-auth-token", t).send(),
                None => req.send(),
            }
        };
        assert_unauthorized(with_body(None), &keystone);
        let root = keystone.issue_system("root", &ALL_ROLES);
        with_body(Some(&root)).expect_status(400);
    }
}

#[test]
fn keystone_down_is_503_and_recovers() {
    let (keystone, srv) = start();
    keystone.set_down(true);
    let token = keystone.issue("alice", "proj-a", &["reader"], HOUR);
    get_as(&srv, &token, "/v2/images").expect_status(503);
    keystone.set_down(false);
    // An outage is not cached as a refusal.
    get_as(&srv, &token, "/v2/images").expect_status(200);
}

#[test]
fn service_token_is_validated_too() {
    let (keystone, srv) = start();
    let user = keystone.issue("alice", "proj-a", &["reader"], HOUR);
    let nova = keystone.issue("nova", "service", &["service"], HOUR);
    srv.request("GET", "/v2/images")
        .header("x-auth-token", &user)
        .header("x-service-token", &nova)
        .send()
        .expect_status(200);
    assert_eq!(keystone.validations(&nova), 1);
    let resp = srv
        .request("GET", "/v2/images")
        .header("x-auth-token", &user)
        .header("x-service-token", "bogus")
        .send();
    assert_unauthorized(resp, &keystone);
}

#[test]
fn keystone_strategy_without_its_table_does_not_start() {
    let bin = glint_tests::glint_bin();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("glint.toml");
    std::fs::write(&config, "[auth]\nstrategy = \"keystone\"\n").unwrap();
    let out = std::process::Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("keystone_authtoken"), "{stderr}");
}

/// Several projects through Keystone tokens: what each role and project may see and do
/// (spec §8; the full matrix is unit-tested in the gateway's policy module).
mod projects {
    use super::*;

    struct World {
        keystone: FakeKeystone,
        srv: TestServer,
        alice: String,
        rita: String,
        bob: String,
        admin: String,
    }

    fn world() -> World {
        let (keystone, srv) = start();
        World {
            alice: keystone.issue("alice", "proj-a", &["member", "reader"], HOUR),
            rita: keystone.issue("rita", "proj-a", &["reader"], HOUR),
            bob: keystone.issue("bob", "proj-b", &["member", "reader"], HOUR),
            admin: keystone.issue("admin", "admin", &["admin", "member", "reader"], HOUR),
            keystone,
            srv,
        }
    }

    fn send(w: &World, token: &str, method: &str, path: &str, body: Option<Value>) -> Resp {
        let req = w.srv.request(method, path).header("x-auth-token", token);
        match body {
            Some(b) => req.json(&b).send(),
            None => req.send(),
        }
    }

    fn create(w: &World, token: &str, visibility: &str) -> String {
        let body = json!({"name": "img", "visibility": visibility,
                          "disk_format": "raw", "container_format": "bare"});
        let image = send(w, token, "POST", "/v2/images", Some(body))
            .expect_status(201)
            .json();
        image["id"].as_str().unwrap().to_owned()
    }

    fn listed(w: &World, token: &str, query: &str) -> Vec<String> {
        let page = send(w, token, "GET", &format!("/v2/images{query}"), None)
            .expect_status(200)
            .json();
        glint_tests::ids_of(&page)
    }

    use serde_json::Value;

    #[test]
    fn private_images_stay_in_their_project() {
        let w = world();
        let id = create(&w, &w.alice, "private");
        let path = format!("/v2/images/{id}");
        send(&w, &w.bob, "GET", &path, None).expect_status(404);
        send(&w, &w.bob, "GET", &format!("{path}/file"), None).expect_status(404);
        send(&w, &w.bob, "DELETE", &path, None).expect_status(404);
        assert!(!listed(&w, &w.bob, "").contains(&id));
        assert!(listed(&w, &w.rita, "").contains(&id));
        assert!(listed(&w, &w.admin, "").contains(&id));
        send(&w, &w.admin, "GET", &path, None).expect_status(200);
    }

    #[test]
    fn readers_read_but_neither_write_nor_download() {
        let w = world();
        let body = json!({"name": "r", "disk_format": "raw", "container_format": "bare"});
        send(&w, &w.rita, "POST", "/v2/images", Some(body)).expect_status(403);
        let id = create(&w, &w.alice, "private");
        let path = format!("/v2/images/{id}");
        w.srv
            .request("PUT", &format!("{path}/file"))
            .header("x-auth-token", &w.alice)
            .header("content-type", "application/octet-stream")
            .body(b"data".to_vec())
            .send()
            .expect_status(204);
        send(&w, &w.rita, "GET", &path, None).expect_status(200);
        send(&w, &w.rita, "GET", &format!("{path}/file"), None).expect_status(403);
        send(&w, &w.rita, "DELETE", &path, None).expect_status(403);
        send(&w, &w.rita, "PUT", &format!("{path}/tags/t"), None).expect_status(403);
    }

    #[test]
    fn sharing_needs_acceptance_to_list_but_not_to_read() {
        let w = world();
        let id = create(&w, &w.alice, "shared");
        let members = format!("/v2/images/{id}/members");
        // Only the owner (or admin) adds members; bob cannot add himself.
        send(
            &w,
            &w.bob,
            "POST",
            &members,
            Some(json!({"member": "proj-b"})),
        )
        .expect_status(404);
        send(
            &w,
            &w.alice,
            "POST",
            &members,
            Some(json!({"member": "proj-b"})),
        )
        .expect_status(200);
        send(&w, &w.bob, "GET", &format!("/v2/images/{id}"), None).expect_status(200);
        assert!(!listed(&w, &w.bob, "").contains(&id), "pending: not listed");
        assert!(listed(&w, &w.bob, "?member_status=pending").contains(&id));
        // The member sets its own status; the owner cannot accept for it.
        let status = json!({"status": "accepted"});
        let member = format!("{members}/proj-b");
        send(&w, &w.alice, "PUT", &member, Some(status.clone())).expect_status(403);
        send(&w, &w.bob, "PUT", &member, Some(status)).expect_status(200);
        assert!(listed(&w, &w.bob, "").contains(&id), "accepted: listed");
        // Members read; they do not write.
        let patch = w
            .srv
            .request("PATCH", &format!("/v2/images/{id}"))
            .header("x-auth-token", &w.bob)
            .header("content-type", glint_tests::PATCH_V21)
            .body(br#"[{"op": "add", "path": "/k", "value": "v"}]"#.to_vec())
            .send();
        patch.expect_status(403);
    }

    #[test]
    fn publicizing_is_for_admins_community_for_members() {
        let w = world();
        let id = create(&w, &w.alice, "private");
        let to = |v: &str| {
            w.srv
                .request("PATCH", &format!("/v2/images/{id}"))
                .header("x-auth-token", &w.alice)
                .header("content-type", glint_tests::PATCH_V21)
                .body(format!(
                    r#"[{{"op": "replace", "path": "/visibility", "value": "{v}"}}]"#
                ))
                .send()
        };
        to("public").expect_status(403);
        to("community").expect_status(200);
        // Community images are readable by all but listed by default only for the owner.
        send(&w, &w.bob, "GET", &format!("/v2/images/{id}"), None).expect_status(200);
        assert!(!listed(&w, &w.bob, "").contains(&id));
        assert!(listed(&w, &w.bob, "?visibility=community").contains(&id));
        let body = json!({"name": "p", "visibility": "public",
                          "disk_format": "raw", "container_format": "bare"});
        send(&w, &w.alice, "POST", "/v2/images", Some(body.clone())).expect_status(403);
        send(&w, &w.admin, "POST", "/v2/images", Some(body)).expect_status(201);
        assert_eq!(w.keystone.logins(), 1);
    }
}
