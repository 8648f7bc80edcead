//! Web defences applied to every request: the Origin allow-list, CSRF protection of cookie-
//! authenticated writes, CORS for allow-listed origins, and the security headers (with HSTS when
//! the node serves TLS).
//!
//! CSRF: a request that changes state and authenticates with cookies (no `Authorization` header)
//! must carry `X-CSRF-Token` equal to the `confab_csrf` cookie (double submit; a cross-site page can
//! neither read the cookie nor set the header). Every state-changing request with an `Origin` must
//! come from this host or an allow-listed origin. Bearer-token requests carry no ambient
//! credentials and need no CSRF token.
//!
//! Slow clients: a request's body must arrive within `body_timeout` of its headers (the headers'
//! own deadline is the HTTP server's, see `GatewayConfig::header_timeout`).

use crate::AppState;
use crate::auth::{ACCESS_COOKIE, CSRF_COOKIE, REFRESH_COOKIE, cookie};
use crate::error::ApiError;
use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, HOST, ORIGIN};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use confab_schemas::ErrorCode;

/// The Content-Security-Policy of every response.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
                       media-src 'self' blob:; connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; \
                       form-action 'self'; frame-ancestors 'none'";

/// Routes that start a login: no cookie session to forge yet, so only the Origin is checked.
const LOGIN_ROUTES: [&str; 4] =
    ["/api/auth/login", "/api/auth/register", "/api/auth/email/request", "/api/auth/email/verify"];

/// True when the request's Origin (if any) is this host or allow-listed.
pub fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    if allowed.iter().any(|a| a == origin) {
        return true;
    }
    let host = headers.get(HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    origin.split_once("://").map(|(_, rest)| rest) == Some(host)
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
        if !origin_allowed(headers, allowed) {
            return finish(
                ApiError::new(ErrorCode::Forbidden, "cross-site request refused").into_response(),
                &state,
                None,
            );
        }
        let cookie_auth = headers.get(AUTHORIZATION).is_none()
            && (cookie(headers, ACCESS_COOKIE).is_some() || cookie(headers, REFRESH_COOKIE).is_some());
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
    if req.body().is_end_stream() {
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
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if tls {
        h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000; includeSubDomains"));
    }
}

fn constant_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let mut h = HeaderMap::new();
        h.insert(HOST, "chat.example:8080".parse().unwrap());
        assert!(origin_allowed(&h, &[]));
        h.insert(ORIGIN, "http://chat.example:8080".parse().unwrap());
        assert!(origin_allowed(&h, &[]));
        h.insert(ORIGIN, "https://evil.example".parse().unwrap());
        assert!(!origin_allowed(&h, &[]));
        assert!(origin_allowed(&h, &["https://evil.example".to_owned()]));
    }

    #[test]
    fn constant_time_compare() {
        assert!(constant_eq("abc", "abc"));
        assert!(!constant_eq("abc", "abd"));
        assert!(!constant_eq("abc", "ab"));
    }
}
