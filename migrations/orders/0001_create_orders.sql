-- Orders, their lines and the outbox. Portable SQL (SQLite and PostgreSQL);
-- ids are UUID text (v7, so text order is creation order), timestamps are
-- fixed-width RFC 3339 UTC text (so text order is time order).
CREATE TABLE orders (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('placed', 'cancelled')),
    total_cents     BIGINT NOT NULL,
    currency        TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

-- Exactly one order per (user, key): a concurrent repeat fails on this index
-- and returns the winner's order instead.
CREATE UNIQUE INDEX orders_user_idempotency_key ON orders (user_id, idempotency_key);
-- A user's orders, newest first (keyset paging on id).
CREATE INDEX orders_user_id_id ON orders (user_id, id);

CREATE TABLE order_lines (
    order_id         TEXT NOT NULL REFERENCES orders (id),
    line_no          INTEGER NOT NULL,
    product_id       TEXT NOT NULL,
    name             TEXT NOT NULL,
    unit_price_cents BIGINT NOT NULL,
    quantity         BIGINT NOT NULL,
    line_total_cents BIGINT NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

-- Messages to other services, written in the same transaction as the order
-- and delivered at least once by the relay. A row is claimed by one relay
-- (`claimed_by` until `lease_until`); a failed delivery is retried at
-- `next_attempt_at` with exponential backoff.
CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    order_id        TEXT NOT NULL,
    payload         TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    claimed_by      TEXT,
    lease_until     TEXT,
    last_error      TEXT,
    delivered_at    TEXT,
    created_at      TEXT NOT NULL
);

CREATE INDEX outbox_pending ON outbox (next_attempt_at) WHERE delivered_at IS NULL;
