//! `GET /ws`: the WebSocket endpoint of protocol v1.
//!
//! fastwebsockets performs the upgrade; frames are read by `ws_read` (no buffer held while a
//! connection is idle) and written pre-encoded. Each connection has two tasks. The reader
//! (fragments joined, messages capped at `max_frame_bytes`) authenticates, parses JSON frames,
//! answers malformed ones with an `error` frame and hands good ones to the `SessionActor`; a
//! framing violation gets an `error` frame and a close (1002, 1007 or 1009). The writer drains the session's
//! bounded outbound queue: it takes every frame already queued (up to a cap) and writes them with
//! one system call. Frames arrive pre-encoded (header and payload), the same bytes for every
//! recipient of a room message. Nothing a client sends can stall another client.

use crate::AppState;
use crate::admission::Admitted;
use crate::auth::{request_token, user_for_token};
use crate::error::ApiError;
use crate::security::origin_allowed;
use crate::tokens::{Claims, now_secs};
use crate::ws_read::{FrameReader, Message, ReadError};
use crate::ws_socket::{self, WriteSide};
use axum::Router;
use axum::extract::{ConnectInfo, Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use confab_actors::outbound::{Outbound, OutboundRx};
use confab_actors::session::INBOUND_PERMITS;
use confab_actors::sessions::SessionHandle;
use confab_schemas::client::{HelloUser, parse_client_frame};
use confab_schemas::wire::{Opcode, close_frame, encode_server_frame, ws_frame};
use confab_schemas::{ClientFrame, ErrorCode, PROTOCOL_VERSION, RoomId, ServerFrame, UserId, UserRef, UserRow};
use fastwebsockets::upgrade::{IncomingUpgrade, UpgradeFut};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tracing::debug;

/// Frames written with one system call at most.
const WRITE_BATCH: usize = 256;
/// How long a connection may stay silent (clients ping every 25–30 s).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Once a connection's reader is done, how long its last frames (an error, a resume hint, the
/// close) may take to be written: a client that reads nothing does not hold the connection (its
/// task, buffers and its IP's slot) beyond that.
const LAST_WRITES: Duration = Duration::from_secs(30);

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/ws", get(ws_route))
}

/// `GET /ws` → 101 and protocol v1; 400 when it is not a WebSocket upgrade; 403 from an Origin
/// that is neither this host nor allow-listed; 401 for a bad token; 429 past the per-IP limit.
async fn ws_route(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    admitted: Option<Extension<Arc<Admitted>>>,
    headers: HeaderMap,
    upgrade: Result<IncomingUpgrade, StatusCode>,
) -> Response {
    // The deadline to authenticate runs from the upgrade request, whatever the socket sends later.
    let auth_deadline = Instant::now() + state.config.ws_auth_timeout;
    let Ok(upgrade) = upgrade else {
        return ApiError::new(ErrorCode::Invalid, "this endpoint speaks WebSocket only").into_response();
    };
    // Browsers always send Origin: a page elsewhere must not ride on this user's cookies.
    if !origin_allowed(&headers, &state.config) {
        return ApiError::new(ErrorCode::Forbidden, "WebSocket from a foreign origin refused").into_response();
    }
    let Some(slot) = ConnectionSlot::take(&state, addr.ip()) else {
        return ApiError::new(ErrorCode::TooManyConnections, "too many connections from this address").into_response();
    };
    let auth = match request_token(&headers) {
        Some(token) => match user_for_token(&state, &token).await {
            Ok(Some(auth)) => Some(Box::new(auth)),
            Ok(None) => {
                return ApiError::new(ErrorCode::NotAuthenticated, "the token is invalid, expired or revoked")
                    .into_response();
            }
            Err(e) => return e.into_response(),
        },
        None => None,
    };
    match upgrade.upgrade() {
        Ok((resp, fut)) => {
            let pending = Box::new(Pending { auth, auth_deadline, admitted: admitted.map(|Extension(a)| a) });
            tokio::spawn(run_socket(state, fut, pending, slot));
            resp.into_response()
        }
        Err(e) => ApiError::new(ErrorCode::Invalid, e.to_string()).into_response(),
    }
}

