//! Decoding of rows into schema types, generic over the two backends.

use super::Cipher;
use crate::error::{Error, Result};
use confab_schemas::{EventKind, MessageRow, Role, RoomId, RoomKind, RoomRow, UserId, UserRow, Visibility};
use sqlx::{ColumnIndex, Database, Decode, Row, Type};
use std::sync::Arc;

fn get<'r, R, T>(r: &'r R, col: &str) -> Result<T>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    r.try_get(col).map_err(Error::from)
}

pub(super) fn user<R>(r: &R) -> Result<UserRow>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    R::Database: Database,
{
    Ok(UserRow {
        id: UserId(get(r, "id")?),
        username: get(r, "username")?,
        role: Role::parse(&get::<R, String>(r, "role")?),
        created_at: get(r, "created_at")?,
        password_hash: get(r, "password_hash")?,
    })
}

pub(super) fn room<R>(r: &R) -> Result<RoomRow>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
{
    let vis: String = get(r, "visibility")?;
    Ok(RoomRow {
        id: RoomId(get(r, "id")?),
        name: get(r, "name")?,
        description: get(r, "description")?,
        visibility: Visibility::parse(&vis).ok_or_else(|| Error::Invalid(format!("visibility {vis}")))?,
        owner_id: get::<R, Option<i64>>(r, "owner_id")?.map(UserId),
        created_at: get(r, "created_at")?,
        kind: RoomKind::parse(&get::<R, String>(r, "kind")?).unwrap_or_default(),
    })
}

/// A message row; an encrypted body (with a `body_key`) is decrypted with `cipher`.
pub(super) fn message<R>(r: &R, cipher: Option<&Cipher>) -> Result<MessageRow>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
{
    let room: i64 = get(r, "room_id")?;
    let seq = get::<R, i64>(r, "seq")? as u64;
    let stored: String = get(r, "body")?;
    let body = match get::<R, Option<String>>(r, "body_key")? {
        None => stored,
        Some(key) => cipher
            .ok_or_else(|| Error::Invalid("an encrypted message body, but no encryption key is configured".into()))?
            .open(&key, room, seq, &stored)?,
    };
    Ok(MessageRow {
        id: get(r, "id")?,
        room: RoomId(room),
        seq,
        sender: UserId(get(r, "sender_id")?),
        sender_name: Arc::from(get::<R, Option<String>>(r, "username")?.unwrap_or_default()),
        cid: Arc::from(get::<R, String>(r, "cid")?),
        body: Arc::from(body),
        reply_to: get::<R, Option<i64>>(r, "reply_to")?.map(|s| s as u64),
        ts: get(r, "created_at")?,
        edited_at: get(r, "edited_at")?,
        deleted: get::<R, Option<i64>>(r, "deleted_at")?.is_some(),
        kind: EventKind::from_code(get(r, "kind")?),
        target: get::<R, Option<i64>>(r, "target")?.map(|s| s as u64),
        attachments: match get::<R, Option<String>>(r, "attachments")? {
            Some(json) if !json.is_empty() => serde_json::from_str(&json)
                .map_err(|e| Error::Invalid(format!("the attachments of message {seq} of room {room}: {e}")))?,
            _ => Vec::new(),
        },
    })
}
