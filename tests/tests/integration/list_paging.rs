//! `GET /v2/images` paging (§5.1): limit, marker, `first` / `next` links and the defaults
//! and caps from the config.

use std::collections::BTreeSet;

use glint_tests::{id_of, ids_of, TestServer};
use serde_json::{json, Value};

/// Create `n` images; return their ids in the server's default order, read from one large
/// page. (Whether that order is the spec's is `default_order_is_created_at_then_id_desc`;
/// the paging tests check that pages add up to it.)
pub fn create_images(srv: &TestServer, n: usize) -> Vec<String> {
    let created: BTreeSet<String> = (0..n)
        .map(|i| id_of(&srv.create_image(json!({"name": format!("image-{i}")}))))
        .collect();
    let listed = srv.list_ids("limit=1000");
    assert_eq!(
        listed.iter().cloned().collect::<BTreeSet<_>>(),
        created,
        "one large page lists every image once"
    );
    assert_eq!(listed.len(), n, "no duplicates");
    listed
}

/// A relative link `/v2/images?a=b&c=d` as its path and the set of its query pairs.
pub fn parse_link(link: &str) -> (String, BTreeSet<(String, String)>) {
    let (path, query) = link.split_once('?').unwrap_or((link, ""));
    let pairs = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    (path.to_owned(), pairs)
}

