-- Direct conversations, profiles, presence and blocking.
--
-- A room's kind: 'room' (a chat room) or 'dm' (a direct conversation of 2 to 10 people). A DM has
-- no owner and no name; its `name_lower` is control character 2, 'dm', control character 2, then
-- its members' ids ascending and comma-separated: the unique key that makes opening the same
-- conversation twice, even at the same instant on two nodes, give one room.
ALTER TABLE rooms ADD COLUMN kind TEXT NOT NULL DEFAULT 'room';

-- A profile: a display name and a status line (text, shown as text), and who may open a direct
-- conversation with the user: 'everyone', or 'shared_rooms' (only people they share a room with).
ALTER TABLE users ADD COLUMN display_name TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN status TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN dm_policy TEXT NOT NULL DEFAULT 'everyone';
-- Presence, written by the user's inbox actor (one in the cluster): online while `online_until`
-- is in the future (renewed while a session follows the inbox, so a dead node's users go offline
-- within its lifetime), `last_seen_at` when it last changed. `presence_stamp` orders the writes.
ALTER TABLE users ADD COLUMN online_until INTEGER;
ALTER TABLE users ADD COLUMN last_seen_at INTEGER;
ALTER TABLE users ADD COLUMN presence_stamp INTEGER NOT NULL DEFAULT 0;
-- The people directory searches by prefix of the lowercase display name too.
ALTER TABLE users ADD COLUMN display_lower TEXT NOT NULL DEFAULT '';
CREATE INDEX users_display_lower ON users (display_lower);

-- Who blocked whom (a per-user table, keyed by the user who blocks).
CREATE TABLE blocks (
    user_id INTEGER NOT NULL,
    blocked_id INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, blocked_id)
);
