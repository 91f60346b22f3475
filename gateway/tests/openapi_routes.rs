//! `docs/openapi.yaml` describes exactly the operations of the route table
//! (`gateway::routes::ROUTES`): every method of every route is there, and nothing else is. So a
//! new route is described when it is added, and schemathesis (`tests/e2e/openapi.sh`) tests it.
//!
//! Paths are compared with their parameters unnamed (`/v2/images/{id}` in the table is
//! `/v2/images/{image_id}` in the description). The description is read line by line: its
//! `paths` block is written in YAML's block style, a path at two spaces of indentation and its
//! operations at four.

use std::collections::BTreeSet;
use std::path::Path;

use gateway::routes::ROUTES;

const OPERATIONS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// `/v2/images/{id}/tags/{tag}` → `/v2/images/{}/tags/{}`.
fn unnamed(template: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut in_param = false;
    for c in template.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            _ if !in_param => out.push(c),
            _ => {}
        }
    }
    out
}

fn unquoted(key: &str) -> &str {
    key.trim_matches(|c| c == '"' || c == '\'')
}

/// The `(method, path)` operations under `paths:`, methods upper-case, paths unnamed.
fn described(yaml: &str) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    let mut in_paths = false;
    let mut path: Option<String> = None;
    for line in yaml.lines() {
        let content = line.trim_end();
        if content.trim_start().is_empty() || content.trim_start().starts_with('#') {
            continue;
        }
        let indent = content.len() - content.trim_start().len();
        let Some(key) = content.trim_start().strip_suffix(':') else {
            if indent == 0 {
                in_paths = false;
            }
            continue;
        };
        match indent {
            0 => {
                in_paths = key == "paths";
                path = None;
            }
            2 if in_paths => {
                let key = unquoted(key);
                assert!(key.starts_with('/'), "a path under `paths:`: {key:?}");
                path = Some(unnamed(key));
            }
            4 if in_paths && OPERATIONS.contains(&unquoted(key)) => {
                let path = path.clone().expect("an operation under a path");
                operations.insert((unquoted(key).to_ascii_uppercase(), path));
            }
            _ => {}
        }
    }
    operations
}

fn routed() -> BTreeSet<(String, String)> {
    ROUTES
        .iter()
        .flat_map(|route| {
            route
                .methods
                .iter()
                .map(|method| (method.as_str().to_owned(), unnamed(route.template)))
        })
        .collect()
}

#[test]
fn the_description_lists_every_route_and_only_routes() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.yaml");
    let yaml = std::fs::read_to_string(&file).expect("read docs/openapi.yaml");
    let described = described(&yaml);
    let routed = routed();
    assert!(routed.len() > 20, "the route table: {routed:?}");
    let missing: Vec<_> = routed.difference(&described).collect();
    assert!(
        missing.is_empty(),
        "routes docs/openapi.yaml does not describe (add them there): {missing:?}"
    );
    let extra: Vec<_> = described.difference(&routed).collect();
    assert!(
        extra.is_empty(),
        "operations in docs/openapi.yaml that no route serves: {extra:?}"
    );
}

#[test]
fn the_reader_finds_operations_only_under_paths() {
    let yaml = "\
openapi: 3.0.3
paths:
  /v2/images/{image_id}:
    parameters:
      - $ref: x
    get:
      responses: {}
    'delete':
      responses: {}
  \"/versions\":
    get:
      summary: y
components:
  /not/a/path:
    get:
      x: 1
";
    let found = described(yaml);
    let expected: BTreeSet<(String, String)> = [
        ("GET", "/v2/images/{}"),
        ("DELETE", "/v2/images/{}"),
        ("GET", "/versions"),
    ]
    .into_iter()
    .map(|(m, p)| (m.to_owned(), p.to_owned()))
    .collect();
    assert_eq!(found, expected);
}
