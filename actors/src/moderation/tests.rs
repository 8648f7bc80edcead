//! The queue takes one decision per item: the same command sent again (`Ctx::command` sends it
//! again when its answer is slow) gets that decision's answer, never `conflict`; another
//! decision while one is under way is `retry` (it may yet fail); one after it is `conflict`.

use super::*;
use crate::ActorSystem;
use crate::ctx::SystemConfig;
use crate::store::SqliteSync;
use bytes::Bytes;
use confab_schemas::{Role, Visibility};
use tokio::sync::mpsc;

/// Longest wait for an answer.
const WAIT: Duration = Duration::from_secs(10);

async fn answer_of(rx: &mut mpsc::Receiver<Bytes>) -> ServerFrame {
    let frame = tokio::time::timeout(WAIT, rx.recv()).await.expect("an answer in time").expect("an answer");
    // A whole WebSocket text frame: its JSON starts at the first brace.
    let json = frame.iter().position(|b| *b == b'{').map_or(&frame[..0], |i| &frame[i..]);
    serde_json::from_slice(json).expect("a server frame")
}

fn code(frame: &ServerFrame) -> Option<ErrorCode> {
    match frame {
        ServerFrame::Error { code, .. } => Some(*code),
        _ => None,
    }
}

#[tokio::test]
async fn a_decision_asked_again_gets_its_answer_and_another_one_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("queue.db").display());
    let store = Store::connect(&url, SqliteSync::Normal).await.expect("store");
    let owner = store.create_user("ann", "not-a-hash", Role::User).await.expect("user");
    let sender = store.create_user("bob", "not-a-hash", Role::User).await.expect("user");
    let room = store.create_room("r", "", Visibility::Public, Some(owner.id)).await.expect("room");
    let config = SystemConfig { node_id: "test-queue".into(), ..SystemConfig::default() };
    let system = ActorSystem::start(store.clone(), config).await.expect("actor system");
    let flag = NewItem {
        room: room.id,
        kind: "flag",
        sender: sender.id,
        reason: "banned_word",
        body: "spam",
        cid: "c1",
        reply_to: None,
        attachments: &[],
    };
    let id = store.add_queue_item(flag).await.expect("a flag");
    let args = ModerationArgs { room: room.id, ctx: system.ctx().clone() };
    let (actor, _) = Actor::spawn(None, ModerationQueue, args).await.expect("queue");
    let queue = ModerationHandle::new(actor.clone());
    let by = UserRef { id: owner.id, username: owner.username.as_str().into() };
    let ask = |cid: &str| {
        let (tx, rx) = mpsc::channel(1);
        let dismiss = Decision { item: id, action: Action::Dismiss, reason: "fine".into(), minutes: None };
        assert!(queue.decide(by.clone(), dismiss, ReplyTo::Waiter(tx), cid.into()));
        rx
    };

    // The command, sent again before its answer came, and another decision meanwhile.
    let mut first = ask("~mod-a");
    let mut again = ask("~mod-a");
    let mut other = ask("~mod-b");
    for rx in [&mut first, &mut again] {
        match answer_of(rx).await {
            ServerFrame::Ack { id: acked, cid, .. } => assert_eq!((acked, &*cid), (id, "~mod-a")),
            frame => panic!("the decision's own ack, not {frame:?}"),
        }
    }
    // Asked while the first was under way: `retry`; after it: `conflict` (it is decided).
    let refused = answer_of(&mut other).await;
    assert!(matches!(code(&refused), Some(ErrorCode::Retry | ErrorCode::Conflict)), "{refused:?}");
    // Once decided: the same command again is answered alike; any other one is `conflict`.
    assert!(matches!(answer_of(&mut ask("~mod-a")).await, ServerFrame::Ack { id: acked, .. } if acked == id));
    assert_eq!(code(&answer_of(&mut ask("~mod-c")).await), Some(ErrorCode::Conflict));
    let item = store.queue_item(id).await.expect("read").expect("the item");
    assert_eq!((item.status.as_str(), item.decision_reason.as_deref()), ("dismissed", Some("fine")));
    actor.stop(None);
    system.shutdown(Duration::from_secs(1)).await;
}
