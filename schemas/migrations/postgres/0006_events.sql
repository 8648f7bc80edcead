-- A room's sequence holds events: 0 message, 1 edit, 2 delete. An edit or delete names the
-- message it is about in `target`.
ALTER TABLE messages ADD COLUMN kind BIGINT NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN target BIGINT;
CREATE INDEX messages_target ON messages (room_id, target) WHERE target IS NOT NULL;
