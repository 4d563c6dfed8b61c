-- The checkout saga. Portable SQL (SQLite and PostgreSQL).
--
-- An order is `pending` while checkout runs (authorize the payment, reserve
-- the stock, capture the payment; on a failure void the payment and release
-- the stock), then `confirmed` or `rejected`; a confirmed order may be
-- cancelled (`cancelling` while the refund and the restock run, then
-- `cancelled`). `placed`, the one state before the saga, is `confirmed`:
-- those orders were accepted without stock or payment, and nothing is
-- owed on them.
--
-- The status column is replaced rather than altered, because neither
-- database can change a CHECK in place portably: a new column with the new
-- CHECK, filled from the old one, which is then dropped (its column CHECK
-- goes with it) and the new one renamed.
ALTER TABLE orders ADD COLUMN state TEXT NOT NULL DEFAULT 'confirmed'
    CHECK (state IN ('pending', 'confirmed', 'rejected', 'cancelling', 'cancelled'));
UPDATE orders SET state = 'cancelled' WHERE status = 'cancelled';
ALTER TABLE orders DROP COLUMN status;
ALTER TABLE orders RENAME COLUMN state TO status;

-- The step the saga runs next, written before it is attempted (NULL once
-- the order is settled): authorize, reserve, capture, void, release,
-- refund. Every step is an idempotent call by order id, so whoever resumes
-- the order after a crash simply runs it again.
ALTER TABLE orders ADD COLUMN saga_step TEXT;
-- Failed attempts of the current step (reset when the step changes).
ALTER TABLE orders ADD COLUMN saga_attempts INTEGER NOT NULL DEFAULT 0;
-- When the recovery worker may take the saga over: the lease of whoever
-- drives it now (renewed at every step), or the time of its next retry.
ALTER TABLE orders ADD COLUMN saga_due_at TEXT;
-- The payment token the order is paid with (a provider token, never a
-- card number).
ALTER TABLE orders ADD COLUMN payment_token TEXT;
-- The version of the cart the order was made from: the cart removal
-- leaves alone any line changed after it.
ALTER TABLE orders ADD COLUMN cart_version BIGINT;
-- Why a rejected order was rejected (out_of_stock, payment_declined,
-- payment_failed), set when compensation starts; the products that were
-- short (a JSON array of ids) and the provider's decline reason.
ALTER TABLE orders ADD COLUMN rejection_reason TEXT;
ALTER TABLE orders ADD COLUMN out_of_stock TEXT;
ALTER TABLE orders ADD COLUMN decline_reason TEXT;

-- What the recovery worker claims: orders with a step to run, by due time.
CREATE INDEX orders_saga_due ON orders (saga_due_at) WHERE saga_step IS NOT NULL;
