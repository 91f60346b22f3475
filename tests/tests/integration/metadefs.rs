//! Metadata definitions over HTTP (spec §9): every route, Glance's errors (and that a refused
//! write leaves nothing behind), paging, the schemas, the default policy behind a (fake)
//! Keystone, and `glint metadefs load|export` with and without a server running.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use glint_tests::fake_keystone::FakeKeystone;
use glint_tests::{glint_bin, Resp, TestServer};
use serde_json::{json, Value};

const NS: &str = "/v2/metadefs/namespaces";

fn ns_path(ns: &str) -> String {
    format!("{NS}/{ns}")
}

fn put_json(srv: &TestServer, path: &str, body: &Value) -> Resp {
    srv.request("PUT", path).json(body).send()
}

/// A namespace with one of everything, as a client would post it.
fn libvirt() -> Value {
    json!({
        "namespace": "OS::Compute::Libvirt",
        "display_name": "libvirt Driver Options",
        "description": "The libvirt compute driver options.",
        "visibility": "public",
        "protected": true,
        "resource_type_associations": [
            {"name": "OS::Glance::Image", "prefix": "hw_"},
            {"name": "OS::Nova::Flavor", "prefix": "hw:", "properties_target": "flavor"}
        ],
        "properties": {
            "boot_menu": {"title": "Boot Menu", "type": "string", "enum": ["true", "false"]},
            "serial_port_count": {"title": "Serial Port Count", "type": "integer", "minimum": 0,
                                  "default": 1}
        },
        "objects": [
            {"name": "Watchdog", "description": "watchdog", "required": ["watchdog_action"],
             "properties": {"watchdog_action": {"title": "Action", "type": "string"}}}
        ],
        "tags": [{"name": "libvirt"}, {"name": "kvm"}]
    })
}

