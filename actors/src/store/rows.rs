//! Decoding of rows into schema types, generic over the two backends.

use crate::error::{Error, Result};
use confab_schemas::{MessageRow, Role, RoomId, RoomRow, UserId, UserRow, Visibility};
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
    })
}

pub(super) fn message<R>(r: &R) -> Result<MessageRow>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(MessageRow {
        id: get(r, "id")?,
        room: RoomId(get(r, "room_id")?),
        seq: get::<R, i64>(r, "seq")? as u64,
        sender: UserId(get(r, "sender_id")?),
        sender_name: Arc::from(get::<R, Option<String>>(r, "username")?.unwrap_or_default()),
        cid: Arc::from(get::<R, String>(r, "cid")?),
        body: Arc::from(get::<R, String>(r, "body")?),
        reply_to: get::<R, Option<i64>>(r, "reply_to")?.map(|s| s as u64),
        ts: get(r, "created_at")?,
        edited_at: get(r, "edited_at")?,
        deleted: get::<R, Option<i64>>(r, "deleted_at")?.is_some(),
    })
}