/// One open connection counted against its client IP; released on drop.
struct ConnectionSlot {
    state: AppState,
    ip: IpAddr,
}

impl ConnectionSlot {
    fn take(state: &AppState, ip: IpAddr) -> Option<ConnectionSlot> {
        let max = state.config.max_connections_per_ip;
        let mut conns = state.connections.lock().unwrap_or_else(|p| p.into_inner());
        let n = conns.entry(ip).or_insert(0);
        if max > 0 && *n >= max {
            return None;
        }
        *n += 1;
        Some(ConnectionSlot { state: state.clone(), ip })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut conns = self.state.connections.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = conns.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                conns.remove(&self.ip);
            }
        }
    }
}

/// What a new socket brings to its authentication.
struct Pending {
    /// The user, when the upgrade request carried a valid cookie or bearer token.
    auth: Option<Box<Auth>>,
    /// When the socket must have authenticated (from the upgrade request).
    auth_deadline: Instant,
    /// The TCP connection's admission, to mark authenticated (absent when the app is served
    /// without the node's accept loop).
    admitted: Option<Arc<Admitted>>,
}

/// One connection, from the upgrade to the end. This future lives as long as the connection, so
/// its size is a cost of every idle connection: whatever runs only once (authentication, starting
/// the session) runs boxed, and the arguments are small (what authentication needs is boxed).
async fn run_socket(state: AppState, fut: UpgradeFut, pending: Box<Pending>, _slot: ConnectionSlot) {
    let ws = match fut.await {
        Ok(ws) => ws,
        Err(e) => return debug!(err = %e, "upgrade failed"),
    };
    state.system.metrics().connections.fetch_add(1, Relaxed);
    let (read_half, write_half, early) = ws_socket::split(ws.into_inner());
    let mut reader = FrameReader::with_buffered(read_half, state.config.max_frame_bytes, &early);
    // hyper's read buffer: not carried in this future for the connection's life.
    drop(early);

    let (out, rx) = Outbound::channel(state.system.config().outbound_capacity);
    let finisher = rx.finisher();
    let mut writer = match write_half {
        WriteSide::Tcp(w) => state.writers.spawn(write_loop(w, rx)),
        WriteSide::Other(w) => state.writers.spawn(write_loop(w, rx)),
    };
    // Whichever ends first ends the connection: a closed socket, or a close frame written.
    // Held until the connection ends: the TCP connection counts against its IP until then.
    let _admitted = pending.admitted.clone();
    let writer_done = tokio::select! {
        _ = async {
            if let Some(live) = Box::pin(start_session(&state, &mut reader, out, pending)).await {
                serve(&state, &mut reader, live).await;
            }
        } => false,
        _ = &mut writer => true,
    };
    finisher.finish();
    // Boxed: a timer laid out in this future would be carried by every idle connection.
    if !writer_done && Box::pin(tokio::time::timeout(LAST_WRITES, &mut writer)).await.is_err() {
        debug!("the last frames were not written within {LAST_WRITES:?}; dropping the socket");
        writer.abort();
    }
    state.system.metrics().connections.fetch_sub(1, Relaxed);
}

type Reader = FrameReader<ws_socket::ReadSide>;

/// What the reader made of one WebSocket message.
enum Incoming {
    Frame(ClientFrame),
    /// Answered already (ping, bad frame); keep reading.
    Handled,
    /// The connection is over.
    End,
}

async fn read_one(reader: &mut Reader, out: &Outbound) -> Incoming {
    let message = reader.read_message().await;
    classify(message, out)
}

/// The next message the reader holds already, if any (no socket read).
fn buffered_one(reader: &mut Reader, out: &Outbound) -> Option<Incoming> {
    reader.next_message().transpose().map(|m| classify(m, out))
}

