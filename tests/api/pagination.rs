//! Cursor pagination of the files list: `limit`, `after`, `before`, `order`.

use crate::common::*;
use reqwest::StatusCode;
use serde_json::json;

const N: usize = 45;

/// A server with one session holding `N` files, and their ids in creation order.
async fn fixture() -> (Server, String, Vec<String>) {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let mut ids = Vec::new();
    for i in 0..N {
        let (status, body) = server
            .upload(
                ACME,
                &sid,
                &format!("f{i:02}.txt"),
                None,
                format!("{i}").into_bytes(),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    (server, sid, ids)
}

/// One page; asserts the list shape and first_id/last_id consistency.
async fn page(server: &Server, sid: &str, query: &str) -> (Vec<String>, bool) {
    let (status, body) = server
        .get(&format!("{}?{query}", files_path(sid)), ACME)
        .await;
    assert_eq!(status, StatusCode::OK, "?{query}: {body}");
    for f in body["data"].as_array().into_iter().flatten() {
        assert_eq!(f["object"], "session.resource", "?{query}: {f}");
        assert_eq!(f["type"], "file", "?{query}: {f}");
    }
    let ids = assert_list(&body);
    let has_more = body["has_more"].as_bool().unwrap();
    (ids, has_more)
}

/// Walks forwards with `after=last_id`; returns the pages.
async fn walk_forwards(server: &Server, sid: &str, order: &str) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut query = format!("limit=10&order={order}");
    loop {
        let (ids, has_more) = page(server, sid, &query).await;
        assert!(
            !ids.is_empty() || pages.is_empty(),
            "empty page after has_more: ?{query}"
        );
        let last = ids.last().cloned();
        pages.push(ids);
        if !has_more {
            break;
        }
        assert!(pages.len() <= N, "walk does not end");
        query = format!("limit=10&order={order}&after={}", last.unwrap());
    }
    pages
}

/// Walks backwards from `start` (excluded) with `before=first_id`; returns the pages.
async fn walk_backwards(server: &Server, sid: &str, order: &str, start: &str) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut query = format!("limit=10&order={order}&before={start}");
    loop {
        let (ids, has_more) = page(server, sid, &query).await;
        let first = ids.first().cloned();
        pages.push(ids);
        if !has_more {
            break;
        }
        assert!(pages.len() <= N, "walk does not end");
        query = format!("limit=10&order={order}&before={}", first.unwrap());
    }
    pages
}

fn chunked(ids: &[String], sizes: &[usize]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut at = 0;
    for &s in sizes {
        out.push(ids[at..at + s].to_vec());
        at += s;
    }
    assert_eq!(at, ids.len());
    out
}

fn assert_each_once(seen: &[String], all: &[String]) {
    let mut a = seen.to_vec();
    let mut b = all.to_vec();
    a.sort();
    b.sort();
    assert_eq!(a, b, "every file exactly once");
}

#[tokio::test]
async fn ids_are_time_ordered_so_creation_order_is_id_order() {
    let (server, sid, created) = fixture().await;
    let mut sorted = created.clone();
    sorted.sort();
    assert_eq!(sorted, created, "file ids must sort in creation order");

    let (asc, more) = page(&server, &sid, "limit=1000&order=asc").await;
    assert!(!more);
    assert_eq!(asc, created);
    let (desc, more) = page(&server, &sid, "limit=1000&order=desc").await;
    assert!(!more);
    let mut newest_first = created.clone();
    newest_first.reverse();
    assert_eq!(desc, newest_first);
}

#[tokio::test]
async fn default_page_is_20_newest_first() {
    let (server, sid, created) = fixture().await;
    let (status, body) = server.get(&files_path(&sid), ACME).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = created.iter().rev().take(20).map(String::as_str).collect();
    assert_eq!(ids, expected);
    assert_eq!(body["has_more"], true);
    assert_eq!(body["first_id"], expected[0]);
    assert_eq!(body["last_id"], expected[19]);
}

#[tokio::test]
async fn forward_walk_asc_visits_every_file_once_in_creation_order() {
    let (server, sid, created) = fixture().await;
    let pages = walk_forwards(&server, &sid, "asc").await;
    assert_eq!(pages, chunked(&created, &[10, 10, 10, 10, 5]));
    assert_each_once(&pages.concat(), &created);
}

