-- Attempt counters and rate limits that every node shares: a request reserves its attempt here
-- with one conditional upsert before any password or code is compared (`store::limits`).
CREATE TABLE auth_limits (
    key TEXT PRIMARY KEY,
    hits INTEGER NOT NULL,
    -- Backoff keys: the time of the last failure. Rate keys: the start of the window.
    since INTEGER NOT NULL,
    blocked_until INTEGER NOT NULL DEFAULT 0
);

-- Several sign-in codes may be pending for one address (a new request no longer replaces the
-- code the owner is typing); each dies after its own number of wrong guesses.
DROP TABLE email_codes;
CREATE TABLE email_codes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE INDEX email_codes_email ON email_codes(email);

-- `rooms.name_lower` is the room's uniqueness key: the lowercase name of a public room, and
-- `\x01<owner id>\x01<lowercase name>` for a private one, so a private name is unique only among
-- its owner's private rooms and a taken name never reveals someone else's private room.
UPDATE rooms SET name_lower = char(1) || COALESCE(owner_id, 0) || char(1) || name_lower WHERE visibility = 'private';
