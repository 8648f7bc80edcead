//! Room sequencing, cid dedupe and recovery without a socket: a room actor on a temporary SQLite
//! store, driven through its `RoomHandle`, with a test subscriber whose outbound queue is read
//! directly and a probe standing in for its session actor.

use crate::ActorSystem;
use crate::ctx::SystemConfig;
use crate::msg::room::{ReplyTo, RoomHandle, Subscriber};
use crate::msg::session::{SessionMsg, SessionRef};
use crate::outbound::{Outbound, OutboundRx};
use crate::store::{SqliteSync, Store};
use confab_schemas::{Draft, Role, RoomId, ServerFrame, UserRef, Visibility};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The test subscriber's session id.
const SESSION: u64 = 1;
/// Longest wait for anything a test expects.
const WAIT: Duration = Duration::from_secs(10);

/// Stands in for a session actor: whatever a room tells it goes to the test.
struct Probe;

impl Actor for Probe {
    type Msg = SessionMsg;
    type State = mpsc::UnboundedSender<SessionMsg>;
    type Arguments = mpsc::UnboundedSender<SessionMsg>;

    async fn pre_start(
        &self,
        _me: ActorRef<SessionMsg>,
        tx: mpsc::UnboundedSender<SessionMsg>,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(tx)
    }

    async fn handle(
        &self,
        _me: ActorRef<SessionMsg>,
        msg: SessionMsg,
        tx: &mut mpsc::UnboundedSender<SessionMsg>,
    ) -> Result<(), ActorProcessingErr> {
        let _ = tx.send(msg);
        Ok(())
    }
}

struct Fixture {
    system: ActorSystem,
    store: Store,
    room: RoomId,
    user: UserRef,
    out: Outbound,
    rx: OutboundRx,
    probe: SessionRef,
    told: mpsc::UnboundedReceiver<SessionMsg>,
    /// Frames queued to the subscriber, in queue order.
    queued: Vec<ServerFrame>,
    /// Ack and error frames the room handed to the session (not written behind messages).
    answered: Vec<ServerFrame>,
    /// Rooms restarts the session was told of (`crashed`).
    restarts: Vec<bool>,
    _dir: tempfile::TempDir,
}

fn msg(cid: &str) -> Draft {
    Draft::message(cid.into(), format!("body of {cid}").into(), None)
}

/// Decodes the server frames (complete WebSocket text frames) in one outbound buffer.
fn decode(mut buf: &[u8], into: &mut Vec<ServerFrame>) {
    while buf.len() >= 2 {
        let (len, head) = match buf[1] {
            n @ 0..=125 => (n as usize, 2),
            126 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
            _ => (u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes")) as usize, 10),
        };
        if buf[0] & 0x0f == 0x1 {
            into.push(serde_json::from_slice(&buf[head..head + len]).expect("a server frame"));
        }
        buf = &buf[head + len..];
    }
}

async fn fixture(name: &str, tune: impl FnOnce(&mut SystemConfig)) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("room.db").display());
    let store = Store::connect(&url, SqliteSync::Normal).await.expect("store");
    let user = store.create_user("ann", "not-a-hash", Role::User).await.expect("user");
    let room = store.create_room("r", "", Visibility::Public, Some(user.id)).await.expect("room");
    let mut config = SystemConfig {
        node_id: format!("test-{name}"),
        rate_burst: 1000,
        rate_per_sec: 1000.0,
        ..SystemConfig::default()
    };
    tune(&mut config);
    let system = ActorSystem::start(store.clone(), config).await.expect("actor system");
    let (out, rx) = Outbound::channel(1024);
    let (tx, told) = mpsc::unbounded_channel();
    let (actor, _) = Actor::spawn(None, Probe, tx).await.expect("probe");
    let probe = SessionRef::starting(SESSION, None);
    assert!(probe.started(actor));
    let user = UserRef { id: user.id, username: user.username.as_str().into() };
    let fx = Fixture {
        system,
        store,
        room: room.id,
        user,
        out,
        rx,
        probe,
        told,
        queued: Vec::new(),
        answered: Vec::new(),
        restarts: Vec::new(),
        _dir: dir,
    };
    let sub = Subscriber {
        session: SESSION,
        user: fx.user.clone(),
        out: fx.out.clone(),
        session_ref: fx.probe.clone(),
        ticket: fx.out.begin_join(fx.room),
    };
    let head = fx.handle().await.join(sub, None, WAIT).await.expect("an answer").expect("joined");
    assert_eq!(head, 0);
    fx
}

