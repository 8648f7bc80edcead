//! Full-text search over stored messages: the query's parsing into the engines' safe syntax,
//! `Store::search`, and the snippets of its results.
//!
//! What it owns: turning what a user typed into terms (words, and `"quoted words"` as phrases)
//! that reach the engine only as bound parameters or, on SQLite, as FTS5 strings with their
//! quotes doubled, so nothing typed is ever engine syntax (`OR`, `NEAR`, `*`, `:`, `-`,
//! parentheses are text); the ranked, paginated query, which keeps to the rooms the user is a
//! member of inside the SQL (a join on `room_members`); and snippets built here in Rust from the
//! body and the query's words, as text segments marked `hit`, never markup.
//! The index itself is written by the batching writer (`batch.rs`); its tables are in migration
//! `0009_search`. It never indexes nor searches bodies encrypted at rest.

use super::{Inner, Store};
use crate::error::Result;
use confab_schemas::{RoomId, UserId};
use serde::Serialize;
use sqlx::Row;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// The longest query, in characters.
pub const MAX_QUERY_CHARS: usize = 200;
/// The most words a query may hold (phrases' words included): a bound on the engine's work.
pub const MAX_QUERY_WORDS: usize = 16;
/// Characters of a body a snippet shows around its first hit.
const SNIPPET_CHARS: usize = 160;
/// Characters a snippet keeps before its first hit.
const SNIPPET_LEAD: usize = 40;

/// A query that cannot be searched for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryError {
    /// Nothing to search for: empty, or only punctuation.
    Empty,
    /// Over `MAX_QUERY_CHARS` characters or `MAX_QUERY_WORDS` words.
    TooLong,
}

/// One thing to find: a word, or a phrase (its words next to each other, in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// The text as typed (control characters made spaces); given to the engine only as a string.
    pub text: String,
    /// Its words, folded (`fold`), for the snippets.
    pub words: Vec<String>,
}

/// A parsed query: every term must match (AND).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    pub terms: Vec<Term>,
}

impl SearchQuery {
    /// Parses what a user typed: words separated by spaces, `"quoted words"` as a phrase (an
    /// unclosed quote runs to the end). Everything else is text: a term is looked up as the
    /// words it holds, so punctuation and operators only separate words, as in the bodies.
    pub fn parse(q: &str) -> Result<SearchQuery, QueryError> {
        if q.chars().count() > MAX_QUERY_CHARS {
            return Err(QueryError::TooLong);
        }
        let mut raw: Vec<String> = Vec::new();
        let mut current = String::new();
        let mut quoted = false;
        for c in q.chars() {
            let c = if c.is_control() { ' ' } else { c };
            match c {
                '"' => {
                    raw.push(std::mem::take(&mut current));
                    quoted = !quoted;
                }
                c if c.is_whitespace() && !quoted => raw.push(std::mem::take(&mut current)),
                c => current.push(c),
            }
        }
        raw.push(current);
        let terms: Vec<Term> = raw
            .into_iter()
            .map(|text| Term { words: words(&text).map(|(_, w)| w).collect(), text: text.trim().to_owned() })
            .filter(|t| !t.words.is_empty())
            .collect();
        if terms.is_empty() {
            return Err(QueryError::Empty);
        }
        if terms.iter().map(|t| t.words.len()).sum::<usize>() > MAX_QUERY_WORDS {
            return Err(QueryError::TooLong);
        }
        Ok(SearchQuery { terms })
    }

    /// The FTS5 query: each term as a string (`"…"`, its quotes doubled), which FTS5 reads as a
    /// phrase of the words its tokenizer finds in it; terms side by side must all match.
    pub fn fts5(&self) -> String {
        self.terms.iter().map(|t| format!("\"{}\"", t.text.replace('"', "\"\""))).collect::<Vec<_>>().join(" ")
    }

    /// Every folded word of the query, for snippets.
    fn folded_words(&self) -> Vec<&str> {
        self.terms.iter().flat_map(|t| t.words.iter().map(String::as_str)).collect()
    }
}

