//! `MatchPool`: the one matchmaker of the cluster, and `PoolSupervisor`, which runs on every
//! node and keeps a `MatchPool` running exactly where the pool's key is placed (this node owns
//! `MATCH_POOL` and may sequence). A pool that fails is started again, counted in
//! `confab_actor_restarts_total{kind="match_pool"}`; it reads everything from the database, so a
//! restart, a handoff or a failover loses nobody.
//!
//! The pool holds the `match-pool` task lease while it pairs (renewed each second, lapsing after
//! `LEASE_TTL_MS`): when the view of the cluster differs between nodes for a moment, at most one
//! of them pairs; the pairing transaction keeps the invariants even if two did.

use super::matching;
use crate::ctx::Ctx;
use crate::msg::directory::DirMsg;
use crate::store::{Pairing, QueueEntry};
use confab_schemas::node::NodeFrame;
use confab_schemas::stranger::MATCH_POOL;
use confab_schemas::{UserId, now_ms};
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// The task lease's name.
const LEASE: &str = "match-pool";
/// How long the lease lasts unless renewed.
const LEASE_TTL_MS: i64 = 3_000;
/// How often the lease is renewed.
const LEASE_RENEW: Duration = Duration::from_secs(1);
/// How often the supervisor checks where the pool belongs (it also checks on a view change).
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Chats deleted per sweep.
const SWEEP_BATCH: u32 = 200;

pub(crate) enum PoolSupMsg {
    /// Check whether the pool belongs here (view changed, or the periodic check).
    Check,
    /// Someone entered the queue on this node: pair soon.
    Nudge,
}

pub(crate) struct PoolSupervisor;

pub(crate) struct PoolSupState {
    ctx: Arc<Ctx>,
    pool: Option<ActorRef<PoolMsg>>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl PoolSupState {
    fn belongs_here(&self) -> bool {
        let cluster = self.ctx.cluster();
        cluster.may_sequence() && cluster.owner_of(MATCH_POOL).as_deref() == Some(self.ctx.config.node_id.as_str())
    }
}

impl Actor for PoolSupervisor {
    type Msg = PoolSupMsg;
    type State = PoolSupState;
    type Arguments = Arc<Ctx>;

    async fn pre_start(&self, me: ActorRef<PoolSupMsg>, ctx: Arc<Ctx>) -> Result<PoolSupState, ActorProcessingErr> {
        let ticker = me.send_interval(CHECK_EVERY, || PoolSupMsg::Check);
        let _ = me.cast(PoolSupMsg::Check);
        Ok(PoolSupState { ctx, pool: None, ticker: Some(ticker) })
    }

    async fn post_stop(&self, me: ActorRef<PoolSupMsg>, st: &mut PoolSupState) -> Result<(), ActorProcessingErr> {
        if let Some(t) = st.ticker.take() {
            t.abort();
        }
        me.stop_children_and_wait(None, Some(Duration::from_secs(5))).await;
        Ok(())
    }

