//! Uploads over REST: `POST /api/uploads` streams a file to blob storage and answers its id;
//! `GET /api/rooms/{room}/attachments/{id}` gives an attachment fresh signed URLs; `GET
//! /media/{id}` and `/media/{id}/thumb` serve the bytes to whoever holds a valid signed URL
//! (`media`).
//!
//! An upload is judged by its bytes: the first `SNIFF_BYTES` decide its type against the
//! allow-list (`sniff`) before anything is stored, then the rest streams to storage capped at its
//! kind's limit, so the node holds a few buffers whatever the size. Refusals (413 `too_large`, 415
//! `unsupported_type`, 429 `quota_exceeded` / `rate_limited`, a client that went away) leave
//! nothing in storage. Images are then re-encoded without metadata and get a thumbnail
//! (`images`, on the blocking pool, a few at a time); voice notes get their duration (`voice`).
//! The work runs in a task of its own, so a dropped connection never leaves it half done. The
//! upload belongs to its uploader until a message claims it (see `confab_actors::room`).

mod images;
mod media;
mod sniff;
mod voice;

use crate::AppState;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiPath, ApiQuery};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::{Bytes, BytesMut};
use confab_actors::blob::{BlobError, BlobStore};
use confab_schemas::attachments::valid_upload_id;
use confab_schemas::{Attachment, AttachmentKind, AttachmentView, ErrorCode, RoomId, UserId, now_ms};
use futures::{Stream, StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use sniff::{SNIFF_BYTES, Sniffed, sniff};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::warn;

/// Limits of uploads (`--upload-*`).
#[derive(Debug, Clone)]
pub struct UploadConfig {
    /// Largest image, voice note and other file, in bytes.
    pub max_image_bytes: u64,
    pub max_voice_bytes: u64,
    pub max_file_bytes: u64,
    /// Bytes one user may store (0: no limit).
    pub quota_bytes: u64,
    /// Uploads one user may make per minute (0: no limit).
    pub per_minute: u64,
    /// How long an upload's body may take to arrive.
    pub body_timeout: Duration,
    /// Images processed at once on this node.
    pub image_workers: usize,
    /// Largest image accepted, in pixels (against decompression bombs).
    pub max_image_pixels: u64,
}

impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig {
            max_image_bytes: 10 << 20,
            max_voice_bytes: 5 << 20,
            max_file_bytes: 25 << 20,
            quota_bytes: 1 << 30,
            per_minute: 30,
            body_timeout: Duration::from_secs(600),
            image_workers: 2,
            max_image_pixels: 50_000_000,
        }
    }
}

impl UploadConfig {
    fn limit(&self, kind: AttachmentKind) -> u64 {
        match kind {
            AttachmentKind::Image => self.max_image_bytes,
            AttachmentKind::Voice => self.max_voice_bytes,
            AttachmentKind::Audio | AttachmentKind::File => self.max_file_bytes,
        }
    }
}

/// What the upload routes share: the blob store and the image workers' permits.
pub struct Uploads {
    pub blobs: BlobStore,
    image_slots: Semaphore,
}

impl Uploads {
    pub fn new(blobs: BlobStore, config: &UploadConfig) -> Uploads {
        Uploads { blobs, image_slots: Semaphore::new(config.image_workers.max(1)) }
    }
}

/// The blob key of an upload's bytes, and of its thumbnail.
pub fn file_key(id: &str) -> String {
    format!("u/{id}")
}
pub fn thumb_key(id: &str) -> String {
    format!("t/{id}")
}

/// The longest voice note duration a client may claim.
const MAX_CLAIMED_DURATION_MS: u64 = 3600 * 1000;
/// The longest file name kept.
const MAX_NAME_CHARS: usize = 200;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/uploads", post(upload_route))
        .route("/api/rooms/{room}/attachments/{id}", get(attachment_route))
        .route("/media/{id}", get(media::file_route))
        .route("/media/{id}/thumb", get(media::thumb_route))
}

/// Whether a request is an upload, whose body `security::body_deadline` leaves to the route.
pub(crate) fn is_upload(req: &Request) -> bool {
    req.method() == axum::http::Method::POST && req.uri().path() == "/api/uploads"
}

#[derive(Deserialize)]
struct UploadParams {
    name: Option<String>,
    kind: Option<String>,
    duration_ms: Option<u64>,
}

