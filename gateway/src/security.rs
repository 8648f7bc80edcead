//! Web defences applied to every request: the Origin allow-list, CSRF protection of cookie-
//! authenticated writes, CORS for allow-listed origins, and the security headers (with HSTS when
//! the node serves TLS).
//!
//! CSRF: a request that changes state and carries the session cookies must carry `X-CSRF-Token`
//! equal to the `confab_csrf` cookie (double submit; a cross-site page can neither read the cookie
//! nor set the header), unless it authenticates with a valid bearer token (then the cookies are not
//! used: `auth::request_token`). Every state-changing request with an `Origin` must come from one of
//! the node's public origins (`--public-origin`, by default its own address) or an allow-listed
//! one, compared whole (scheme, host and port); the `Host` header is never trusted for this.
//!
//! Slow clients: a request's body must arrive within `body_timeout` of its headers (the headers'
//! own deadline is the HTTP server's, see `GatewayConfig::header_timeout`).

use crate::AppState;
use crate::GatewayConfig;
use crate::auth::{ACCESS_COOKIE, CSRF_COOKIE, REFRESH_COOKIE, bearer_token, cookie};
use crate::error::ApiError;
use crate::tokens::now_secs;
use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, ORIGIN};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use confab_schemas::ErrorCode;
use std::net::{IpAddr, SocketAddr};

/// The Content-Security-Policy of every response.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
                       media-src 'self' blob:; connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; \
                       form-action 'self'; frame-ancestors 'none'";

/// Routes that start a login: no cookie session to forge yet, so only the Origin is checked.
const LOGIN_ROUTES: [&str; 4] =
    ["/api/auth/login", "/api/auth/register", "/api/auth/email/request", "/api/auth/email/verify"];

/// True when the request's Origin (if any) is one of the node's public origins or allow-listed.
pub fn origin_allowed(headers: &HeaderMap, config: &GatewayConfig) -> bool {
    let Some(origin) = headers.get(ORIGIN) else { return true };
    let Ok(origin) = origin.to_str() else { return false };
    config.public_origins.iter().chain(&config.allowed_origins).any(|a| a.eq_ignore_ascii_case(origin))
}

