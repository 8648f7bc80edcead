//! Encryption at rest: bodies are stored sealed with a key id, read back in clear, and stay
//! readable after the key rotates.

use confab::ServeArgs;
use confab_tests::{NodeOpts, TestDb, TestNode, unique};
use serde_json::json;
use sqlx::Connection;

/// (body, body_key) of every stored message, read straight from the database.
async fn raw_rows(db: &TestDb) -> Vec<(String, Option<String>)> {
    let sql = "SELECT body, body_key FROM messages ORDER BY room_id, seq";
    if db.is_postgres() {
        let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::query_as(sql).fetch_all(&mut c).await.unwrap()
    } else {
        let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        sqlx::query_as(sql).fetch_all(&mut c).await.unwrap()
    }
}

fn key_file(dir: &std::path::Path, name: &str, byte: u8) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, hex_key(byte)).unwrap();
    path
}

fn hex_key(byte: u8) -> String {
    format!("{byte:02x}").repeat(32)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_sealed_at_rest_and_keys_rotate() {
    let keys = tempfile::tempdir().unwrap();
    let (k1, k2) = (key_file(keys.path(), "k1", 0x11), key_file(keys.path(), "k2", 0x22));
    let args = ServeArgs { encryption_key_file: Some(k1.clone()), ..Default::default() };
    let node = TestNode::start(NodeOpts { args }).await;
    let api = node.user(&unique("enc")).await;
    let room = api.room_id("general").await;
    let mut ws = api.ws(&node.ws_url).await;
    ws.join(room, None).await;
    ws.send(json!({"type": "send", "room": room, "cid": "a", "body": "attack at dawn"})).await;
    ws.recv_type("ack").await;
    let rows = raw_rows(&node.db).await;
    assert_eq!(rows.len(), 1);
    assert!(!rows[0].0.contains("dawn"), "stored sealed: {:?}", rows[0]);
    let first_key = rows[0].1.clone().expect("a key id beside the body");
    let (_, page) = api.get(&format!("/api/rooms/{room}/messages")).await;
    assert_eq!(page["messages"][0]["body"], "attack at dawn");

    // Rotate: a new current key, the old one kept for reading.
    let db = node.stop().await;
    let args =
        ServeArgs { encryption_key_file: Some(k2), encryption_old_key_files: Some(vec![k1]), ..Default::default() };
    let node = TestNode::start_on(db, NodeOpts { args }).await;
    let api = confab_tests::Api { base: node.base.clone(), ..api };
    let mut ws = api.ws(&node.ws_url).await;
    ws.join(room, Some(1)).await;
    ws.send(json!({"type": "send", "room": room, "cid": "b", "body": "retreat at dusk"})).await;
    ws.recv_type("ack").await;
    let rows = raw_rows(&node.db).await;
    let second_key = rows[1].1.clone().expect("key id");
    assert_ne!(first_key, second_key, "new bodies use the new key");
    assert!(!rows[1].0.contains("dusk"));
    let (_, page) = api.get(&format!("/api/rooms/{room}/messages")).await;
    assert_eq!(page["messages"][0]["body"], "attack at dawn");
    assert_eq!(page["messages"][1]["body"], "retreat at dusk");
    node.stop().await;
}

/// A held message (pre-moderation) is stored sealed too, and released in clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_messages_are_sealed_at_rest() {
    let keys = tempfile::tempdir().unwrap();
    let args = ServeArgs { encryption_key_file: Some(key_file(keys.path(), "k", 0x33)), ..Default::default() };
    let node = TestNode::start(NodeOpts { args }).await;
    let owner = node.user(&unique("own")).await;
    let sender = node.user(&unique("snd")).await;
    let room = owner.create_room(&unique("r"), "public").await;
    let path = format!("/api/rooms/{room}/moderation");
    let (s, _) = owner.call(reqwest::Method::PATCH, &path, Some(json!({"premod": true}))).await;
    assert_eq!(s, 200);
    let mut ws = sender.ws(&node.ws_url).await;
    ws.join(room, None).await;
    ws.send(json!({"type": "send", "room": room, "cid": "h", "body": "hold the line"})).await;
    let held = ws.recv_type("held").await;
    let sql = "SELECT body, body_key FROM reports WHERE kind = 'held'";
    let rows: Vec<(String, Option<String>)> = if node.db.is_postgres() {
        let mut c = sqlx::PgConnection::connect(&node.db.url).await.unwrap();
        sqlx::query_as(sql).fetch_all(&mut c).await.unwrap()
    } else {
        let mut c = sqlx::SqliteConnection::connect(&node.db.url).await.unwrap();
        sqlx::query_as(sql).fetch_all(&mut c).await.unwrap()
    };
    assert_eq!(rows.len(), 1);
    assert!(!rows[0].0.contains("line") && rows[0].1.is_some(), "stored sealed: {rows:?}");
    let (_, q) = owner.get(&format!("/api/rooms/{room}/queue")).await;
    assert_eq!(q["items"][0]["body"], "hold the line", "{q}");
    let (s, item) =
        owner.post(&format!("/api/rooms/{room}/queue/{}/decision", held["item"]), json!({"action": "release"})).await;
    assert_eq!(s, 200, "{item}");
    assert_eq!(ws.recv_type("message").await["body"], "hold the line");
}