/// `POST /api/uploads` (multipart/form-data with one `file` part, or the raw bytes with
/// `?name=`; `?kind=voice&duration_ms=N` for a voice note) → 201 `{"id", "name", "size",
/// "mime", "kind", "width"?, "height"?, "duration_ms"?}`. Refusals: 413 `too_large`, 415
/// `unsupported_type`, 429 `quota_exceeded` or `rate_limited`, 400 `invalid`, 408
/// `request_timeout`.
async fn upload_route(
    State(state): State<AppState>,
    AuthUser(user, _): AuthUser,
    ApiQuery(q): ApiQuery<UploadParams>,
    req: Request,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let voice = match q.kind.as_deref() {
        None | Some("") => false,
        Some("voice") => true,
        Some(other) => return Err(ApiError::new(ErrorCode::Invalid, format!("kind: voice or nothing, not {other}"))),
    };
    let cfg = state.config.uploads.clone();
    let usage = state.system.store().upload_usage(user.id, now_ms() - 60_000).await?;
    if cfg.per_minute > 0 && usage.recent >= cfg.per_minute {
        return Err(ApiError::Throttled(
            ErrorCode::RateLimited,
            format!("at most {} uploads a minute", cfg.per_minute),
            Duration::from_secs(60),
        ));
    }
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if cfg.quota_bytes > 0 && usage.bytes.saturating_add(declared.unwrap_or(0)) > cfg.quota_bytes.saturating_add(4096) {
        return Err(quota_exceeded(&cfg));
    }
    let content_type = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let body = req.into_body();
    let job = Job { state: state.clone(), owner: user.id, voice, claimed_ms: q.duration_ms, cfg, used: usage.bytes };
    // In a task of its own: if the client goes away, the handler is dropped, but this still
    // cleans up what it stored.
    let task = tokio::spawn(async move {
        let deadline = Instant::now() + job.cfg.body_timeout;
        match multipart_boundary(&content_type) {
            Some(boundary) => {
                let mut form = multer::Multipart::new(body.into_data_stream(), boundary);
                let field = tokio::time::timeout_at(deadline, form.next_field())
                    .await
                    .map_err(|_| timed_out(&job.cfg))?
                    .map_err(|e| ApiError::new(ErrorCode::Invalid, format!("the form: {e}")))?
                    .ok_or_else(|| ApiError::new(ErrorCode::Invalid, "the form has no file part"))?;
                if field.name() != Some("file") {
                    return Err(ApiError::new(ErrorCode::Invalid, "the form has one part, named file"));
                }
                let name = field.file_name().map(str::to_owned).or(q.name);
                job.receive(name, None, Box::pin(field.map_err(|e| e.to_string())), deadline).await
            }
            None => {
                let stream = body.into_data_stream().map_err(|e| e.to_string());
                job.receive(q.name, declared, Box::pin(stream), deadline).await
            }
        }
    });
    let answer = task.await.map_err(|e| ApiError::Internal(format!("upload task: {e}")))?;
    let metrics = state.system.metrics();
    match answer {
        Ok(answer) => {
            metrics.uploads.fetch_add(1, Relaxed);
            metrics.upload_bytes.fetch_add(answer["size"].as_u64().unwrap_or(0), Relaxed);
            Ok((StatusCode::CREATED, Json(answer)))
        }
        Err(e) => {
            metrics.uploads_refused.fetch_add(1, Relaxed);
            Err(e)
        }
    }
}

fn multipart_boundary(content_type: &str) -> Option<String> {
    if !content_type.to_ascii_lowercase().starts_with("multipart/form-data") {
        return None;
    }
    multer::parse_boundary(content_type).ok()
}

fn quota_exceeded(cfg: &UploadConfig) -> ApiError {
    ApiError::OverLimit(
        ErrorCode::QuotaExceeded,
        format!("your files would take more than your {} bytes", cfg.quota_bytes),
        cfg.quota_bytes,
    )
}

fn timed_out(cfg: &UploadConfig) -> ApiError {
    ApiError::new(
        ErrorCode::RequestTimeout,
        format!("the upload did not arrive within {} s", cfg.body_timeout.as_secs()),
    )
}

fn too_large(kind: AttachmentKind, limit: u64) -> ApiError {
    let what = match kind {
        AttachmentKind::Image => "an image",
        AttachmentKind::Voice => "a voice note",
        AttachmentKind::Audio | AttachmentKind::File => "a file",
    };
    ApiError::OverLimit(ErrorCode::TooLarge, format!("{what} is at most {limit} bytes"), limit)
}

type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, String>> + Send>>;

/// One upload being received.
struct Job {
    state: AppState,
    owner: UserId,
    voice: bool,
    /// The duration the client measured (voice notes).
    claimed_ms: Option<u64>,
    cfg: UploadConfig,
    /// What the owner stored before.
    used: u64,
}

impl Job {
    fn uploads(&self) -> Result<&Uploads, ApiError> {
        self.state.uploads.as_ref().ok_or_else(|| ApiError::new(ErrorCode::Overloaded, "this node has no file storage"))
    }

