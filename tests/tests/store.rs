//! The store suite: the same checks against SQLite and PostgreSQL (the latter when
//! `CONFAB_TEST_DATABASE_URL` names a server; CI sets it).

use confab_actors::store::{CursorWrite, NewMessage, RefreshUse, SqliteSync, Store, WriteOutcome};
use confab_schemas::{Role, RoomId, UserId, Visibility};
use confab_tests::TestDb;
use std::sync::Arc;

fn msg(room: RoomId, epoch: u64, seq: u64, sender: UserId, cid: &str) -> NewMessage {
    NewMessage {
        room,
        epoch,
        seq,
        sender,
        ts: 1_000 + seq as i64,
        draft: confab_schemas::Draft::message(Arc::from(cid), Arc::from(format!("body of {cid}")), None),
        mentions: Vec::new(),
        attachments: Vec::new(),
    }
}

async fn suite(db: &TestDb) {
    let store = Store::connect(&db.url, SqliteSync::Normal).await.expect("connect and migrate");
    // Migrations are idempotent.
    Store::connect(&db.url, SqliteSync::Normal).await.expect("second connect");

    // Users: unique without regard to case.
    let ann = store.create_user("Ann", "hash-a", Role::User).await.unwrap();
    assert!(matches!(store.create_user("ANN", "x", Role::User).await, Err(confab_actors::Error::Conflict(_))));
    assert_eq!(store.user_by_name("aNn").await.unwrap().unwrap().id, ann.id);
    let bob = store.create_user("bob", "hash-b", Role::User).await.unwrap();
    store.set_user_role(bob.id, Role::Moderator).await.unwrap();
    assert_eq!(store.user_by_id(bob.id).await.unwrap().unwrap().role, Role::Moderator);

    // Login families: refresh tokens rotate once; a reused one revokes the family.
    store.create_family("fam1", ann.id, "r1", i64::MAX).await.unwrap();
    assert_eq!(store.family_user("fam1").await.unwrap().unwrap().id, ann.id);
    assert_eq!(
        store.use_refresh("r1", "r2", i64::MAX).await.unwrap(),
        RefreshUse::Rotated { family: "fam1".into(), user: ann.id }
    );
    assert_eq!(
        store.use_refresh("r2", "r3", i64::MAX).await.unwrap(),
        RefreshUse::Rotated { family: "fam1".into(), user: ann.id }
    );
    assert_eq!(
        store.use_refresh("r1", "rx", i64::MAX).await.unwrap(),
        RefreshUse::Reused { family: "fam1".into(), user: ann.id }
    );
    assert!(store.family_user("fam1").await.unwrap().is_none(), "reuse revoked the family");
    assert_eq!(store.use_refresh("r3", "r4", i64::MAX).await.unwrap(), RefreshUse::Invalid, "even its newest token");
    assert_eq!(store.use_refresh("unknown", "r5", i64::MAX).await.unwrap(), RefreshUse::Invalid);
    store.create_family("fam2", ann.id, "s1", 1).await.unwrap();
    assert_eq!(store.use_refresh("s1", "s2", i64::MAX).await.unwrap(), RefreshUse::Invalid, "expired");
    store.create_family("fam3", ann.id, "t1", i64::MAX).await.unwrap();
    store.revoke_user_families(ann.id, "test").await.unwrap();
    assert!(store.family_user("fam3").await.unwrap().is_none());

    // Token checks made at once are read together (more than one batch of 256) and each gets
    // its own family's answer; a check made after a revocation never sees the family.
    let (cat, dan) = (
        store.create_user("cat", "hash-c", Role::User).await.unwrap(),
        store.create_user("dan", "hash-d", Role::User).await.unwrap(),
    );
    store.create_family("famc", cat.id, "c1", i64::MAX).await.unwrap();
    store.create_family("famd", dan.id, "d1", i64::MAX).await.unwrap();
    store.create_family("famx", cat.id, "x1", i64::MAX).await.unwrap();
    store.revoke_family("famx", "test").await.unwrap();
    store.ban_user(dan.id, bob.id, "spam", None).await.unwrap();
    let families = ["famc", "famd", "famx", "nope"];
    let checks: Vec<_> = (0..600)
        .map(|k| {
            let (store, family) = (store.clone(), families[k % 4]);
            tokio::spawn(async move { (family, store.family_user_and_ban(family).await.unwrap()) })
        })
        .collect();
    for check in checks {
        match check.await.unwrap() {
            ("famc", Some((user, None))) => assert_eq!(user.id, cat.id),
            ("famd", Some((user, Some(ban)))) => assert_eq!((user.id, ban.reason.as_str()), (dan.id, "spam")),
            ("famx" | "nope", None) => {}
            other => panic!("a token check got another's answer: {other:?}"),
        }
    }
    // A burst keeps a read going, so the check after the revocation may join a later batch.
    let burst: Vec<_> = (0..50)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.family_user_and_ban("famc").await.unwrap() })
        })
        .collect();
    store.revoke_family("famc", "test").await.unwrap();
    assert!(store.family_user_and_ban("famc").await.unwrap().is_none(), "a check after the revocation");
    for b in burst {
        b.await.unwrap();
    }

    // Email codes: a few pending per address, each guess reserved against every live one,
    // single use.
    assert!(store.put_email_code("a@x.io", "h1", i64::MAX, 5, 2).await.unwrap());
    let reserved = store.reserve_code_guess("a@x.io", 5).await.unwrap();
    assert_eq!(reserved.iter().map(|c| (c.code_hash.as_str(), c.attempts)).collect::<Vec<_>>(), vec![("h1", 1)]);
    assert!(store.put_email_code("a@x.io", "h2", i64::MAX, 5, 2).await.unwrap());
    assert!(!store.put_email_code("a@x.io", "h3", i64::MAX, 5, 2).await.unwrap(), "two live codes at most");
    let codes = store.email_codes("a@x.io").await.unwrap();
    assert_eq!(
        codes.iter().map(|c| (c.code_hash.as_str(), c.attempts)).collect::<Vec<_>>(),
        vec![("h1", 1), ("h2", 0)]
    );
    assert!(store.consume_email_code("a@x.io", codes[1].id).await.unwrap());
    assert!(!store.consume_email_code("a@x.io", codes[1].id).await.unwrap(), "single use");
    assert!(store.email_codes("a@x.io").await.unwrap().is_empty(), "a sign-in drops the other codes");
    let eve = store.create_email_user("eve", "eve@x.io").await.unwrap();
    assert_eq!(store.user_by_email("eve@x.io").await.unwrap().unwrap().id, eve.id);
    assert!(store.create_email_user("eve2", "eve@x.io").await.is_err(), "one account per address");

    // Rooms: the owner is a member; private rooms are listed to members only.
    let general = store.ensure_room("general", "all").await.unwrap();
    assert_eq!(store.ensure_room("general", "all").await.unwrap().id, general.id);
    let secret = store.create_room("secret", "", Visibility::Private, Some(ann.id)).await.unwrap();
    // A private name is the owner's alone: it neither blocks nor reveals itself to others.
    assert!(matches!(
        store.create_room("Secret", "", Visibility::Private, Some(ann.id)).await,
        Err(confab_actors::Error::Conflict(_))
    ));
    assert!(store.is_member(secret.id, ann.id).await.unwrap());
    assert!(!store.is_member(secret.id, bob.id).await.unwrap());
    let bobs: Vec<_> = store.rooms_for(bob.id).await.unwrap().into_iter().map(|l| l.room.id).collect();
    assert_eq!(bobs, vec![general.id]);
    store.add_member(secret.id, bob.id).await.unwrap();
    store.add_member(secret.id, bob.id).await.unwrap();
    assert_eq!(store.room_members(secret.id).await.unwrap().len(), 2);
    assert_eq!(store.rooms_for(bob.id).await.unwrap().len(), 2);
    store.create_room("secret", "", Visibility::Private, Some(bob.id)).await.unwrap();
    store.create_room("SECRET", "", Visibility::Public, None).await.unwrap();
    assert!(matches!(
        store.create_room("secret", "", Visibility::Public, Some(bob.id)).await,
        Err(confab_actors::Error::Conflict(_))
    ));
    assert_eq!(store.room_by_name("secret").await.unwrap().map(|r| r.visibility), Some(Visibility::Public));
    assert_eq!(store.rooms_for(bob.id).await.unwrap().len(), 4);

    // Leases: every take raises the epoch.
    let e1 = store.take_lease(general.id, "n1", 1000).await.unwrap();
    let e2 = store.take_lease(general.id, "n2", 1000).await.unwrap();
    assert_eq!(e2, e1 + 1);
    assert_eq!(store.lease(general.id).await.unwrap(), Some((e2, "n2".to_owned())));

    // Commits: fenced by epoch, refused across a gap, cursors only move forward.
    let g = general.id;
    let out = store.commit_batch(&[msg(g, e2, 1, ann.id, "a1"), msg(g, e2, 2, bob.id, "b1")], &[]).await.unwrap();
    assert!(out.iter().all(|o| matches!(o, WriteOutcome::Committed { .. })), "{out:?}");
    let out = store.commit_batch(&[msg(g, e1, 3, ann.id, "stale")], &[]).await.unwrap();
    assert_eq!(out, vec![WriteOutcome::Fenced]);
    let out =
        store.commit_batch(&[msg(g, e2, 5, ann.id, "hole"), msg(g, e2, 6, ann.id, "after-hole")], &[]).await.unwrap();
    assert_eq!(out, vec![WriteOutcome::Gap, WriteOutcome::Gap]);
    let out = store.commit_batch(&[msg(g, e2, 3, ann.id, "a2"), msg(g, e2, 5, ann.id, "skip")], &[]).await.unwrap();
    assert!(matches!(out[0], WriteOutcome::Committed { .. }) && out[1] == WriteOutcome::Gap, "{out:?}");
    assert_eq!(store.head_seq(g).await.unwrap(), 3);
    // A repeated cid is refused by the database, and the batch with it fails as a whole.
    assert!(store.commit_batch(&[msg(g, e2, 4, ann.id, "a1")], &[]).await.is_err());
    assert_eq!(store.head_seq(g).await.unwrap(), 3);

    let cursors = [
        CursorWrite { user: ann.id, room: g, seq: 2 },
        CursorWrite { user: ann.id, room: g, seq: 3 },
        CursorWrite { user: ann.id, room: g, seq: 1 },
    ];
    store.commit_batch(&[], &cursors).await.unwrap();
    assert_eq!(store.read_cursor(ann.id, g).await.unwrap(), 3);
    store.commit_batch(&[], &[CursorWrite { user: ann.id, room: g, seq: 1 }]).await.unwrap();
    assert_eq!(store.read_cursor(ann.id, g).await.unwrap(), 3, "cursors never move back");

    // Reads.
    let all = store.messages_between(g, 1, 10, 100).await.unwrap();
    assert_eq!(all.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(all[1].sender_name.as_ref(), "bob");
    assert_eq!(all[0].body.as_ref(), "body of a1");
    let older = store.messages_before(g, 3, 1).await.unwrap();
    assert_eq!(older.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![2]);
    let anns = store.recent_by_sender(g, ann.id, 10).await.unwrap();
    assert_eq!(anns.iter().map(|m| m.cid.as_ref()).collect::<Vec<_>>(), vec!["a2", "a1"]);
    assert_eq!(store.message_by_cid(g, bob.id, "b1").await.unwrap().unwrap().seq, 2);
    let listing = store.rooms_for(ann.id).await.unwrap().into_iter().find(|l| l.room.id == g).unwrap();
    assert_eq!((listing.head_seq, listing.read_seq), (3, 3));

    // Many rows in one batch (more than one multi-row insert chunk).
    let e3 = store.take_lease(secret.id, "n1", 1000).await.unwrap();
    let batch: Vec<_> = (1..=2500).map(|s| msg(secret.id, e3, s, ann.id, &format!("bulk{s}"))).collect();
    let out = store.commit_batch(&batch, &[]).await.unwrap();
    assert_eq!(out.iter().filter(|o| matches!(o, WriteOutcome::Committed { .. })).count(), 2500);
    assert_eq!(store.head_seq(secret.id).await.unwrap(), 2500);

    // Each outcome carries the id the database gave that very message, rooms interleaved, over
    // more than one insert chunk, with a fenced write in the middle.
    let batch: Vec<_> = (0..2200u64)
        .map(|k| match k % 2 {
            0 => msg(secret.id, e3, 2501 + k / 2, bob.id, &format!("mix{k}")),
            _ => msg(g, e2, 4 + k / 2, bob.id, &format!("mix{k}")),
        })
        .chain([msg(g, e1, 9999, bob.id, "fenced")])
        .collect();
    let out = store.commit_batch(&batch, &[]).await.unwrap();
    assert_eq!(out.last(), Some(&WriteOutcome::Fenced));
    let mut stored = store.messages_between(secret.id, 2501, 3600, 2000).await.unwrap();
    stored.extend(store.messages_between(g, 4, 1103, 2000).await.unwrap());
    let ids: std::collections::HashMap<(RoomId, u64), i64> = stored.iter().map(|m| ((m.room, m.seq), m.id)).collect();
    for (m, o) in batch.iter().zip(&out).take(2200) {
        assert_eq!(*o, WriteOutcome::Committed { id: ids[&(m.room, m.seq)] }, "seq {} of room {}", m.seq, m.room);
    }

    // Moderation and audit.
    store.add_report(g, Some(2), ann.id, "spam").await.unwrap();
    store.audit(Some(ann.id), "report", Some(g), "spam").await.unwrap();
    let entries = store.audit_entries(10).await.unwrap();
    assert_eq!(entries[0].2, "report");
    store.close().await;
}

#[tokio::test]
async fn store_suite_on_sqlite() {
    suite(&TestDb::sqlite()).await;
}

#[tokio::test]
async fn store_suite_on_postgres() {
    match TestDb::postgres().await {
        Some(db) => suite(&db).await,
        None => eprintln!("CONFAB_TEST_DATABASE_URL is not set: the PostgreSQL run of the store suite is skipped"),
    }
}