fn names(list: &Value, key: &str, field: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item[field].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn namespace_with_content_round_trip() {
    let srv = TestServer::start();
    let created = srv.post_json(NS, &libvirt()).expect_status(201);
    assert_eq!(
        created.header("location"),
        Some(format!("{}{}", srv.url(), ns_path("OS::Compute::Libvirt")).as_str())
    );
    let created = created.json();
    assert_eq!(created["owner"], "glint", "the caller's project");
    assert_eq!(created["self"], ns_path("OS::Compute::Libvirt"));
    assert_eq!(created["schema"], "/v2/schemas/metadefs/namespace");

    let shown = srv.get_json(&ns_path("OS::Compute::Libvirt"));
    assert_eq!(shown, created);
    assert_eq!(
        shown["properties"]["serial_port_count"]["default"], "1",
        "stored as text"
    );
    assert_eq!(shown["objects"][0]["required"], json!(["watchdog_action"]));
    assert_eq!(shown["tags"], json!([{"name": "libvirt"}, {"name": "kvm"}]));
    assert_eq!(
        names(&shown, "resource_type_associations", "name"),
        ["OS::Glance::Image", "OS::Nova::Flavor"]
    );

    // ?resource_type= prefixes property names (namespace and objects) and `required`.
    let prefixed = srv.get_json(&format!(
        "{}?resource_type=OS::Nova::Flavor",
        ns_path("OS::Compute::Libvirt")
    ));
    assert!(prefixed["properties"]["hw:boot_menu"].is_object());
    assert_eq!(
        prefixed["objects"][0]["required"],
        json!(["hw:watchdog_action"])
    );
    let property = srv.get_json(&format!(
        "{}/properties/hw_boot_menu?resource_type=OS::Glance::Image",
        ns_path("OS::Compute::Libvirt")
    ));
    assert_eq!(property["name"], "boot_menu");
    srv.get(&format!(
        "{}/properties/boot_menu?resource_type=OS::Glance::Image",
        ns_path("OS::Compute::Libvirt")
    ))
    .expect_status(404);

    // The list form has the associations but not the content.
    let list = srv.get_json(NS);
    assert_eq!(list["schema"], "/v2/schemas/metadefs/namespaces");
    assert_eq!(list["first"], NS);
    assert!(list["namespaces"][0]["resource_type_associations"].is_array());
    assert!(list["namespaces"][0].get("properties").is_none());

    // PUT replaces the own fields (renaming), keeps the content, ignores embedded content.
    let mut body = shown.clone();
    for key in ["self", "schema", "created_at", "updated_at"] {
        body.as_object_mut().unwrap().remove(key);
    }
    body["namespace"] = json!("OS::Compute::Libvirt2");
    body["protected"] = json!(false);
    let updated = put_json(&srv, &ns_path("OS::Compute::Libvirt"), &body)
        .expect_status(200)
        .json();
    assert_eq!(updated["namespace"], "OS::Compute::Libvirt2");
    assert_eq!(updated["created_at"], created["created_at"]);
    assert!(updated.get("properties").is_none());
    srv.get(&ns_path("OS::Compute::Libvirt")).expect_status(404);
    let moved = srv.get_json(&ns_path("OS::Compute::Libvirt2"));
    assert_eq!(moved["properties"], shown["properties"]);
    assert_eq!(moved["protected"], false);

    srv.delete(&ns_path("OS::Compute::Libvirt2"))
        .expect_status(204);
    srv.get(&ns_path("OS::Compute::Libvirt2"))
        .expect_status(404);
    // Resource types outlive their namespaces.
    let types = srv.get_json("/v2/metadefs/resource_types");
    assert_eq!(
        names(&types, "resource_types", "name"),
        ["OS::Glance::Image", "OS::Nova::Flavor"]
    );
}

#[test]
fn objects_properties_tags_and_associations() {
    let srv = TestServer::start();
    srv.post_json(NS, &json!({"namespace": "n"}))
        .expect_status(201);
    let n = ns_path("n");

    // Objects.
    let object = json!({"name": "o1", "description": "d", "required": ["a"],
                        "properties": {"a": {"title": "A", "type": "string"}}});
    let created = srv
        .post_json(&format!("{n}/objects"), &object)
        .expect_status(201)
        .json();
    assert_eq!(created["self"], format!("{n}/objects/o1"));
    srv.post_json(&format!("{n}/objects"), &json!({"name": "o2"}))
        .expect_status(201);
    srv.post_json(&format!("{n}/objects"), &object)
        .expect_status(409);
    let list = srv.get_json(&format!("{n}/objects"));
    assert_eq!(names(&list, "objects", "name"), ["o1", "o2"]);
    let renamed = put_json(&srv, &format!("{n}/objects/o1"), &json!({"name": "o3"}))
        .expect_status(200)
        .json();
    assert_eq!(renamed["created_at"], created["created_at"]);
    assert_eq!(renamed["properties"], json!({}));
    put_json(&srv, &format!("{n}/objects/o3"), &json!({"name": "o2"})).expect_status(409);
    srv.get(&format!("{n}/objects/o1")).expect_status(404);
    srv.delete(&format!("{n}/objects/o3")).expect_status(204);

    // Properties.
    let property = json!({"name": "p", "title": "P", "type": "string", "enum": ["a"]});
    let created = srv
        .post_json(&format!("{n}/properties"), &property)
        .expect_status(201)
        .json();
    assert_eq!(created, property);
    srv.post_json(&format!("{n}/properties"), &property)
        .expect_status(409);
    let updated = put_json(
        &srv,
        &format!("{n}/properties/p"),
        &json!({"name": "q", "title": "Q", "type": "integer", "maximum": 9}),
    )
    .expect_status(200)
    .json();
    assert_eq!(updated["name"], "q");
    let all = srv.get_json(&format!("{n}/properties"));
    assert_eq!(
        all,
        json!({"properties": {"q": {"title": "Q", "type": "integer", "maximum": 9}}})
    );
    srv.delete(&format!("{n}/properties/q")).expect_status(204);
    srv.delete(&format!("{n}/properties/q")).expect_status(404);

    // Tags: replace, append, sort, page, rename, delete.
    let tags = |body: Value, append: bool| {
        let mut req = srv.request("POST", &format!("{n}/tags")).json(&body);
        if append {
            req = req.header("X-Openstack-Append", "True");
        }
        req.send()
    };
    srv.post_empty(&format!("{n}/tags/old")).expect_status(201);
    let created = tags(json!({"tags": [{"name": "b"}, {"name": "a"}]}), false)
        .expect_status(201)
        .json();
    assert_eq!(created, json!({"tags": [{"name": "b"}, {"name": "a"}]}));
    tags(json!({"tags": [{"name": "c"}]}), true).expect_status(201);
    tags(json!({"tags": [{"name": "a"}]}), true).expect_status(409);
    tags(json!({"tags": [{"name": "x"}, {"name": "x"}]}), false).expect_status(409);
    let by_name = srv.get_json(&format!("{n}/tags?sort_key=name&sort_dir=asc"));
    assert_eq!(
        by_name,
        json!({"tags": [{"name": "a"}, {"name": "b"}, {"name": "c"}]})
    );
    let page = srv.get_json(&format!(
        "{n}/tags?sort_key=name&sort_dir=asc&marker=a&limit=1"
    ));
    assert_eq!(page, json!({"tags": [{"name": "b"}]}));
    srv.get(&format!("{n}/tags?marker=zz")).expect_status(404);
    srv.get(&format!("{n}/tags?sort_dir=sideways"))
        .expect_status(400);
    srv.post_empty(&format!("{n}/tags/a")).expect_status(409);
    let renamed = put_json(&srv, &format!("{n}/tags/a"), &json!({"name": "z"}))
        .expect_status(200)
        .json();
    assert_eq!(renamed["name"], "z");
    srv.get_json(&format!("{n}/tags/z"));
    srv.delete(&format!("{n}/tags/z")).expect_status(204);
    srv.delete(&format!("{n}/tags")).expect_status(204);
    assert_eq!(srv.get_json(&format!("{n}/tags")), json!({"tags": []}));

    // Resource-type associations.
    let association = srv
        .post_json(
            &format!("{n}/resource_types"),
            &json!({"name": "OS::Cinder::Volume", "prefix": "hw_", "properties_target": "image"}),
        )
        .expect_status(201)
        .json();
    assert_eq!(association["prefix"], "hw_");
    srv.post_json(
        &format!("{n}/resource_types"),
        &json!({"name": "OS::Cinder::Volume"}),
    )
    .expect_status(409);
    let listed = srv.get_json(&format!("{n}/resource_types"));
    assert_eq!(listed["resource_type_associations"][0], association);
    srv.delete(&format!("{n}/resource_types/OS::Cinder::Volume"))
        .expect_status(204);
    srv.delete(&format!("{n}/resource_types/OS::Cinder::Volume"))
        .expect_status(404);
}

#[test]
fn refusals_are_glances_and_write_nothing() {
    let srv = TestServer::start();
    srv.post_json(NS, &libvirt()).expect_status(201);
    let before = srv.get_json(NS);

    // A duplicate namespace.
    let dup = srv.post_json(NS, &libvirt()).expect_status(409);
    assert!(dup.text().contains("already exists"), "{}", dup.text());
    // A property whose schema is invalid, deep inside a new namespace: nothing is created.
    let mut bad = libvirt();
    bad["namespace"] = json!("OS::Bad");
    bad["objects"][0]["properties"]["watchdog_action"]["type"] = json!("strng");
    let resp = srv.post_json(NS, &bad).expect_status(400);
    assert!(resp.text().contains("strng"), "{}", resp.text());
    srv.get(&ns_path("OS::Bad")).expect_status(404);
    // Names over Glance's limits.
    for body in [
        json!({"namespace": "n".repeat(81)}),
        json!({"namespace": "ok", "display_name": "d".repeat(81)}),
        json!({"namespace": "ok", "description": "d".repeat(501)}),
        json!({"namespace": "ok", "tags": [{"name": "t".repeat(81)}]}),
        json!({"namespace": "ok", "visibility": "shared"}),
        json!({"namespace": "ok", "unknown": 1}),
        json!({"display_name": "no namespace"}),
    ] {
        srv.post_json(NS, &body).expect_status(400);
    }
    srv.get(&ns_path("ok")).expect_status(404);
    // Read-only attributes.
    srv.post_json(NS, &json!({"namespace": "ro", "created_at": "x"}))
        .expect_status(403);
    let lib = ns_path("OS::Compute::Libvirt");
    srv.post_json(
        &format!("{lib}/properties"),
        &json!({"title": "T", "type": "string"}),
    )
    .expect_status(400);
    srv.post_json(
        &format!("{lib}/properties"),
        &json!({"name": "p", "title": "T", "type": "string", "minLength": -1}),
    )
    .expect_status(400);
    srv.post_json(
        &format!("{lib}/objects"),
        &json!({"name": "o", "properties": {"x": {"title": "X", "type": "string", "bogus": 1}}}),
    )
    .expect_status(400);
    srv.post_empty(&format!("{lib}/tags/{}", "t".repeat(81)))
        .expect_status(400);

    // A protected namespace refuses every delete, with Glance's message.
    let lib_before = srv.get_json(&lib);
    let resp = srv.delete(&lib).expect_status(403);
    assert!(
        resp.text()
            .contains("namespace OS::Compute::Libvirt is protected and cannot be deleted"),
        "{}",
        resp.text()
    );
    for path in [
        format!("{lib}/objects/Watchdog"),
        format!("{lib}/properties/boot_menu"),
        format!("{lib}/tags/kvm"),
        format!("{lib}/resource_types/OS::Glance::Image"),
        format!("{lib}/objects"),
        format!("{lib}/properties"),
        format!("{lib}/tags"),
    ] {
        srv.delete(&path).expect_status(403);
    }
    assert_eq!(srv.get_json(NS), before);
    assert_eq!(srv.get_json(&lib), lib_before);

    // Missing things, wrong methods, bodies where none belong.
    srv.get(&ns_path("nothing")).expect_status(404);
    srv.get(&format!("{lib}/objects/nothing"))
        .expect_status(404);
    srv.get(&format!("{lib}/tags/nothing")).expect_status(404);
    let resp = srv.request("PATCH", &lib).send().expect_status(405);
    assert_eq!(resp.header("allow"), Some("GET, PUT, DELETE"));
    srv.request("GET", &lib)
        .body("{}")
        .send()
        .expect_status(400);
    srv.get(&format!("{NS}?visibility=shared"))
        .expect_status(400);
    srv.get(&format!("{NS}?sort_key=owner")).expect_status(400);
    srv.get(&format!("{NS}?limit=-1")).expect_status(400);
    srv.get(&format!("{NS}?marker=nothing")).expect_status(404);
}

#[test]
fn namespace_list_pages_sorts_and_filters() {
    let srv = TestServer::start();
    for (name, visibility, rt) in [
        ("a", "public", Some("OS::Glance::Image")),
        ("b", "private", None),
        ("c", "public", Some("OS::Nova::Flavor")),
    ] {
        let mut body = json!({"namespace": name, "visibility": visibility});
        if let Some(rt) = rt {
            body["resource_type_associations"] = json!([{"name": rt}]);
        }
        srv.post_json(NS, &body).expect_status(201);
    }
    let list = |query: &str| {
        names(
            &srv.get_json(&format!("{NS}?{query}")),
            "namespaces",
            "namespace",
        )
    };
    assert_eq!(list(""), ["c", "b", "a"], "newest first");
    assert_eq!(list("sort_key=namespace&sort_dir=asc"), ["a", "b", "c"]);
    assert_eq!(list("visibility=private"), ["b"]);
    assert_eq!(
        list("resource_types=OS::Nova::Flavor,OS::Glance::Image"),
        ["c", "a"]
    );

    let page = srv.get_json(&format!("{NS}?sort_key=namespace&sort_dir=asc&limit=2"));
    assert_eq!(names(&page, "namespaces", "namespace"), ["a", "b"]);
    assert_eq!(
        page["first"],
        format!("{NS}?sort_key=namespace&sort_dir=asc&limit=2")
    );
    let next = page["next"].as_str().unwrap();
    assert_eq!(
        next,
        format!("{NS}?sort_key=namespace&sort_dir=asc&limit=2&marker=b")
    );
    let last = srv.get_json(next);
    assert_eq!(names(&last, "namespaces", "namespace"), ["c"]);
    assert!(last.get("next").is_none());
}

#[test]
fn schemas_are_served() {
    let srv = TestServer::start();
    for name in [
        "namespace",
        "namespaces",
        "object",
        "objects",
        "property",
        "properties",
        "resource_type",
        "resource_types",
        "tag",
        "tags",
    ] {
        let schema = srv.get_json(&format!("/v2/schemas/metadefs/{name}"));
        assert!(schema["properties"].is_object(), "{name}");
    }
    let namespace = srv.get_json("/v2/schemas/metadefs/namespace");
    assert_eq!(namespace["name"], "namespace");
    assert_eq!(namespace["required"], json!(["namespace"]));
    assert_eq!(namespace["additionalProperties"], false);
    assert_eq!(namespace["properties"]["namespace"]["maxLength"], 80);
    let resource_types = srv.get_json("/v2/schemas/metadefs/resource_types");
    assert_eq!(resource_types["name"], "resource_type_associations");
    srv.get("/v2/schemas/metadefs/nothing").expect_status(404);
}

const HOUR: Duration = Duration::from_secs(3600);

fn as_user(srv: &TestServer, token: &str, method: &str, path: &str, body: Option<&Value>) -> Resp {
    let mut req = srv.request(method, path).header("x-auth-token", token);
    if let Some(body) = body {
        req = req.json(body);
    }
    req.send()
}

#[test]
fn default_policy_behind_keystone() {
    let keystone = FakeKeystone::start();
    let srv = TestServer::start_with_config(&keystone.glint_config());
    let admin = keystone.issue("admin", "admin-proj", &["admin", "member", "reader"], HOUR);
    let alice = keystone.issue("alice", "proj-a", &["member", "reader"], HOUR);
    let rita = keystone.issue("rita", "proj-a", &["reader"], HOUR);
    let bob = keystone.issue("bob", "proj-b", &["member", "reader"], HOUR);

    // Only admins write; an admin may create a namespace owned by another project.
    as_user(
        &srv,
        &alice,
        "POST",
        NS,
        Some(&json!({"namespace": "mine"})),
    )
    .expect_status(403);
    as_user(
        &srv,
        &admin,
        "POST",
        NS,
        Some(&json!({"namespace": "private-a", "owner": "proj-a"})),
    )
    .expect_status(201);
    as_user(
        &srv,
        &admin,
        "POST",
        NS,
        Some(&json!({"namespace": "public-a", "owner": "proj-a",
        "visibility": "public", "tags": [{"name": "t"}]})),
    )
    .expect_status(201);

    let listed = |token: &str| {
        names(
            &as_user(&srv, token, "GET", NS, None)
                .expect_status(200)
                .json(),
            "namespaces",
            "namespace",
        )
    };
    assert_eq!(listed(&admin), ["public-a", "private-a"]);
    assert_eq!(
        listed(&rita),
        ["public-a", "private-a"],
        "readers of the owner see private ones"
    );
    assert_eq!(listed(&bob), ["public-a"]);

    // Another project's private namespace does not exist for bob: 404 everywhere, never 403.
    for (method, path) in [
        ("GET", ns_path("private-a")),
        ("DELETE", ns_path("private-a")),
        ("GET", format!("{}/objects", ns_path("private-a"))),
        ("POST", format!("{}/tags/x", ns_path("private-a"))),
    ] {
        as_user(&srv, &bob, method, &path, None).expect_status(404);
    }
    as_user(
        &srv,
        &bob,
        "PUT",
        &ns_path("private-a"),
        Some(&json!({"namespace": "private-a"})),
    )
    .expect_status(404);

    // A public namespace: bob reads it and cannot change it (403).
    as_user(&srv, &bob, "GET", &ns_path("public-a"), None).expect_status(200);
    as_user(
        &srv,
        &bob,
        "GET",
        &format!("{}/tags", ns_path("public-a")),
        None,
    )
    .expect_status(200);
    as_user(
        &srv,
        &bob,
        "PUT",
        &ns_path("public-a"),
        Some(&json!({"namespace": "stolen"})),
    )
    .expect_status(403);
    as_user(
        &srv,
        &bob,
        "DELETE",
        &format!("{}/tags/t", ns_path("public-a")),
        None,
    )
    .expect_status(403);
    as_user(
        &srv,
        &bob,
        "POST",
        &format!("{}/objects", ns_path("public-a")),
        Some(&json!({"name": "o"})),
    )
    .expect_status(403);
    // Even the owner project's members cannot write (metadef_admin).
    let resp = as_user(&srv, &alice, "DELETE", &ns_path("private-a"), None).expect_status(403);
    assert!(
        resp.text().contains("delete_metadef_namespace"),
        "{}",
        resp.text()
    );
    as_user(&srv, &admin, "GET", &ns_path("stolen"), None).expect_status(404);
    as_user(
        &srv,
        &admin,
        "GET",
        &format!("{}/tags/t", ns_path("public-a")),
        None,
    )
    .expect_status(200);
    as_user(&srv, &bob, "GET", "/v2/metadefs/resource_types", None).expect_status(200);
}

// ---- glint metadefs load|export

fn glint(args: &[&str], data_dir: &Path) -> (bool, String) {
    let out = Command::new(glint_bin())
        .arg("metadefs")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn write_files(dir: &Path, files: &[(&str, Value)]) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, value) in files {
        std::fs::write(dir.join(name), serde_json::to_vec_pretty(value).unwrap()).unwrap();
    }
}