fn classify(message: Result<Message, ReadError>, out: &Outbound) -> Incoming {
    let refuse = |code: ErrorCode, message: &str, close: u16| {
        let _ = out.push(encode_server_frame(&ServerFrame::error(code, message, None)));
        let _ = out.push(close_frame(close, message));
        Incoming::End
    };
    let message = match message {
        Ok(m) => m,
        Err(ReadError::TooLarge) => {
            return refuse(ErrorCode::FrameTooLarge, "the frame is larger than the server accepts", 1009);
        }
        Err(ReadError::InvalidUtf8) => return refuse(ErrorCode::BadFrame, "text frames must be UTF-8", 1007),
        Err(ReadError::Protocol(why)) => return refuse(ErrorCode::BadFrame, why, 1002),
        Err(ReadError::Eof) => {
            debug!("socket read ended");
            return Incoming::End;
        }
    };
    match message {
        Message::Text(payload) => match parse_client_frame(&payload) {
            Ok(f) => Incoming::Frame(f),
            Err(refusal) => {
                let _ = out.push(encode_server_frame(&refusal.frame(None)));
                Incoming::Handled
            }
        },
        Message::Binary(_) => {
            let err = ServerFrame::error(ErrorCode::BadFrame, "frames are JSON text", None);
            let _ = out.push(encode_server_frame(&err));
            Incoming::Handled
        }
        Message::Ping(payload) => {
            let _ = out.push(ws_frame(Opcode::Pong, &payload));
            Incoming::Handled
        }
        Message::Pong => Incoming::Handled,
        Message::Close(_) => {
            let _ = out.push(close_frame(1000, ""));
            Incoming::End
        }
    }
}

type Auth = (UserRow, Claims);

/// An authenticated connection with its session.
struct Live {
    session: SessionHandle,
    user: UserId,
    /// When the access token expires (Unix seconds).
    expires: i64,
}

/// Authenticates the socket (unless the upgrade request did), says `hello` and starts the session.
async fn start_session(state: &AppState, reader: &mut Reader, out: Outbound, pending: Box<Pending>) -> Option<Live> {
    let Pending { auth, auth_deadline, admitted } = *pending;
    let (user, claims) = match auth {
        Some(a) => *a,
        None => authenticate_by_frame(state, reader, &out, auth_deadline).await?,
    };
    if let Some(a) = admitted {
        a.authenticated();
    }
    let hello = ServerFrame::Hello {
        user: HelloUser { id: user.id, username: user.username.clone(), role: user.role },
        node: state.config.node_id.clone(),
        protocol: PROTOCOL_VERSION,
        inbox: RoomId::inbox_of(user.id),
    };
    let user_ref = UserRef { id: user.id, username: user.username.as_str().into() };
    let family: Arc<str> = Arc::from(claims.family.as_str());
    match state.system.spawn_session(user_ref, Some(family), out.clone()).await {
        Ok(session) => {
            // Only once the session is registered: a logout or a ban the client makes after it
            // reads `hello` must find the session to close.
            let _ = out.push(encode_server_frame(&hello));
            Some(Live { session, user: user.id, expires: claims.expires })
        }
        Err(e) => {
            let _ = out.push(encode_server_frame(&ServerFrame::error(ErrorCode::Retry, e.to_string(), None)));
            let _ = out.push(close_frame(1011, "try again"));
            None
        }
    }
}