#[tokio::test]
async fn forward_walk_desc_visits_every_file_once_newest_first() {
    let (server, sid, created) = fixture().await;
    let mut newest_first = created.clone();
    newest_first.reverse();
    let pages = walk_forwards(&server, &sid, "desc").await;
    assert_eq!(pages, chunked(&newest_first, &[10, 10, 10, 10, 5]));
    assert_each_once(&pages.concat(), &created);
}

#[tokio::test]
async fn backward_walk_asc_from_the_newest_visits_every_other_file_once() {
    let (server, sid, created) = fixture().await;
    // In asc order the far end is the newest file; `before` it are the 44 others.
    let start = created[N - 1].clone();
    let pages = walk_backwards(&server, &sid, "asc", &start).await;
    // Each page is the 10 just before the cursor, still listed ascending.
    let expected: Vec<Vec<String>> = vec![
        created[34..44].to_vec(),
        created[24..34].to_vec(),
        created[14..24].to_vec(),
        created[4..14].to_vec(),
        created[0..4].to_vec(),
    ];
    assert_eq!(pages, expected);
    let mut seen = pages.concat();
    seen.push(start);
    assert_each_once(&seen, &created);
}

#[tokio::test]
async fn backward_walk_desc_from_the_oldest_visits_every_other_file_once() {
    let (server, sid, created) = fixture().await;
    // In desc order the far end is the oldest file; `before` it are the 44 newer ones.
    let start = created[0].clone();
    let pages = walk_backwards(&server, &sid, "desc", &start).await;
    let rev =
        |r: std::ops::Range<usize>| -> Vec<String> { created[r].iter().rev().cloned().collect() };
    let expected = vec![
        rev(1..11),
        rev(11..21),
        rev(21..31),
        rev(31..41),
        rev(41..45),
    ];
    assert_eq!(pages, expected);
    let mut seen = pages.concat();
    seen.push(start);
    assert_each_once(&seen, &created);
}

#[tokio::test]
async fn cursors_at_the_ends_give_empty_pages_with_null_ids() {
    let (server, sid, created) = fixture().await;
    let newest = &created[N - 1];
    let oldest = &created[0];
    for query in [
        format!("order=asc&after={newest}"),
        format!("order=desc&after={oldest}"),
        format!("order=asc&before={oldest}"),
        format!("order=desc&before={newest}"),
    ] {
        let (ids, has_more) = page(&server, &sid, &query).await;
        assert!(ids.is_empty(), "?{query}: {ids:?}");
        assert!(!has_more, "?{query}");
    }
    // One before the end: exactly one item, no more.
    let (ids, has_more) = page(
        &server,
        &sid,
        &format!("order=asc&after={}", created[N - 2]),
    )
    .await;
    assert_eq!(ids, vec![newest.clone()]);
    assert!(!has_more);
    // A page that ends exactly at the end: has_more false.
    let (ids, has_more) = page(
        &server,
        &sid,
        &format!("order=asc&limit=10&after={}", created[N - 11]),
    )
    .await;
    assert_eq!(ids, created[N - 10..].to_vec());
    assert!(!has_more, "nothing exists past the last item");
}

#[tokio::test]
async fn empty_list_has_null_first_and_last_ids() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    for query in ["", "order=asc", "order=desc&limit=5"] {
        let (status, body) = server
            .get(&format!("{}?{query}", files_path(&sid)), ACME)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body,
            json!({"object": "list", "data": [], "first_id": null, "last_id": null,
                   "has_more": false}),
            "?{query}"
        );
    }
}

#[tokio::test]
async fn forward_walk_sees_files_added_during_the_walk_exactly_once() {
    let (server, sid, mut created) = fixture().await;
    // Walk oldest-first; after each page, upload another file.
    let mut seen = Vec::new();
    let mut query = "limit=10&order=asc".to_owned();
    loop {
        let (ids, has_more) = page(&server, &sid, &query).await;
        seen.extend(ids.iter().cloned());
        if has_more && seen.len() < 60 {
            let (status, body) = server
                .upload(ACME, &sid, "late.txt", None, b"late".to_vec())
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            created.push(body["id"].as_str().unwrap().to_owned());
        }
        if !has_more {
            break;
        }
        assert!(seen.len() <= 200, "walk does not end");
        query = format!("limit=10&order=asc&after={}", ids.last().unwrap());
    }
    assert_eq!(
        seen, created,
        "every file, added ones too, in creation order"
    );
}
