//! Talk to a stranger on a 3-node cluster: 200 people with random interests entering through
//! every node are all paired, nobody is in two chats, and people share an interest whenever
//! someone sharing one was waiting; the node running the match pool is SIGKILLed while people
//! wait, and every one of them is still paired afterwards (clients of the killed node reconnect
//! elsewhere and send `match` again); the pool moves when its node drains (SIGTERM) and comes
//! back by handoff when the node returns, pairing everyone who waited; a reported chat is kept
//! while a chat both people left is deleted after the retention (messages and files), also when
//! the node that sequences it is not the pool's.

use confab_tests::cluster::{Sandbox, connect_any, owner_of};
use confab_tests::{Api, Ws, eventually, fetch, unique};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_confab-test-node");
/// How long anyone may wait to be paired, failover included.
const PAIRED_WITHIN: Duration = Duration::from_secs(90);

fn flags(widen_secs: &str) -> Vec<String> {
    ["--stranger-widen-secs", widen_secs, "--stranger-tick-ms", "100", "--stranger-enters-per-minute", "1000"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// What one person saw: when they entered (ms), and their `matched` frame.
struct Seen {
    user: i64,
    interests: Vec<String>,
    entered: i64,
    matched: Value,
}

/// Enters the queue through node `start` and waits to be paired, reconnecting to the next node
/// (and entering again: the queue keeps one's place) whenever the connection drops.
async fn seek(api: Api, urls: Vec<String>, start: usize, interests: Vec<String>) -> Seen {
    let deadline = Instant::now() + PAIRED_WITHIN;
    let entered = confab_schemas::now_ms();
    let mut at = start;
    loop {
        assert!(Instant::now() < deadline, "{} was never paired", api.username);
        let (mut ws, node) = connect_any(&api, &urls, at).await;
        if !ws.try_send(json!({"type": "match", "interests": interests, "fewer": true})).await {
            at = node + 1;
            continue;
        }
        loop {
            match ws.next_or_quiet(deadline.saturating_duration_since(Instant::now())).await {
                Ok(Some(f)) if f["type"] == "matched" => {
                    return Seen { user: api.user_id, interests, entered, matched: f };
                }
                Ok(Some(f)) if f["type"] == "error" => {
                    assert_eq!(f["code"], "retry", "{}: {f}", api.username);
                    break;
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(()) => break,
            }
        }
        at = node + 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every person in exactly one chat of two, as the clients saw it and as storage has it.
async fn check_pairs(sb: &Sandbox, seen: &[Seen]) -> HashMap<i64, Vec<usize>> {
    let mut rooms: HashMap<i64, Vec<usize>> = HashMap::new();
    for (i, s) in seen.iter().enumerate() {
        rooms.entry(s.matched["room"].as_i64().expect("a room")).or_default().push(i);
    }
    for (room, people) in &rooms {
        assert_eq!(people.len(), 2, "room {room} has {} people", people.len());
        let (a, b) = (&seen[people[0]], &seen[people[1]]);
        assert_ne!(a.matched["you"]["id"], b.matched["you"]["id"]);
        let shared: HashSet<&String> = a.interests.iter().filter(|t| b.interests.contains(t)).collect();
        let said: HashSet<String> =
            a.matched["shared"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
        assert_eq!(shared, said.iter().collect(), "room {room}: the shared interests");
    }
    let pool = sqlx::PgPool::connect(&sb.db.url).await.expect("the sandbox's database");
    let seats: Vec<(i64, i64)> =
        sqlx::query_as("SELECT user_id, room_id FROM stranger_seats").fetch_all(&pool).await.expect("seats");
    let users: HashSet<i64> = seen.iter().map(|s| s.user).collect();
    let mine: Vec<&(i64, i64)> = seats.iter().filter(|(u, _)| users.contains(u)).collect();
    assert_eq!(mine.len(), seen.len(), "every person sits in exactly one chat");
    for (user, room) in mine {
        let s = seen.iter().find(|s| s.user == *user).unwrap();
        assert_eq!(s.matched["room"].as_i64(), Some(*room), "user {user} told one chat, seated in another");
    }
    pool.close().await;
    rooms
}

/// The node whose `/metrics` says it runs the match pool.
async fn pool_node(sb: &Sandbox) -> usize {
    let deadline = Instant::now() + PAIRED_WITHIN;
    loop {
        for i in sb.live() {
            let text = match reqwest::get(format!("{}/metrics", sb.bases[i])).await {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(_) => continue,
            };
            if text.lines().any(|l| l == "confab_match_pool_running 1") {
                return i;
            }
        }
        assert!(Instant::now() < deadline, "no node runs the match pool");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_strangers_entering_through_every_node_are_all_paired_once() {
    let sb = Sandbox::start_with(BIN, 3, |_| flags("2")).await;
    let tags: Vec<String> = (0..12).map(|i| format!("tag{i}")).collect();
    let mut people = Vec::new();
    for i in 0..200 {
        let api = Api::register(&sb.bases[i % 3], &unique(&format!("s{i}"))).await;
        let n = 1 + rand::random::<u32>() as usize % 3;
        let mut interests: Vec<String> =
            (0..n).map(|_| tags[rand::random::<u32>() as usize % tags.len()].clone()).collect();
        interests.sort();
        interests.dedup();
        people.push((api, interests));
    }
    let started = Instant::now();
    let tasks: Vec<_> = people
        .into_iter()
        .enumerate()
        .map(|(i, (api, interests))| {
            let urls = sb.ws_urls.clone();
            tokio::spawn(async move {
                // Entering over a couple of seconds, not all at the same instant.
                tokio::time::sleep(Duration::from_millis((i as u64 * 13) % 2000)).await;
                seek(api, urls, i % 3, interests).await
            })
        })
        .collect();
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.expect("a seeker"));
    }
    eprintln!("200 people paired in {:?}", started.elapsed());
    let rooms = check_pairs(&sb, &seen).await;
    assert_eq!(rooms.len(), 100);

    // A pair sharing nothing is made only when nobody sharing an interest with either of them
    // was waiting then: someone who entered well before and was paired well after.
    let pool = sqlx::PgPool::connect(&sb.db.url).await.expect("the sandbox's database");
    let made: HashMap<i64, i64> = sqlx::query_as::<_, (i64, i64)>("SELECT room_id, created_at FROM stranger_chats")
        .fetch_all(&pool)
        .await
        .expect("chats")
        .into_iter()
        .collect();
    pool.close().await;
    let slack = 1_000;
    let mut unshared = 0;
    for people in rooms.values() {
        let room = seen[people[0]].matched["room"].as_i64().unwrap();
        if !seen[people[0]].matched["shared"].as_array().unwrap().is_empty() {
            continue;
        }
        unshared += 1;
        let at = made[&room];
        for &p in people {
            let me = &seen[p];
            for other in
                seen.iter().filter(|o| o.user != me.user && o.interests.iter().any(|t| me.interests.contains(t)))
            {
                let their_room = other.matched["room"].as_i64().unwrap();
                let waiting_then = other.entered < at - slack && made[&their_room] > at + slack;
                assert!(
                    !waiting_then,
                    "user {} was paired sharing nothing while user {} waited sharing an interest",
                    me.user, other.user
                );
            }
        }
    }
    eprintln!("{unshared} of 100 pairs share no interest");
}

/// Kills (SIGKILL) or drains (SIGTERM) the pool's node once 60 people wait in its queue; every
/// one of them is paired afterwards by the pool's next owner.
async fn pool_node_goes_while_people_wait(drain: bool) -> (Sandbox, usize) {
    // Nobody can be paired before the wait widens (every interest is someone's own).
    let mut sb = Sandbox::start_with(BIN, 3, |_| flags("6")).await;
    let owner = pool_node(&sb).await;
    let mut people = Vec::new();
    for i in 0..60 {
        let api = Api::register(&sb.bases[i % 3], &unique(&format!("k{i}"))).await;
        people.push((api, vec![format!("only-{i}")]));
    }
    let tasks: Vec<_> = people
        .into_iter()
        .enumerate()
        .map(|(i, (api, interests))| {
            let urls = sb.ws_urls.clone();
            tokio::spawn(async move { seek(api, urls, i % 3, interests).await })
        })
        .collect();
    // Once everyone waits in its queue.
    let deadline = Instant::now() + PAIRED_WITHIN;
    loop {
        let text = reqwest::get(format!("{}/metrics", sb.bases[owner])).await.unwrap().text().await.unwrap();
        if text.lines().any(|l| l == "confab_stranger_waiting 60") {
            break;
        }
        assert!(Instant::now() < deadline, "people did not all enter the queue");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if drain {
        assert_eq!(sb.terminate(owner).await, Some(0), "a drained node exits cleanly");
    } else {
        sb.kill9(owner).await;
    }
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.expect("a seeker"));
    }
    let rooms = check_pairs(&sb, &seen).await;
    assert_eq!(rooms.len(), 30);
    let new_owner = pool_node(&sb).await;
    assert_ne!(new_owner, owner);
    (sb, owner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn everyone_waiting_is_paired_after_the_pools_node_is_killed() {
    pool_node_goes_while_people_wait(false).await;
}

/// How many nodes say they run the match pool.
async fn pools_running(sb: &Sandbox) -> usize {
    let mut n = 0;
    for i in sb.live() {
        let text = reqwest::get(format!("{}/metrics", sb.bases[i])).await.unwrap().text().await.unwrap();
        n += usize::from(text.lines().any(|l| l == "confab_match_pool_running 1"));
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_pool_moves_when_its_node_drains_and_comes_back_by_handoff() {
    let (mut sb, drained) = pool_node_goes_while_people_wait(true).await;
    // The node comes back: the pool's key is placed on it again, so the pool is handed back
    // (exactly one node runs it), and people entering now are paired by it.
    sb.restart(drained).await;
    sb.wait_ready(3).await;
    eventually("the pool back on its node, and only there", || async {
        (pool_node(&sb).await == drained && pools_running(&sb).await == 1).then_some(())
    })
    .await;
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let (urls, base) = (sb.ws_urls.clone(), sb.bases[i % 3].clone());
            tokio::spawn(async move {
                let api = Api::register(&base, &unique(&format!("h{i}"))).await;
                seek(api, urls, i % 3, vec![format!("back-{}", i / 2)]).await
            })
        })
        .collect();
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.expect("a seeker"));
    }
    let rooms = check_pairs(&sb, &seen).await;
    assert_eq!(rooms.len(), 5);
    for people in rooms.values() {
        assert_eq!(seen[people[0]].matched["shared"].as_array().map(Vec::len), Some(1), "paired by interest");
    }
}

/// Two fresh people, through nodes `i` and `i + 1`, paired with each other (a tag only they
/// have); their sockets, their `matched` frames' room, and who they are.
async fn pair(sb: &Sandbox, i: usize) -> (i64, [(Api, Ws); 2]) {
    let tag = unique("pair");
    let mut people = Vec::new();
    for k in 0..2 {
        let node = (i + k) % 3;
        let api = Api::register(&sb.bases[node], &unique("p")).await;
        let mut ws = api.ws(&sb.ws_urls[node]).await;
        ws.send(json!({"type": "match", "interests": [tag]})).await;
        ws.recv_type("waiting").await;
        people.push((api, ws));
    }
    let mut rooms = Vec::new();
    for (_, ws) in people.iter_mut() {
        rooms.push(ws.recv_type("matched").await["room"].as_i64().expect("a room"));
    }
    assert_eq!(rooms[0], rooms[1]);
    let [a, b]: [(Api, Ws); 2] = people.try_into().ok().expect("two");
    (rooms[0], [a, b])
}

/// `api` uploads a small file; its id.
async fn upload(api: &Api, name: &str) -> String {
    let resp = api
        .http
        .post(format!("{}/api/uploads?name={name}", api.base))
        .bearer_auth(&api.token)
        .body(format!("the file {name}\n").repeat(50))
        .send()
        .await
        .expect("upload request");
    assert_eq!(resp.status().as_u16(), 201);
    let v: Value = resp.json().await.expect("json");
    v["id"].as_str().expect("an id").to_owned()
}

/// Both people of a chat joined; the first sends a message with a file, the second receives it.
/// The file's signed URL.
async fn chat_with_a_file(room: i64, people: &mut [(Api, Ws); 2]) -> (String, String) {
    for (_, ws) in people.iter_mut() {
        ws.join(room, None).await;
    }
    let id = upload(&people[0].0, "notes.txt").await;
    let ws = &mut people[0].1;
    ws.send(json!({"type": "send", "room": room, "cid": "f1", "body": "a file", "attachments": [id]})).await;
    let ack = ws.recv_where("the ack", |f| f["type"] == "ack" || f["type"] == "error").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let got = people[1].1.recv_where("the message", |f| f["type"] == "message" && f["room"] == room).await;
    let url = got["attachments"][0]["url"].as_str().expect("a signed URL").to_owned();
    (id, url)
}

async fn leave(ws: &mut Ws, frame: Value) {
    ws.send(frame).await;
    ws.recv_type("unmatched").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reported_chat_is_kept_and_one_both_left_is_deleted_with_its_files_after_the_retention() {
    const RETENTION_SECS: u64 = 4;
    let sb = Sandbox::start_with(BIN, 3, |_| {
        let mut f = flags("60");
        f.extend(["--stranger-retention-secs", "4", "--upload-sweep-secs", "1"].map(String::from));
        f
    })
    .await;
    let pool = format!("n{}", pool_node(&sb).await);
    // A chat sequenced by a node other than the pool's (which deletes it).
    let mut tries = 0;
    let (ended, mut enders) = loop {
        let (room, people) = pair(&sb, tries).await;
        let by = owner_of(&people[0].0, room).await;
        if by != pool {
            break (room, people);
        }
        tries += 1;
        assert!(tries < 20, "every chat landed on the pool's node");
    };
    let (reported, mut reporters) = pair(&sb, 1).await;
    let (ended_file, ended_url) = chat_with_a_file(ended, &mut enders).await;
    let (_, reported_url) = chat_with_a_file(reported, &mut reporters).await;
    let db = sqlx::PgPool::connect(&sb.db.url).await.expect("the sandbox's database");
    let count = |sql: &'static str, room: i64| {
        let db = db.clone();
        async move { sqlx::query_scalar::<_, i64>(sql).bind(room).fetch_one(&db).await.expect("a count") }
    };
    const ROOM: &str = "SELECT COUNT(*) FROM rooms WHERE id = $1";
    const MESSAGES: &str = "SELECT COUNT(*) FROM messages WHERE room_id = $1";
    const FILES: &str = "SELECT COUNT(*) FROM uploads WHERE room_id = $1 AND deleted_at IS NULL";

    reporters[0].1.send(json!({"type": "stranger_report", "reason": "cluster report"})).await;
    assert_eq!(reporters[0].1.recv_type("unmatched").await["room"], reported);
    leave(&mut reporters[1].1, json!({"type": "unmatch"})).await;
    enders[0].1.send(json!({"type": "next", "interests": [unique("alone")]})).await;
    enders[0].1.recv_type("waiting").await;
    leave(&mut enders[1].1, json!({"type": "unmatch"})).await;
    let both_left = Instant::now();
    // Both left, the retention not over: everything is still there.
    assert_eq!(count(ROOM, ended).await, 1);
    // (The message, and the events of their leaving.)
    assert!(count(MESSAGES, ended).await >= 1);
    assert!(both_left.elapsed() < Duration::from_secs(RETENTION_SECS), "the checks took longer than the retention");

    // After the retention the chat is gone: its room, messages, files (rows and objects).
    eventually("the ended chat deleted", || async {
        (count(ROOM, ended).await == 0 && count(MESSAGES, ended).await == 0 && count(FILES, ended).await == 0)
            .then_some(())
    })
    .await;
    eventually("its file's objects deleted", || async {
        sb.s3.list(&sb.s3_prefix).await.iter().all(|k| !k.contains(&ended_file)).then_some(())
    })
    .await;
    for (i, base) in sb.bases.iter().enumerate() {
        let api = enders[0].0.on(base);
        let (status, body) = api.get(&format!("/api/rooms/{ended}/messages")).await;
        assert!(status == 404 || status == 403, "n{i}: {status} {body}");
        assert_ne!(fetch(base, &ended_url, None).await.0, 200, "n{i} still serves the file");
    }
    // Nobody can use the room any more, on the node that sequenced it either.
    let mut ws = enders[0].0.ws(&sb.ws_urls[0]).await;
    ws.send(json!({"type": "join", "room": ended})).await;
    let refused = ws.recv_where("the refusal", |f| f["type"] == "error").await;
    assert!(["unknown_room", "not_member"].contains(&refused["code"].as_str().unwrap()), "{refused}");

    // The reported chat is kept, with its messages and file, and its report is with moderators.
    assert_eq!(count(ROOM, reported).await, 1);
    assert!(count(MESSAGES, reported).await >= 1);
    assert_eq!(count(FILES, reported).await, 1);
    assert_eq!(fetch(&sb.bases[2], &reported_url, None).await.0, 200);
    let moderator = Api::register(&sb.bases[2], &unique("mod")).await;
    sb.make_admin(&moderator.username).await;
    let (status, queue) = moderator.get("/api/admin/queue?status=all").await;
    assert_eq!(status, 200, "{queue}");
    assert!(queue.to_string().contains("cluster report"), "{queue}");
    db.close().await;
    sb.s3.remove_all(&sb.s3_prefix).await;
}
