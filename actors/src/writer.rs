//! The batching writer: one per node, the only path by which chat messages and read cursors
//! become durable.
//!
//! Batching: the first write into an empty buffer casts `Flush` to the writer itself. That `Flush`
//! queues behind every write already in the mailbox, so one commit takes all of them: under load
//! batches grow by themselves, and an idle writer commits a lone message at once. A buffer that
//! reaches `max_batch` is committed without waiting for the `Flush`. A room hands over all the
//! messages it sequenced from one of its mailbox's messages at once (`WriterMsg::Messages`), so a
//! batch may end a few messages above `max_batch`.
//!
//! Group commit: a `Flush` that comes less than `min_gap` after the last commit ended waits for
//! the rest of that gap, so that a steady trickle of writes shares commits instead of paying one
//! commit (statements, a sync, thread switches) each. A write after a quiet spell commits at once,
//! and so does a buffer of `GAP_ENOUGH` writes (the commit's fixed cost is shared already). That
//! fixed cost grows with the rooms and senders a commit touches more than with its messages: each
//! has its own place in the messages' two indexes. With 100 busy rooms and 200 senders a SQLite
//! commit rewrote about 330 pages (WAL frames, two `pwrite` calls each) for 190 messages, and 420
//! for 380.
//!
//! Answers: after each commit the writer sends one `Committed` per room incarnation, in seq
//! order, through the reference the room handed over with its writes (derived from the room's
//! own, so this module never names the room's messages).
//! A failed commit answers every write in it with a failure and *poisons* the (room, epoch) pairs
//! it held: later writes of that incarnation fail too, so a room can never commit seq N+1 after
//! losing seq N. The room actor restarts with a new epoch and resumes from storage.
//!
//! Storage health: every commit is reported to `StorageHealth` (a failed one marks storage
//! failing, a long one stalled), and while storage is failing the writer tries a small probe
//! write every `PROBE_EVERY` until one succeeds, so a node with nothing to write notices too
//! when its database is back.
//!
//! The writer must never be stopped with a non-empty buffer except by a kill; `post_stop` commits
//! what is left.
//!
//! Rooms and sessions reach the writer through `WriterHandle` (the one in `WriterSlot`, swapped
//! by `WriterSupervisor` on restart); only this module builds `WriterMsg`.

use crate::commit_thread::CommitThread;
use crate::metrics::Metrics;
use crate::stop::StopReason;
use crate::storage_health::{PROBE_EVERY, StorageHealth};
use crate::store::{CursorWrite, NewMessage, Store, WriteOutcome};
use confab_schemas::RoomId;
use ractor::{Actor, ActorProcessingErr, ActorRef, DerivedActorRef, RpcReplyPort, SupervisionEvent};
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tracing::{error, info, warn};

/// Buffered writes that commit without waiting for the rest of the gap. At 64, 50,000 messages a
/// second over 100 rooms committed as soon as the last commit ended (141–253 commits a second)
/// and kept the server's core 94–98% busy; at 512, 119–130 commits a second and 77–82%, for
/// about the same end-to-end p99 and a p50 up to 3 ms later (BENCHMARKS.md, "A fourth machine").
const GAP_ENOUGH: usize = 512;

/// How long `WriterHandle::sync` waits for the writer.
const SYNC_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Messages of the batching writer (built only in this module: others call `WriterHandle`).
pub(crate) enum WriterMsg {
    /// Make sequenced messages of one room incarnation durable (in seq order) and answer `reply`
    /// once they are (or are not).
    Messages(Vec<NewMessage>, CommitReply),
    /// Move a read cursor (no answer).
    Cursor(CursorWrite),
    /// Commit everything buffered (self-cast).
    Flush,
    /// Commit everything buffered, then answer: used at shutdown and by tests.
    Sync(RpcReplyPort<()>),
    /// While storage is failing: try a probe write (self-sent every `PROBE_EVERY`).
    Probe,
}

/// Result of one write, as the room actor receives it.
pub(crate) type WriteResult = Result<WriteOutcome, ()>;

/// The writer's answer to one room incarnation: its writes' results, in seq order.
pub(crate) struct Committed {
    pub(crate) epoch: u64,
    pub(crate) results: Vec<(u64, WriteResult)>,
    /// When the writer had the answer (the fan-out lag is measured from here).
    pub(crate) at: Instant,
}

