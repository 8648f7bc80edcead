//! The browser app embedded in the binary: every file under `gateway/static/` (rust-embed, by
//! folder: a new feature folder is served without a line here), `/` being `index.html`, and
//! `GET /api/config`, the limits the app checks before it sends. No build step and nothing from
//! a CDN; the app needs no inline script or style, so the CSP (`security`) forbids both.
//!
//! Each file is served with a strong ETag (its SHA-256) and `Cache-Control: no-cache`: browsers
//! keep it and revalidate (a `304` when unchanged), since ES modules import each other by plain
//! name and a hashed name would need a build step. Text files are gzip-compressed once, on first
//! use, and served compressed to clients that accept it.

use crate::{ApiError, AppState};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use confab_schemas::ErrorCode;
use rust_embed::Embed;
use serde_json::json;
use std::collections::HashMap;
use std::io::Write;
use std::sync::LazyLock;

#[derive(Embed)]
#[folder = "static/"]
struct Static;

/// One servable file, compressed once.
struct Asset {
    content_type: &'static str,
    etag: HeaderValue,
    body: Bytes,
    /// The gzip form and its ETag, when the type compresses and the result is smaller.
    gzip: Option<(HeaderValue, Bytes)>,
}

/// Every embedded file by its URL path (`/js/x.js`), built on first use.
static ASSETS: LazyLock<HashMap<String, Asset>> = LazyLock::new(|| {
    Static::iter()
        .filter_map(|name| {
            let file = Static::get(&name)?;
            Some((format!("/{name}"), asset(&name, &file.data, &file.metadata.sha256_hash())))
        })
        .collect()
});

fn asset(name: &str, data: &[u8], sha256: &[u8; 32]) -> Asset {
    let content_type = content_type(name);
    let tag = hex::encode(&sha256[..12]);
    let etag = HeaderValue::from_str(&format!("\"{tag}\"")).expect("hex is a valid header");
    let gzip = content_type
        .starts_with("text/")
        .then(|| gzip(data))
        .filter(|z| z.len() < data.len())
        .map(|z| (HeaderValue::from_str(&format!("\"{tag}-gz\"")).expect("hex is a valid header"), Bytes::from(z)));
    Asset { content_type, etag, body: Bytes::copy_from_slice(data), gzip }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).expect("writing to a Vec");
    enc.finish().expect("writing to a Vec")
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/config", get(config_route)).fallback(static_route)
}

/// `GET /api/config` → `{"max_body_chars"}`: what the app checks before it sends.
async fn config_route(State(state): State<AppState>) -> Response {
    let body = json!({"max_body_chars": state.system.config().max_body_chars});
    ([(header::CACHE_CONTROL, "no-cache")], Json(body)).into_response()
}

/// `GET /`, `GET /admin` and `GET /{path}`: an embedded file, or a 404.
async fn static_route(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = match uri.path() {
        "/" => "/index.html",
        "/admin" | "/admin/" => "/admin/index.html",
        p => p,
    };
    let found = ASSETS.get(path).filter(|_| method == Method::GET || method == Method::HEAD);
    let Some(asset) = found else {
        return ApiError::new(ErrorCode::NotFound, "there is nothing at this address").into_response();
    };
    serve(asset, &headers)
}

fn serve(asset: &Asset, req: &HeaderMap) -> Response {
    let (etag, body, gzipped) = match &asset.gzip {
        Some((etag, body)) if accepts_gzip(req) => (etag, body, true),
        _ => (&asset.etag, &asset.body, false),
    };
    let mut resp =
        if if_none_match(req, etag) { StatusCode::NOT_MODIFIED.into_response() } else { body.clone().into_response() };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::ETAG, etag.clone());
    if asset.gzip.is_some() {
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if gzipped {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    resp
}

/// The request accepts gzip (`gzip` or `*` listed, and not with `q=0`).
fn accepts_gzip(req: &HeaderMap) -> bool {
    req.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or_default();
        let refused = parts.any(|p| p.strip_prefix("q=").is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q == 0.0)));
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
    })
}

/// `If-None-Match` lists `etag` (or is `*`).
fn if_none_match(req: &HeaderMap, etag: &HeaderValue) -> bool {
    let Ok(etag) = etag.to_str() else { return false };
    req.get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

#[cfg(test)]
mod tests {
    use super::{ASSETS, accepts_gzip, serve};
    use axum::http::{HeaderMap, HeaderValue, StatusCode, header};

    /// Every module or view a served file names in code (`from './x.js'`, `import('./x.js')`,
    /// `new URL('./view.html', …)`) is served too.
    #[test]
    fn every_imported_module_is_served() {
        let mut checked = 0;
        for (path, asset) in ASSETS.iter().filter(|(p, _)| p.ends_with(".js")) {
            let text = std::str::from_utf8(&asset.body).expect("utf-8");
            let dir = &path[..path.rfind('/').expect("a slash") + 1];
            let code = text.lines().filter(|l| !l.trim_start().starts_with("//") && !l.trim_start().starts_with('*'));
            let quoted = code.flat_map(|l| l.split(['\'', '"']).skip(1).step_by(2));
            for spec in quoted.filter(|s| s.starts_with("./") || s.starts_with("../")) {
                if !spec.ends_with(".js") && !spec.ends_with(".html") {
                    continue;
                }
                let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
                for seg in spec.split('/') {
                    match seg {
                        "." => {}
                        ".." => _ = parts.pop(),
                        s => parts.push(s),
                    }
                }
                let target = format!("/{}", parts.join("/"));
                assert!(ASSETS.contains_key(&target), "{path} names {spec} ({target}), which is not served");
                checked += 1;
            }
        }
        assert!(checked > 10, "only {checked} imports found");
    }

    #[test]
    fn text_is_served_gzipped_with_its_own_etag_and_revalidates() {
        let asset = &ASSETS["/index.html"];
        let mut req = HeaderMap::new();
        req.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("br;q=1, gzip;q=0.8"));
        let resp = serve(asset, &req);
        assert_eq!(resp.headers()[header::CONTENT_ENCODING], "gzip");
        let etag = resp.headers()[header::ETAG].clone();
        assert_ne!(etag, asset.etag);
        req.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(serve(asset, &req).status(), StatusCode::NOT_MODIFIED);
        // Without gzip: the plain body and the plain ETag, which the gzip one does not match.
        let mut plain = HeaderMap::new();
        plain.insert(header::IF_NONE_MATCH, resp.headers()[header::ETAG].clone());
        let resp = serve(asset, &plain);
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.headers().get(header::CONTENT_ENCODING).is_none());
        assert_eq!(resp.headers()[header::ETAG], asset.etag);
    }

    #[test]
    fn gzip_refused_with_q_zero() {
        let mut req = HeaderMap::new();
        req.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip;q=0, identity"));
        assert!(!accepts_gzip(&req));
        req.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("deflate, GZIP"));
        assert!(accepts_gzip(&req));
    }
}
