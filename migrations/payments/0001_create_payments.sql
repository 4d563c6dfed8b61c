-- Payments: at most one per order. Portable SQL (SQLite and PostgreSQL).
--
-- The primary key on `order_id` is what makes authorization idempotent: of
-- two concurrent first authorizations of one order only one row lands, and
-- the other answers it. Every change of state is one conditional UPDATE
-- (`WHERE order_id = $1 AND state = $2`), so two concurrent changes cannot
-- both apply. Neither the payment token nor anything about the card is
-- stored: only what the provider decided.
--
-- A void that arrives before any authorization records a `voided` row
-- with amount 0 and currency `XXX` (ISO 4217: no currency), so a late
-- authorization finds it and takes nothing.
CREATE TABLE payments (
    order_id       TEXT PRIMARY KEY CHECK (length(order_id) = 36 AND order_id = lower(order_id)),
    state          TEXT NOT NULL
                   CHECK (state IN ('authorized', 'declined', 'captured', 'voided', 'refunded')),
    amount_cents   BIGINT NOT NULL CHECK (amount_cents >= 0),
    currency       TEXT NOT NULL CHECK (length(currency) = 3 AND currency = upper(currency)),
    -- Why the provider declined; set exactly when the state is `declined`.
    decline_reason TEXT CHECK ((state = 'declined') = (decline_reason IS NOT NULL)),
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