/// Where a room wants its `Committed` answers.
pub(crate) type CommitReply = DerivedActorRef<Committed>;

/// The running batching writer.
#[derive(Clone)]
pub(crate) struct WriterHandle(ActorRef<WriterMsg>);

impl WriterHandle {
    /// Hands over sequenced messages of one room incarnation (in seq order); `reply` gets their
    /// results once they are durable (or are not). False when the writer is gone.
    pub(crate) fn messages(&self, msgs: Vec<NewMessage>, reply: CommitReply) -> bool {
        self.0.cast(WriterMsg::Messages(msgs, reply)).is_ok()
    }

    /// Moves a read cursor (no answer).
    pub(crate) fn cursor(&self, c: CursorWrite) {
        let _ = self.0.cast(WriterMsg::Cursor(c));
    }

    /// Commits everything buffered so far and waits for it.
    pub(crate) async fn sync(&self) -> bool {
        ractor::call_t!(self.0, WriterMsg::Sync, SYNC_CALL_TIMEOUT.as_millis() as u64).is_ok()
    }

    /// Chaos hook: kills the writer (its supervisor restarts it).
    pub(crate) fn kill(&self) {
        self.0.kill();
    }
}

/// The writer currently running, swapped by its supervisor on restart.
#[derive(Clone, Default)]
pub(crate) struct WriterSlot(Arc<RwLock<Option<WriterHandle>>>);

impl WriterSlot {
    pub(crate) fn get(&self) -> Option<WriterHandle> {
        self.0.read().ok().and_then(|g| g.clone())
    }

    fn set(&self, writer: Option<ActorRef<WriterMsg>>) {
        if let Ok(mut g) = self.0.write() {
            *g = writer.map(WriterHandle);
        }
    }

    /// Commits everything buffered so far and waits for it.
    pub(crate) async fn sync(&self) -> bool {
        match self.get() {
            Some(w) => w.sync().await,
            None => false,
        }
    }
}

/// Arguments shared by every incarnation of the writer.
#[derive(Clone)]
pub(crate) struct WriterArgs {
    pub(crate) store: Store,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) max_batch: usize,
    /// Shortest time between the end of one commit and the start of the next (see above).
    pub(crate) min_gap: Duration,
    /// Where transactions run (shared by the writer's incarnations).
    pub(crate) commits: CommitThread,
    /// What every commit reports to (shared with the rooms and `/readyz`).
    pub(crate) health: Arc<StorageHealth>,
    /// Names this node's probe row.
    pub(crate) node_id: Arc<str>,
}

pub(crate) struct BatchWriter;

pub(crate) struct WriterState {
    args: WriterArgs,
    /// Buffered messages.
    msgs: Vec<NewMessage>,
    /// Whom to answer: per hand-over, where its messages end in `msgs` and the room's reply.
    replies: Vec<(usize, CommitReply)>,
    cursors: Vec<CursorWrite>,
    /// A `Flush` is in the mailbox or on a timer.
    flush_queued: bool,
    /// When the last commit ended.
    last_commit: Option<Instant>,
    /// Room incarnations whose writes failed: their later writes fail too.
    poisoned: HashMap<RoomId, u64>,
    /// A `Probe` is on a timer.
    probe_armed: bool,
}

impl Actor for BatchWriter {
    type Msg = WriterMsg;
    type State = WriterState;
    type Arguments = WriterArgs;

    async fn pre_start(&self, me: ActorRef<WriterMsg>, args: WriterArgs) -> Result<WriterState, ActorProcessingErr> {
        let mut st = WriterState {
            args,
            msgs: Vec::new(),
            replies: Vec::new(),
            cursors: Vec::new(),
            flush_queued: false,
            last_commit: None,
            poisoned: HashMap::new(),
            probe_armed: false,
        };
        st.arm_probe(&me);
        Ok(st)
    }

