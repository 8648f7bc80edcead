//! `GET /media/{id}` and `/media/{id}/thumb`: the bytes of an upload, for whoever holds a URL
//! the node signed (see `confab_actors::media`); no session is needed, so `<img>` and `<audio>`
//! work as they are. A forged, tampered, expired or moved URL gets 403.
//!
//! Served with the type stored at upload (read from the bytes), `nosniff`, `Content-Disposition:
//! attachment` for everything but images, audio and PDF, a sandboxing CSP (a file never runs as
//! a page of this origin), ranges (`206`, for audio seeking) and private caching until the URL
//! expires.

use super::{file_key, thumb_key};
use crate::AppState;
use crate::error::{ApiError, ApiPath, ApiQuery};
use axum::body::Body;
use axum::extract::State;
use axum::http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_SECURITY_POLICY,
    CONTENT_TYPE, RANGE, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use confab_actors::blob::BlobError;
use confab_actors::media::now_secs;
use confab_schemas::ErrorCode;
use confab_schemas::attachments::valid_upload_id;
use futures::TryStreamExt;
use serde::Deserialize;
use std::ops::Range;

/// The policy of served files: nothing runs, nothing loads.
pub(crate) const MEDIA_CSP: &str = "sandbox; default-src 'none'; img-src 'self' data:; media-src 'self'; \
                                    style-src 'unsafe-inline'; frame-ancestors 'self'";

#[derive(Deserialize)]
pub(crate) struct Signed {
    exp: Option<i64>,
    sig: Option<String>,
}

/// `GET /media/{id}?exp=&sig=`: the file.
pub(crate) async fn file_route(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<Signed>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    serve(&state, &id, false, q, &headers).await
}

/// `GET /media/{id}/thumb?exp=&sig=`: the thumbnail of an image (JPEG).
pub(crate) async fn thumb_route(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<Signed>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    serve(&state, &id, true, q, &headers).await
}

async fn serve(state: &AppState, id: &str, thumb: bool, q: Signed, headers: &HeaderMap) -> Result<Response, ApiError> {
    let now = now_secs();
    let signer = &state.system.config().media;
    let (Some(exp), Some(sig)) = (q.exp, q.sig.as_deref()) else { return Err(forbidden()) };
    if !valid_upload_id(id) || !signer.verify(id, thumb, exp, sig, now) {
        return Err(forbidden());
    }
    let gone = || ApiError::new(ErrorCode::NotFound, "this file was deleted");
    let row = state.system.store().upload_by_id(id).await?.ok_or_else(gone)?;
    if row.deleted || (thumb && !row.attachment.thumb) {
        return Err(gone());
    }
    let uploads = state.uploads.as_ref().ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no file storage"))?;
    let (key, mime) =
        if thumb { (thumb_key(id), "image/jpeg".to_owned()) } else { (file_key(id), row.attachment.mime.clone()) };
    // Ranges of the file only (its size is known before reading); a thumbnail comes whole.
    let range = match (thumb, headers.get(RANGE).and_then(|v| v.to_str().ok())) {
        (false, Some(spec)) => match parse_range(spec, row.attachment.size) {
            Ok(r) => r,
            Err(()) => {
                let mut resp = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
                let all = format!("bytes */{}", row.attachment.size);
                resp.headers_mut().insert(CONTENT_RANGE, HeaderValue::from_str(&all).expect("ascii"));
                return Ok(resp);
            }
        },
        _ => None,
    };
    let (stream, total) = uploads.blobs.get(&key, range.clone()).await.map_err(|e| match e {
        BlobError::NotFound => gone(),
        other => ApiError::Internal(format!("reading {key}: {other}")),
    })?;
    let body = Body::from_stream(stream.map_err(|e| std::io::Error::other(e.to_string())));
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    let header =
        |v: &str| HeaderValue::from_str(v).unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    h.insert(CONTENT_TYPE, header(&mime));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(MEDIA_CSP));
    h.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(CACHE_CONTROL, header(&format!("private, max-age={}", (exp - now).max(0))));
    h.insert(CONTENT_DISPOSITION, header(&disposition(&mime, &row.attachment.name)));
    match range {
        Some(r) => {
            h.insert(CONTENT_LENGTH, header(&(r.end - r.start).to_string()));
            h.insert(CONTENT_RANGE, header(&format!("bytes {}-{}/{total}", r.start, r.end - 1)));
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        }
        None => {
            h.insert(CONTENT_LENGTH, header(&total.to_string()));
        }
    }
    Ok(resp)
}

fn forbidden() -> ApiError {
    ApiError::new(ErrorCode::Forbidden, "this link is not valid: it expired, or it was not made for this file")
}

/// Shown in the page (`inline`) for images, audio and PDF; downloaded otherwise. The name goes
/// both as ASCII (`filename`) and as UTF-8 (`filename*`, RFC 8187).
fn disposition(mime: &str, name: &str) -> String {
    let inline = mime.starts_with("image/") || mime.starts_with("audio/") || mime == "application/pdf";
    let ascii: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    let how = if inline { "inline" } else { "attachment" };
    format!("{how}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// The one range of a `Range: bytes=…` header within `size` bytes: `Ok(None)` for a header this
/// server answers with the whole file (several ranges, another unit), `Err` when unsatisfiable.
fn parse_range(spec: &str, size: u64) -> Result<Option<Range<u64>>, ()> {
    let Some(spec) = spec.trim().strip_prefix("bytes=") else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    let range = match (a.is_empty(), b.is_empty()) {
        // The last b bytes.
        (true, false) => {
            let n: u64 = b.parse().map_err(|_| ())?;
            if n == 0 {
                return Err(());
            }
            size.saturating_sub(n)..size
        }
        (false, _) => {
            let start: u64 = a.parse().map_err(|_| ())?;
            let end = if b.is_empty() { size } else { b.parse::<u64>().map_err(|_| ())?.saturating_add(1).min(size) };
            if start >= size || end <= start {
                return Err(());
            }
            start..end
        }
        (true, true) => return Err(()),
    };
    if range.start >= range.end {
        return Err(());
    }
    Ok(Some(range))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000), Ok(Some(0..100)));
        assert_eq!(parse_range("bytes=900-", 1000), Ok(Some(900..1000)));
        assert_eq!(parse_range("bytes=-100", 1000), Ok(Some(900..1000)));
        assert_eq!(parse_range("bytes=990-2000", 1000), Ok(Some(990..1000)));
        assert_eq!(parse_range("bytes=1000-", 1000), Err(()));
        assert_eq!(parse_range("bytes=5-2", 1000), Err(()));
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), Ok(None));
        assert_eq!(parse_range("items=0-1", 1000), Ok(None));
        assert_eq!(parse_range("bytes=x-1", 1000), Err(()));
    }

    #[test]
    fn dispositions() {
        assert_eq!(disposition("image/png", "a b.png"), "inline; filename=\"a b.png\"; filename*=UTF-8''a%20b.png");
        assert!(
            disposition("text/plain; charset=utf-8", "n\"ote.txt").starts_with("attachment; filename=\"n_ote.txt\"")
        );
        assert!(
            disposition("application/pdf", "r\u{e9}sum\u{e9}.pdf").contains("filename*=UTF-8''r%C3%A9sum%C3%A9.pdf")
        );
    }
}
