-- Accounts whose open sockets every node must close (written by `confab admin`, polled by nodes).
CREATE TABLE revocations (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL,
    at BIGINT NOT NULL,
    reason TEXT NOT NULL,
    reconnect BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX revocations_at ON revocations(at);