    async fn handle(
        &self,
        me: ActorRef<WriterMsg>,
        msg: WriterMsg,
        st: &mut WriterState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WriterMsg::Messages(msgs, reply) => {
                let Some(first) = msgs.first() else { return Ok(()) };
                let (room, epoch) = (first.room, first.epoch);
                if st.poisoned.get(&room).is_some_and(|&e| e >= epoch) {
                    let results = msgs.iter().map(|m| (m.seq, Err(()))).collect();
                    let _ = reply.send_message(Committed { epoch, results, at: Instant::now() });
                    return Ok(());
                }
                st.poisoned.remove(&room);
                st.msgs.extend(msgs);
                st.replies.push((st.msgs.len(), reply));
                if st.msgs.len() >= st.args.max_batch {
                    st.commit().await;
                } else {
                    st.queue_flush(&me);
                }
            }
            WriterMsg::Cursor(c) => {
                st.cursors.push(c);
                if st.cursors.len() >= st.args.max_batch {
                    st.commit().await;
                } else {
                    st.queue_flush(&me);
                }
            }
            WriterMsg::Flush => {
                let since = st.last_commit.map(|t| t.elapsed());
                let buffered = st.msgs.len() + st.cursors.len();
                if let Some(since) = since.filter(|&d| d < st.args.min_gap && buffered < GAP_ENOUGH) {
                    // Too soon after the last commit: more writes join this one.
                    me.send_after(st.args.min_gap - since, || WriterMsg::Flush);
                    return Ok(());
                }
                st.flush_queued = false;
                st.commit().await;
            }
            WriterMsg::Sync(reply) => {
                st.commit().await;
                let _ = reply.send(());
            }
            WriterMsg::Probe => {
                st.probe_armed = false;
                if st.args.health.failing() {
                    st.probe().await;
                }
            }
        }
        st.arm_probe(&me);
        Ok(())
    }

    async fn post_stop(&self, _me: ActorRef<WriterMsg>, st: &mut WriterState) -> Result<(), ActorProcessingErr> {
        st.commit().await;
        Ok(())
    }
}

impl WriterState {
    /// While storage is failing, keeps one `Probe` on a timer.
    fn arm_probe(&mut self, me: &ActorRef<WriterMsg>) {
        if self.args.health.failing() && !self.probe_armed {
            self.probe_armed = true;
            me.send_after(PROBE_EVERY, || WriterMsg::Probe);
        }
    }

    /// One small write on the commit thread (behind any commit still running), reported to
    /// the storage health like a commit.
    async fn probe(&mut self) {
        let (store, health, node) = (self.args.store.clone(), self.args.health.clone(), self.args.node_id.clone());
        let task = self.args.commits.run(async move {
            health.commit_begins();
            health.commit_ends(store.probe_write(&node).await.map_err(|e| e.to_string()));
        });
        let _ = task.await;
    }

    fn queue_flush(&mut self, me: &ActorRef<WriterMsg>) {
        if !self.flush_queued {
            self.flush_queued = me.cast(WriterMsg::Flush).is_ok();
        }
    }

    /// Commits the buffer in one transaction and answers every waiter.
    ///
    /// The commit runs on the commit thread: killing the writer mid-commit must not drop a
    /// transaction halfway (it would hold the database connection in an unknown state). A killed
    /// writer's last batch still completes and answers its rooms; the rooms resync anyway when told
    /// of the restart.
    async fn commit(&mut self) {
        if self.msgs.is_empty() && self.cursors.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.msgs);
        let replies = std::mem::take(&mut self.replies);
        let cursors = std::mem::take(&mut self.cursors);
        let (store, metrics, health) = (self.args.store.clone(), self.args.metrics.clone(), self.args.health.clone());
        let task = self.args.commits.run(async move {
            let started = Instant::now();
            health.commit_begins();
            let outcome = store.commit_batch(&batch, &cursors).await;
            // Before the rooms hear of it: a room that restarts at once finds storage failing.
            health.commit_ends(outcome.as_ref().map(|_| ()).map_err(|e| e.to_string()));
            let micros = started.elapsed().as_micros() as u64;
            let (results, failed): (Vec<WriteResult>, Vec<(RoomId, u64)>) = match outcome {
                Ok(outcomes) => {
                    metrics.record_batch(batch.len() + cursors.len(), micros);
                    let committed = outcomes.iter().filter(|o| matches!(o, WriteOutcome::Committed { .. })).count();
                    metrics.messages_committed.fetch_add(committed as u64, Relaxed);
                    (outcomes.into_iter().map(Ok).collect(), Vec::new())
                }
                Err(err) => {
                    metrics.writer_failures.fetch_add(1, Relaxed);
                    error!(%err, writes = batch.len(), "batch commit failed");
                    (vec![Err(()); batch.len()], batch.iter().map(|m| (m.room, m.epoch)).collect())
                }
            };
            answer_rooms(&batch, replies, results);
            failed
        });
        match task.await {
            Ok(failed) => self.poisoned.extend(failed),
            Err(e) => error!(err = %e, "commit task failed"),
        }
        self.last_commit = Some(Instant::now());
    }
}