    async fn receive(
        &self,
        name: Option<String>,
        declared: Option<u64>,
        mut body: BodyStream,
        deadline: Instant,
    ) -> Result<Value, ApiError> {
        let name = clean_name(name.as_deref().unwrap_or(""));
        let uploads = self.uploads()?;
        // The head decides the type; nothing is stored before.
        let mut head = BytesMut::new();
        let mut ended = false;
        while head.len() < SNIFF_BYTES {
            match tokio::time::timeout_at(deadline, body.next()).await {
                Err(_) => return Err(timed_out(&self.cfg)),
                Ok(None) => {
                    ended = true;
                    break;
                }
                Ok(Some(Err(e))) => {
                    return Err(ApiError::new(ErrorCode::Invalid, format!("the upload was cut off: {e}")));
                }
                Ok(Some(Ok(chunk))) => head.extend_from_slice(&chunk),
            }
        }
        let Some(Sniffed { mime, kind }) = sniff(&head, ended) else {
            return Err(ApiError::new(
                ErrorCode::UnsupportedType,
                "this type of file is not accepted: images, PDF, text, office documents, archives and audio are",
            ));
        };
        let kind = match (self.voice, kind) {
            (true, AttachmentKind::Audio) => AttachmentKind::Voice,
            (true, _) => return Err(ApiError::new(ErrorCode::UnsupportedType, "a voice note must be a recording")),
            (false, k) => k,
        };
        let limit = self.cfg.limit(kind);
        if declared.is_some_and(|d| d > limit) || head.len() as u64 > limit {
            return Err(too_large(kind, limit));
        }
        let id = new_upload_id();
        // Recorded before anything is stored, empty: a node that dies from here on leaves a row
        // the sweeper finds (an unclaimed upload past its time), never a blob nobody knows of.
        let pending = Attachment {
            id: Arc::from(id.as_str()),
            name: name.clone(),
            size: 0,
            mime: mime.to_owned(),
            kind,
            width: None,
            height: None,
            duration_ms: None,
            thumb: true,
        };
        let store = self.state.system.store();
        store.record_upload(self.owner, &pending, now_ms()).await?;
        let done = self.store_and_finish(uploads, pending, head, body, limit, deadline).await;
        let a = match done {
            Ok(a) => a,
            Err(e) => {
                self.discard(uploads, &id).await;
                if let Err(e) = store.forget_pending_upload(self.owner, &id).await {
                    warn!(%id, err = %e, "a refused upload's row could not be deleted (the sweeper will)");
                }
                return Err(e);
            }
        };
        let mut out = json!({"id": a.id, "name": a.name, "size": a.size, "mime": a.mime, "kind": a.kind});
        for (k, v) in
            [("width", a.width.map(u64::from)), ("height", a.height.map(u64::from)), ("duration_ms", a.duration_ms)]
        {
            if let Some(v) = v {
                out[k] = json!(v);
            }
        }
        Ok(out)
    }

