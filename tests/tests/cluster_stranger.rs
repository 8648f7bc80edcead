//! Talk to a stranger on a 3-node cluster: 200 people with random interests entering through
//! every node are all paired, nobody is in two chats, and people share an interest whenever
//! someone sharing one was waiting; the node running the match pool is SIGKILLed while people
//! wait, and every one of them is still paired afterwards (clients of the killed node reconnect
//! elsewhere and send `match` again, as the browser app does).

use confab_tests::cluster::{Sandbox, connect_any};
use confab_tests::{Api, unique};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn everyone_waiting_is_paired_after_the_pools_node_is_killed() {
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
    // Kill the pool's node once everyone waits in its queue.
    let deadline = Instant::now() + PAIRED_WITHIN;
    loop {
        let text = reqwest::get(format!("{}/metrics", sb.bases[owner])).await.unwrap().text().await.unwrap();
        if text.lines().any(|l| l == "confab_stranger_waiting 60") {
            break;
        }
        assert!(Instant::now() < deadline, "people did not all enter the queue");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sb.kill9(owner).await;
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.expect("a seeker"));
    }
    let rooms = check_pairs(&sb, &seen).await;
    assert_eq!(rooms.len(), 30);
    let new_owner = pool_node(&sb).await;
    assert_ne!(new_owner, owner);
}