/// One `Committed` per (room actor, epoch), each in seq order. `replies` says where each
/// hand-over's messages end in `batch` (one room incarnation's, in seq order).
fn answer_rooms(batch: &[NewMessage], replies: Vec<(usize, CommitReply)>, results: Vec<WriteResult>) {
    let mut index: HashMap<(ractor::ActorId, u64), usize, foldhash::fast::RandomState> = HashMap::default();
    let mut per_room: Vec<(CommitReply, Committed)> = Vec::new();
    let mut results = results.into_iter();
    let mut start = 0;
    let at = Instant::now();
    for (end, reply) in replies {
        let msgs = &batch[start..end];
        start = end;
        let Some(epoch) = msgs.first().map(|m| m.epoch) else { continue };
        let i = *index.entry((reply.get_id(), epoch)).or_insert_with(|| {
            per_room.push((reply, Committed { epoch, results: Vec::with_capacity(msgs.len()), at }));
            per_room.len() - 1
        });
        per_room[i].1.results.extend(msgs.iter().map(|m| m.seq).zip(results.by_ref()));
    }
    for (reply, answer) in per_room {
        let _ = reply.send_message(answer);
    }
}

/// Supervises the writer: restarts it when it fails or is killed, and tells the rooms.
pub(crate) struct WriterSupervisor;

pub(crate) struct WriterSupArgs {
    pub(crate) writer: WriterArgs,
    pub(crate) slot: WriterSlot,
    pub(crate) name: String,
    /// Called after every restart (the room directory makes rooms with pending writes resync).
    pub(crate) on_restart: Arc<dyn Fn() + Send + Sync>,
}

pub(crate) struct WriterSupState {
    args: WriterSupArgs,
    stopping: bool,
}

/// Stops the writer gracefully (its `post_stop` commits the buffer) and then the supervisor.
pub(crate) enum WriterSupMsg {
    Shutdown(RpcReplyPort<()>),
}

impl Actor for WriterSupervisor {
    type Msg = WriterSupMsg;
    type State = WriterSupState;
    type Arguments = WriterSupArgs;

    async fn pre_start(
        &self,
        me: ActorRef<WriterSupMsg>,
        args: WriterSupArgs,
    ) -> Result<WriterSupState, ActorProcessingErr> {
        let (writer, _) =
            Actor::spawn_linked(Some(args.name.clone()), BatchWriter, args.writer.clone(), me.get_cell()).await?;
        args.slot.set(Some(writer));
        Ok(WriterSupState { args, stopping: false })
    }

    async fn handle(
        &self,
        me: ActorRef<WriterSupMsg>,
        msg: WriterSupMsg,
        st: &mut WriterSupState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WriterSupMsg::Shutdown(reply) => {
                st.stopping = true;
                st.args.slot.set(None);
                me.stop_children_and_wait(StopReason::Shutdown.reason(), Some(std::time::Duration::from_secs(30)))
                    .await;
                let _ = reply.send(());
                me.stop(None);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        me: ActorRef<WriterSupMsg>,
        evt: SupervisionEvent,
        st: &mut WriterSupState,
    ) -> Result<(), ActorProcessingErr> {
        let why = match &evt {
            SupervisionEvent::ActorFailed(_, err) => err.to_string(),
            SupervisionEvent::ActorTerminated(_, _, reason) => reason.clone().unwrap_or_default(),
            _ => return Ok(()),
        };
        if st.stopping {
            return Ok(());
        }
        warn!(reason = %why, "writer stopped; restarting it");
        st.args.slot.set(None);
        st.args.writer.metrics.writer_restarts.fetch_add(1, Relaxed);
        let (writer, _) =
            Actor::spawn_linked(Some(st.args.name.clone()), BatchWriter, st.args.writer.clone(), me.get_cell()).await?;
        st.args.slot.set(Some(writer));
        info!("writer restarted");
        (st.args.on_restart)();
        Ok(())
    }

    async fn post_stop(&self, me: ActorRef<WriterSupMsg>, st: &mut WriterSupState) -> Result<(), ActorProcessingErr> {
        st.stopping = true;
        me.stop_children_and_wait(StopReason::Shutdown.reason(), Some(std::time::Duration::from_secs(30))).await;
        Ok(())
    }
}