    async fn handle(
        &self,
        me: ActorRef<PoolSupMsg>,
        msg: PoolSupMsg,
        st: &mut PoolSupState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PoolSupMsg::Check => {
                let here = st.belongs_here();
                match (&st.pool, here) {
                    (None, true) => {
                        let (pool, _) = Actor::spawn_linked(None, MatchPool, st.ctx.clone(), me.get_cell()).await?;
                        info!("match pool started on this node");
                        st.pool = Some(pool);
                    }
                    (Some(pool), false) => {
                        info!("match pool moves to another node");
                        pool.stop(Some("moved".into()));
                        st.pool = None;
                    }
                    _ => {}
                }
            }
            PoolSupMsg::Nudge => {
                if let Some(pool) = &st.pool {
                    let _ = pool.cast(PoolMsg::Nudge);
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        me: ActorRef<PoolSupMsg>,
        evt: SupervisionEvent,
        st: &mut PoolSupState,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ActorFailed(cell, err)
                if st.pool.as_ref().is_some_and(|p| p.get_id() == cell.get_id()) =>
            {
                st.ctx.metrics.match_pool_restarts.fetch_add(1, Relaxed);
                warn!(err = %err, "match pool failed; starting it again");
                st.pool = None;
                let _ = me.cast(PoolSupMsg::Check);
            }
            SupervisionEvent::ActorTerminated(cell, ..)
                if st.pool.as_ref().is_some_and(|p| p.get_id() == cell.get_id()) =>
            {
                st.pool = None;
            }
            _ => {}
        }
        Ok(())
    }
}

pub(crate) enum PoolMsg {
    /// The periodic round.
    Tick,
    /// Someone entered: a round soon (several nudges share one).
    Nudge,
    /// The round a nudge asked for.
    Round,
}

pub(crate) struct MatchPool;

pub(crate) struct PoolState {
    ctx: Arc<Ctx>,
    ticker: Option<tokio::task::JoinHandle<()>>,
    /// The lease is ours until then (as far as this node knows).
    lease_until: Option<Instant>,
    lease_renewed: Option<Instant>,
    swept: Instant,
    round_armed: bool,
}

impl Actor for MatchPool {
    type Msg = PoolMsg;
    type State = PoolState;
    type Arguments = Arc<Ctx>;

    async fn pre_start(&self, me: ActorRef<PoolMsg>, ctx: Arc<Ctx>) -> Result<PoolState, ActorProcessingErr> {
        let ticker = me.send_interval(ctx.config.stranger.tick, || PoolMsg::Tick);
        ctx.metrics.match_pool_running.store(1, Relaxed);
        Ok(PoolState {
            ctx,
            ticker: Some(ticker),
            lease_until: None,
            lease_renewed: None,
            swept: Instant::now(),
            round_armed: false,
        })
    }

    async fn post_stop(&self, _me: ActorRef<PoolMsg>, st: &mut PoolState) -> Result<(), ActorProcessingErr> {
        if let Some(t) = st.ticker.take() {
            t.abort();
        }
        st.ctx.metrics.stranger_waiting.store(0, Relaxed);
        st.ctx.metrics.match_pool_running.store(0, Relaxed);
        if let Ok(mut by) = st.ctx.metrics.stranger_waiting_by_interest.lock() {
            by.clear();
        }
        Ok(())
    }