/// The origins a browser gives for a node listening on `addr`: `http://` (or `https://` with
/// TLS) and its address; for a loopback or unspecified address, also `localhost` and both
/// loopback forms. Without the port when it is the scheme's default.
pub fn default_public_origins(addr: SocketAddr, tls: bool) -> Vec<String> {
    let scheme = if tls { "https" } else { "http" };
    let port = match (tls, addr.port()) {
        (false, 80) | (true, 443) => String::new(),
        (_, p) => format!(":{p}"),
    };
    let host = |ip: IpAddr| match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    let mut hosts = vec![host(addr.ip())];
    if addr.ip().is_loopback() || addr.ip().is_unspecified() {
        hosts.extend(["localhost".to_owned(), "127.0.0.1".to_owned(), "[::1]".to_owned()]);
    }
    let mut origins: Vec<String> = Vec::new();
    for h in hosts.iter().filter(|h| !matches!(h.as_str(), "0.0.0.0" | "[::]")) {
        let o = format!("{scheme}://{h}{port}");
        if !origins.contains(&o) {
            origins.push(o);
        }
    }
    origins
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Origin and CSRF checks, CORS, and the security headers.
pub(crate) async fn web_defences(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let allowed = &state.config.allowed_origins;
    let headers = req.headers();
    let cors_origin = headers.get(ORIGIN).filter(|o| o.to_str().is_ok_and(|o| allowed.iter().any(|a| a == o))).cloned();
    if req.method() == Method::OPTIONS && cors_origin.is_some() {
        let mut resp = StatusCode::NO_CONTENT.into_response();
        add_cors(&mut resp, cors_origin);
        add_headers(&mut resp, state.config.tls);
        return resp;
    }
    if !is_safe(req.method()) {
        if !origin_allowed(headers, &state.config) {
            return finish(
                ApiError::new(ErrorCode::Forbidden, "cross-site request refused").into_response(),
                &state,
                None,
            );
        }
        // Only a bearer token that verifies exempts a request from the CSRF check; any other
        // `Authorization` (another scheme, an empty or forged token) does not.
        let bearer_ok = bearer_token(headers).is_some_and(|t| state.config.token_key.verify(&t, now_secs()).is_some());
        let cookie_auth =
            !bearer_ok && (cookie(headers, ACCESS_COOKIE).is_some() || cookie(headers, REFRESH_COOKIE).is_some());
        if cookie_auth && !LOGIN_ROUTES.contains(&req.uri().path()) {
            let sent = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
            let expected = cookie(headers, CSRF_COOKIE);
            let ok = matches!((sent, expected.as_deref()), (Some(s), Some(e)) if !e.is_empty() && constant_eq(s, e));
            if !ok {
                let err = ApiError::new(
                    ErrorCode::CsrfFailed,
                    "missing or wrong X-CSRF-Token for a cookie-authenticated request",
                );
                return finish(err.into_response(), &state, cors_origin);
            }
        }
    }
    let resp = next.run(req).await;
    finish(resp, &state, cors_origin)
}

/// Reads the request's body within `body_timeout` and the body limit before the handler runs, so
/// that a client cannot hold a request (and its connection) open by trickling its body:
/// 408 `request_timeout` when it is late, 413 `frame_too_large` past the limit.
pub(crate) async fn body_deadline(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // An upload streams its body to storage under its own, longer deadline.
    if req.body().is_end_stream() || crate::uploads::is_upload(&req) {
        return next.run(req).await;
    }
    let limit = state.config.max_body_bytes;
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        ApiError::new(ErrorCode::FrameTooLarge, format!("the request body is larger than {limit} bytes or cut short"))
            .into_response()
    };
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    let (parts, body) = req.into_parts();
    match tokio::time::timeout(state.config.body_timeout, axum::body::to_bytes(body, limit)).await {
        Err(_) => ApiError::new(
            ErrorCode::RequestTimeout,
            format!("the request body did not arrive within {} s", state.config.body_timeout.as_secs_f64()),
        )
        .into_response(),
        Ok(Err(_)) => too_large(),
        Ok(Ok(bytes)) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
    }
}

fn finish(mut resp: Response, state: &AppState, cors_origin: Option<HeaderValue>) -> Response {
    add_cors(&mut resp, cors_origin);
    add_headers(&mut resp, state.config.tls);
    resp
}

fn add_cors(resp: &mut Response, origin: Option<HeaderValue>) {
    let Some(origin) = origin else { return };
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, OPTIONS"));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type, x-csrf-token"),
    );
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
}

fn add_headers(resp: &mut Response, tls: bool) {
    let h = resp.headers_mut();
    // A route that set its own policy keeps it (served files: a sandbox).
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if tls {
        h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000; includeSubDomains"));
    }
}

pub(crate) fn constant_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_compared_whole_and_never_with_host() {
        let config = GatewayConfig {
            public_origins: default_public_origins("127.0.0.1:8080".parse().unwrap(), false),
            allowed_origins: vec!["https://friend.example".to_owned()],
            ..GatewayConfig::default()
        };
        let mut h = HeaderMap::new();
        assert!(origin_allowed(&h, &config), "no Origin: not a browser");
        h.insert(axum::http::header::HOST, "evil.example".parse().unwrap());
        for (origin, ok) in [
            ("http://127.0.0.1:8080", true),
            ("http://localhost:8080", true),
            ("https://friend.example", true),
            ("http://evil.example", false),
            ("https://127.0.0.1:8080", false),
            ("http://127.0.0.1:8081", false),
            ("null", false),
        ] {
            h.insert(ORIGIN, origin.parse().unwrap());
            assert_eq!(origin_allowed(&h, &config), ok, "{origin}");
        }
        assert_eq!(default_public_origins("10.0.0.5:443".parse().unwrap(), true), vec!["https://10.0.0.5"]);
        assert!(default_public_origins("0.0.0.0:80".parse().unwrap(), false).contains(&"http://localhost".to_owned()));
    }

    #[test]
    fn constant_time_compare() {
        assert!(constant_eq("abc", "abc"));
        assert!(!constant_eq("abc", "abd"));
        assert!(!constant_eq("abc", "ab"));
    }
}