/// The words of `text` with their byte ranges, folded: runs of letters, digits and combining
/// marks, as SQLite's `unicode61` tokenizer splits them.
fn words(text: &str) -> impl Iterator<Item = (std::ops::Range<usize>, String)> + '_ {
    let mut chars = text.char_indices().peekable();
    std::iter::from_fn(move || {
        while let Some(&(_, c)) = chars.peek() {
            if is_word_char(c) {
                break;
            }
            chars.next();
        }
        let (start, _) = *chars.peek()?;
        let mut end = start;
        while let Some(&(i, c)) = chars.peek() {
            if !is_word_char(c) {
                break;
            }
            end = i + c.len_utf8();
            chars.next();
        }
        Some((start..end, fold(&text[start..end])))
    })
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || is_combining_mark(c)
}

/// A word as the index compares it: lowercase, diacritics removed (`remove_diacritics 2`).
fn fold(word: &str) -> String {
    word.nfd().filter(|c| !is_combining_mark(*c)).flat_map(char::to_lowercase).collect()
}

/// A piece of a snippet: text, and whether it is a word of the query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Segment {
    pub text: String,
    pub hit: bool,
}

/// The part of `body` around the first word of the query it holds (all of it when short), as
/// segments; words of the query are `hit`. Cuts are marked with `…`.
pub fn snippet(body: &str, query: &SearchQuery) -> Vec<Segment> {
    let wanted = query.folded_words();
    let hits: Vec<std::ops::Range<usize>> =
        words(body).filter(|(_, w)| wanted.contains(&w.as_str())).map(|(r, _)| r).collect();
    let total = body.chars().count();
    let (start, end) = if total <= SNIPPET_CHARS {
        (0, body.len())
    } else {
        let first = hits.first().map_or(0, |r| r.start);
        let lead = body[..first].chars().count().min(SNIPPET_LEAD);
        let start = body[..first].char_indices().rev().nth(lead.saturating_sub(1)).map_or(0, |(i, _)| i);
        let start = if lead == 0 { first } else { start };
        let end = body[start..].char_indices().nth(SNIPPET_CHARS).map_or(body.len(), |(i, _)| start + i);
        (start, end)
    };
    let mut out: Vec<Segment> = Vec::new();
    let mut push = |text: &str, hit: bool| {
        if text.is_empty() {
            return;
        }
        match out.last_mut() {
            Some(last) if !last.hit && !hit => last.text.push_str(text),
            _ => out.push(Segment { text: text.to_owned(), hit }),
        }
    };
    if start > 0 {
        push("…", false);
    }
    let mut at = start;
    for r in hits.iter().filter(|r| r.start >= start && r.end <= end) {
        push(&body[at..r.start], false);
        push(&body[r.clone()], true);
        at = r.end;
    }
    push(&body[at..end], false);
    if end < body.len() {
        push("…", false);
    }
    out
}

/// What to search, and for whom.
#[derive(Debug, Clone)]
pub struct SearchFilter {
    /// Only rooms this user is a member of.
    pub user: UserId,
    /// Only this room.
    pub room: Option<RoomId>,
    /// Only messages of this user (a username, matched without regard to case).
    pub from: Option<String>,
    /// Only messages sent before this time (ms since the epoch).
    pub before: Option<i64>,
    pub limit: u32,
    pub offset: u32,
}

/// A message that matched, best first.
#[derive(Debug, Clone)]
pub struct SearchHit {
    pub id: i64,
    pub room: RoomId,
    pub room_name: String,
    pub room_kind: String,
    pub seq: u64,
    pub sender: UserId,
    pub sender_name: String,
    pub ts: i64,
    /// The current body (the latest edit's), for the snippet.
    pub body: String,
}

