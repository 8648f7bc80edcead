//! Request tracing: every HTTP request gets a request id (the client's `x-request-id` when it is a
//! short token, else a new UUID), answered in the response's `x-request-id`, and runs in a
//! `request` span (`request_id`, `method`, `path`; never the query, which may carry a media
//! URL's signature) so every line logged while serving it names it.
//!
//! A request is logged when it ends at debug level under this module's target
//! (`--log info,confab_gateway::trace=debug`), a 5xx at error level always.

use axum::Router;
use axum::extract::Request;
use axum::response::Response;
use std::time::Duration;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::Span;

/// The header that carries a request's id, both ways.
pub const REQUEST_ID: &str = "x-request-id";

/// Longest request id a client may choose.
const MAX_CLIENT_ID: usize = 64;

/// `app` with request ids and a span per request.
pub fn traced<S: Clone + Send + Sync + 'static>(app: Router<S>) -> Router<S> {
    app.layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(log_response)
                .on_body_chunk(())
                .on_eos(()),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(axum::middleware::map_request(drop_odd_request_id))
}

/// A client's own request id is kept only when it is a short token: it is copied into logs.
async fn drop_odd_request_id(mut req: Request) -> Request {
    let odd = req.headers().get(REQUEST_ID).is_some_and(|v| {
        let b = v.as_bytes();
        b.is_empty()
            || b.len() > MAX_CLIENT_ID
            || !b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'))
    });
    if odd {
        req.headers_mut().remove(REQUEST_ID);
    }
    req
}

fn request_span(req: &Request) -> Span {
    let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default();
    tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
}

fn log_response(res: &Response, latency: Duration, _span: &Span) {
    tracing::debug!(status = res.status().as_u16(), latency_us = latency.as_micros() as u64, "request done");
}
