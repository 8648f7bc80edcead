//! The HTTP port's accept loop: admits each TCP connection (per-IP limit and the cap on
//! unauthenticated connections, `confab_gateway::admission`), performs the TLS handshake when the
//! node serves TLS, and serves the axum app on it with hyper's HTTP/1.1, WebSocket upgrades
//! included.
//!
//! Slow clients are bounded here: the headers of each request (and the wait for the next request
//! on a kept-alive connection) must arrive within the header timeout, a TLS handshake too, and
//! headers are at most `MAX_HEAD_BYTES`. A refused connection is answered with a best-effort
//! `429`/`503` and closed before anything is read. Each request carries the client's address as
//! `ConnectInfo` and the connection's `Admitted` as an extension.

use axum::Router;
use axum::extract::ConnectInfo;
use confab_gateway::admission::{Admission, Admitted, Refused};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower_service::Service;
use tracing::{debug, warn};

/// Largest request head (request line and headers) hyper buffers.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Accepts connections on `listener` and serves `app` on them until `stop` is cancelled; then
/// connections finish their request in flight and close.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    admission: Arc<Admission>,
    header_timeout: Duration,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(header_timeout).max_buf_size(MAX_HEAD_BYTES);
    let mut last_refusal_log = None::<tokio::time::Instant>;
    loop {
        let (tcp, addr) = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors (or a connection reset before accept): wait a
                    // moment instead of spinning on the same error.
                    warn!(err = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let admitted = match admission.admit(addr.ip()) {
            Ok(a) => Arc::new(a),
            Err(why) => {
                refuse(&tcp, why);
                let now = tokio::time::Instant::now();
                if last_refusal_log.is_none_or(|t| now - t > Duration::from_secs(10)) {
                    last_refusal_log = Some(now);
                    warn!(ip = %addr.ip(), reason = ?why, refused = admission.refused(), "connections refused");
                }
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let conn = Conn { addr, admitted, app: app.clone(), http: http.clone(), stop: stop.clone() };
        match &tls {
            None => {
                tokio::spawn(conn.serve(tcp));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(header_timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => conn.serve(stream).await,
                        _ => debug!(addr = %conn.addr, "TLS handshake failed"),
                    }
                });
            }
        }
    }
}

/// Answers a refused connection without reading from it (one non-blocking write), then closes it.
fn refuse(tcp: &TcpStream, why: Refused) {
    let (status, code, message) = match why {
        Refused::PerIp => ("429 Too Many Requests", "too_many_connections", "too many connections from this address"),
        Refused::Unauthenticated => ("503 Service Unavailable", "overloaded", "too many connections; try again"),
    };
    let body = format!(r#"{{"error":{{"code":"{code}","message":"{message}"}}}}"#);
    let resp = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tcp.try_write(resp.as_bytes());
}

/// One admitted connection.
struct Conn {
    addr: SocketAddr,
    admitted: Arc<Admitted>,
    app: Router,
    http: hyper::server::conn::http1::Builder,
    stop: CancellationToken,
}

impl Conn {
    async fn serve<S: AsyncRead + AsyncWrite + Send + Unpin + 'static>(self, stream: S) {
        let Conn { addr, admitted, app, http, stop } = self;
        let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(addr));
            req.extensions_mut().insert(admitted.clone());
            let mut app = app.clone();
            async move { app.call(req.map(axum::body::Body::new)).await }
        });
        let conn = http.serve_connection(TokioIo::new(stream), service).with_upgrades();
        tokio::pin!(conn);
        let res = tokio::select! {
            res = conn.as_mut() => res,
            _ = stop.cancelled() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = res {
            debug!(%addr, err = %e, "connection ended");
        }
    }
}