/// Two definition files in Glance's format (no owner, no times).
fn glance_files() -> Vec<(&'static str, Value)> {
    vec![
        (
            "compute-watchdog.json",
            json!({
                "namespace": "OS::Compute::Watchdog",
                "display_name": "Watchdog Behavior",
                "visibility": "public",
                "protected": true,
                "resource_type_associations": [{"name": "OS::Glance::Image"}, {"name": "OS::Nova::Flavor", "prefix": "hw:"}],
                "properties": {"hw_watchdog_action": {"title": "Watchdog Action", "type": "string",
                    "enum": ["disabled", "reset", "poweroff", "pause", "none"], "default": "disabled"}}
            }),
        ),
        (
            "software-runtimes.json",
            json!({
                "namespace": "OS::Software::Runtimes",
                "display_name": "Runtime Environment",
                "visibility": "public",
                "protected": true,
                "objects": [{"name": "PHP", "description": "PHP",
                    "properties": {"php_version": {"title": "Version", "type": "string"}}}],
                "tags": [{"name": "runtime"}]
            }),
        ),
    ]
}

/// Every read answer of the API about the metadefs, for comparing two servers.
fn api_answers(srv: &TestServer) -> Vec<Value> {
    let mut answers = vec![
        srv.get_json(&format!("{NS}?limit=1000")),
        srv.get_json("/v2/metadefs/resource_types"),
    ];
    for ns in names(&answers[0], "namespaces", "namespace") {
        let path = ns_path(&ns);
        answers.push(srv.get_json(&path));
        for sub in ["objects", "properties", "tags", "resource_types"] {
            answers.push(srv.get_json(&format!("{path}/{sub}")));
        }
    }
    answers
}

