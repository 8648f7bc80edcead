//! The desk: this node's sessions waiting for a stranger. The pool may run on another node and
//! the database holds the pairs it makes, so the desk looks up the seats of the users waiting
//! here each tick and sends their sessions `matched`; it sends `waiting` with the queue's length
//! when it changes, and renews the queue rows of this node's waiting sessions (`seen_at`), so the
//! pool can tell rows of live sessions from those of a node that died (or of a session that
//! died without saying so).

use crate::ctx::Ctx;
use crate::outbound::Outbound;
use confab_schemas::stranger::STRANGER_NAME;
use confab_schemas::wire::encode_server_frame;
use confab_schemas::{ServerFrame, UserId, UserRef, now_ms};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::warn;

struct Waiter {
    session: u64,
    out: Outbound,
    interests: Vec<String>,
}

/// This node's waiting sessions, by user.
#[derive(Default)]
pub(crate) struct Desk {
    waiting: Mutex<HashMap<UserId, Vec<Waiter>>>,
    /// The queue's length as last read.
    count: AtomicU64,
}

impl Desk {
    pub(crate) fn register(&self, user: UserId, session: u64, out: Outbound, interests: Vec<String>) {
        let mut w = self.waiting.lock().expect("desk lock");
        let list = w.entry(user).or_default();
        list.retain(|x| x.session != session);
        list.push(Waiter { session, out, interests });
    }

    /// Forgets a session. `None` if it did not wait; else another session of the user that
    /// still waits here, if any.
    pub(crate) fn unregister(&self, user: UserId, session: u64) -> Option<Option<u64>> {
        let mut w = self.waiting.lock().expect("desk lock");
        let list = w.get_mut(&user)?;
        let before = list.len();
        list.retain(|x| x.session != session);
        let was = list.len() < before;
        let next = list.last().map(|x| x.session);
        if list.is_empty() {
            w.remove(&user);
        }
        was.then_some(next)
    }

    /// Forgets every session of `user` (they left the queue).
    pub(crate) fn unregister_user(&self, user: UserId) {
        self.waiting.lock().expect("desk lock").remove(&user);
    }

    /// The queue's length as last read (at least `floor`).
    pub(crate) fn count(&self, floor: u64) -> u64 {
        self.count.load(Relaxed).max(floor)
    }

    fn users(&self) -> Vec<UserId> {
        self.waiting.lock().expect("desk lock").keys().copied().collect()
    }
}

/// How often the queue's length is read and sent to the waiting.
const COUNT_EVERY: Duration = Duration::from_secs(1);

/// The desk's loop: runs as long as the node.
pub(crate) async fn run_desk(ctx: Arc<Ctx>) {
    let cfg = ctx.config.stranger.clone();
    let mut every = tokio::time::interval(cfg.tick);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut counted = Instant::now() - COUNT_EVERY;
    let mut renewed = Instant::now();
    loop {
        every.tick().await;
        if let Err(e) = round(&ctx, &mut counted, &mut renewed).await {
            warn!(err = %e, "stranger desk round failed");
        }
    }
}

async fn round(ctx: &Ctx, counted: &mut Instant, renewed: &mut Instant) -> crate::error::Result<()> {
    let desk = &ctx.stranger;
    let users = desk.users();
    if !users.is_empty() {
        for (user, chat) in ctx.store.stranger_seats_of(&users).await? {
            let Some(waiters) = desk.waiting.lock().expect("desk lock").remove(&user) else { continue };
            let you = UserRef { id: chat.seats.alias(user).unwrap_or(user), username: STRANGER_NAME.into() };
            let frame = encode_server_frame(&ServerFrame::Matched { room: chat.room, shared: chat.shared, you });
            for w in waiters {
                let _ = w.out.push(frame.clone());
            }
        }
    }
    let stale = ctx.config.stranger.stale_after;
    if counted.elapsed() >= COUNT_EVERY {
        *counted = Instant::now();
        let n = ctx.store.queue_len(now_ms() - stale.as_millis() as i64).await?;
        if desk.count.swap(n, Relaxed) != n {
            let w = desk.waiting.lock().expect("desk lock");
            for waiter in w.values().flatten() {
                let frame = ServerFrame::Waiting { waiting: n, interests: waiter.interests.clone() };
                let _ = waiter.out.push(encode_server_frame(&frame));
            }
        }
    }
    if renewed.elapsed() >= stale / 3 {
        *renewed = Instant::now();
        ctx.store.renew_queue(&ctx.config.node_id, &desk.users()).await?;
    }
    Ok(())
}
