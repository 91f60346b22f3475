//! Cross-cutting protocol rules (§2, §6): request ids, error bodies by `Accept`, 404 and 405,
//! bodies on body-less routes, keep-alive across errors.

use std::collections::BTreeSet;

use glint_tests::{id_of, raw, Resp, TestServer, PATCH_V21};
use serde_json::{json, Value};

#[track_caller]
fn request_id(resp: &Resp) -> String {
    let id = resp
        .header("x-openstack-request-id")
        .unwrap_or_else(|| panic!("no x-openstack-request-id: {resp:?}"));
    let uuid = id
        .strip_prefix("req-")
        .unwrap_or_else(|| panic!("request id without req- prefix: {id}"));
    uuid::Uuid::parse_str(uuid)
        .unwrap_or_else(|e| panic!("request id {id} is not req-<uuid>: {e}"));
    id.to_owned()
}

#[test]
fn every_response_carries_a_unique_request_id() {
    let srv = TestServer::start_with_config("image_size_cap = 10\n");
    let id = srv.create_active_image(json!({}), b"0123456789");
    let queued = srv.create_raw_image(json!({}));
    let unknown = uuid::Uuid::new_v4().to_string();
    let responses = vec![
        srv.get("/"),
        srv.get("/versions"),
        srv.get("/healthcheck"),
        srv.get("/v2/schemas/image"),
        srv.get("/v2/images"),
        srv.get(&format!("/v2/images/{id}")),
        srv.post_json("/v2/images", &json!({})),
        srv.patch(&id, json!([])),
        srv.download(&id),
        srv.request("GET", &format!("/v2/images/{id}/file"))
            .header("range", "bytes=0-1")
            .send(),
        srv.download(&queued),
        srv.get(&format!("/v2/images/{unknown}")),
        srv.get("/v2/images?limit=bad"),
        srv.request("PUT", &format!("/v2/images/{id}")).send(),
        srv.post_json("/v2/images", &json!({"status": "active"})),
        srv.upload(&id, b"again"),
        srv.upload(&queued, b"more than ten bytes"),
        srv.request("PATCH", &format!("/v2/images/{id}"))
            .header("content-type", "application/json")
            .body(b"[]".to_vec())
            .send(),
        srv.request("GET", &format!("/v2/images/{id}/file"))
            .header("range", "bytes=100-")
            .send(),
        srv.get("/v2/bogus"),
        srv.raw(&raw::request("GET", "/v2/images", &[], b"body")),
        srv.request("PUT", &format!("/v2/images/{id}/tags/t"))
            .send(),
        srv.delete(&format!("/v2/images/{id}/tags/t")),
    ];
    let statuses: BTreeSet<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        BTreeSet::from([200, 201, 204, 206, 300, 400, 403, 404, 405, 409, 413, 415, 416]),
        "the requests above cover these statuses"
    );
    let ids: BTreeSet<String> = responses.iter().map(request_id).collect();
    assert_eq!(ids.len(), responses.len(), "request ids are unique");
}

#[test]
fn request_id_header_longer_than_64_is_431() {
    let srv = TestServer::start();
    let ok = format!("req-{}", "a".repeat(60));
    let resp = srv
        .request("GET", "/v2/images")
        .header("x-openstack-request-id", &ok)
        .send();
    assert_eq!(resp.status, 200, "64 characters are fine: {resp:?}");
    request_id(&resp);
    let too_long = format!("req-{}", "a".repeat(61));
    let resp = srv
        .request("GET", "/v2/images")
        .header("x-openstack-request-id", &too_long)
        .send();
    assert_eq!(resp.status, 431, "{resp:?}");
}

/// GET an unknown image with this `Accept` (None = header absent).
fn not_found(srv: &TestServer, accept: Option<&str>) -> Resp {
    let req = srv.request("GET", &format!("/v2/images/{}", uuid::Uuid::new_v4()));
    let req = match accept {
        Some(accept) => req.header("accept", accept),
        None => req.no_accept(),
    };
    let resp = req.send();
    assert_eq!(resp.status, 404, "{resp:?}");
    resp
}