/// The SQLite search: FTS5 `MATCH` and `bm25` (lower is better) over the user's rooms (never a
/// stranger chat: its results would name the stranger), the
/// page ranked first, then the page's current bodies (the latest edit's) and names. `CROSS JOIN`
/// keeps the index as the outer loop: left to itself the planner walked the user's rooms'
/// messages and ran the `MATCH` once per row, 20 times slower on a phrase (`confab bench search`).
/// `INDEXED BY messages_target` for the latest edit: for its `ORDER BY seq` the planner walked the
/// room's messages by seq instead, about 9 ms per result in a room of 10,000 messages.
const SQLITE_SEARCH: &str = "SELECT h.id, m.room_id, m.seq, m.sender_id, COALESCE(u.username, '') AS username, \
       m.created_at, r.name, r.kind AS room_kind, \
       COALESCE((SELECT e.body FROM messages e INDEXED BY messages_target WHERE e.room_id = m.room_id AND e.target = m.seq AND e.kind = 1 \
                 ORDER BY e.seq DESC LIMIT 1), m.body) AS body \
     FROM (SELECT messages_fts.rowid AS id, bm25(messages_fts) AS score FROM messages_fts \
           CROSS JOIN messages m ON m.id = messages_fts.rowid \
           CROSS JOIN room_members rm ON rm.room_id = m.room_id AND rm.user_id = $1 \
           WHERE messages_fts MATCH $2 AND m.kind = 0 AND m.deleted_at IS NULL \
             AND ($3 IS NULL OR m.room_id = $3) \
             AND NOT EXISTS (SELECT 1 FROM rooms sr WHERE sr.id = m.room_id AND sr.kind = 'stranger') \
             AND ($4 IS NULL OR m.sender_id = (SELECT id FROM users WHERE username_lower = $4)) \
             AND ($5 IS NULL OR m.created_at < $5) \
           ORDER BY score, messages_fts.rowid DESC LIMIT $6 OFFSET $7) h \
     JOIN messages m ON m.id = h.id JOIN rooms r ON r.id = m.room_id LEFT JOIN users u ON u.id = m.sender_id \
     ORDER BY h.score, h.id DESC";

/// The PostgreSQL search, with the terms' tsquery in place of `{QUERY}`: the GIN index's matches
/// first (`MATERIALIZED`: left to itself the planner intersected them with each of the user's
/// rooms in turn, 19 ms for a word in 186 messages instead of 2), then the user's rooms, ranked by
/// `ts_rank` (higher is better), then the page's current bodies (the latest edit's) and names.
const PG_SEARCH: &str = "WITH q AS (SELECT {QUERY} AS q), \
     hits AS MATERIALIZED (SELECT m.id, m.room_id, m.search FROM q, messages m \
           WHERE m.search @@ q.q AND m.kind = 0 AND m.deleted_at IS NULL \
             AND ($2::int8 IS NULL OR m.room_id = $2) \
             AND ($3::text IS NULL OR m.sender_id = (SELECT id FROM users WHERE username_lower = $3)) \
             AND ($4::int8 IS NULL OR m.created_at < $4)) \
     SELECT h.id, m.room_id, m.seq, m.sender_id, COALESCE(u.username, '') AS username, \
       m.created_at, r.name, r.kind AS room_kind, \
       COALESCE((SELECT e.body FROM messages e WHERE e.room_id = m.room_id AND e.target = m.seq AND e.kind = 1 \
                 ORDER BY e.seq DESC LIMIT 1), m.body) AS body \
     FROM (SELECT h.id, ts_rank(h.search, q.q) AS score FROM q, hits h \
           JOIN room_members rm ON rm.room_id = h.room_id AND rm.user_id = $1 \
           WHERE NOT EXISTS (SELECT 1 FROM rooms sr WHERE sr.id = h.room_id AND sr.kind = 'stranger') \
           ORDER BY score DESC, h.id DESC LIMIT $5 OFFSET $6) h \
     JOIN messages m ON m.id = h.id JOIN rooms r ON r.id = m.room_id LEFT JOIN users u ON u.id = m.sender_id \
     ORDER BY h.score DESC, h.id DESC";

/// Takes a room's messages out of the SQLite index (before the room's deletion deletes them).
pub(super) const SQLITE_FORGET_ROOM: &str =
    "DELETE FROM messages_fts WHERE rowid IN (SELECT id FROM messages WHERE room_id = $1 AND kind = 0)";

/// The first bound parameter of the PostgreSQL terms.
const PG_FIRST_TERM: usize = 7;