    /// Streams the upload `a` (its first bytes `head`, the rest in `body`) to storage within
    /// `limit`, finishes it by its kind and records it whole; the caller cleans up on an error.
    async fn store_and_finish(
        &self,
        uploads: &Uploads,
        mut a: Attachment,
        head: BytesMut,
        body: BodyStream,
        limit: u64,
        deadline: Instant,
    ) -> Result<Attachment, ApiError> {
        let (key, kind) = (file_key(&a.id), a.kind);
        let head = head.freeze();
        let rest = body.map_err(std::io::Error::other);
        let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(head) }).chain(rest);
        let stored = tokio::time::timeout_at(deadline, uploads.blobs.put_stream(&key, Box::pin(stream), limit)).await;
        a.size = match stored {
            Ok(Ok(size)) => size,
            Ok(Err(BlobError::TooLarge)) => return Err(too_large(kind, limit)),
            Ok(Err(BlobError::Body(e))) => {
                return Err(ApiError::new(ErrorCode::Invalid, format!("the upload was cut off: {e}")));
            }
            Ok(Err(other)) => return Err(ApiError::Internal(format!("storing an upload: {other}"))),
            Err(_) => return Err(timed_out(&self.cfg)),
        };
        a.thumb = false;
        self.finish(uploads, &mut a).await?;
        if self.cfg.quota_bytes > 0 && self.used.saturating_add(a.size) > self.cfg.quota_bytes {
            return Err(quota_exceeded(&self.cfg));
        }
        self.state.system.store().record_upload(self.owner, &a, now_ms()).await?;
        Ok(a)
    }

    /// What the kind needs once stored: an image re-encoded, with its size and thumbnail; a
    /// recording's duration.
    async fn finish(&self, uploads: &Uploads, a: &mut Attachment) -> Result<(), ApiError> {
        let key = file_key(&a.id);
        let reads_duration = a.kind == AttachmentKind::Voice
            || (a.kind == AttachmentKind::Audio
                && matches!(a.mime.as_str(), "audio/ogg" | "audio/webm")
                && a.size <= self.cfg.max_voice_bytes);
        if a.kind != AttachmentKind::Image && !reads_duration {
            return Ok(());
        }
        // A few at a time: each holds its file (and an image its pixels) in memory.
        let _permit = uploads.image_slots.acquire().await.map_err(|_| ApiError::Internal("closing".into()))?;
        let data = read_all(&uploads.blobs, &key, a.size).await?;
        if a.kind == AttachmentKind::Image {
            let (mime, max_pixels) = (a.mime.clone(), self.cfg.max_image_pixels);
            let done = tokio::task::spawn_blocking(move || images::process(&data, &mime, max_pixels))
                .await
                .map_err(|e| ApiError::Internal(format!("image task: {e}")))?
                .map_err(|e| ApiError::new(ErrorCode::UnsupportedType, e))?;
            if let Some(bytes) = done.bytes {
                a.size = bytes.len() as u64;
                uploads.blobs.put(&key, Bytes::from(bytes)).await.map_err(|e| ApiError::Internal(e.to_string()))?;
            }
            uploads
                .blobs
                .put(&thumb_key(&a.id), Bytes::from(done.thumb))
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            (a.width, a.height, a.thumb) = (Some(done.width), Some(done.height), true);
        } else {
            let parsed = voice::duration_ms(&data);
            a.duration_ms = match (parsed, a.kind) {
                (Some(ms), _) => Some(ms),
                // Not a container this node reads: the client's measure, within reason.
                (None, AttachmentKind::Voice) => self.claimed_ms.map(|ms| ms.min(MAX_CLAIMED_DURATION_MS)),
                (None, _) => None,
            };
        }
        Ok(())
    }

    /// Deletes what an upload stored (it failed after storing).
    async fn discard(&self, uploads: &Uploads, id: &str) {
        for key in [file_key(id), thumb_key(id)] {
            if let Err(e) = uploads.blobs.delete(&key).await {
                warn!(%key, err = %e, "a refused upload's blob could not be deleted (the sweeper will not see it)");
            }
        }
    }
}

/// A stored blob's bytes (at most `expected` plus a little).
async fn read_all(blobs: &BlobStore, key: &str, expected: u64) -> Result<Vec<u8>, ApiError> {
    let (mut stream, size) = blobs.get(key, None).await.map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut out = Vec::with_capacity(size.min(expected) as usize);
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.map_err(|e| ApiError::Internal(e.to_string()))?);
    }
    Ok(out)
}

/// 128 random bits in hex.
fn new_upload_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// A file name to show: its last path component, without control characters, at most
/// `MAX_NAME_CHARS` characters ("file" when nothing is left).
fn clean_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = last.chars().filter(|c| !c.is_control()).take(MAX_NAME_CHARS).collect();
    let clean = clean.trim();
    if clean.is_empty() || clean == "." || clean == ".." { "file".to_owned() } else { clean.to_owned() }
}

/// `GET /api/rooms/{room}/attachments/{id}` → the attachment object with fresh signed URLs, for
/// whoever may read the room's history; `not_found` when the file is on no live message of it.
async fn attachment_route(
    State(state): State<AppState>,
    AuthUser(user, _): AuthUser,
    ApiPath((room, id)): ApiPath<(i64, String)>,
) -> Result<Json<Value>, ApiError> {
    let room = crate::rooms::visible_room(&state, &user, RoomId(room)).await?;
    let gone = || ApiError::new(ErrorCode::NotFound, "no such attachment in this room");
    if !valid_upload_id(&id) {
        return Err(gone());
    }
    let store = state.system.store();
    let row = store.upload_by_id(&id).await?.ok_or_else(gone)?;
    let (Some(in_room), Some(cid), false) = (row.room, row.cid.as_deref(), row.deleted) else { return Err(gone()) };
    if in_room != room.id {
        return Err(gone());
    }
    let message = store.message_by_cid(room.id, row.owner, cid).await?.ok_or_else(gone)?;
    if message.deleted {
        return Err(gone());
    }
    let view = AttachmentView::new(&row.attachment, &state.system.config().media);
    Ok(Json(serde_json::to_value(view).unwrap_or(Value::Null)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned() {
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("C:\\Users\\me\\photo.jpg"), "photo.jpg");
        assert_eq!(clean_name("a\u{0}b\nc.txt"), "abc.txt");
        assert_eq!(clean_name(".."), "file");
        assert_eq!(clean_name(""), "file");
        assert_eq!(clean_name(&"x".repeat(500)).chars().count(), MAX_NAME_CHARS);
        assert_eq!(new_upload_id().len(), 32);
        assert!(valid_upload_id(&new_upload_id()));
    }
}
