-- A held message (pre-moderation, or held by a flag) may carry attachments: its uploads are
-- claimed for it (by its cid, seq 0) when it is held, and listed here as JSON (the messages
-- table's `attachments` form), so staff see them and its release sequences them.
ALTER TABLE reports ADD COLUMN attachments TEXT;
