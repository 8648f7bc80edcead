//! What a session does with the match pool's frames. Each answers the session (`waiting`,
//! `matched`, `unmatched`) or refuses with an `error` frame:
//!
//! - `match`: interests normalised (`invalid`, `too_many_interests`); muted users refused
//!   (`muted`; banned ones cannot connect); someone in a stranger chat gets its `matched` again
//!   (how a client that reconnects finds its chat), unless the stranger left it (then they leave
//!   it too and enter); someone in the queue has their row renewed
//!   (a client may send `match` again at any time, keeping its place); anyone else enters,
//!   at most `enters_per_minute` times a minute (`rate_limited`).
//! - `next`: leaves the chat (the other side sees `Stranger` leave), at most `nexts_per_minute`
//!   a minute, then enters as `match` does.
//! - `unmatch`: out of the queue and out of the chat.
//! - `stranger_report`: files a report on the chat in its room's moderation queue (the chat is
//!   then kept), keeps the two apart, and leaves the chat (`no_stranger_chat` without one).
//! - `stranger_block`: keeps the two apart for good (a `stranger_avoid` row per direction that
//!   never expires; not the account's block list, which would show the stranger's name), and
//!   leaves the chat like `unmatch` (`no_stranger_chat` without one).
//!
//! Connections come and go: a session that closes while waiting hands its queue row to another
//! waiting session of the user on this node, or detaches it (the pool skips it) for
//! `reconnect_grace`; a new session that sends `stranger_resume` is told `matched` with the chat
//! its user sits in (whether or not the stranger is still there: the room's history says), or
//! takes their queue row over and is told `waiting`, or `unmatched`. So a socket that drops and
//! comes back, on any node, keeps its place or finds its chat by asking once.

use super::interests;
use crate::ctx::Ctx;
use crate::msg::session::{SessionMsg, SessionRef};
use crate::outbound::Outbound;
use crate::store::{QueueEntry, StrangerChat};
use confab_schemas::stranger::{STRANGER_NAME, StrangerFrame};
use confab_schemas::wire::encode_server_frame;
use confab_schemas::{ErrorCode, Refusal, ServerFrame, SystemEvent, UserRef, now_ms};
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

/// Longest report reason, in characters.
const MAX_REASON_CHARS: usize = 1000;
/// How long a report waits for the room's moderation queue.
const REPORT_TIMEOUT: Duration = Duration::from_secs(15);

/// Handles one frame of the session `session` of `user`, answering on `out`.
pub(crate) async fn handle(
    ctx: &Arc<Ctx>,
    session: u64,
    user: &UserRef,
    out: &Outbound,
    me: &SessionRef,
    frame: StrangerFrame,
) {
    let res = match frame {
        StrangerFrame::Match { interests, fewer } => enter(ctx, session, user, out, &interests, fewer, false).await,
        StrangerFrame::Next { interests, fewer } => enter(ctx, session, user, out, &interests, fewer, true).await,
        StrangerFrame::Unmatch {} => unmatch(ctx, user, out).await,
        StrangerFrame::StrangerReport { reason } => report(ctx, user, out, reason).await,
        StrangerFrame::StrangerBlock {} => block(ctx, user, out).await,
        StrangerFrame::StrangerResume {} => {
            resume_asked(ctx, session, user, out, me.clone()).await;
            Ok(())
        }
    };
    if let Err(r) = res {
        ctx.metrics.protocol_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _ = out.push(encode_server_frame(&r.frame(None)));
    }
}

/// A session closed: if it waited, the user's queue row goes to another of their sessions
/// waiting here, or is detached for the grace (see the module doc).
pub(crate) fn session_closed(ctx: &Arc<Ctx>, session: u64, user: &UserRef) {
    if let Some(next) = ctx.stranger.unregister(user.id, session) {
        let ctx = ctx.clone();
        let user = user.id;
        tokio::spawn(async move {
            if let Err(e) = ctx.store.release_queue_session(user, &ctx.config.node_id, session, next).await {
                warn!(%user, err = %e, "releasing a match queue row failed");
            }
        });
    }
}

/// How long the look-up of where a user was may take.
const RESUME_TIMEOUT: Duration = Duration::from_secs(10);

