//! Search over REST: `GET /api/search`. It validates the parameters, refuses a `room` the user
//! may not read, and hands the rest to `Store::search`, which keeps to the user's rooms inside
//! its SQL; so a result never comes from a room the user is not a member of, whatever the
//! parameters. Snippets are text segments (`{"text","hit"}`), never markup. With bodies encrypted
//! at rest, or indexing turned off (`--search off`), it answers 503 `search_unavailable`.

use crate::AppState;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiQuery};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use confab_actors::store::{MAX_QUERY_CHARS, MAX_QUERY_WORDS, QueryError, SearchFilter, SearchQuery, snippet};
use confab_schemas::{ErrorCode, RoomId};
use serde::Deserialize;
use serde_json::{Value, json};

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/search", get(search_route))
}

/// Results per page unless `limit` says otherwise, and at most.
const PAGE: u32 = 20;
const MAX_PAGE: u32 = 50;
/// The deepest offset: ranking a deeper page costs the database more than anyone reads.
const MAX_OFFSET: u32 = 1000;
/// The longest `from`: a username has at most 32 characters.
const MAX_FROM_CHARS: usize = 64;

#[derive(Deserialize)]
struct SearchParams {
    q: Option<String>,
    room: Option<i64>,
    from: Option<String>,
    before: Option<i64>,
    limit: Option<u32>,
    offset: Option<u32>,
}

/// `GET /api/search?q=&room=ID&from=USERNAME&before=MS&limit=N&offset=K` → `{"results": [{"room",
/// "room_name", "room_kind", "seq", "id", "from": {"id", "username"}, "ts", "snippet": [{"text",
/// "hit"}…]}…], "next": K|null}`: messages of the rooms the user is a member of that hold every
/// word of `q` (`"quoted words"`: a phrase), best first, `limit` (1 to 50, default 20) from
/// `offset` (0 to 1000); `next` is the offset of the following page. Errors: `empty_query`,
/// `too_long` (over 200 characters or 16 words), `invalid`, `unknown_room`, `not_member`,
/// `search_unavailable`.
async fn search_route(
    State(state): State<AppState>,
    AuthUser(user, _): AuthUser,
    ApiQuery(p): ApiQuery<SearchParams>,
) -> Result<Json<Value>, ApiError> {
    let limit = p.limit.unwrap_or(PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::new(ErrorCode::Invalid, format!("limit: 1 to {MAX_PAGE}")));
    }
    let offset = p.offset.unwrap_or(0);
    if offset > MAX_OFFSET {
        return Err(ApiError::new(ErrorCode::Invalid, format!("offset: 0 to {MAX_OFFSET}")));
    }
    if p.before.is_some_and(|b| b < 0) {
        return Err(ApiError::new(ErrorCode::Invalid, "before: a time in milliseconds since 1970"));
    }
    let from = p.from.map(|f| f.trim().to_owned()).filter(|f| !f.is_empty());
    if from.as_ref().is_some_and(|f| f.chars().count() > MAX_FROM_CHARS) {
        return Err(ApiError::new(ErrorCode::Invalid, "from: a username"));
    }
    let query = SearchQuery::parse(p.q.as_deref().unwrap_or("")).map_err(|e| match e {
        QueryError::Empty => ApiError::new(ErrorCode::EmptyQuery, "type a word to search for"),
        QueryError::TooLong => ApiError::new(
            ErrorCode::TooLong,
            format!("a search has at most {MAX_QUERY_CHARS} characters and {MAX_QUERY_WORDS} words"),
        ),
    })?;
    let store = state.system.store();
    if let Some(id) = p.room {
        let room = RoomId(id);
        let exists = !room.is_inbox() && store.room_by_id(room).await?.is_some();
        if !exists {
            return Err(ApiError::new(ErrorCode::UnknownRoom, format!("there is no room {id}")));
        }
        if !store.is_member(room, user.id).await? {
            return Err(ApiError::new(ErrorCode::NotMember, "you are not a member of this room"));
        }
    }
    if !store.search_available() {
        return Err(ApiError::new(
            ErrorCode::SearchUnavailable,
            "search is not available on this server: message bodies are encrypted at rest, or search is turned off",
        ));
    }
    // One more than asked tells whether another page follows.
    let filter =
        SearchFilter { user: user.id, room: p.room.map(RoomId), from, before: p.before, limit: limit + 1, offset };
    let mut hits = store.search(&query, &filter).await?;
    let more = hits.len() > limit as usize;
    hits.truncate(limit as usize);
    let next = (more && offset + limit <= MAX_OFFSET).then_some(offset + limit);
    let results: Vec<Value> = hits
        .iter()
        .map(|h| {
            json!({
                "room": h.room, "room_name": h.room_name, "room_kind": h.room_kind, "seq": h.seq, "id": h.id,
                "from": {"id": h.sender, "username": h.sender_name}, "ts": h.ts,
                "snippet": snippet(&h.body, &query),
            })
        })
        .collect();
    Ok(Json(json!({"results": results, "next": next})))
}
