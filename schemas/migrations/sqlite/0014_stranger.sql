-- The stranger chat (issue 21): the match pool's queue, the chats it made, who sits in one, and
-- pairs not to pair again soon. The queue is the record of who waits, so a pool that dies (its
-- node killed) loses no one: the next owner reads it. Per-user tables key by user first, the
-- chats (rooms of kind 'stranger') by room.

-- Who waits: one row per user (at most one queue), its interests normalised, one per line.
-- `seen_at` is renewed while the user's session lives; the pool skips stale rows.
CREATE TABLE match_queue (
    user_id INTEGER PRIMARY KEY,
    interests TEXT NOT NULL,
    fewer BOOLEAN NOT NULL,
    entered_at INTEGER NOT NULL,
    seen_at INTEGER NOT NULL,
    node_id TEXT NOT NULL,
    session_id INTEGER NOT NULL
);

-- A stranger chat: its two people in seat order, the interests they share (one per line), when
-- each left, and whether it was reported (then it is kept for moderators).
CREATE TABLE stranger_chats (
    room_id INTEGER PRIMARY KEY,
    user_a INTEGER NOT NULL,
    user_b INTEGER NOT NULL,
    shared TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    left_a INTEGER,
    left_b INTEGER,
    reported_at INTEGER
);
CREATE INDEX stranger_chats_open ON stranger_chats (created_at) WHERE reported_at IS NULL;

-- The chat each user is in: the primary key makes "at most one stranger chat" hold whatever
-- pairs a pool (or two, during a change of owner) makes.
CREATE TABLE stranger_seats (
    user_id INTEGER PRIMARY KEY,
    room_id INTEGER NOT NULL
);

-- Pairs the pool does not make until `expires_at`: people who just talked, or reported each other.
-- One row per direction, so each user's rows are theirs.
CREATE TABLE stranger_avoid (
    user_id INTEGER NOT NULL,
    other_id INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, other_id)
);