/// `stranger_resume`: tells the session `matched` with the chat its user sits in, or takes
/// their queue row over and has the session wait (`SessionMsg::StrangerPlace`; a session gone
/// meanwhile gives the row up again), or `unmatched` when they are in neither. Asked by the
/// client, not done for every connection: most connections have nothing to resume, and a
/// reconnect storm must not cost the database a read and a write per socket.
async fn resume_asked(ctx: &Ctx, session: u64, user: &UserRef, out: &Outbound, me: SessionRef) {
    match tokio::time::timeout(RESUME_TIMEOUT, resume(ctx, session, user, out, me)).await {
        Ok(Ok(true)) => return,
        Ok(Ok(false)) => {
            let _ = out.push(encode_server_frame(&ServerFrame::Unmatched { room: None }));
            return;
        }
        Ok(Err(e)) => warn!(user = %user.id, err = %e, "finding a stranger chat or queue place failed"),
        Err(_) => warn!(user = %user.id, "finding a stranger chat or queue place timed out"),
    }
    let retry = Refusal::new(ErrorCode::Retry, "could not look up the stranger chat; ask again shortly");
    let _ = out.push(encode_server_frame(&retry.frame(None)));
}

/// True when the session was told `matched` or will wait in the user's place.
async fn resume(ctx: &Ctx, session: u64, user: &UserRef, out: &Outbound, me: SessionRef) -> crate::error::Result<bool> {
    if let Some(chat) = ctx.store.stranger_seat(user.id).await? {
        let _ = out.push(encode_server_frame(&matched(&chat, user)));
        return Ok(true);
    }
    let since = now_ms() - ctx.config.stranger.reconnect_grace.as_millis() as i64;
    let node = &ctx.config.node_id;
    if ctx.store.take_over_queue(user.id, node, session, since).await?.is_none() {
        return Ok(false);
    }
    if me.cast(SessionMsg::StrangerPlace).is_err() {
        ctx.store.release_queue_session(user.id, node, session, None).await?;
    }
    Ok(true)
}

/// The session `session` was given its user's place in the queue: it waits, if the place is
/// still its own (the client may have sent `unmatch` or `match` since).
pub(crate) async fn place_taken(ctx: &Arc<Ctx>, session: u64, user: &UserRef, out: &Outbound) {
    let entry = match ctx.store.queue_entry(user.id).await {
        Ok(Some(e)) if e.session == session && e.node == ctx.config.node_id => e,
        Ok(_) => return,
        Err(e) => {
            warn!(user = %user.id, err = %e, "reading a match queue place failed");
            return;
        }
    };
    ctx.stranger.register(user.id, session, out.clone(), entry.interests.clone());
    if let Some(pool) = ctx.match_pool.get() {
        let _ = pool.cast(super::PoolSupMsg::Nudge);
    }
    let frame = ServerFrame::Waiting { waiting: ctx.stranger.count(1), interests: entry.interests };
    let _ = out.push(encode_server_frame(&frame));
}

fn storage(e: crate::error::Error) -> Refusal {
    warn!(err = %e, "stranger chat storage error");
    Refusal::new(ErrorCode::Internal, "storage error; try again")
}

/// The `matched` frame of `chat` for `user`.
fn matched(chat: &StrangerChat, user: &UserRef) -> ServerFrame {
    let you = UserRef { id: chat.seats.alias(user.id).unwrap_or(user.id), username: STRANGER_NAME.into() };
    ServerFrame::Matched { room: chat.room, shared: chat.shared.clone(), you }
}

async fn limit(ctx: &Ctx, what: &str, user: &UserRef, per_minute: u32) -> Result<(), Refusal> {
    let key = format!("stranger-{what}:user:{}", user.id);
    match ctx.store.take_rate(&key, per_minute, 60_000).await.map_err(storage)? {
        Ok(_) => Ok(()),
        Err(l) => Err(Refusal::new(
            ErrorCode::RateLimited,
            format!("too many tries; wait {} s", (l.retry_after_ms + 999) / 1000),
        )),
    }
}