#[test]
fn error_body_without_accept_is_plain_text() {
    let srv = TestServer::start();
    for accept in [None, Some("text/plain")] {
        let resp = not_found(&srv, accept);
        assert_eq!(
            resp.content_type().as_deref(),
            Some("text/plain"),
            "{accept:?}"
        );
        assert!(
            resp.text().starts_with("404 Not Found\n\n"),
            "{accept:?}: {:?}",
            resp.text()
        );
    }
}

#[test]
fn error_body_for_any_accept_is_html() {
    let srv = TestServer::start();
    let resp = not_found(&srv, Some("*/*"));
    assert_eq!(resp.content_type().as_deref(), Some("text/html"));
    let body = resp.text();
    assert!(body.contains("<title>404 Not Found</title>"), "{body}");
    assert!(body.contains("<h1>404 Not Found</h1>"), "{body}");
}

#[test]
fn error_body_for_json_accept_is_flat_webob_json() {
    let srv = TestServer::start();
    let resp = not_found(&srv, Some("application/json"));
    assert_eq!(resp.content_type().as_deref(), Some("application/json"));
    let body = resp.json();
    assert_eq!(body["code"], "404 Not Found");
    assert_eq!(body["title"], "Not Found");
    assert!(body["message"].is_string(), "{body}");
    assert_eq!(
        body.as_object().unwrap().len(),
        3,
        "exactly message/code/title: {body}"
    );
}

/// JSON error bodies carry webob's status line and title for each code.
#[test]
fn json_error_bodies_have_webob_titles() {
    let srv = TestServer::start_with_config("image_size_cap = 4\n");
    let active = srv.create_active_image(json!({}), b"abcd");
    let queued = srv.create_raw_image(json!({}));
    let json_req = |method: &str, path: &str| {
        srv.request(method, path)
            .header("accept", "application/json")
    };
    let cases: Vec<(Resp, &str)> = vec![
        (json_req("GET", "/v2/images?limit=x").send(), "Bad Request"),
        (
            json_req("POST", "/v2/images")
                .header("content-type", "application/json")
                .body(br#"{"status": "active"}"#.to_vec())
                .send(),
            "Forbidden",
        ),
        (
            json_req("PUT", &format!("/v2/images/{active}")).send(),
            "Method Not Allowed",
        ),
        (
            json_req("PUT", &format!("/v2/images/{active}/file"))
                .header("content-type", "application/octet-stream")
                .body(b"x".to_vec())
                .send(),
            "Conflict",
        ),
        (
            json_req("PUT", &format!("/v2/images/{queued}/file"))
                .header("content-type", "application/octet-stream")
                .body(b"too big".to_vec())
                .send(),
            "Request Entity Too Large",
        ),
        (
            json_req("PATCH", &format!("/v2/images/{active}"))
                .header("content-type", "application/json")
                .body(b"[]".to_vec())
                .send(),
            "Unsupported Media Type",
        ),
        (
            json_req("GET", &format!("/v2/images/{active}/file"))
                .header("range", "bytes=10-")
                .send(),
            "Request Range Not Satisfiable",
        ),
    ];
    let mut wrong = Vec::new();
    for (resp, title) in cases {
        assert_eq!(
            resp.content_type().as_deref(),
            Some("application/json"),
            "{resp:?}"
        );
        let body = resp.json();
        assert!(body["message"].is_string(), "{resp:?}");
        let code = format!("{} {title}", resp.status);
        if body["title"] != title || body["code"] != code.as_str() {
            wrong.push(format!(
                "{}: want code {code:?} title {title:?}, got code {} title {}",
                resp.what, body["code"], body["title"]
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn method_not_allowed_lists_allowed_methods() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({})));
    let cases: [(&str, String, &[&str]); 4] = [
        (
            "PUT",
            format!("/v2/images/{id}"),
            &["DELETE", "GET", "PATCH"],
        ),
        (
            "POST",
            format!("/v2/images/{id}"),
            &["DELETE", "GET", "PATCH"],
        ),
        ("DELETE", "/v2/images".to_owned(), &["GET", "POST"]),
        ("PATCH", "/v2/images".to_owned(), &["GET", "POST"]),
    ];
    for (method, path, allowed) in cases {
        let resp = srv.request(method, &path).send();
        assert_eq!(resp.status, 405, "{method} {path}: {resp:?}");
        let mut allow: Vec<&str> = resp
            .header("allow")
            .unwrap_or_else(|| panic!("no Allow: {resp:?}"))
            .split(',')
            .map(str::trim)
            .collect();
        allow.sort_unstable();
        assert_eq!(allow, allowed, "{method} {path}");
    }
}

#[test]
fn unknown_paths_under_v2_are_404() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({})));
    for path in [
        "/v2/bogus".to_owned(),
        "/v2/schemas/bogus".to_owned(),
        format!("/v2/images/{id}/bogus"),
        format!("/v2/images/{id}/file/extra"),
        format!("/v2/images/{id}/tags"),
    ] {
        let resp = srv.get(&path);
        assert_eq!(resp.status, 404, "{path}: {resp:?}");
    }
}