/// `PG_SEARCH` for `terms` terms (1 to `MAX_QUERY_WORDS`), each bound as a parameter and read
/// with `phraseto_tsquery`, all required (`&&`). One text per count, made once: at most 16
/// prepared statements.
fn pg_search_sql(terms: usize) -> &'static str {
    static SQL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let all = SQL.get_or_init(|| {
        (1..=MAX_QUERY_WORDS)
            .map(|n| {
                let q: Vec<String> =
                    (0..n).map(|i| format!("phraseto_tsquery('simple', ${}::text)", PG_FIRST_TERM + i)).collect();
                PG_SEARCH.replace("{QUERY}", &q.join(" && "))
            })
            .collect()
    });
    &all[terms.clamp(1, MAX_QUERY_WORDS) - 1]
}

impl Store {
    /// Whether this store indexes and searches messages: search is on (`with_search`) and
    /// bodies are not encrypted at rest (an index would hold their words in clear).
    pub fn search_available(&self) -> bool {
        self.search && self.cipher.is_none()
    }

    /// This store with search indexing on or off (on by default).
    pub fn with_search(mut self, on: bool) -> Store {
        self.search = on;
        self
    }

    /// The messages matching `query` in the rooms `filter.user` is a member of, best first, one
    /// page (`limit` from `offset`). Empty when search is unavailable (`search_available`).
    pub async fn search(&self, query: &SearchQuery, filter: &SearchFilter) -> Result<Vec<SearchHit>> {
        if !self.search_available() {
            return Ok(Vec::new());
        }
        let from = filter.from.as_ref().map(|f| f.to_lowercase());
        let room = filter.room.map(|r| r.0);
        let rows = match &self.inner {
            Inner::Sqlite { read, .. } => sqlx::query(SQLITE_SEARCH)
                .bind(filter.user.0)
                .bind(query.fts5())
                .bind(room)
                .bind(from)
                .bind(filter.before)
                .bind(i64::from(filter.limit))
                .bind(i64::from(filter.offset))
                .fetch_all(read)
                .await?
                .iter()
                .map(hit)
                .collect::<Result<Vec<_>>>()?,
            Inner::Postgres(pg) => {
                let mut q = sqlx::query(pg_search_sql(query.terms.len()))
                    .bind(filter.user.0)
                    .bind(room)
                    .bind(from)
                    .bind(filter.before)
                    .bind(i64::from(filter.limit))
                    .bind(i64::from(filter.offset));
                for t in &query.terms {
                    q = q.bind(&t.text);
                }
                q.fetch_all(pg).await?.iter().map(hit).collect::<Result<Vec<_>>>()?
            }
        };
        Ok(rows)
    }

    /// The size of the search index in bytes: the FTS5 tables on SQLite (from `dbstat`), the
    /// GIN index on PostgreSQL (the `search` column's own bytes: `search_column_bytes`).
    pub async fn search_index_bytes(&self) -> Result<i64> {
        match &self.inner {
            Inner::Sqlite { read, .. } => Ok(sqlx::query(
                "SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name = 'messages_fts' OR name LIKE 'messages_fts_%'",
            )
            .fetch_one(read)
            .await?
            .try_get(0)?),
            Inner::Postgres(pg) => {
                Ok(sqlx::query("SELECT pg_relation_size('messages_search')").fetch_one(pg).await?.try_get(0)?)
            }
        }
    }

    /// PostgreSQL: `VACUUM ANALYZE messages`, what autovacuum does by itself after a bulk load
    /// (planner statistics, and the GIN index's pending list merged into it). SQLite: nothing,
    /// as a node never runs `ANALYZE` there. For benchmarks.
    pub async fn settle_after_bulk_load(&self) -> Result<()> {
        if let Inner::Postgres(pg) = &self.inner {
            sqlx::query("VACUUM ANALYZE messages").execute(pg).await?;
        }
        Ok(())
    }

    /// The bytes of the `messages` table (SQLite: its b-tree, from `dbstat`; PostgreSQL: its
    /// heap and TOAST, `pg_table_size`), to set the index's size against.
    pub async fn messages_bytes(&self) -> Result<i64> {
        match &self.inner {
            Inner::Sqlite { read, .. } => {
                Ok(sqlx::query("SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name = 'messages'")
                    .fetch_one(read)
                    .await?
                    .try_get(0)?)
            }
            Inner::Postgres(pg) => {
                Ok(sqlx::query("SELECT pg_table_size('messages')").fetch_one(pg).await?.try_get(0)?)
            }
        }
    }

