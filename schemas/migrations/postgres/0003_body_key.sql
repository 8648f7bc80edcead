-- The id of the key a message body is encrypted with (NULL: stored in clear).
ALTER TABLE messages ADD COLUMN body_key TEXT;
