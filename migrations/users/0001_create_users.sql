-- Users of the shop. Portable SQL: runs unchanged on SQLite and PostgreSQL.
-- Ids are UUID text, timestamps RFC 3339 UTC text (fixed width, so text order
-- is time order). Uniqueness is case-insensitive: `username` is stored in
-- lower case and `email_key` is the lower-cased email.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL,
    email         TEXT NOT NULL,
    email_key     TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL
);

CREATE UNIQUE INDEX users_username_key ON users (username);
CREATE UNIQUE INDEX users_email_key ON users (email_key);
