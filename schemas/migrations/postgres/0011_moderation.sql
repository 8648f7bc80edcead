-- Site-wide moderation: bans and mutes (one row per user; lifting one deletes it), broadcast
-- announcements with per-user dismissals, and indexes for the audit log's filters.
-- Times are milliseconds since the Unix epoch.
CREATE TABLE user_bans (
    user_id BIGINT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    reason TEXT NOT NULL DEFAULT '',
    by_id BIGINT,
    created_at BIGINT NOT NULL,
    -- NULL: until lifted.
    expires_at BIGINT
);

CREATE TABLE user_mutes (
    user_id BIGINT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    reason TEXT NOT NULL DEFAULT '',
    by_id BIGINT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE broadcasts (
    id BIGSERIAL PRIMARY KEY,
    body TEXT NOT NULL,
    by_id BIGINT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX broadcasts_expires ON broadcasts(expires_at);

CREATE TABLE broadcast_dismissals (
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    broadcast_id BIGINT NOT NULL REFERENCES broadcasts(id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, broadcast_id)
);

CREATE INDEX audit_log_actor ON audit_log(actor_id, id);
CREATE INDEX audit_log_target ON audit_log(target_user_id, id);
CREATE INDEX messages_created ON messages(created_at);
