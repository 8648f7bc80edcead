-- Who was mentioned where: one row per mentioned user and message, written in the transaction
-- that commits the message (a per-user table, keyed by user first). The room list counts a
-- user's mentions after their read cursor from it; a delete of the message removes its rows.
CREATE TABLE mentions (
    user_id INTEGER NOT NULL,
    room_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (user_id, room_id, seq)
);
CREATE INDEX mentions_room ON mentions (room_id, seq);