/// Reads frames until the connection ends, the client goes silent or its token expires.
async fn serve(state: &AppState, reader: &mut Reader, live: Live) {
    let Live { session, user: user_id, expires } = live;
    let _stop = StopOnDrop(&session);
    let mut expiry = Expiry::new(expires);
    // One timer per connection: the idle limit or the token's next expiry step, whichever is first.
    let mut idle_deadline = Instant::now() + IDLE_TIMEOUT;
    let timer = tokio::time::sleep_until(idle_deadline);
    tokio::pin!(timer);
    // What the last batch of frames stopped at, to handle next.
    let mut carried: Option<Box<Incoming>> = None;
    loop {
        if session.out().overflowed() {
            // The queue took its resume hint and close: nothing read from now on is answered.
            debug!("the client reads too slowly: its queue overflowed; closing the socket");
            break;
        }
        let deadline = idle_deadline.min(expiry.next_step());
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        // Reading is cancel-safe: bytes already read stay in the reader.
        let next = if let Some(next) = carried.take() {
            *next
        } else {
            tokio::select! {
                next = read_one(reader, session.out()) => next,
                () = &mut timer => {
                    if Instant::now() >= idle_deadline {
                        // A client that sends nothing (not even a ping) for IDLE_TIMEOUT is gone.
                        debug!("no frame for {IDLE_TIMEOUT:?}; closing the socket");
                        let err = ServerFrame::error(
                            ErrorCode::Invalid,
                            "no frame for too long; send a ping at least every 60 s",
                            None,
                        );
                        let _ = session.out().push(encode_server_frame(&err));
                        let _ = session.out().push(close_frame(1001, "idle"));
                        break;
                    }
                    if expiry.step(session.out()) {
                        continue;
                    }
                    break;
                }
            }
        };
        idle_deadline = Instant::now() + IDLE_TIMEOUT;
        match next {
            Incoming::Frame(ClientFrame::Auth { token }) => {
                // Re-authentication on a live socket, before the access token runs out.
                let frame = match Box::pin(user_for_token(state, &token)).await {
                    Ok(Some((u, c))) if u.id == user_id => {
                        expiry = Expiry::new(c.expires);
                        ServerFrame::Authenticated { expires_in: c.expires - now_secs() }
                    }
                    _ => ServerFrame::error(
                        ErrorCode::NotAuthenticated,
                        "that token is not valid for this connection",
                        None,
                    ),
                };
                let _ = session.out().push(encode_server_frame(&frame));
            }
            Incoming::Frame(frame) => {
                // The frames that came with it in the same read go to the session in the same
                // message; an `auth` or the end of the connection waits for its turn.
                let mut frames = vec![frame];
                while frames.len() < INBOUND_PERMITS {
                    match buffered_one(reader, session.out()) {
                        None => break,
                        Some(Incoming::Handled) => {}
                        Some(Incoming::Frame(f)) if !matches!(f, ClientFrame::Auth { .. }) => frames.push(f),
                        Some(other) => {
                            carried = Some(Box::new(other));
                            break;
                        }
                    }
                }
                // Boxed: awaited inline, its state (the permits' waiter, the message) made this
                // future, which every idle connection keeps, about 100 bytes larger, and the
                // connection's task 128 bytes larger (tokio lays tasks out in 128-byte lines).
                if !Box::pin(session.deliver(frames)).await {
                    debug!("the session is gone; closing the socket");
                    break;
                }
            }
            Incoming::Handled => {}
            Incoming::End => {
                debug!("the client's socket ended");
                break;
            }
        }
    }
}

/// The access token of a connection: the client is asked to re-authenticate before it expires
/// (a minute before, or halfway for short lifetimes), and the socket is closed when it expires
/// without a new token.
struct Expiry {
    /// Unix seconds.
    expires: i64,
    /// When to send `reauth`; `None` once sent.
    reauth_at: Option<Instant>,
    close_at: Instant,
}

impl Expiry {
    fn new(expires: i64) -> Expiry {
        // In milliseconds: counted in whole seconds, a token with a second or two left could be
        // asked to re-authenticate and be closed at the same instant.
        let (now, left) = (Instant::now(), expires * 1000 - confab_schemas::now_ms());
        let lead = (left / 2).clamp(0, 60_000);
        let after = |ms: i64| now + Duration::from_millis(ms.max(0) as u64);
        Expiry { expires, reauth_at: Some(after(left - lead)), close_at: after(left) }
    }

    /// When the next step is due.
    fn next_step(&self) -> Instant {
        self.reauth_at.unwrap_or(self.close_at)
    }

    /// Takes the step that is due: asks for a new token (true: keep going), or closes (false).
    fn step(&mut self, out: &Outbound) -> bool {
        if self.reauth_at.take().is_some() {
            let _ =
                out.push(encode_server_frame(&ServerFrame::Reauth { expires_in: (self.expires - now_secs()).max(0) }));
            return true;
        }
        let err =
            ServerFrame::error(ErrorCode::NotAuthenticated, "the access token expired; reconnect with a new one", None);
        let _ = out.push(encode_server_frame(&err));
        let _ = out.push(close_frame(1008, "token expired"));
        false
    }
}

