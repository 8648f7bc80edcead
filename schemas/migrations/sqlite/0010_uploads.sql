-- Attachments: uploads, the messages that carry them, and the sweeper's lease.
--
-- An upload is the user's until a message claims it (a per-user table, keyed by its owner first).
-- A send claims each named upload for (room_id, cid) before the room sequences the message
-- (`seq` is the seq it was given then; a resend of the same cid claims it again), and the
-- message row keeps the attachments' metadata as JSON in `messages.attachments`, so history
-- needs no join. The bytes are in blob storage under `u/<id>` (and `t/<id>`, the thumbnail).
-- The sweeper tombstones (`deleted_at`) what nothing references any more, deletes its blobs,
-- then its row.
CREATE TABLE uploads (
    owner_id INTEGER NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    mime TEXT NOT NULL,
    kind TEXT NOT NULL,
    width INTEGER,
    height INTEGER,
    duration_ms INTEGER,
    has_thumb INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    room_id INTEGER,
    cid TEXT,
    seq INTEGER,
    claimed_at INTEGER,
    deleted_at INTEGER,
    PRIMARY KEY (owner_id, id)
);
-- Media serving finds an upload by its id alone.
CREATE INDEX uploads_id ON uploads (id);
-- The uploads of a room's messages (the attachment route, room deletion).
CREATE INDEX uploads_room ON uploads (room_id, cid);
-- Orphans by age, for the sweeper.
CREATE INDEX uploads_unclaimed ON uploads (created_at) WHERE room_id IS NULL;

ALTER TABLE messages ADD COLUMN attachments TEXT;

-- Leases of node-wide singleton tasks (the sweeper): one node holds a name until it expires.
CREATE TABLE task_leases (
    name TEXT PRIMARY KEY,
    owner_node TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
