//! Full-text search: it finds by word and by phrase, ranked and paginated, keeps to the rooms the
//! user is a member of whatever an attacker puts in the parameters, follows edits and deletes in
//! the writer's transaction, and opens a room around a result (`around=SEQ`). Runs on SQLite, and
//! on PostgreSQL when `CONFAB_TEST_DATABASE_URL` is set.

use confab::ServeArgs;
use confab_actors::store::{NewMessage, SearchFilter, SearchQuery, SqliteSync, Store, WriteOutcome};
use confab_schemas::{Draft, Role, RoomId, UserId, Visibility};
use confab_tests::{Api, NodeOpts, TestDb, TestNode, Ws, unique};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;

async fn send(ws: &mut Ws, room: i64, cid: &str, body: &str) -> u64 {
    act(ws, json!({"type": "send", "room": room, "cid": cid, "body": body})).await
}

/// Sends `frame` and returns the seq of its ack (every write is durable, so searchable, by then).
async fn act(ws: &mut Ws, frame: Value) -> u64 {
    let cid = frame["cid"].clone();
    ws.send(frame.clone()).await;
    let answer = ws
        .recv_where("an answer", |f| {
            (f["type"] == "ack" && f["cid"] == cid) || (f["type"] == "error" && f["ref"] == cid)
        })
        .await;
    assert_eq!(answer["type"], "ack", "{frame} → {answer}");
    answer["seq"].as_u64().unwrap()
}