/// Stops the session actor however the reader ends (returns, or is dropped by `select!`).
struct StopOnDrop<'a>(&'a SessionHandle);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// Waits for `{"type":"auth","token":…}` as the first frame, until `deadline`: pings and bad
/// frames are answered meanwhile, but do not move the deadline.
async fn authenticate_by_frame(
    state: &AppState,
    reader: &mut Reader,
    out: &Outbound,
    deadline: Instant,
) -> Option<Auth> {
    let refuse = |message: &str| {
        let _ = out.push(encode_server_frame(&ServerFrame::error(ErrorCode::NotAuthenticated, message, None)));
        let _ = out.push(close_frame(1008, "not authenticated"));
    };
    loop {
        match tokio::time::timeout_at(deadline, read_one(reader, out)).await {
            Err(_) => {
                refuse("authenticate with a cookie, a bearer token or a first auth frame");
                return None;
            }
            Ok(Incoming::Frame(ClientFrame::Auth { token })) => {
                return match user_for_token(state, &token).await {
                    Ok(Some(auth)) => Some(auth),
                    Err(ApiError::Refused(ErrorCode::Banned, message)) => {
                        let _ = out.push(encode_server_frame(&ServerFrame::error(ErrorCode::Banned, message, None)));
                        let _ = out.push(close_frame(1008, "banned"));
                        None
                    }
                    _ => {
                        refuse("the token is invalid, expired or revoked");
                        None
                    }
                };
            }
            Ok(Incoming::Frame(_)) => {
                refuse("send an auth frame first");
                return None;
            }
            Ok(Incoming::Handled) => {}
            Ok(Incoming::End) => return None,
        }
    }
}

/// Writes queued frames, batching whatever is already queued into one write, until a close frame
/// is written, the queue closes, the socket fails, or the reader is done and the queue drained.
async fn write_loop<W: AsyncWrite + Unpin>(mut w: W, mut rx: OutboundRx) {
    while let Some(batch) = rx.recv_batch(WRITE_BATCH).await {
        if w.write_all(&batch.bytes).await.is_err() || batch.closing {
            break;
        }
    }
    let _ = w.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[tokio::test]
    async fn writer_batches_and_stops_after_close() {
        let (out, rx) = Outbound::channel(16);
        out.push(ws_frame(Opcode::Text, b"a")).unwrap();
        out.push(ws_frame(Opcode::Text, b"b")).unwrap();
        out.push(close_frame(1000, "")).unwrap();
        out.push(ws_frame(Opcode::Text, b"never")).unwrap();
        let mut sink = Vec::new();
        write_loop(&mut sink, rx).await;
        let expected: Vec<u8> =
            [ws_frame(Opcode::Text, b"a"), ws_frame(Opcode::Text, b"b"), close_frame(1000, "")].concat();
        assert_eq!(sink, expected);
    }

    #[tokio::test]
    async fn a_slow_reader_that_keeps_reading_gets_everything() {
        // 64 bytes of socket buffer, read 32 at a time: every write waits for the reader.
        let (mut client, server) = tokio::io::duplex(64);
        let (out, rx) = Outbound::channel(64);
        let frames: Vec<Bytes> = (0..20).map(|i| ws_frame(Opcode::Text, &[b'a' + i; 100])).collect();
        for f in &frames {
            out.push(f.clone()).unwrap();
        }
        out.push(close_frame(1000, "")).unwrap();
        let writer = tokio::spawn(write_loop(server, rx));
        let mut got = Vec::new();
        let mut chunk = [0u8; 32];
        loop {
            match tokio::io::AsyncReadExt::read(&mut client, &mut chunk).await.unwrap() {
                0 => break,
                n => got.extend_from_slice(&chunk[..n]),
            }
        }
        writer.await.unwrap();
        let expected: Vec<u8> =
            frames.iter().flat_map(|f| f.iter().copied()).chain(close_frame(1000, "").iter().copied()).collect();
        assert_eq!(got, expected);
    }
}
