-- Attempt counters and rate limits that every node shares: a request reserves its attempt here
-- with one conditional upsert before any password or code is compared (`store::limits`).
CREATE TABLE auth_limits (
    key TEXT PRIMARY KEY,
    hits BIGINT NOT NULL,
    -- Backoff keys: the time of the last failure. Rate keys: the start of the window.
    since BIGINT NOT NULL,
    blocked_until BIGINT NOT NULL DEFAULT 0
);

-- Several sign-in codes may be pending for one address (a new request no longer replaces the
-- code the owner is typing); each dies after its own number of wrong guesses.
DROP TABLE email_codes;
CREATE TABLE email_codes (
    id BIGSERIAL PRIMARY KEY,
    email TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE INDEX email_codes_email ON email_codes(email);

-- `rooms.name_lower` is the room's uniqueness key: the lowercase name of a public room, and
-- `\x01<owner id>\x01<lowercase name>` for a private one, so a private name is unique only among
-- its owner's private rooms and a taken name never reveals someone else's private room.
UPDATE rooms SET name_lower = chr(1) || COALESCE(owner_id, 0)::text || chr(1) || name_lower WHERE visibility = 'private';
