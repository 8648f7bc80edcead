-- Full-text search (issue 18): `messages.search` holds the words of a message (kind 0) that is
-- not deleted, from its current body: the latest edit's when it was edited; NULL for every other
-- row (edits, deletes, system events, deleted or encrypted messages). The batching writer keeps
-- it in the transaction of each commit (actors/src/store/batch.rs). A GIN index serves `@@`.
--
-- The 'simple' configuration: it lowercases and splits words, with no stemming and no stop
-- words. Chat is multilingual, and a language's configuration ('english') would stem and drop
-- words of every other language (and its stop words, "it" or "who", could never be found);
-- 'simple' treats every language alike and finds exactly the words typed, as SQLite's unicode61
-- tokenizer does (which also folds diacritics; 'simple' does not).
ALTER TABLE messages ADD COLUMN search tsvector;

-- Backfill: each live message with its latest body, unless that body is encrypted.
UPDATE messages m SET search = to_tsvector('simple', cur.body)
FROM messages cur
WHERE cur.room_id = m.room_id AND cur.seq = COALESCE(
    (SELECT MAX(e.seq) FROM messages e WHERE e.room_id = m.room_id AND e.target = m.seq AND e.kind = 1), m.seq)
  AND m.kind = 0 AND m.deleted_at IS NULL AND cur.body_key IS NULL AND cur.body <> '';

CREATE INDEX messages_search ON messages USING gin (search) WHERE search IS NOT NULL;