    /// PostgreSQL only: the bytes the `search` column takes in `messages` (None on SQLite).
    pub async fn search_column_bytes(&self) -> Result<Option<i64>> {
        match &self.inner {
            Inner::Sqlite { .. } => Ok(None),
            Inner::Postgres(pg) => {
                Ok(sqlx::query("SELECT COALESCE(SUM(pg_column_size(search)), 0)::int8 FROM messages")
                    .fetch_one(pg)
                    .await?
                    .try_get(0)?)
            }
        }
    }
}

fn hit<R: Row>(r: &R) -> Result<SearchHit>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(SearchHit {
        id: r.try_get("id")?,
        room: RoomId(r.try_get("room_id")?),
        room_name: r.try_get("name")?,
        room_kind: r.try_get("room_kind")?,
        seq: r.try_get::<i64, _>("seq")? as u64,
        sender: UserId(r.try_get("sender_id")?),
        sender_name: r.try_get("username")?,
        ts: r.try_get("created_at")?,
        body: r.try_get("body")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> SearchQuery {
        SearchQuery::parse(s).unwrap()
    }

    #[test]
    fn operators_and_quotes_are_text() {
        assert_eq!(q("hello world").fts5(), "\"hello\" \"world\"");
        assert_eq!(q("\"a phrase\" word").fts5(), "\"a phrase\" \"word\"");
        assert_eq!(q("foo OR bar NEAR(baz) x*").fts5(), "\"foo\" \"OR\" \"bar\" \"NEAR(baz)\" \"x*\"");
        assert_eq!(q("body:x -y ^z").fts5(), "\"body:x\" \"-y\" \"^z\"");
        assert_eq!(q("'; DROP TABLE messages; --").fts5(), "\"DROP\" \"TABLE\" \"messages;\"");
        assert_eq!(q("\"unclosed phrase").fts5(), "\"unclosed phrase\"");
        assert_eq!(q("a\0b").fts5(), "\"a\" \"b\"", "control characters separate words");
        assert_eq!(q("Café").terms[0].words, ["cafe"]);
    }

    #[test]
    fn bad_queries() {
        assert_eq!(SearchQuery::parse(""), Err(QueryError::Empty));
        assert_eq!(SearchQuery::parse("  \"\" ( ) * - : ;"), Err(QueryError::Empty));
        assert_eq!(SearchQuery::parse(&"x".repeat(201)), Err(QueryError::TooLong));
        assert!(SearchQuery::parse(&"é".repeat(200)).is_ok(), "characters, not bytes");
        assert_eq!(SearchQuery::parse(&"a ".repeat(17)), Err(QueryError::TooLong));
        assert!(SearchQuery::parse(&"a ".repeat(16)).is_ok());
    }

    #[test]
    fn snippets_mark_the_words_of_the_query() {
        let s = snippet("Hello <b>world</b>, the WORLD!", &q("world"));
        let texts: Vec<(&str, bool)> = s.iter().map(|g| (g.text.as_str(), g.hit)).collect();
        assert_eq!(
            texts,
            [("Hello <b>", false), ("world", true), ("</b>, the ", false), ("WORLD", true), ("!", false)]
        );
        let s = snippet("un café noir", &q("cafe"));
        assert!(s.iter().any(|g| g.hit && g.text == "café"), "{s:?}");
        let long = format!("{} needle {}", "a ".repeat(200), "b ".repeat(200));
        let s = snippet(&long, &q("needle"));
        assert_eq!(s.first().map(|g| g.text.starts_with('…')), Some(true));
        assert_eq!(s.last().map(|g| g.text.ends_with('…')), Some(true));
        assert!(s.iter().any(|g| g.hit && g.text == "needle"));
        let shown: usize = s.iter().map(|g| g.text.chars().count()).sum();
        assert!(shown <= SNIPPET_CHARS + 2, "{shown}");
        let s = snippet("日本語のテキスト", &q("テキスト"));
        assert!(!s.is_empty());
    }
}
