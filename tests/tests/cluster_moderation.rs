//! Site-wide moderation on a 3-node cluster: a ban made through one node closes the user's
//! sockets on every node within a second and refuses their sign-in on each; a mute holds on
//! another node; a broadcast reaches a user connected to another node; a demotion takes effect at
//! once on every node. PostgreSQL (and the test S3 store), as every cluster.

use confab_tests::client::login;
use confab_tests::cluster::{Sandbox, connect_any};
use confab_tests::{Api, Ws, unique};
use serde_json::{Value, json};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_confab-test-node");

/// How soon a ban must have closed every socket of the account, on every node.
const BAN_CLOSES_WITHIN: Duration = Duration::from_secs(1);

async fn ws_on(api: &Api, url: &str) -> Ws {
    connect_any(api, &[url.to_owned()], 0).await.0
}

/// Sends with fresh cids (every 50 ms) until an answer satisfies `pred`.
async fn send_until(ws: &mut Ws, room: i64, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + confab_tests::DEADLINE;
    loop {
        let cid = unique("c");
        ws.send(json!({"type": "send", "room": room, "cid": cid, "body": "hi"})).await;
        let answer = ws.recv_where("the answer", |v| (v["type"] == "ack" && v["cid"] == cid) || v["ref"] == cid).await;
        if pred(&answer) {
            return answer;
        }
        assert!(tokio::time::Instant::now() < deadline, "no matching answer: {answer}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bans_mutes_broadcasts_and_demotions_hold_on_every_node() {
    let sb = Sandbox::start(BIN, 3).await;
    let admin = Api::register(&sb.bases[0], &unique("admin")).await;
    sb.make_admin(&admin.username).await;
    let victim = Api::register(&sb.bases[1], &unique("victim")).await;
    let bystander = Api::register(&sb.bases[2], &unique("bystander")).await;

    // A broadcast through node 0 reaches a socket on node 2.
    let mut bws = ws_on(&bystander, &sb.ws_urls[2]).await;
    let (status, posted) = admin.post("/api/admin/broadcasts", json!({"body": "hello cluster"})).await;
    assert_eq!(status, 201, "{posted}");
    assert_eq!(bws.recv_type("broadcast").await["body"], "hello cluster");
    let (_, list) = bystander.on(&sb.bases[1]).get("/api/broadcasts").await;
    assert_eq!(list["broadcasts"][0]["id"], posted["id"]);

    // A mute through node 0 refuses sends on node 2.
    let room = bystander.create_room(&unique("r"), "public").await;
    bws.join(room, None).await;
    let (status, _) =
        admin.post("/api/admin/mutes", json!({"username": bystander.username, "seconds": 600, "reason": "x"})).await;
    assert_eq!(status, 201);
    send_until(&mut bws, room, |a| a["code"] == "muted").await;
    let (status, _) =
        admin.call(reqwest::Method::DELETE, &format!("/api/admin/mutes/{}", bystander.username), None).await;
    assert_eq!(status, 204);
    send_until(&mut bws, room, |a| a["type"] == "ack").await;

    // A demotion through node 0 holds at once on every node.
    let (status, _) =
        admin.post(&format!("/api/admin/users/{}/role", bystander.username), json!({"role": "moderator"})).await;
    assert_eq!(status, 200);
    let on2 = bystander.on(&sb.bases[2]);
    assert_eq!(on2.get("/api/admin/users").await.0, 200);
    let (status, _) =
        admin.post(&format!("/api/admin/users/{}/role", bystander.username), json!({"role": "user"})).await;
    assert_eq!(status, 200);
    for base in &sb.bases {
        let on = bystander.on(base);
        assert_eq!(on.get("/api/admin/users").await.0, 403, "demoted on node 0, refused at once on {base}");
        let (status, _) = on.post("/api/admin/kicks", json!({"username": victim.username})).await;
        assert_eq!(status, 403, "demoted on node 0, no kick at once on {base}");
    }

    // A ban through node 0 closes the victim's sockets on all three nodes within a second.
    let mut sockets = Vec::new();
    for url in &sb.ws_urls {
        sockets.push(ws_on(&victim, url).await);
    }
    let (status, body) = admin.post("/api/admin/bans", json!({"username": victim.username, "reason": "abuse"})).await;
    assert_eq!(status, 201, "{body}");
    let closes = sockets.iter_mut().map(|ws| async move {
        let mut frames = Vec::new();
        while let Ok(Some(f)) = ws.next_or_quiet(BAN_CLOSES_WITHIN).await {
            frames.push(f);
        }
        frames
    });
    let all = tokio::time::timeout(BAN_CLOSES_WITHIN, futures::future::join_all(closes))
        .await
        .expect("every socket of the banned user closed within a second");
    for frames in all {
        assert!(frames.iter().any(|f| f["type"] == "error" && f["code"] == "banned"), "{frames:?}");
    }
    for base in &sb.bases {
        let (status, body) = login(base, &victim.username, "correct horse").await;
        assert_eq!((status, body["error"]["code"].as_str()), (403, Some("banned")), "{base}: {body}");
    }
}