/// `GET /api/search` with `params` (already encoded).
async fn search(api: &Api, params: &str) -> (u16, Value) {
    api.get(&format!("/api/search?{params}")).await
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The results' (room, seq) pairs.
fn found(body: &Value) -> Vec<(i64, u64)> {
    body["results"]
        .as_array()
        .unwrap_or_else(|| panic!("results: {body}"))
        .iter()
        .map(|r| (r["room"].as_i64().unwrap(), r["seq"].as_u64().unwrap()))
        .collect()
}

/// The hit words of a result's snippet, and its whole text.
fn snippet(result: &Value) -> (Vec<String>, String) {
    let segs = result["snippet"].as_array().expect("snippet");
    let hits = segs.iter().filter(|s| s["hit"] == true).map(|s| s["text"].as_str().unwrap().to_owned()).collect();
    (hits, segs.iter().map(|s| s["text"].as_str().unwrap()).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finds_words_and_phrases_ranked_with_text_snippets() {
    let node = TestNode::start(NodeOpts::default()).await;
    let ann = node.user(&unique("ann")).await;
    let room = ann.create_room(&unique("search"), "public").await;
    let mut ws = ann.ws(&node.ws_url).await;
    ws.join(room, None).await;
    let brown = send(&mut ws, room, "c1", "the quick brown fox jumps").await;
    let bread = send(&mut ws, room, "c2", "brown bread, and a quick fox").await;
    let many = send(&mut ws, room, "c3", "fox! fox? fox, the fox").await;
    send(&mut ws, room, "c4", "nothing to see here").await;
    let markup = send(&mut ws, room, "c5", "<img src=x onerror=alert(1)> Café crème").await;

    // A word: every message holding it, the one that says it most first.
    let (status, body) = search(&ann, "q=fox").await;
    assert_eq!(status, 200, "{body}");
    let hits = found(&body);
    assert_eq!(hits.len(), 3, "{body}");
    assert_eq!(hits[0], (room, many), "the message that says it most ranks first: {body}");
    assert_eq!(hits.iter().map(|h| h.1).collect::<HashSet<_>>(), HashSet::from([brown, bread, many]));
    let r = &body["results"][0];
    assert_eq!((r["room_kind"].as_str(), r["from"]["username"].as_str()), (Some("room"), Some(ann.username.as_str())));
    assert!(r["room_name"].as_str().is_some_and(|n| !n.is_empty()) && r["ts"].as_i64().is_some() && r["id"].is_i64());
    let (words, text) = snippet(r);
    assert_eq!(words, ["fox", "fox", "fox", "fox"]);
    assert_eq!(text, "fox! fox? fox, the fox");
    assert_eq!(body["next"], Value::Null);

    // Words are all required, in any order; case does not matter.
    let (_, body) = search(&ann, "q=FOX%20Quick").await;
    assert_eq!(found(&body).iter().map(|h| h.1).collect::<HashSet<_>>(), HashSet::from([brown, bread]));
    // A phrase: the words together, in order.
    let (_, body) = search(&ann, &format!("q={}", enc("\"quick brown\""))).await;
    assert_eq!(found(&body), [(room, brown)], "{body}");
    let (_, body) = search(&ann, &format!("q={}", enc("\"brown quick\""))).await;
    assert_eq!(found(&body), [], "{body}");
    // A body is only ever text: a snippet is text segments, whatever the body holds.
    let (_, body) = search(&ann, "q=onerror").await;
    assert_eq!(found(&body), [(room, markup)]);
    let (words, text) = snippet(&body["results"][0]);
    assert_eq!((words, text.as_str()), (vec!["onerror".to_owned()], "<img src=x onerror=alert(1)> Café crème"));
    // Unicode words; diacritics fold on SQLite (unicode61 remove_diacritics 2), not with
    // PostgreSQL's 'simple' configuration, so only the exact spelling is checked on both.
    let (_, body) = search(&ann, &format!("q={}", enc("café"))).await;
    assert_eq!(found(&body), [(room, markup)], "{body}");
    let (_, body) = search(&ann, &format!("q={}", enc("CRÈME"))).await;
    assert_eq!(found(&body), [(room, markup)], "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_finds_a_message_of_a_room_the_user_is_not_in() {
    let node = TestNode::start(NodeOpts::default()).await;
    let ann = node.user(&unique("ann")).await;
    let mal = node.user(&unique("mal")).await;
    let private = ann.create_room(&unique("vault"), "private").await;
    let public = ann.create_room(&unique("open"), "public").await;
    let mine = mal.create_room(&unique("mine"), "private").await;
    let mut wa = ann.ws(&node.ws_url).await;
    wa.join(private, None).await;
    wa.join(public, None).await;
    let secret = send(&mut wa, private, "s1", "the secret plans are in the vault").await;
    send(&mut wa, public, "p1", "public secret plans: not for non-members either").await;
    let mut wm = mal.ws(&node.ws_url).await;
    wm.join(mine, None).await;
    let own = send(&mut wm, mine, "m1", "my own plans").await;

    // Ann finds both; Mallory only his own room's.
    let (_, body) = search(&ann, "q=secret").await;
    assert_eq!(found(&body).len(), 2, "{body}");
    let only_mine = |body: &Value| found(body).iter().all(|(r, _)| *r == mine);
    let (status, body) = search(&mal, "q=plans").await;
    assert_eq!((status, found(&body)), (200, vec![(mine, own)]), "{body}");

    // Everything an attacker tries: engine operators, quotes, SQL, other fields, huge numbers,
    // unicode tricks. Each is refused with a clear code, or answered with his own rooms only.
    let attempts = [
        "secret",
        "secret OR plans",
        "secret* OR *",
        "NEAR(secret plans)",
        "\"secret\" OR \"vault\"",
        "\"secret",
        "secret\"\"\"",
        "body:secret",
        "{body}: secret",
        "messages_fts:secret",
        "- plans",
        "^secret",
        "secret) OR (plans",
        "' OR 1=1 --",
        "\" OR 1=1 --",
        "'; DROP TABLE messages; --",
        "plans' UNION SELECT body FROM messages --",
        "secret & vault | plans",
        "secret <-> plans",
        "!secret",
        "secret:*",
        "s%cret",
        "sec\u{0}ret",
        "ѕecret",
        "secret\u{202e}",
        "ﬁ plans",
        "𝕤𝕖𝕔𝕣𝕖𝕥",
        "秘密 plans",
    ];
    for q in attempts {
        for extra in ["", "&limit=50", &format!("&from={}", ann.username), "&before=99999999999999"] {
            let (status, body) = search(&mal, &format!("q={}{extra}", enc(q))).await;
            assert!(status == 200 || status == 400, "{q:?}{extra}: {status} {body}");
            if status == 200 {
                assert!(only_mine(&body), "{q:?}{extra} leaked: {body}");
            } else {
                assert!(["empty_query", "invalid"].contains(&body["error"]["code"].as_str().unwrap()), "{body}");
            }
        }
    }
    // A room he is not in: refused, whether private or public, never an empty success.
    for room in [private, public] {
        let (status, body) = search(&mal, &format!("q=secret&room={room}")).await;
        assert_eq!((status, body["error"]["code"].as_str()), (403, Some("not_member")), "{body}");
    }
    for room in [i64::MAX, 0, -mal.user_id, -ann.user_id] {
        let (status, body) = search(&mal, &format!("q=secret&room={room}")).await;
        assert_eq!((status, body["error"]["code"].as_str()), (404, Some("unknown_room")), "{room}: {body}");
    }
    for bad in [
        "q=secret&room=1%20OR%201=1",
        "q=secret&room=",
        "q=secret&limit=0",
        "q=secret&limit=51",
        "q=secret&limit=-1",
        "q=secret&limit=99999999999999999999",
        "q=secret&offset=1001",
        "q=secret&offset=-5",
        "q=secret&offset=99999999999999999999",
        "q=secret&before=-1",
        "q=secret&before=abc",
        "q=secret&from=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ] {
        let (status, body) = search(&mal, bad).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid")), "{bad}: {body}");
    }
    for (q, code) in [
        ("", "empty_query"),
        ("%20%20", "empty_query"),
        ("%22%22%20()%20*%20-%20%3A", "empty_query"),
        (&"x".repeat(201), "too_long"),
        (&"a%20".repeat(17), "too_long"),
    ] {
        let (status, body) = search(&mal, &format!("q={q}")).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some(code)), "{q}: {body}");
    }
    let (status, body) = mal.get("/api/search").await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("empty_query")));
    let (status, _) = search(&mal, &format!("q={}", enc(&"é".repeat(200)))).await;
    assert_eq!(status, 200, "200 characters is the limit, not 200 bytes");

    // Added to the private room, he finds its messages; removed, he does not any more.
    let (status, _) = ann.post(&format!("/api/rooms/{private}/members"), json!({"username": mal.username})).await;
    assert_eq!(status, 204);
    let (_, body) = search(&mal, &format!("q=secret&room={private}")).await;
    assert_eq!(found(&body), [(private, secret)], "{body}");
    let (status, _) =
        ann.call(reqwest::Method::DELETE, &format!("/api/rooms/{private}/members/{}", mal.user_id), None).await;
    assert_eq!(status, 204);
    let (_, body) = search(&mal, "q=secret").await;
    assert!(only_mine(&body), "{body}");
    let (status, _) = search(&mal, &format!("q=secret&room={private}")).await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_edits_and_deletes() {
    let node = TestNode::start(NodeOpts::default()).await;
    let ann = node.user(&unique("ann")).await;
    let room = ann.create_room(&unique("edits"), "public").await;
    let mut ws = ann.ws(&node.ws_url).await;
    ws.join(room, None).await;
    let seq = send(&mut ws, room, "c1", "apple banana").await;
    let other = send(&mut ws, room, "c2", "banana split").await;
    act(&mut ws, json!({"type": "edit", "room": room, "seq": seq, "body": "cherry banana", "cid": "e1"})).await;
    let (_, body) = search(&ann, "q=apple").await;
    assert_eq!(found(&body), [], "the old word is gone: {body}");
    let (_, body) = search(&ann, "q=cherry").await;
    assert_eq!(found(&body), [(room, seq)], "the new word is found: {body}");
    assert_eq!(snippet(&body["results"][0]).1, "cherry banana", "the snippet shows the edited body");
    act(&mut ws, json!({"type": "edit", "room": room, "seq": seq, "body": "date banana", "cid": "e2"})).await;
    let (_, body) = search(&ann, "q=cherry").await;
    assert_eq!(found(&body), [], "{body}");
    let (_, body) = search(&ann, "q=banana").await;
    assert_eq!(found(&body).len(), 2, "an edit's event is not a result of its own: {body}");
    act(&mut ws, json!({"type": "delete", "room": room, "seq": seq, "cid": "d1"})).await;
    let (_, body) = search(&ann, "q=banana").await;
    assert_eq!(found(&body), [(room, other)], "a deleted message is gone: {body}");
    let (_, body) = search(&ann, "q=date").await;
    assert_eq!(found(&body), [], "{body}");

    // A deleted room's messages leave the index with it.
    let (status, _) = ann.call(reqwest::Method::DELETE, &format!("/api/rooms/{room}"), None).await;
    assert_eq!(status, 204);
    let (_, body) = search(&ann, "q=banana").await;
    assert_eq!(found(&body), [], "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paginates_and_filters_by_sender_and_time() {
    let node = TestNode::start(NodeOpts::default()).await;
    let ann = node.user(&unique("ann")).await;
    let bob = node.user(&unique("bob")).await;
    let room = ann.create_room(&unique("pages"), "public").await;
    let other = ann.create_room(&unique("other"), "public").await;
    let mut wa = ann.ws(&node.ws_url).await;
    wa.join(room, None).await;
    wa.join(other, None).await;
    let mut wb = bob.ws(&node.ws_url).await;
    wb.join(room, None).await;
    for i in 0..20 {
        send(&mut wa, room, &format!("a{i}"), &format!("page word number {i}")).await;
    }
    let cut = confab_schemas::now_ms() + 1;
    // Messages are stamped in milliseconds: wait for the clock to pass `cut` (a deadline, not a sleep).
    confab_tests::eventually("the clock to move on", || async { (confab_schemas::now_ms() > cut).then_some(()) }).await;
    for i in 0..5 {
        send(&mut wb, room, &format!("b{i}"), &format!("page word from bob {i}")).await;
    }
    send(&mut wa, other, "o1", "page word elsewhere").await;

    let mut seen = HashSet::new();
    let mut offset = 0;
    let mut pages = 0;
    loop {
        let (status, body) = search(&ann, &format!("q=page&limit=10&offset={offset}")).await;
        assert_eq!(status, 200, "{body}");
        let hits = found(&body);
        assert!(hits.len() <= 10);
        seen.extend(hits);
        pages += 1;
        match body["next"].as_u64() {
            Some(next) => {
                assert_eq!(next, offset + 10);
                offset = next;
            }
            None => break,
        }
    }
    assert_eq!((pages, seen.len()), (3, 26), "every match once, over 3 pages");
    let (_, body) = search(&ann, "q=page&offset=1000").await;
    assert_eq!(found(&body), [], "past the end: empty");

    let (_, body) = search(&ann, &format!("q=page&from={}", bob.username.to_uppercase())).await;
    assert_eq!(found(&body).len(), 5, "from: the username, without regard to case: {body}");
    assert!(body["results"].as_array().unwrap().iter().all(|r| r["from"]["id"] == bob.user_id));
    let (_, body) = search(&ann, "q=page&from=nobody_here").await;
    assert_eq!(found(&body), []);
    let (_, body) = search(&ann, &format!("q=page&before={cut}&limit=50")).await;
    assert_eq!(found(&body).len(), 20, "before: only older messages: {body}");
    let (_, body) = search(&ann, &format!("q=page&room={other}")).await;
    assert_eq!(found(&body).len(), 1);
    let (_, body) = search(&ann, &format!("q=page&room={room}&from={}&limit=50", ann.username)).await;
    assert_eq!(found(&body).len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn around_opens_a_room_at_a_message() {
    let node = TestNode::start(NodeOpts::default()).await;
    let ann = node.user(&unique("ann")).await;
    let mal = node.user(&unique("mal")).await;
    let room = ann.create_room(&unique("around"), "private").await;
    let mut ws = ann.ws(&node.ws_url).await;
    ws.join(room, None).await;
    for i in 1..=30 {
        send(&mut ws, room, &format!("c{i}"), &format!("message {i}")).await;
    }
    act(&mut ws, json!({"type": "edit", "room": room, "seq": 15, "body": "message 15, edited", "cid": "e"})).await;
    let page = |around: u64, limit: u32| {
        let ann = ann.clone();
        async move { ann.get(&format!("/api/rooms/{room}/messages?around={around}&limit={limit}")).await }
    };
    let seqs = |body: &Value| -> Vec<u64> {
        body["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_u64().unwrap()).collect()
    };
    let (status, body) = page(15, 10).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(seqs(&body), (10..=19).collect::<Vec<_>>());
    assert_eq!((body["has_more"].as_bool(), body["has_more_after"].as_bool()), (Some(true), Some(true)));
    let m15 = &body["messages"][5];
    assert_eq!((m15["body"].as_str(), m15["edited"].as_bool()), (Some("message 15, edited"), Some(true)));
    let (_, body) = page(2, 10).await;
    assert_eq!(seqs(&body), (1..=10).collect::<Vec<_>>());
    assert_eq!((body["has_more"].as_bool(), body["has_more_after"].as_bool()), (Some(false), Some(true)));
    // Near the head: the page reaches back further; the edit (seq 31) is among its events.
    let (_, body) = page(30, 10).await;
    assert_eq!(seqs(&body), (22..=30).collect::<Vec<_>>());
    assert_eq!(body["events"][0]["seq"].as_u64(), Some(31));
    assert_eq!((body["has_more"].as_bool(), body["has_more_after"].as_bool()), (Some(true), Some(false)));
    let (_, body) = page(1000, 5).await;
    assert_eq!(body["has_more_after"].as_bool(), Some(false));
    for bad in ["around=0", "around=5&before=9", "around=5&after=1", "around=x", "around=5&limit=101"] {
        let (status, body) = ann.get(&format!("/api/rooms/{room}/messages?{bad}")).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid")), "{bad}: {body}");
    }
    let (status, body) = mal.get(&format!("/api/rooms/{room}/messages?around=5")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("not_member")), "{body}");
    // The way a result opens its room: its seq as `around`.
    let (_, body) = search(&ann, "q=edited").await;
    let seq = body["results"][0]["seq"].as_u64().unwrap();
    let (_, body) = page(seq, 20).await;
    assert!(seqs(&body).contains(&15));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_with_encryption_at_rest_or_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    std::fs::write(&key, "11".repeat(32)).unwrap();
    let encrypted = ServeArgs { encryption_key_file: Some(key), ..Default::default() };
    let off = ServeArgs { search: Some("off".into()), ..Default::default() };
    for args in [encrypted, off] {
        let node = TestNode::start(NodeOpts { args }).await;
        let ann = node.user(&unique("ann")).await;
        let room = ann.create_room(&unique("enc"), "public").await;
        let mut ws = ann.ws(&node.ws_url).await;
        ws.join(room, None).await;
        send(&mut ws, room, "c1", "confidential words").await;
        let (status, body) = search(&ann, "q=confidential").await;
        assert_eq!((status, body["error"]["code"].as_str()), (503, Some("search_unavailable")), "{body}");
        // Bad input is still bad input.
        let (status, _) = search(&ann, "q=").await;
        assert_eq!(status, 400);
        // Nothing was indexed: a store on the same database without a key, searching, finds nothing.
        let plain = Store::connect(&node.db.url, SqliteSync::Normal).await.unwrap();
        let query = SearchQuery::parse("confidential").unwrap();
        let filter =
            SearchFilter { user: UserId(ann.user_id), room: None, from: None, before: None, limit: 10, offset: 0 };
        assert!(plain.search(&query, &filter).await.unwrap().is_empty(), "nothing was indexed");
        plain.close().await;
    }
}

fn msg(room: RoomId, epoch: u64, seq: u64, sender: UserId, draft: Draft) -> NewMessage {
    NewMessage {
        room,
        epoch,
        seq,
        sender,
        ts: 1_000 + seq as i64,
        draft,
        mentions: Vec::new(),
        attachments: Vec::new(),
    }
}

/// The writer's batches, straight through the store: a message, its edit and its delete in one
/// batch; indexing off, then on again.
async fn batch_suite(db: &TestDb) {
    let store = Store::connect(&db.url, SqliteSync::Normal).await.expect("connect");
    let ann = store.create_user("ann", "x", Role::User).await.unwrap();
    let room = store.create_room("r", "", Visibility::Private, Some(ann.id)).await.unwrap().id;
    let epoch = store.take_lease(room, "n1", 60_000).await.unwrap();
    let m = |seq: u64, body: &str| {
        msg(room, epoch, seq, ann.id, Draft::message(Arc::from(format!("c{seq}")), Arc::from(body), None))
    };
    let edit = |seq: u64, target: u64, body: &str| {
        msg(room, epoch, seq, ann.id, Draft::edit(Arc::from(format!("c{seq}")), target, Arc::from(body)))
    };
    let delete =
        |seq: u64, target: u64| msg(room, epoch, seq, ann.id, Draft::delete(Arc::from(format!("c{seq}")), target));
    let find = |q: &str| {
        let (store, q) = (store.clone(), SearchQuery::parse(q).unwrap());
        async move {
            let filter = SearchFilter { user: ann.id, room: None, from: None, before: None, limit: 50, offset: 0 };
            store.search(&q, &filter).await.unwrap().iter().map(|h| h.seq).collect::<Vec<_>>()
        }
    };
    let batch = [m(1, "alpha one"), edit(2, 1, "beta one"), m(3, "gamma one"), delete(4, 3), m(5, "delta one")];
    let out = store.commit_batch(&batch, &[]).await.unwrap();
    assert!(out.iter().all(|o| matches!(o, WriteOutcome::Committed { .. })), "{out:?}");
    assert_eq!(find("alpha").await, Vec::<u64>::new());
    assert_eq!(find("beta").await, [1]);
    assert_eq!(find("gamma").await, Vec::<u64>::new(), "deleted in the batch that wrote it");
    let mut both = find("one").await;
    both.sort();
    assert_eq!(both, [1, 5]);
    // The phrase, operators and empty phrases from odd input never reach the engine as syntax.
    assert_eq!(find("\"beta one\"").await, [1]);
    assert_eq!(find("\"one beta\"").await, Vec::<u64>::new());
    assert_eq!(find("beta \"\" ()").await, [1]);
    assert_eq!(find("NEAR(beta one) OR alpha*").await, Vec::<u64>::new());

    // Indexing off: nothing new is indexed, but edits and deletes still take old words out.
    let off = store.clone().with_search(false);
    off.commit_batch(&[m(6, "epsilon"), edit(7, 5, "zeta"), delete(8, 1)], &[]).await.unwrap();
    assert_eq!(find("epsilon").await, Vec::<u64>::new());
    assert_eq!(find("delta").await, Vec::<u64>::new(), "the edit took the old words out");
    assert_eq!(find("zeta").await, Vec::<u64>::new(), "and indexed nothing");
    assert_eq!(find("beta").await, Vec::<u64>::new());
    store.commit_batch(&[edit(9, 6, "eta")], &[]).await.unwrap();
    assert_eq!(find("eta").await, [6]);
    // Another user who is in no room finds nothing.
    let bob = store.create_user("bob", "x", Role::User).await.unwrap();
    let q = SearchQuery::parse("eta").unwrap();
    let filter = SearchFilter { user: bob.id, room: None, from: None, before: None, limit: 50, offset: 0 };
    assert!(store.search(&q, &filter).await.unwrap().is_empty());
    assert!(store.search_index_bytes().await.unwrap() > 0);
    store.close().await;
}

#[tokio::test]
async fn the_writer_keeps_the_index_on_sqlite() {
    batch_suite(&TestDb::sqlite()).await;
}

#[tokio::test]
async fn the_writer_keeps_the_index_on_postgres() {
    match TestDb::postgres().await {
        Some(db) => batch_suite(&db).await,
        None => eprintln!("CONFAB_TEST_DATABASE_URL is not set: the PostgreSQL run is skipped"),
    }
}