async fn enter(
    ctx: &Arc<Ctx>,
    session: u64,
    user: &UserRef,
    out: &Outbound,
    raw: &[String],
    fewer: bool,
    next: bool,
) -> Result<(), Refusal> {
    let interests = interests::normalise(raw)?;
    ctx.mutes.refresh(&ctx.store).await;
    if let Some(muted) = ctx.mutes.refusal(user.id) {
        return Err(muted);
    }
    let cfg = &ctx.config.stranger;
    if next {
        limit(ctx, "next", user, cfg.nexts_per_minute).await?;
        leave_chat(ctx, user).await?;
    } else if let Some(chat) = ctx.store.stranger_seat(user.id).await.map_err(storage)? {
        let other = usize::from(chat.seats.0[0] == user.id);
        if chat.left[other].is_none() {
            let _ = out.push(encode_server_frame(&matched(&chat, user)));
            return Ok(());
        }
        // The stranger left: this chat is over for them too.
        leave_chat(ctx, user).await?;
    }
    let now = now_ms();
    let waiting = ctx.store.queue_entry(user.id).await.map_err(storage)?;
    if waiting.is_none() {
        limit(ctx, "enter", user, cfg.enters_per_minute).await?;
    }
    let entry = QueueEntry {
        user: user.id,
        interests: interests.clone(),
        fewer,
        entered_at: waiting.map_or(now, |w| w.entered_at),
        seen_at: now,
        node: ctx.config.node_id.clone(),
        session,
    };
    ctx.store.enter_queue(&entry).await.map_err(storage)?;
    ctx.stranger.register(user.id, session, out.clone(), interests.clone());
    if let Some(pool) = ctx.match_pool.get() {
        let _ = pool.cast(super::PoolSupMsg::Nudge);
    }
    let frame = ServerFrame::Waiting { waiting: ctx.stranger.count(1), interests };
    let _ = out.push(encode_server_frame(&frame));
    Ok(())
}

/// Takes `user` out of their stranger chat, if any, and tells the room (its other side sees
/// `Stranger` leave). The chat, if there was one.
async fn leave_chat(ctx: &Arc<Ctx>, user: &UserRef) -> Result<Option<StrangerChat>, Refusal> {
    let Some((chat, _seat)) = ctx.store.leave_stranger_chat(user.id).await.map_err(storage)? else {
        return Ok(None);
    };
    let (ctx2, by, room) = (ctx.clone(), user.clone(), chat.room);
    tokio::spawn(async move {
        let event = SystemEvent::MemberLeft { user: by.clone() };
        if let Err(r) = ctx2.announce(room, by, event).await {
            warn!(%room, err = %r, "announcing a stranger's leaving failed");
        }
    });
    Ok(Some(chat))
}

async fn unmatch(ctx: &Arc<Ctx>, user: &UserRef, out: &Outbound) -> Result<(), Refusal> {
    ctx.store.leave_queue(user.id).await.map_err(storage)?;
    ctx.stranger.unregister_user(user.id);
    let chat = leave_chat(ctx, user).await?;
    let _ = out.push(encode_server_frame(&ServerFrame::Unmatched { room: chat.map(|c| c.room) }));
    Ok(())
}

/// The chat `user` sits in, or `no_stranger_chat`.
async fn seat_of(ctx: &Ctx, user: &UserRef) -> Result<StrangerChat, Refusal> {
    match ctx.store.stranger_seat(user.id).await.map_err(storage)? {
        Some(chat) => Ok(chat),
        None => Err(Refusal::new(ErrorCode::NoStrangerChat, "you are in no stranger chat")),
    }
}

async fn block(ctx: &Arc<Ctx>, user: &UserRef, out: &Outbound) -> Result<(), Refusal> {
    let chat = seat_of(ctx, user).await?;
    let other = chat.seats.0[usize::from(chat.seats.0[0] == user.id)];
    ctx.store.avoid_pair(user.id, other, i64::MAX).await.map_err(storage)?;
    leave_chat(ctx, user).await?;
    let _ = out.push(encode_server_frame(&ServerFrame::Unmatched { room: Some(chat.room) }));
    Ok(())
}

async fn report(ctx: &Arc<Ctx>, user: &UserRef, out: &Outbound, reason: String) -> Result<(), Refusal> {
    let reason = reason.trim();
    if reason.chars().count() > MAX_REASON_CHARS || reason.contains('\0') {
        return Err(Refusal::new(ErrorCode::Invalid, format!("reason: at most {MAX_REASON_CHARS} characters, no NUL")));
    }
    let reason = if reason.is_empty() { "reported from a stranger chat".to_owned() } else { reason.to_owned() };
    let chat = seat_of(ctx, user).await?;
    // Through the room's moderation queue, on the node that sequences the chat.
    let command = crate::moderation::Command::Report { seq: None, reason };
    match tokio::time::timeout(REPORT_TIMEOUT, ctx.command(chat.room, user.clone(), &command)).await {
        Ok(Ok(_)) => {}
        Ok(Err(r)) => return Err(r),
        Err(_) => return Err(Refusal::new(ErrorCode::Retry, "the node is busy; try again")),
    }
    let until = now_ms() + ctx.config.stranger.avoid_reported.as_millis() as i64;
    ctx.store.report_stranger_chat(&chat, until).await.map_err(storage)?;
    leave_chat(ctx, user).await?;
    let _ = out.push(encode_server_frame(&ServerFrame::Unmatched { room: Some(chat.room) }));
    Ok(())
}