#[test]
fn body_on_body_less_routes_is_bad_request() {
    let srv = TestServer::start();
    let id = srv.create_active_image(json!({}), b"x");
    for (method, path) in [
        ("GET", format!("/v2/images/{id}")),
        ("GET", format!("/v2/images/{id}/file")),
        ("GET", format!("/v2/images/{id}/members")),
        ("GET", "/v2/schemas/image".to_owned()),
        ("DELETE", format!("/v2/images/{id}")),
        ("DELETE", format!("/v2/images/{id}/tags/t")),
        ("POST", format!("/v2/images/{id}/actions/deactivate")),
    ] {
        let resp = srv.raw(&raw::request(method, &path, &[], b"{}"));
        assert_eq!(resp.status, 400, "{method} {path}: {resp:?}");
    }
    assert_eq!(srv.image(&id)["status"], "active");
}

// Issue 16: Glance ignores a body on the routes its router does not mark `body_reject` —
// the image list, /v2/info/usage — and on the version documents and /healthcheck, which
// are served outside that router. The body is drained: the connection carries on.
#[test]
fn body_on_list_usage_versions_and_healthcheck_is_ignored() {
    let srv = TestServer::start();
    let id = srv.create_active_image(json!({"name": "listed"}), b"x");
    let mut conn = srv.connect();
    let body = br#"{"name": "ignored"}"#;
    let len = body.len().to_string();
    for (path, status) in [
        ("/v2/images", 200),
        ("/v2/info/usage", 200),
        ("/versions", 200),
        ("/", 300),
        ("/healthcheck", 200),
    ] {
        let mut req = raw::head(
            "GET",
            path,
            &[
                ("Content-Type", "application/json"),
                ("Content-Length", &len),
            ],
        );
        req.extend_from_slice(body);
        conn.send(&req);
        let resp = conn.read_response();
        assert_eq!(resp.status, status, "GET {path} with a body: {resp:?}");
        if path == "/v2/images" {
            assert_eq!(glint_tests::ids_of(&resp.json()), vec![id.clone()]);
        }
    }
    // The same connection still serves a request after the ignored bodies.
    conn.send(&raw::head("GET", &format!("/v2/images/{id}"), &[]));
    let resp = conn.read_response();
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.json()["name"], "listed");
}

#[test]
fn metadef_bodies_follow_glance_body_reject() {
    // Glance's router rejects a body on a namespace's GET but ignores one on the namespace
    // list and the collection deletes.
    let srv = TestServer::start();
    let mut conn = srv.connect();
    let body = br#"{"x": 1}"#;
    let len = body.len().to_string();
    for (method, path, status) in [
        ("GET", "/v2/metadefs/namespaces", 200),
        ("GET", "/v2/metadefs/namespaces/nowhere", 400),
        ("GET", "/v2/metadefs/resource_types", 400),
        ("DELETE", "/v2/metadefs/namespaces/nowhere/tags", 404),
    ] {
        let mut req = raw::head(
            method,
            path,
            &[
                ("Content-Type", "application/json"),
                ("Content-Length", &len),
            ],
        );
        req.extend_from_slice(body);
        conn.send(&req);
        let resp = conn.read_response();
        assert_eq!(resp.status, status, "{method} {path} with a body: {resp:?}");
        if status == 400 {
            conn = srv.connect();
        }
    }
}

