-- Full-text search (issue 18): one FTS5 row per message (kind 0) that is not deleted, keyed by
-- the message's `messages.id` (the FTS rowid), holding its current body: the latest edit's when
-- it was edited. The batching writer keeps it in the transaction of each commit
-- (actors/src/store/batch.rs): it indexes new messages, replaces a row on an edit, removes it on
-- a delete. Bodies encrypted at rest are never indexed.
--
-- Contentless (`content=''`): the words live in the index only, the bodies stay in `messages`.
-- `contentless_delete=1` lets the writer delete a row by its rowid alone (an external-content
-- table needs the old values to delete, and an edit's new body is not the row's body).
-- `secure-delete` takes a deleted row's tokens out of the index at once, not at a later merge,
-- so a deleted message's words leave the file with its body. `unicode61 remove_diacritics 2`:
-- Unicode-aware words, case and diacritics folded (`cafe` finds `café`).
CREATE VIRTUAL TABLE messages_fts USING fts5(
    body,
    content = '',
    contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 2'
);
INSERT INTO messages_fts (messages_fts, rank) VALUES ('secure-delete', 1);

-- Backfill: each live message with its latest body, unless that body is encrypted.
INSERT INTO messages_fts (rowid, body)
SELECT m.id, cur.body
FROM messages m
JOIN messages cur ON cur.room_id = m.room_id AND cur.seq = COALESCE(
    (SELECT MAX(e.seq) FROM messages e WHERE e.room_id = m.room_id AND e.target = m.seq AND e.kind = 1), m.seq)
WHERE m.kind = 0 AND m.deleted_at IS NULL AND cur.body_key IS NULL AND cur.body <> '';
