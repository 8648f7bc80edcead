-- Room moderation: room sanctions (a mute or a ban per room, user and kind; lifting one deletes
-- it), the moderation queue (the reports table grows into it: reports, held messages and
-- automatic flags, each with its decision), and moderation settings per room (room_id 0: the
-- site-wide defaults). Room moderators are room_members.role = 'moderator'.
-- Times are milliseconds since the Unix epoch.
CREATE TABLE room_sanctions (
    room_id INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('mute', 'ban')),
    reason TEXT NOT NULL DEFAULT '',
    by_id INTEGER,
    created_at INTEGER NOT NULL,
    -- NULL: until lifted.
    expires_at INTEGER,
    PRIMARY KEY (room_id, user_id, kind)
);

-- kind: 'report', 'held' or 'flag'. A held message keeps what it needs to be sequenced on its
-- release (sender, cid, body, reply_to); reporter_id is its sender for held messages and flags.
ALTER TABLE reports ADD COLUMN kind TEXT NOT NULL DEFAULT 'report';
ALTER TABLE reports ADD COLUMN sender_id INTEGER;
ALTER TABLE reports ADD COLUMN body TEXT;
-- Set when body is encrypted at rest (as messages.body_key; sealed with seq 0).
ALTER TABLE reports ADD COLUMN body_key TEXT;
ALTER TABLE reports ADD COLUMN cid TEXT;
ALTER TABLE reports ADD COLUMN reply_to INTEGER;
ALTER TABLE reports ADD COLUMN decided_by INTEGER;
ALTER TABLE reports ADD COLUMN decided_at INTEGER;
ALTER TABLE reports ADD COLUMN decision_reason TEXT;
CREATE INDEX reports_room ON reports(room_id, id);
CREATE INDEX reports_status ON reports(status, id);
-- A resent held message is the same item.
CREATE UNIQUE INDEX reports_held_cid ON reports(room_id, sender_id, cid) WHERE kind = 'held';

CREATE TABLE moderation_settings (
    room_id INTEGER PRIMARY KEY,
    premod INTEGER NOT NULL DEFAULT 0,
    -- JSON: {"flood"?, "banned_words"?, "link_spam"?, "repeats"?}; absent: the site's.
    flags TEXT NOT NULL DEFAULT '{}',
    updated_at INTEGER NOT NULL
);