    async fn handle(&self, me: ActorRef<PoolMsg>, msg: PoolMsg, st: &mut PoolState) -> Result<(), ActorProcessingErr> {
        match msg {
            PoolMsg::Nudge => {
                if !st.round_armed {
                    st.round_armed = true;
                    me.send_after(Duration::from_millis(10), || PoolMsg::Round);
                }
            }
            PoolMsg::Tick | PoolMsg::Round => {
                if matches!(msg, PoolMsg::Round) {
                    st.round_armed = false;
                }
                if st.hold_lease().await? {
                    st.round().await?;
                    if st.swept.elapsed() >= sweep_every(&st.ctx) {
                        st.swept = Instant::now();
                        st.sweep().await?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// How often ended chats are looked for: a quarter of the retention, between 0.2 s and 30 s.
fn sweep_every(ctx: &Ctx) -> Duration {
    (ctx.config.stranger.retention / 4).clamp(Duration::from_millis(200), Duration::from_secs(30))
}

impl PoolState {
    /// Takes or renews the lease when due; whether this pool may pair now.
    async fn hold_lease(&mut self) -> Result<bool, ActorProcessingErr> {
        if self.lease_renewed.is_some_and(|at| at.elapsed() < LEASE_RENEW)
            && self.lease_until.is_some_and(|u| u > Instant::now())
        {
            return Ok(true);
        }
        let asked = Instant::now();
        let held = self.ctx.store.take_task_lease(LEASE, &self.ctx.config.node_id, LEASE_TTL_MS).await?;
        if held {
            self.lease_renewed = Some(asked);
            self.lease_until = Some(asked + Duration::from_millis(LEASE_TTL_MS as u64 / 2));
        } else {
            self.lease_until = None;
            debug!("match pool lease held by another node");
        }
        Ok(held)
    }

    /// Reads the queue and makes the pairs it allows.
    async fn round(&mut self) -> Result<(), ActorProcessingErr> {
        let ctx = &self.ctx;
        let cfg = &ctx.config.stranger;
        let now = now_ms();
        let queue: Vec<QueueEntry> = ctx
            .store
            .queue(now - cfg.stale_after.as_millis() as i64)
            .await?
            .into_iter()
            .filter(|e| e.session != crate::store::DETACHED && ctx.cluster().is_live(&e.node))
            .collect();
        record_waiting(ctx, &queue);
        if queue.len() < 2 {
            return Ok(());
        }
        let users: Vec<UserId> = queue.iter().map(|e| e.user).collect();
        let avoid: HashSet<(UserId, UserId)> = ctx.store.avoided_pairs(&users).await?.into_iter().collect();
        let widen = cfg.widen_after.as_millis() as i64;
        for p in matching::pairs(&queue, &avoid, now, widen) {
            let (a, b) = (&queue[p.a], &queue[p.b]);
            match ctx.store.pair_strangers(a, b, &p.shared, cfg.avoid.as_millis() as i64).await? {
                Pairing::Paired(room) => {
                    ctx.metrics.stranger_matches.fetch_add(1, Relaxed);
                    let done = now_ms();
                    for e in [a, b] {
                        ctx.metrics.record_stranger_wait(Duration::from_millis((done - e.entered_at).max(0) as u64));
                    }
                    debug!(room = %room.id, shared = p.shared.len(), "strangers paired");
                }
                Pairing::Blocked => {
                    let until = now + cfg.avoid_reported.as_millis() as i64;
                    ctx.store.avoid_pair(a.user, b.user, until).await?;
                }
                Pairing::Gone | Pairing::Seated => {}
            }
        }
        Ok(())
    }

    /// Deletes the chats both people left `retention` ago (not reported), messages and all; the
    /// sweeper deletes their files, which nothing references any more.
    async fn sweep(&mut self) -> Result<(), ActorProcessingErr> {
        let ctx = &self.ctx;
        let before = now_ms() - ctx.config.stranger.retention.as_millis() as i64;
        let cfg = &ctx.config.stranger;
        let now = now_ms();
        let stale = now - 4 * cfg.stale_after.as_millis() as i64;
        ctx.store.prune_queue(stale, now - cfg.reconnect_grace.as_millis() as i64).await?;
        for room in ctx.store.stranger_chats_ended_before(before, SWEEP_BATCH).await? {
            ctx.store.delete_room(room).await?;
            ctx.store.forget_stranger_chat(room).await?;
            if let Some(dir) = ctx.rooms.get() {
                let _ = dir.cast(DirMsg::Deleted(room));
            }
            ctx.cluster().broadcast(NodeFrame::RoomDeleted { room });
            ctx.metrics.stranger_chats_deleted.fetch_add(1, Relaxed);
            debug!(%room, "stranger chat deleted");
        }
        Ok(())
    }
}

/// Publishes who waits: the total and the most named interests (the rest as `_other`).
fn record_waiting(ctx: &Ctx, queue: &[QueueEntry]) {
    ctx.metrics.stranger_waiting.store(queue.len() as i64, Relaxed);
    let mut counts: HashMap<&str, u64> = HashMap::new();
    for t in queue.iter().flat_map(|e| &e.interests) {
        *counts.entry(t.as_str()).or_default() += 1;
    }
    let mut counts: Vec<(&str, u64)> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let top = crate::metrics::STRANGER_INTEREST_LABELS;
    let other: u64 = counts.iter().skip(top).map(|(_, n)| n).sum();
    let mut by: Vec<(String, u64)> = counts.iter().take(top).map(|(t, n)| (t.to_string(), *n)).collect();
    if other > 0 {
        by.push(("_other".into(), other));
    }
    if let Ok(mut slot) = ctx.metrics.stranger_waiting_by_interest.lock() {
        *slot = by;
    }
}