impl Fixture {
    /// The room's running actor (started, or restarted, by the directory).
    async fn handle(&self) -> RoomHandle {
        self.system.ctx().activate(self.room).await.expect("the room runs")
    }

    /// Hands drafts to the room as the test subscriber's session does, looking the room up again
    /// while its actor is being replaced.
    async fn send(&self, drafts: Vec<Draft>) {
        let deadline = Instant::now() + WAIT;
        while !self.handle().await.send(
            SESSION,
            self.user.clone(),
            ReplyTo::Session(self.probe.clone()),
            drafts.clone(),
        ) {
            assert!(Instant::now() < deadline, "the room never took the sends");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Reads what the room queued and told until `done` holds.
    async fn until(&mut self, what: &str, done: impl Fn(&Fixture) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done(self) {
            tokio::select! {
                buf = self.rx.recv() => decode(&buf.expect("queue open"), &mut self.queued),
                msg = self.told.recv() => match msg.expect("probe alive") {
                    SessionMsg::SendResults { frames, .. } => decode(&frames, &mut self.answered),
                    SessionMsg::RoomRestarted { crashed, .. } => self.restarts.push(crashed),
                    _ => {}
                },
                _ = tokio::time::sleep_until(deadline) => panic!("timed out waiting for {what}"),
            }
        }
    }

    /// The seqs of the messages queued to the subscriber, in queue order.
    fn message_seqs(&self) -> Vec<u64> {
        self.queued
            .iter()
            .filter_map(|f| if let ServerFrame::Message { seq, .. } = f { Some(*seq) } else { None })
            .collect()
    }

    /// The seqs of every ack of `cid`, written behind messages or handed to the session.
    fn acks(&self, cid: &str) -> Vec<u64> {
        let acks = self.queued.iter().chain(&self.answered);
        acks.filter_map(|f| match f {
            ServerFrame::Ack { cid: c, seq, .. } if &**c == cid => Some(*seq),
            _ => None,
        })
        .collect()
    }

    async fn stored_head(&self) -> u64 {
        self.store.head_seq(self.room).await.expect("head")
    }

    async fn kill_room_and_wait(&mut self) {
        assert!(self.system.kill_room(self.room).await, "a room actor to kill");
        self.until("the room's restart", |f| !f.restarts.is_empty()).await;
        assert_eq!(self.restarts, [true], "a kill is a crash");
    }

    async fn shutdown(self) {
        self.system.shutdown(Duration::from_secs(5)).await;
    }
}

#[tokio::test]
async fn messages_get_gap_free_seqs_and_each_ack_follows_its_message() {
    let mut fx = fixture("sequencing", |_| {}).await;
    fx.send(vec![msg("a"), msg("b"), msg("c")]).await;
    fx.send(vec![msg("d"), msg("e")]).await;
    fx.until("five acks", |f| ["a", "b", "c", "d", "e"].iter().all(|c| !f.acks(c).is_empty())).await;
    assert_eq!(fx.message_seqs(), [1, 2, 3, 4, 5]);
    for (cid, seq) in [("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5)] {
        assert_eq!(fx.acks(cid), [seq], "{cid}");
    }
    // The subscriber is the sender: its acks are written right behind the messages they answer.
    for (i, f) in fx.queued.iter().enumerate() {
        if let ServerFrame::Ack { seq, .. } = f {
            let before = &fx.queued[..i];
            assert!(before.iter().any(|m| matches!(m, ServerFrame::Message { seq: s, .. } if s == seq)), "ack {seq}");
        }
    }
    assert_eq!(fx.handle().await.head().await, Some(5));
    assert_eq!(fx.stored_head().await, 5);
    fx.shutdown().await;
}

#[tokio::test]
async fn a_resent_cid_is_acked_again_and_never_sequenced_twice() {
    let mut fx = fixture("dedupe", |_| {}).await;
    fx.send(vec![msg("a")]).await;
    fx.until("a's ack", |f| !f.acks("a").is_empty()).await;
    // Resent after its ack (the client missed it), beside a new message.
    fx.send(vec![msg("a"), msg("b")]).await;
    fx.until("a's second ack and b's ack", |f| f.acks("a").len() == 2 && !f.acks("b").is_empty()).await;
    assert_eq!(fx.acks("a"), [1, 1]);
    assert_eq!(fx.acks("b"), [2]);
    // Sent twice before it is durable: one message, and its ack goes once, to the last asker.
    fx.send(vec![msg("c"), msg("c")]).await;
    fx.send(vec![msg("d")]).await;
    fx.until("d's ack", |f| !f.acks("d").is_empty()).await;
    assert_eq!(fx.acks("c"), [3]);
    assert_eq!(fx.acks("d"), [4]);
    assert_eq!(fx.message_seqs(), [1, 2, 3, 4]);
    assert_eq!(fx.stored_head().await, 4);
    fx.shutdown().await;
}

#[tokio::test]
async fn a_restarted_room_resumes_its_sequence_and_remembers_cids_from_storage() {
    let mut fx = fixture("restart", |_| {}).await;
    fx.send(vec![msg("a"), msg("b")]).await;
    fx.until("two acks", |f| !f.acks("a").is_empty() && !f.acks("b").is_empty()).await;
    fx.kill_room_and_wait().await;
    // The new incarnation knows `b` only from storage; the subscriber kept its place.
    fx.send(vec![msg("b"), msg("c")]).await;
    fx.until("b's second ack and c's ack", |f| f.acks("b").len() == 2 && !f.acks("c").is_empty()).await;
    assert_eq!(fx.acks("b"), [2, 2]);
    assert_eq!(fx.acks("c"), [3]);
    assert_eq!(fx.message_seqs(), [1, 2, 3]);
    assert_eq!(fx.handle().await.head().await, Some(3));
    fx.shutdown().await;
}

#[tokio::test]
async fn a_write_in_flight_when_the_room_dies_is_acked_once_and_leaves_no_gap() {
    // A long group-commit gap holds the second write in the writer while the room is killed.
    let mut fx = fixture("in-flight", |c| c.commit_gap = Duration::from_millis(500)).await;
    fx.send(vec![msg("a")]).await;
    fx.until("a's ack", |f| !f.acks("a").is_empty()).await;
    fx.send(vec![msg("b")]).await;
    // Answered after the send: `b` is sequenced and with the writer.
    assert_eq!(fx.handle().await.head().await, Some(1));
    fx.kill_room_and_wait().await;
    // As a session does when told of the restart: unanswered sends go again, same cid.
    fx.send(vec![msg("b")]).await;
    fx.until("b's ack", |f| !f.acks("b").is_empty()).await;
    fx.send(vec![msg("c")]).await;
    fx.until("c's ack", |f| !f.acks("c").is_empty()).await;
    assert!(fx.acks("b").iter().all(|&seq| seq == 2), "b acked as {:?}", fx.acks("b"));
    assert_eq!(fx.acks("c"), [3]);
    assert_eq!(fx.message_seqs(), [1, 2, 3]);
    assert_eq!(fx.stored_head().await, 3);
    let stored = fx.store.messages_between(fx.room, 1, 10, 10).await.expect("rows");
    let cids: Vec<&str> = stored.iter().map(|r| &*r.cid).collect();
    assert_eq!(cids, ["a", "b", "c"]);
    fx.shutdown().await;
}
