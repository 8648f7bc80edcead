//! `confab backup` and `confab restore` on real node processes: a backup taken while clients
//! send holds every message acknowledged before it began, with no gap in any room's sequence; the
//! node serves on meanwhile; restore refuses while a node runs on the database, refuses files that
//! are not Confab databases or come from a newer Confab, and a node started on the restored file
//! serves the history and continues each sequence. SQLite only: PostgreSQL is backed up with its
//! own tools (README), which `confab backup` says.

use confab_tests::process::NodeProcess;
use confab_tests::{Api, TestDb, eventually, unique};
use serde_json::json;
use sqlx::Connection;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

const BIN: &str = env!("CARGO_BIN_EXE_confab-test-node");

/// Acks by room: seq → cid (the body is the cid).
type Acks = Arc<Mutex<HashMap<i64, BTreeMap<u64, String>>>>;

/// Runs `confab <args>`: success, stdout, stderr.
async fn confab(args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new(BIN).args(args).output().await.expect("run confab");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// The database flags of a node on `db`.
fn db_flags(db: &TestDb) -> Vec<String> {
    vec!["--data-dir".into(), db.dir.path().display().to_string(), "--database-url".into(), db.url.clone()]
}

/// A client that sends to `room` as fast as acks come back (8 in flight), recording each ack,
/// until `stop`.
async fn sender(api: Api, ws_url: String, room: i64, acks: Acks, stop: Arc<AtomicBool>) {
    let mut ws = api.ws(&ws_url).await;
    ws.join(room, None).await;
    let (mut next, mut in_flight) = (0u64, 0usize);
    while !stop.load(Relaxed) || in_flight > 0 {
        while in_flight < 8 && !stop.load(Relaxed) {
            let cid = format!("{room}-{next}");
            ws.send(json!({"type": "send", "room": room, "cid": cid, "body": cid})).await;
            next += 1;
            in_flight += 1;
        }
        let Some(frame) = ws.next().await else { panic!("the node closed the socket under load") };
        match frame["type"].as_str() {
            Some("ack") => {
                in_flight -= 1;
                let (seq, cid) = (frame["seq"].as_u64().expect("seq"), frame["cid"].as_str().expect("cid"));
                acks.lock().unwrap().entry(room).or_default().insert(seq, cid.to_owned());
            }
            Some("error") => panic!("refused under load: {frame}"),
            _ => {}
        }
    }
}

fn ack_count(acks: &Acks) -> usize {
    acks.lock().unwrap().values().map(BTreeMap::len).sum()
}

/// Every room's seqs in the SQLite file `db`, in order.
async fn seqs_in(db: &Path) -> BTreeMap<i64, Vec<u64>> {
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", db.display())).await.expect("open");
    let rows: Vec<(i64, i64)> = sqlx::query_as("SELECT room_id, seq FROM messages ORDER BY room_id, seq")
        .fetch_all(&mut conn)
        .await
        .expect("read");
    let mut out: BTreeMap<i64, Vec<u64>> = BTreeMap::new();
    for (room, seq) in rows {
        out.entry(room).or_default().push(seq as u64);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_restores_every_acknowledged_message() {
    let db = TestDb::sqlite();
    let flags = db_flags(&db);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut node = NodeProcess::spawn(BIN, db.dir.path(), &db.url, &[]).await;
    let api = Api::register(&node.base, &unique("bk")).await;
    let mut rooms = vec![api.room_id("general").await];
    for i in 0..3 {
        rooms.push(api.create_room(&unique(&format!("bk{i}-")), "public").await);
    }
    let (acks, stop): (Acks, _) = (Arc::default(), Arc::new(AtomicBool::new(false)));
    let senders: Vec<_> = rooms
        .iter()
        .map(|&room| tokio::spawn(sender(api.clone(), node.ws_url.clone(), room, acks.clone(), stop.clone())))
        .collect();
    eventually("every room to have acks", || async {
        let a = acks.lock().unwrap();
        (rooms.iter().all(|r| a.get(r).is_some_and(|m| m.len() >= 200))).then_some(())
    })
    .await;

    // Everything acknowledged up to here must be in the backup.
    let before = acks.lock().unwrap().clone();
    let backup_dir = tempfile::tempdir().expect("temp dir");
    let file = backup_dir.path().join("confab-backup.db");
    let file_arg = file.display().to_string();
    let (ok, out, err) = confab(&[&["backup", &file_arg][..], &flags].concat()).await;
    assert!(ok, "backup: {out} {err}");
    assert!(out.contains("backed up") && out.contains("messages"), "{out}");
    // The node served on: acks keep coming after the backup.
    let after_backup = ack_count(&acks);
    eventually("acks after the backup", || async { (ack_count(&acks) > after_backup + 20).then_some(()) }).await;
    // A second backup never overwrites the first.
    let (ok, _, err) = confab(&[&["backup", &file_arg][..], &flags].concat()).await;
    assert!(!ok && err.contains("exists"), "{err}");

    // Restore refuses while the node runs on the database.
    let (ok, _, err) = confab(&[&["restore", &file_arg][..], &flags].concat()).await;
    assert!(!ok && err.contains("running"), "restore while running: {err}");

    stop.store(true, Relaxed);
    for s in senders {
        s.await.expect("sender");
    }
    let total = ack_count(&acks);
    assert_eq!(node.terminate().await, Some(0));

    let (ok, out, err) = confab(&[&["restore", &file_arg][..], &flags].concat()).await;
    assert!(ok, "restore: {out} {err}");
    assert!(out.contains("kept as"), "the replaced database is kept: {out}");

    // The restored file: every acked-before message, and no gap in any room's sequence.
    let restored = seqs_in(&db.dir.path().join("confab.db")).await;
    for (room, seqs) in &restored {
        let want: Vec<u64> = (1..=seqs.len() as u64).collect();
        assert_eq!(seqs, &want, "room {room}'s sequence has a gap");
    }
    let kept: usize = before.values().map(BTreeMap::len).sum();
    let in_backup: usize = restored.values().map(Vec::len).sum();
    assert!(in_backup >= kept, "{in_backup} events in the backup, {kept} acked before it");
    assert!(total > kept, "acks went on during and after the backup");
    eprintln!("acked before the backup: {kept}; events in it: {in_backup}; acked in all: {total}");

    // A node on the restored database serves each acked-before message and continues the sequence.
    let node = NodeProcess::spawn(BIN, db.dir.path(), &db.url, &[]).await;
    let api = api.on(&node.base);
    for (room, sent) in &before {
        let (history, _, head) = confab_tests::history::rest_history(&api, *room, 100).await;
        for (seq, cid) in sent {
            assert_eq!(history.get(seq).map(|m| m.0.as_str()), Some(cid.as_str()), "room {room} seq {seq}");
        }
        assert_eq!(head, restored[room].len() as u64, "room {room}'s head");
        let mut ws = api.ws(&node.ws_url).await;
        ws.join(*room, Some(head)).await;
        ws.send(json!({"type": "send", "room": room, "cid": "after-restore", "body": "next"})).await;
        assert_eq!(ws.recv_type("ack").await["seq"], head + 1, "room {room} continues its sequence");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_what_is_not_a_confab_backup() {
    let db = TestDb::sqlite();
    let flags = db_flags(&db);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let dir = tempfile::tempdir().expect("temp dir");

    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a database at all").unwrap();
    let (ok, _, err) = confab(&[&["restore", text.to_str().unwrap()][..], &flags].concat()).await;
    assert!(!ok && err.contains("not a Confab database"), "{err}");

    // A SQLite database of something else.
    let other = dir.path().join("other.db");
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", other.display())).await.unwrap();
    sqlx::query("CREATE TABLE t (x INTEGER)").execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    let (ok, _, err) = confab(&[&["restore", other.to_str().unwrap()][..], &flags].concat()).await;
    assert!(!ok && err.contains("not a Confab database"), "{err}");

    // A backup from a newer Confab: a migration this build does not know.
    let mut node = NodeProcess::spawn(BIN, db.dir.path(), &db.url, &[]).await;
    let newer = dir.path().join("newer.db");
    let (ok, out, err) = confab(&[&["backup", newer.to_str().unwrap()][..], &flags].concat()).await;
    assert!(ok, "{out} {err}");
    node.kill9().await;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", newer.display())).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (999999, 'from the future', 1, x'00', 0)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let (ok, _, err) = confab(&[&["restore", newer.to_str().unwrap()][..], &flags].concat()).await;
    assert!(!ok && err.contains("999999") && err.contains("does not know"), "{err}");

    // PostgreSQL is not confab's to copy: it names the tools.
    let pg_dir = dir.path().join("pg");
    let pg_file = dir.path().join("pg.db");
    let args = ["backup", pg_file.to_str().unwrap(), "--data-dir", pg_dir.to_str().unwrap()];
    let (ok, _, err) = confab(&[&args[..], &["--database-url", "postgres://h/db"]].concat()).await;
    assert!(!ok && err.contains("pg_dump"), "{err}");
    assert!(!pg_file.exists(), "nothing written");
}
