-- Accounts whose open sockets every node must close (written by `confab admin`, polled by nodes).
CREATE TABLE revocations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL,
    at INTEGER NOT NULL,
    reason TEXT NOT NULL,
    reconnect INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX revocations_at ON revocations(at);
