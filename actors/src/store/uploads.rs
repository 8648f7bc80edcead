//! Uploads in storage: the rows of `POST /api/uploads` (the bytes are in blob storage), their
//! claim by a message, and what the sweeper finds unreferenced.
//!
//! An upload belongs to its owner (`uploads` is keyed by owner first) until a send claims it for
//! `(room, cid)`: the room does that before it sequences the message, in one transaction for all
//! of the message's uploads, so two messages can never carry one upload, and a resend of the same
//! cid claims its own uploads again. The message row then holds the attachments' metadata
//! (`messages.attachments`). Nothing here deletes a referenced upload: the sweeper tombstones
//! (`deleted_at`) only what no live message names, in one statement that a concurrent claim
//! cannot interleave with (a claim needs `deleted_at IS NULL`, a tombstone re-reads the claim).

use super::{Inner, Store, on_pool};
use crate::error::{Error, Result};
use confab_schemas::{Attachment, AttachmentKind, RoomId, UserId, now_ms};
use sqlx::Row;
use std::sync::Arc;

/// A stored upload.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadRow {
    pub owner: UserId,
    pub attachment: Attachment,
    pub created_at: i64,
    /// The room (and the sender's cid) of the message that claimed it.
    pub room: Option<RoomId>,
    pub cid: Option<String>,
    pub seq: Option<u64>,
    /// Tombstoned by the sweeper: as good as gone.
    pub deleted: bool,
}

/// Why a claim failed, naming the upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimRefusal {
    /// Absent, someone else's, deleted, or an orphan past its time.
    NotFound(Arc<str>),
    /// Claimed by another message.
    Used(Arc<str>),
}

/// What one user stores: bytes (not tombstoned) and uploads made since a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadUsage {
    pub bytes: u64,
    pub recent: u64,
}

/// An upload the sweeper is deleting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    pub owner: UserId,
    pub id: String,
    pub size: u64,
    pub thumb: bool,
}

macro_rules! upload_columns {
    () => {
        "owner_id, id, name, size, mime, kind, width, height, duration_ms, has_thumb, created_at, room_id, cid, seq, \
         deleted_at"
    };
}

/// Which uploads nothing references (`$1`: orphans created, or claims made, before it): never
/// claimed and old; claimed for a room that is gone, or for a message that was deleted; claimed
/// long ago for a message that never committed (and is not held for review: a held message's
/// uploads wait for its decision; a rejected one's are swept then).
macro_rules! unreferenced {
    () => {
        "deleted_at IS NULL AND ( \
           (room_id IS NULL AND created_at < $1) \
           OR (room_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM rooms r WHERE r.id = uploads.room_id)) \
           OR (room_id IS NOT NULL AND EXISTS (SELECT 1 FROM messages m WHERE m.room_id = uploads.room_id \
                 AND m.sender_id = uploads.owner_id AND m.cid = uploads.cid AND m.deleted_at IS NOT NULL)) \
           OR (room_id IS NOT NULL AND claimed_at < $1 AND NOT EXISTS (SELECT 1 FROM messages m \
                 WHERE m.room_id = uploads.room_id AND m.sender_id = uploads.owner_id AND m.cid = uploads.cid) \
               AND NOT EXISTS (SELECT 1 FROM reports q WHERE q.room_id = uploads.room_id AND q.kind = 'held' \
                 AND q.status = 'open' AND q.sender_id = uploads.owner_id AND q.cid = uploads.cid)))"
    };
}

fn upload_row<R>(r: &R) -> Result<UploadRow>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let kind: String = r.try_get("kind")?;
    let id: String = r.try_get("id")?;
    Ok(UploadRow {
        owner: UserId(r.try_get("owner_id")?),
        attachment: Attachment {
            id: Arc::from(id),
            name: r.try_get("name")?,
            size: r.try_get::<i64, _>("size")? as u64,
            mime: r.try_get("mime")?,
            kind: AttachmentKind::parse(&kind).ok_or_else(|| Error::Invalid(format!("upload kind {kind}")))?,
            width: r.try_get::<Option<i64>, _>("width")?.map(|v| v as u32),
            height: r.try_get::<Option<i64>, _>("height")?.map(|v| v as u32),
            duration_ms: r.try_get::<Option<i64>, _>("duration_ms")?.map(|v| v as u64),
            thumb: r.try_get("has_thumb")?,
        },
        created_at: r.try_get("created_at")?,
        room: r.try_get::<Option<i64>, _>("room_id")?.map(RoomId),
        cid: r.try_get("cid")?,
        seq: r.try_get::<Option<i64>, _>("seq")?.map(|v| v as u64),
        deleted: r.try_get::<Option<i64>, _>("deleted_at")?.is_some(),
    })
}