#[test]
fn load_and_export_with_and_without_a_server() {
    let mut srv = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    let defs = root.path().join("defs");
    write_files(&defs, &glance_files());

    // While the server runs: through its admin socket.
    let (ok, out) = glint(&["load", defs.to_str().unwrap()], &srv.data_dir());
    assert!(ok, "{out}");
    assert!(
        out.contains("2 created") && out.contains("admin.sock"),
        "{out}"
    );
    let list = srv.get_json(NS);
    assert_eq!(names(&list, "namespaces", "namespace").len(), 2, "{list}");
    let watchdog = srv.get_json(&ns_path("OS::Compute::Watchdog"));
    assert_eq!(watchdog["owner"], "admin", "Glance's loader default");
    assert_eq!(watchdog["protected"], true);
    let types = srv.get_json("/v2/metadefs/resource_types");
    assert_eq!(
        names(&types, "resource_types", "name"),
        ["OS::Glance::Image", "OS::Nova::Flavor"]
    );

    // A second load changes nothing.
    let before = api_answers(&srv);
    let (ok, out) = glint(&["load", defs.to_str().unwrap()], &srv.data_dir());
    assert!(ok && out.contains("2 unchanged"), "{out}");
    assert_eq!(api_answers(&srv), before);

    // A changed file: skipped without --merge, merged with it, preferred with --prefer-new.
    let mut changed = glance_files();
    changed[0].1["properties"]["hw_watchdog_action"]["title"] = json!("New title");
    changed[0].1["properties"]["hw_new"] = json!({"title": "New", "type": "boolean"});
    write_files(&defs, &changed);
    let prop = |srv: &TestServer, name: &str| {
        srv.get(&format!(
            "{}/properties/{name}",
            ns_path("OS::Compute::Watchdog")
        ))
    };
    glint(&["load", defs.to_str().unwrap()], &srv.data_dir());
    prop(&srv, "hw_new").expect_status(404);
    let (ok, out) = glint(
        &["load", "--merge", defs.to_str().unwrap()],
        &srv.data_dir(),
    );
    assert!(ok && out.contains("1 updated"), "{out}");
    prop(&srv, "hw_new").expect_status(200);
    assert_eq!(
        prop(&srv, "hw_watchdog_action").json()["title"],
        "Watchdog Action"
    );
    let (ok, out) = glint(
        &["load", "--merge", "--prefer-new", defs.to_str().unwrap()],
        &srv.data_dir(),
    );
    assert!(ok, "{out}");
    assert_eq!(
        prop(&srv, "hw_watchdog_action").json()["title"],
        "New title"
    );
    let (ok, out) = glint(
        &["load", "--prefer-new", defs.to_str().unwrap()],
        &srv.data_dir(),
    );
    assert!(!ok && out.contains("need --merge"), "{out}");

    // A bad file: a clear error naming it, and nothing of the other files is written.
    let bad = root.path().join("bad");
    let mut files = glance_files();
    files[0].1["namespace"] = json!("OS::New::One");
    files.push((
        "zz-broken.json",
        json!({"namespace": "OS::New::Two",
        "properties": {"p": {"title": "P", "type": "float"}}}),
    ));
    write_files(&bad, &files);
    let (ok, out) = glint(&["load", bad.to_str().unwrap()], &srv.data_dir());
    assert!(
        !ok && out.contains("zz-broken.json") && out.contains("float"),
        "{out}"
    );
    srv.get(&ns_path("OS::New::One")).expect_status(404);

    // Export while running, then with the server stopped (the command opens the store).
    let exported = root.path().join("export");
    let (ok, out) = glint(&["export", exported.to_str().unwrap()], &srv.data_dir());
    assert!(ok && out.contains("exported 2"), "{out}");
    let answers = api_answers(&srv);
    srv.stop();
    let offline = root.path().join("offline");
    let (ok, out) = glint(&["export", offline.to_str().unwrap()], &srv.data_dir());
    assert!(ok && out.contains("meta.redb"), "{out}");
    for entry in std::fs::read_dir(&exported).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            std::fs::read(offline.join(name)).unwrap()
        );
    }

    // Export → load into an empty glint → identical API answers.
    let fresh = TestServer::start();
    let mut fresh = fresh;
    fresh.stop();
    let (ok, out) = glint(&["load", exported.to_str().unwrap()], &fresh.data_dir());
    assert!(ok && out.contains("2 created"), "{out}");
    fresh.start_again();
    assert_eq!(api_answers(&fresh), answers);
}