#[test]
fn chunked_body_on_tag_put_is_bad_request_even_when_empty() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({})));
    let mut req = raw::head(
        "PUT",
        &format!("/v2/images/{id}/tags/t"),
        &[("Transfer-Encoding", "chunked"), ("Connection", "close")],
    );
    req.extend_from_slice(b"0\r\n\r\n");
    let resp = srv.raw(&req);
    assert_eq!(resp.status, 400, "{resp:?}");
    assert_eq!(srv.image(&id)["tags"], json!([]));
}

#[test]
fn zero_content_length_on_get_is_not_a_body() {
    let srv = TestServer::start();
    let resp = srv.raw(&raw::request("GET", "/v2/images", &[], b""));
    assert_eq!(resp.status, 200, "{resp:?}");
}

#[test]
fn connection_stays_usable_after_error_responses() {
    let srv = TestServer::start();
    let mut conn = srv.connect();
    let unknown = uuid::Uuid::new_v4();
    conn.send(&raw::head("GET", &format!("/v2/images/{unknown}"), &[]));
    assert_eq!(conn.read_response().status, 404);
    conn.send(&raw::head("GET", "/v2/images?limit=x", &[]));
    assert_eq!(conn.read_response().status, 400);
    let body = br#"{"name": "after-errors"}"#;
    let len = body.len().to_string();
    let mut req = raw::head(
        "POST",
        "/v2/images",
        &[
            ("Content-Type", "application/json"),
            ("Content-Length", &len),
        ],
    );
    req.extend_from_slice(body);
    conn.send(&req);
    let resp = conn.read_response();
    assert_eq!(resp.status, 201, "{resp:?}");
    conn.send(&raw::head("GET", "/versions", &[]));
    assert_eq!(conn.read_response().status, 200);
}

#[test]
fn json_bodies_are_served_as_application_json() {
    let srv = TestServer::start();
    let id = id_of(&srv.create_image(json!({})));
    let resp = srv
        .request("PATCH", &format!("/v2/images/{id}"))
        .header("content-type", PATCH_V21)
        .body(b"[]".to_vec())
        .send();
    for resp in [
        resp,
        srv.get("/v2/images"),
        srv.get(&format!("/v2/images/{id}")),
    ] {
        assert_eq!(
            resp.content_type().as_deref(),
            Some("application/json"),
            "{resp:?}"
        );
        let _: Value = resp.json();
    }
}

#[test]
fn slow_or_idle_connections_are_closed_after_client_socket_timeout() {
    // Issue 2: a client that never finishes its headers (slowloris), or idles between
    // keep-alive requests, must not hold a connection forever (Glance client_socket_timeout).
    let srv = TestServer::start_with_config("client_socket_timeout = 1");
    let mut slow = raw::Conn::connect(srv.addr());
    slow.send(b"GET /versions HTTP/1.1\r\nHost: glint\r\n");
    let mut idle = raw::Conn::connect(srv.addr());
    idle.send(&raw::head("GET", "/versions", &[]));
    assert_eq!(idle.read_response().status, 200);
    assert!(
        slow.is_closed_within(std::time::Duration::from_secs(10)),
        "half-sent headers"
    );
    assert!(
        idle.is_closed_within(std::time::Duration::from_secs(10)),
        "idle keep-alive"
    );
    // A connection that keeps working is served throughout.
    let mut busy = raw::Conn::connect(srv.addr());
    for _ in 0..3 {
        busy.send(&raw::head("GET", "/versions", &[]));
        assert_eq!(busy.read_response().status, 200);
    }
}

#[test]
fn connections_stay_open_without_client_socket_timeout() {
    let srv = TestServer::start_with_config("client_socket_timeout = 0");
    let mut idle = raw::Conn::connect(srv.addr());
    idle.send(&raw::head("GET", "/versions", &[]));
    assert_eq!(idle.read_response().status, 200);
    assert!(!idle.is_closed_within(std::time::Duration::from_millis(1500)));
}