impl Store {
    /// Records an upload of `owner`: first before its bytes are stored (`a.size` 0), so that
    /// whatever happens next the sweeper knows of it, then again once stored, with its size and
    /// what its kind gave (dimensions and thumbnail, duration).
    pub async fn record_upload(&self, owner: UserId, a: &Attachment, created_at: i64) -> Result<()> {
        on_pool!(self, write, |p| {
            sqlx::query(
                "INSERT INTO uploads (owner_id, id, name, size, mime, kind, width, height, duration_ms, has_thumb, \
                   created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (owner_id, id) DO UPDATE SET size = excluded.size, mime = excluded.mime, \
                   kind = excluded.kind, width = excluded.width, height = excluded.height, \
                   duration_ms = excluded.duration_ms, has_thumb = excluded.has_thumb",
            )
            .bind(owner.0)
            .bind(&*a.id)
            .bind(&a.name)
            .bind(a.size as i64)
            .bind(&a.mime)
            .bind(a.kind.as_str())
            .bind(a.width.map(i64::from))
            .bind(a.height.map(i64::from))
            .bind(a.duration_ms.map(|d| d as i64))
            .bind(a.thumb)
            .bind(created_at)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// Forgets the upload `id` of `owner` that failed before any message could name it (its
    /// blobs are deleted already).
    pub async fn forget_pending_upload(&self, owner: UserId, id: &str) -> Result<()> {
        on_pool!(self, write, |p| {
            sqlx::query("DELETE FROM uploads WHERE owner_id = $1 AND id = $2 AND room_id IS NULL")
                .bind(owner.0)
                .bind(id)
                .execute(p)
                .await?;
        });
        Ok(())
    }

    /// The bytes `owner` stores (tombstones excepted) and how many uploads they made since `since`.
    pub async fn upload_usage(&self, owner: UserId, since: i64) -> Result<UploadUsage> {
        on_pool!(self, read, |p| {
            let r = sqlx::query(
                "SELECT CAST(COALESCE(SUM(CASE WHEN deleted_at IS NULL THEN size ELSE 0 END), 0) AS BIGINT), \
                   CAST(COALESCE(SUM(CASE WHEN created_at >= $2 THEN 1 ELSE 0 END), 0) AS BIGINT) \
                 FROM uploads WHERE owner_id = $1",
            )
            .bind(owner.0)
            .bind(since)
            .fetch_one(p)
            .await?;
            let (bytes, recent): (i64, i64) = (r.try_get(0)?, r.try_get(1)?);
            Ok(UploadUsage { bytes: bytes.max(0) as u64, recent: recent.max(0) as u64 })
        })
    }

    /// The upload `id` (whoever owns it), tombstoned or not.
    pub async fn upload_by_id(&self, id: &str) -> Result<Option<UploadRow>> {
        on_pool!(self, read, |p| {
            let row = sqlx::query(concat!("SELECT ", upload_columns!(), " FROM uploads WHERE id = $1"))
                .bind(id)
                .fetch_optional(p)
                .await?;
            row.map(|r| upload_row(&r)).transpose()
        })
    }

    /// Claims `ids` (uploads of `owner`) for the message `cid` of `room`, to be sequenced as
    /// `seq`: all or none. An upload already claimed for this same (room, cid) is claimed again
    /// (a resend); one never claimed and created before `orphans_before` has expired. Returns the
    /// attachments in the order of `ids`.
    pub async fn claim_uploads(
        &self,
        owner: UserId,
        room: RoomId,
        cid: &str,
        seq: u64,
        ids: &[Arc<str>],
        orphans_before: i64,
    ) -> Result<std::result::Result<Vec<Attachment>, ClaimRefusal>> {
        let now = now_ms();
        on_pool!(self, write, |p| {
            async {
                let mut tx = p.begin().await?;
                let mut out = Vec::with_capacity(ids.len());
                for id in ids {
                    let row = sqlx::query(concat!(
                        "SELECT ",
                        upload_columns!(),
                        " FROM uploads WHERE owner_id = $1 AND id = $2"
                    ))
                    .bind(owner.0)
                    .bind(&**id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(row) = row.map(|r| upload_row(&r)).transpose()? else {
                        return Ok(Err(ClaimRefusal::NotFound(id.clone())));
                    };
                    if row.deleted || (row.room.is_none() && row.created_at < orphans_before) {
                        return Ok(Err(ClaimRefusal::NotFound(id.clone())));
                    }
                    if row.room.is_some_and(|r| r != room) || row.cid.as_deref().is_some_and(|c| c != cid) {
                        return Ok(Err(ClaimRefusal::Used(id.clone())));
                    }
                    let done = sqlx::query(
                        "UPDATE uploads SET room_id = $3, cid = $4, seq = $5, claimed_at = $6 \
                         WHERE owner_id = $1 AND id = $2 AND deleted_at IS NULL \
                           AND (room_id IS NULL OR (room_id = $3 AND cid = $4))",
                    )
                    .bind(owner.0)
                    .bind(&**id)
                    .bind(room.0)
                    .bind(cid)
                    .bind(seq as i64)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() != 1 {
                        return Ok(Err(ClaimRefusal::Used(id.clone())));
                    }
                    out.push(row.attachment);
                }
                tx.commit().await?;
                Ok::<_, Error>(Ok(out))
            }
            .await
        })
    }

    /// Takes (or renews) the lease of the singleton task `name` for `node` for `ttl_ms`, unless
    /// another node holds it unexpired. True when `node` holds it now.
    pub async fn take_task_lease(&self, name: &str, node: &str, ttl_ms: i64) -> Result<bool> {
        let now = now_ms();
        on_pool!(self, write, |p| {
            let row = sqlx::query(
                "INSERT INTO task_leases (name, owner_node, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET owner_node = excluded.owner_node, expires_at = excluded.expires_at \
                 WHERE task_leases.owner_node = excluded.owner_node OR task_leases.expires_at < $4 \
                 RETURNING owner_node",
            )
            .bind(name)
            .bind(node)
            .bind(now + ttl_ms)
            .bind(now)
            .fetch_optional(p)
            .await?;
            Ok(row.is_some())
        })
    }

    /// Tombstones every upload nothing references (see `unreferenced!`; `before`: orphans
    /// created, and claims never committed, before it). Returns how many.
    pub async fn tombstone_unreferenced(&self, before: i64) -> Result<u64> {
        on_pool!(self, write, |p| {
            let done = sqlx::query(concat!("UPDATE uploads SET deleted_at = $2 WHERE ", unreferenced!()))
                .bind(before)
                .bind(now_ms())
                .execute(p)
                .await?;
            Ok(done.rows_affected())
        })
    }

    /// Up to `limit` tombstoned uploads, whose blobs are to be deleted.
    pub async fn tombstones(&self, limit: u32) -> Result<Vec<Tombstone>> {
        on_pool!(self, read, |p| {
            let rows = sqlx::query(
                "SELECT owner_id, id, size, has_thumb FROM uploads WHERE deleted_at IS NOT NULL ORDER BY deleted_at LIMIT $1",
            )
            .bind(limit as i64)
            .fetch_all(p)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(Tombstone {
                        owner: UserId(r.try_get(0)?),
                        id: r.try_get(1)?,
                        size: r.try_get::<i64, _>(2)? as u64,
                        thumb: r.try_get(3)?,
                    })
                })
                .collect()
        })
    }

    /// Forgets a tombstoned upload once its blobs are deleted.
    pub async fn forget_upload(&self, owner: UserId, id: &str) -> Result<()> {
        on_pool!(self, write, |p| {
            sqlx::query("DELETE FROM uploads WHERE owner_id = $1 AND id = $2 AND deleted_at IS NOT NULL")
                .bind(owner.0)
                .bind(id)
                .execute(p)
                .await?;
        });
        Ok(())
    }
}
