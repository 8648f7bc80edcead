//! The client side of the wire: a tiny HTTP/1.1 client for the few REST calls, and the WebSocket
//! upgrade written by hand, with fastwebsockets doing the framing afterwards.

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use fastwebsockets::{Frame, OpCode, Payload, Role, WebSocket, WebSocketRead, WebSocketWrite};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};

/// Opens a TCP connection, from `source` when given (to use more than one loopback address).
pub(crate) async fn tcp(addr: SocketAddr, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let stream = match source {
        None => TcpStream::connect(addr).await?,
        Some(ip) => {
            let sock = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
            sock.bind(SocketAddr::new(ip, 0))?;
            sock.connect(addr).await?
        }
    };
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// One HTTP/1.1 request on a fresh connection; returns status and body.
pub(crate) async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    let mut s = tcp(addr, None).await.with_context(|| format!("connecting to {addr}"))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: */*\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.unwrap_or("");
    if method != "GET" {
        req.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut raw))
        .await
        .map_err(|_| anyhow!("{method} {path}: no answer within 60 s"))??;
    parse_response(&raw).with_context(|| format!("{method} {path}"))
}

/// Status and body of a complete HTTP/1.1 response (Content-Length, chunked, or until close).
pub(crate) fn parse_response(raw: &[u8]) -> anyhow::Result<(u16, String)> {
    let end = super::body::find(raw, b"\r\n\r\n").ok_or_else(|| anyhow!("incomplete response head"))?;
    let head = std::str::from_utf8(&raw[..end])?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad status line: {}", head.lines().next().unwrap_or("")))?;
    let mut body = &raw[end + 4..];
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut out = Vec::new();
        loop {
            let line_end = super::body::find(body, b"\r\n").ok_or_else(|| anyhow!("bad chunk"))?;
            let size_str = std::str::from_utf8(&body[..line_end])?.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_str, 16)?;
            body = &body[line_end + 2..];
            if size == 0 {
                break;
            }
            if body.len() < size {
                bail!("truncated chunk");
            }
            out.extend_from_slice(&body[..size]);
            body = body.get(size + 2..).unwrap_or(&[]);
        }
        return Ok((status, String::from_utf8_lossy(&out).into_owned()));
    }
    if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body = &body[..len.min(body.len())];
    }
    Ok((status, String::from_utf8_lossy(body).into_owned()))
}

pub(crate) type WsRead = WebSocketRead<LazyAck>;

/// The read half of a member socket, asking the kernel after every read to delay its ACK.
///
/// A receiver that never sends is not in TCP's "ping-pong" mode, so Linux acknowledges every
/// segment as soon as the reader drains its queue; on loopback that ACK is processed at once, in
/// the reader's system call (the peer's ACK handling, and its next transmission, run there too).
/// With 2,000 sockets on one core that was about 40% of the generator's CPU (`--lazy-ack`).
/// `TCP_QUICKACK` off is a one-shot hint (the kernel drops it again when a delayed ACK times
/// out), hence after every read. It changes when the client acknowledges, never what it receives.
pub(crate) struct LazyAck {
    inner: OwnedReadHalf,
    enabled: bool,
}

impl tokio::io::AsyncRead for LazyAck {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if self.enabled && buf.filled().len() > before {
            let _ = socket2::SockRef::from(self.inner.as_ref()).set_tcp_quickack(false);
        }
        poll
    }
}

pub(crate) type WsWrite = WebSocketWrite<OwnedWriteHalf>;

/// Why a connection could not be opened; the report counts them by kind.
#[derive(Debug)]
pub(crate) struct ConnectError {
    pub kind: &'static str,
    pub detail: String,
}

impl ConnectError {
    fn new(kind: &'static str, detail: impl std::fmt::Display) -> ConnectError {
        ConnectError { kind, detail: detail.to_string() }
    }
}

/// Connects, upgrades to WebSocket with a bearer token and waits for `hello`.
pub(crate) async fn ws_connect(
    addr: SocketAddr,
    source: Option<IpAddr>,
    token: &str,
) -> Result<WebSocket<TcpStream>, ConnectError> {
    ws_connect_with(addr, source, token, false).await
}

/// [`ws_connect`]; with `abortive`, closing the socket resets it (`SO_LINGER` 0), as a load
/// balancer dropping its connections does, and leaves no `TIME_WAIT` behind on this side.
pub(crate) async fn ws_connect_with(
    addr: SocketAddr,
    source: Option<IpAddr>,
    token: &str,
    abortive: bool,
) -> Result<WebSocket<TcpStream>, ConnectError> {
    let mut s = tcp(addr, source).await.map_err(|e| ConnectError::new("tcp", e))?;
    if abortive {
        socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO)).map_err(|e| ConnectError::new("tcp", e))?;
    }
    let key: [u8; 16] = rand::random();
    let key = base64::engine::general_purpose::STANDARD.encode(key);
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.map_err(|e| ConnectError::new("tcp", e))?;
    let head = read_head(&mut s).await.map_err(|e| ConnectError::new("upgrade", e))?;
    let status_line = head.lines().next().unwrap_or("");
    if status_line.split_whitespace().nth(1) != Some("101") {
        return Err(ConnectError::new("upgrade", status_line));
    }
    let mut ws = WebSocket::after_handshake(s, Role::Client);
    ws.set_max_message_size(16 << 20);
    let frame = ws.read_frame().await.map_err(|e| ConnectError::new("hello", e))?;
    if frame.opcode != OpCode::Text || !frame.payload.starts_with(b"{\"type\":\"hello\"") {
        return Err(ConnectError::new("hello", String::from_utf8_lossy(&frame.payload)));
    }
    Ok(ws)
}

/// Reads the response head, exactly up to and including `\r\n\r\n`, so that the first WebSocket
/// frame (often in the same segment) stays in the socket for fastwebsockets.
async fn read_head(s: &mut TcpStream) -> anyhow::Result<String> {
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 1024];
    loop {
        let n = s.peek(&mut buf).await?;
        if n == 0 {
            bail!("closed during the upgrade");
        }
        // Where would the terminator end, counting bytes already consumed?
        let mut joined = head.clone();
        joined.extend_from_slice(&buf[..n]);
        if let Some(at) = super::body::find(&joined, b"\r\n\r\n") {
            let take = at + 4 - head.len();
            let mut exact = vec![0u8; take];
            s.read_exact(&mut exact).await?;
            head.extend_from_slice(&exact);
            break;
        }
        // No terminator yet: everything peeked is head; consume it.
        let mut part = vec![0u8; n];
        s.read_exact(&mut part).await?;
        head.extend_from_slice(&part);
        if head.len() > 16 * 1024 {
            bail!("response head too long");
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// Splits a connected socket into its two halves (reads and writes then run independently).
pub(crate) fn split(ws: WebSocket<TcpStream>, lazy_ack: bool) -> (WsRead, WsWrite) {
    let (mut r, w) = ws.split(|s| {
        let (r, w) = s.into_split();
        (LazyAck { inner: r, enabled: lazy_ack }, w)
    });
    r.set_auto_pong(false);
    r.set_auto_close(false);
    (r, w)
}

/// Sends one text frame.
pub(crate) async fn send_text(w: &mut WsWrite, payload: Vec<u8>) -> Result<(), fastwebsockets::WebSocketError> {
    w.write_frame(Frame::text(Payload::Owned(payload))).await
}

/// Reads the next frame; the payload is copied out only by callers that need it.
pub(crate) async fn read(r: &mut WsRead) -> Result<Frame<'_>, fastwebsockets::WebSocketError> {
    r.read_frame(&mut |_| async { Ok::<(), std::io::Error>(()) }).await
}

/// Joins `room` and waits for `joined` (frames before it are skipped).
pub(crate) async fn join(r: &mut WsRead, w: &mut WsWrite, room: i64) -> Result<(), ConnectError> {
    join_since(r, w, room, None).await.map(|_| ())
}

/// Joins `room`, resuming after seq `since` when given, and returns the room's head as the
/// `joined` frame gives it (the replay sends every seq up to it before live events).
pub(crate) async fn join_since(
    r: &mut WsRead,
    w: &mut WsWrite,
    room: i64,
    since: Option<u64>,
) -> Result<u64, ConnectError> {
    let frame = match since {
        Some(s) => format!(r#"{{"type":"join","room":{room},"since":{s}}}"#),
        None => format!(r#"{{"type":"join","room":{room}}}"#),
    };
    send_text(w, frame.into_bytes()).await.map_err(|e| ConnectError::new("join", e))?;
    loop {
        let frame = read(r).await.map_err(|e| ConnectError::new("join", e))?;
        if frame.opcode == OpCode::Close {
            return Err(ConnectError::new("join", "closed"));
        }
        if frame.payload.starts_with(b"{\"type\":\"joined\"") {
            let head = super::body::find(&frame.payload, b"\"head\":")
                .and_then(|at| super::body::parse_u64(&frame.payload[at + 7..]))
                .map(|(h, _)| h);
            return head.ok_or_else(|| ConnectError::new("join", "joined without a head"));
        }
        if frame.payload.starts_with(b"{\"type\":\"error\"") {
            return Err(ConnectError::new("join", String::from_utf8_lossy(&frame.payload)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses() {
        let (s, b) = parse_response(b"HTTP/1.1 201 Created\r\ncontent-length: 5\r\n\r\nhello").unwrap();
        assert_eq!((s, b.as_str()), (201, "hello"));
        let (s, b) =
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
                .unwrap();
        assert_eq!((s, b.as_str()), (200, "abcde"));
        assert!(parse_response(b"HTTP/1.1 200").is_err());
    }
}