fn pairs(list: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn default_order_is_newest_first() {
    // §5.2: the default sort is created_at desc. created_at has second precision, so keep
    // creating (bounded by a deadline) until the images span two different seconds.
    let srv = TestServer::start();
    let mut images: Vec<Value> = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        images.push(srv.create_image(json!({})));
        let seconds: BTreeSet<&str> = images
            .iter()
            .map(|i| i["created_at"].as_str().unwrap())
            .collect();
        if seconds.len() >= 2 && images.len() >= 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "created_at never changed"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let created_at = |id: &String| {
        images
            .iter()
            .find(|i| i["id"] == id.as_str())
            .map(|i| i["created_at"].as_str().unwrap().to_owned())
            .unwrap()
    };
    let listed: Vec<String> = srv.list_ids("limit=1000").iter().map(created_at).collect();
    let mut sorted = listed.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(listed, sorted, "created_at must not increase down the list");
    assert_eq!(listed.len(), images.len());
}

#[test]
fn list_without_parameters_returns_all_in_default_order() {
    let srv = TestServer::start();
    let expected = create_images(&srv, 5);
    let resp = srv.get("/v2/images").expect_status(200);
    assert_eq!(resp.content_type().as_deref(), Some("application/json"));
    let page = resp.json();
    assert_eq!(ids_of(&page), expected);
    assert_eq!(page["first"], "/v2/images");
    assert_eq!(page["schema"], "/v2/schemas/images");
    assert!(page.get("next").is_none(), "short page has no next: {page}");
    // List entries are full image bodies.
    assert_eq!(page["images"][0], srv.image(&expected[0]));
}

#[test]
fn empty_list_has_first_and_no_next() {
    let srv = TestServer::start();
    let page = srv.list("");
    assert_eq!(page["images"], json!([]));
    assert_eq!(page["first"], "/v2/images");
    assert!(page.get("next").is_none());
}

#[test]
fn limit_pages_follow_next_links_to_the_end() {
    let srv = TestServer::start();
    let expected = create_images(&srv, 5);

    let page1 = srv.list("limit=2");
    assert_eq!(ids_of(&page1), expected[..2]);
    assert_eq!(page1["first"], "/v2/images?limit=2");
    let next = page1["next"].as_str().expect("next on a full page");
    assert_eq!(
        parse_link(next),
        (
            "/v2/images".to_owned(),
            pairs(&[("limit", "2"), ("marker", &expected[1])])
        )
    );

    let page2 = srv.get_json(next);
    assert_eq!(ids_of(&page2), expected[2..4]);
    assert_eq!(
        page2["first"], "/v2/images?limit=2",
        "first drops the marker"
    );
    let page3 = srv.get_json(page2["next"].as_str().expect("next"));
    assert_eq!(ids_of(&page3), expected[4..]);
    assert!(page3.get("next").is_none(), "last page: {page3}");
    assert_eq!(srv.list_all_ids("limit=2"), expected);
}

#[test]
fn full_last_page_has_next_leading_to_an_empty_page() {
    let srv = TestServer::start();
    let expected = create_images(&srv, 3);
    let page = srv.list("limit=3");
    assert_eq!(ids_of(&page), expected);
    let next = page["next"].as_str().expect("a full page has next");
    let last = srv.get_json(next);
    assert_eq!(last["images"], json!([]));
    assert!(last.get("next").is_none());
}

#[test]
fn marker_continues_after_that_image() {
    let srv = TestServer::start();
    let expected = create_images(&srv, 4);
    let ids = srv.list_ids(&format!("marker={}", expected[1]));
    assert_eq!(ids, expected[2..]);
}

#[test]
fn limit_defaults_to_limit_param_default() {
    let srv = TestServer::start_with_config("limit_param_default = 2\n");
    let expected = create_images(&srv, 3);
    let page = srv.list("");
    assert_eq!(ids_of(&page), expected[..2]);
    assert!(page.get("next").is_some());
    assert_eq!(srv.list_all_ids(""), expected);
}

#[test]
fn limit_is_capped_at_api_limit_max() {
    // glint refuses a limit_param_default above api_limit_max at start-up, so set both.
    let srv = TestServer::start_with_config("api_limit_max = 3\nlimit_param_default = 2\n");
    let created: BTreeSet<String> = (0..5)
        .map(|_| id_of(&srv.create_image(json!({}))))
        .collect();
    let page = srv.list("limit=10");
    assert_eq!(ids_of(&page).len(), 3, "limit=10 is capped to 3");
    assert!(page.get("next").is_some(), "capped page is full: {page}");
    let all = srv.list_all_ids("limit=10");
    assert_eq!(all.len(), 5);
    assert_eq!(all.into_iter().collect::<BTreeSet<_>>(), created);
    assert_eq!(
        srv.list_ids("limit=1000").len(),
        3,
        "limit=1000 is capped too"
    );
    assert_eq!(srv.list_ids("").len(), 2, "default limit");
}

#[test]
fn bad_limit_is_bad_request() {
    let srv = TestServer::start();
    create_images(&srv, 1);
    for limit in ["abc", "-1", "1.5", "", "2x"] {
        let resp = srv.get(&format!("/v2/images?limit={limit}"));
        assert_eq!(resp.status, 400, "limit={limit}: {resp:?}");
    }
}

#[test]
fn unknown_or_invalid_marker_is_bad_request() {
    let srv = TestServer::start();
    let ids = create_images(&srv, 2);
    srv.delete(&format!("/v2/images/{}", ids[0]))
        .expect_status(204);
    for marker in [
        uuid::Uuid::new_v4().to_string(),
        "not-a-uuid".to_owned(),
        ids[0].clone(),
    ] {
        let resp = srv.get(&format!("/v2/images?marker={marker}"));
        assert_eq!(resp.status, 400, "marker={marker}: {resp:?}");
    }
}

#[test]
fn next_link_keeps_filters_and_repeated_parameters() {
    let srv = TestServer::start();
    let both: BTreeSet<String> = (0..3)
        .map(|_| id_of(&srv.create_image(json!({"tags": ["a", "b"]}))))
        .collect();
    srv.create_image(json!({"tags": ["a"]}));
    srv.create_image(json!({"tags": ["b"]}));
    let page = srv.list("tag=a&tag=b&limit=1");
    let (_, first) = parse_link(page["first"].as_str().unwrap());
    assert_eq!(first, pairs(&[("tag", "a"), ("tag", "b"), ("limit", "1")]));
    let all: Vec<String> = srv.list_all_ids("tag=a&tag=b&limit=1");
    assert_eq!(
        all.len(),
        3,
        "following next keeps both tag filters: {all:?}"
    );
    assert_eq!(all.into_iter().collect::<BTreeSet<_>>(), both);
}

#[test]
fn paging_visits_every_image_once_with_many_images() {
    let srv = TestServer::start();
    let expected = create_images(&srv, 30);
    assert_eq!(srv.list_ids("").len(), 25, "default page size is 25");
    assert_eq!(srv.list_all_ids(""), expected);
    assert_eq!(srv.list_all_ids("limit=7"), expected);
}

#[test]
fn next_link_round_trips_encoded_filter_values() {
    // Clients follow `next` verbatim, so values needing percent-encoding (spaces, commas,
    // quotes) must survive the round trip.
    let srv = TestServer::start();
    let a = id_of(&srv.create_image(json!({"name": "glass, darkly"})));
    let b = id_of(&srv.create_image(json!({"name": "plain & simple"})));
    srv.create_image(json!({"name": "other"}));
    let query = format!(
        "name={}&limit=1",
        glint_tests::urlencode("in:\"glass, darkly\",plain & simple")
    );
    let all = srv.list_all_ids(&query);
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(
        all.into_iter().collect::<BTreeSet<_>>(),
        BTreeSet::from([a, b])
    );
}
