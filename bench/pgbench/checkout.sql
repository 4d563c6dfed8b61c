-- The SQL of one checkout, for pgbench: one transaction of this script is
-- one iteration of bench-checkout (crates/bench/src/bin/bench-checkout.rs) —
-- `PUT /api/cart/items/{id}` (quantity 1), then `POST /api/orders` paid with
-- `tok_visa` through the whole saga — as the services send it to their
-- databases, statement by statement and in order: cart, orders, payments,
-- catalog, cart again (the relay's delivery) and orders' acknowledgement.
-- Every service's tables live in one database (`migrations/<service>/*.sql`
-- applied in order; no table name is shared). scripts/bench/limit.sh runs it:
--
--   pgbench -n -M prepared -f bench/pgbench/checkout.sql -c USERS -j 2 -T DURATION \
--       -D products=COUNT -D product_name=NAME -D price=CENTS -D currency=EUR
--
-- crates/shop/tests/checkout_sql.rs runs one real iteration, captures the
-- statements the services executed and fails when they differ from this
-- script's (whitespace and placeholders aside; BEGIN, which sqlx sends
-- without logging it, only checked to open each COMMIT's transaction).
-- Change the script with the stores.
--
-- Block markers `-- @<phase> <service>: …` are read by that test: `put` and
-- `order` are the two requests' statements, `background` is the batched work
-- done outside the request, `setup` is pgbench's own.
--
-- How it differs from the services, and why:
--  * Round trips: each statement below is one, as in sqlx (BEGIN too: sqlx
--    queues it and waits for its answer; pgbench -M prepared sends every
--    statement, BEGIN and COMMIT included, as Bind/Execute of a prepared
--    statement — sqlx sends BEGIN and COMMIT as simple queries, the rest as
--    prepared statements it parsed once per connection).
--  * Fresh values: the services make ids (UUID v7 text) and timestamps
--    (RFC 3339 text) in the process; pgbench's \set makes only numbers, so
--    the one `setup` query below makes them on the server: one extra, cheap
--    round trip per order that touches no table (the limit is lowered by
--    it, i.e. the ratio flattered by a few percent). The ids are 36-char
--    lowercase UUIDs whose first 48 bits are the time in ms, as v7's, so
--    inserts land at the right edge of the indexes as the services' do.
--  * NULL: pgbench cannot bind NULL (an empty variable is ''); the code binds
--    NULL for an order's rejection, out-of-stock list and decline reason,
--    for the confirmed order's step and due time, and for the payment's
--    decline reason; here they are ''. limit.sh makes the schema treat ''
--    as the code's NULL where it matters: the partial index on pending sagas
--    (so a confirmed order leaves it, as with NULL) and the payments check
--    on decline_reason.
--  * Users: pgbench client N is user `00000000-0000-7000-8000-<N, 12 digits>`,
--    whose cart row limit.sh creates, as the benchmark's warm-up leaves it.
--    Client N buys the (N mod :products)-th product in id order, as
--    bench-checkout's user N does (limit.sh gives every product stock enough
--    for any run, and passes the count); the line's name and price are one
--    product's for all (-D), which changes no statement's work.
--  * The cart version the order records, and the removal's snapshot, are
--    constants (1, and a snapshot every line is older than): the code
--    reads them back from the cart; the statements and rows touched are the
--    same.
--  * Caches: cart's catalog lookups (1 s cache, hit by all but one lookup a
--    second per cart under load) and the gateway's token keys are served from
--    memory, so no catalog or users statement is sent per order.
--  * The acknowledger marks several deliveries in one statement under load;
--    here it is one statement per order: an upper bound.

\set qty 1
\set line_no 0
\set zero 0
\set cart_version 1
\set snapshot 9223372036854775807
\set product_no :client_id % :products

-- @setup pgbench: fresh ids (UUID v7-like) and timestamps, the constant strings bound below
-- (pgbench reads every `:word` as a variable, even in a literal: no colon here is followed by
-- a letter or digit)
SELECT order_id, idem_key, outbox_id, now, lease, relay_lease, uid, product,
       '{"order_id":"' || order_id || '","cart_version":' || '1' || ',"lines":[{"product_id":"' || product
           || '","quantity":' || '1' || '}]}' AS payload,
       'pending' AS pending, 'confirmed' AS confirmed, 'authorize' AS authorize, 'reserve' AS reserve,
       'capture' AS capture, 'reserved' AS reserved, 'authorized' AS authorized, 'captured' AS captured,
       'cart_removal' AS kind, 'tok_visa' AS token, '' AS none,
       'orders-00000000-0000-7000-8000-000000000000' AS relay,
       '00-' || md5(order_id) || '-' || left(md5(outbox_id), 16) || '-01' AS traceparent
FROM (
    SELECT overlay(gen_random_uuid()::text PLACING ts FROM 1 FOR 13) AS order_id,
           overlay(gen_random_uuid()::text PLACING ts FROM 1 FOR 13) AS idem_key,
           overlay(gen_random_uuid()::text PLACING ts FROM 1 FOR 13) AS outbox_id,
           replace(to_char(at, 'YYYY-MM-DD"T"HH24#MI#SS.MS"Z"'), '#', ':') AS now,
           replace(to_char(at + interval '15 seconds', 'YYYY-MM-DD"T"HH24#MI#SS.MS"Z"'), '#', ':') AS lease,
           replace(to_char(at + interval '30 seconds', 'YYYY-MM-DD"T"HH24#MI#SS.MS"Z"'), '#', ':') AS relay_lease,
           '00000000-0000-7000-8000-' || lpad(CAST(:client_id AS text), 12, '0') AS uid,
           (SELECT id FROM products ORDER BY id OFFSET CAST(:product_no AS integer) LIMIT 1) AS product
    FROM (SELECT clock_timestamp() AT TIME ZONE 'UTC' AS at) AS t,
         LATERAL (SELECT substr(lpad(to_hex(floor(extract(epoch FROM t.at) * 1000)::bigint), 12, '0'), 1, 8)
                         || '-' || substr(lpad(to_hex(floor(extract(epoch FROM t.at) * 1000)::bigint), 12, '0'), 9, 4)
                         AS ts) AS v
) AS fresh
\gset

-- ======== PUT /api/cart/items/{id} ========

-- @put cart: the cart as it stands, to answer with (CartStore::get, crates/cart/src/store.rs)
SELECT version, NULL AS product_id, NULL AS quantity FROM carts WHERE user_id = :uid
UNION ALL
SELECT NULL, product_id, quantity FROM cart_items WHERE user_id = :uid;

-- @put cart: set the line's quantity, bump the cart's version (CartStore::set_quantity; the
-- line's stamp already is the new version, so no restamp)
BEGIN;
INSERT INTO cart_items (user_id, product_id, quantity, updated_at, set_version)
VALUES (:uid, :product, :qty, :now, COALESCE((SELECT version FROM carts WHERE user_id = :uid), 0) + 1)
ON CONFLICT (user_id, product_id) DO UPDATE
SET quantity = excluded.quantity, updated_at = excluded.updated_at,
    set_version = excluded.set_version
WHERE cart_items.quantity <> excluded.quantity
RETURNING set_version;
INSERT INTO carts (user_id, version, updated_at) VALUES (:uid, 1, :now)
ON CONFLICT (user_id) DO UPDATE SET version = carts.version + 1, updated_at = excluded.updated_at
RETURNING version;
COMMIT;

-- ======== POST /api/orders ========

-- @order orders: an earlier order with this idempotency key? (OrderStore::find_by_key, crates/orders/src/store.rs)
SELECT id, user_id, status, total_cents, currency, created_at, updated_at, rejection_reason, out_of_stock, decline_reason
FROM orders WHERE user_id = :uid AND idempotency_key = :idem_key;

-- @order cart: orders reads the buyer's cart (CartStore::get)
SELECT version, NULL AS product_id, NULL AS quantity FROM carts WHERE user_id = :uid
UNION ALL
SELECT NULL, product_id, quantity FROM cart_items WHERE user_id = :uid;

-- @order orders: the pending order and its line, its saga at `authorize` (OrderStore::insert)
BEGIN;
INSERT INTO orders (id, user_id, idempotency_key, status, total_cents, currency, created_at, updated_at,
                    saga_step, saga_attempts, saga_due_at, payment_token, cart_version, traceparent)
VALUES (:order_id, :uid, :idem_key, :pending, :price, :currency, :now, :now, :authorize, 0, :lease, :token, :cart_version, :traceparent);
INSERT INTO order_lines (order_id, line_no, product_id, name, unit_price_cents, quantity, line_total_cents)
VALUES (:order_id, :line_no, :product, :product_name, :price, :qty, :price);
COMMIT;

-- @order payments: authorize: a payment already? then record the provider's authorisation
-- (Ledger::authorize, crates/payments/src/ledger.rs; PaymentStore::get, PaymentStore::record)
SELECT order_id, state, amount_cents, currency, decline_reason, created_at, updated_at FROM payments WHERE order_id = :order_id;
INSERT INTO payments (order_id, state, amount_cents, currency, decline_reason, created_at, updated_at)
VALUES (:order_id, :authorized, :price, :currency, :none, :now, :now)
ON CONFLICT (order_id) DO NOTHING
RETURNING order_id, state, amount_cents, currency, decline_reason, created_at, updated_at;

-- @order orders: authorized: on to `reserve` (OrderStore::advance; one statement, no transaction)
UPDATE orders SET status = :pending, saga_step = :reserve, saga_attempts = 0, saga_due_at = :lease,
       rejection_reason = :none, out_of_stock = :none, decline_reason = :none, updated_at = :now
WHERE id = :order_id AND status = :pending AND COALESCE(saga_step, '') = :authorize;

-- @order catalog: reserve the stock: the reservation, the unit taken, the line recorded
-- (StockStore::reserve, crates/catalog/src/stock.rs)
BEGIN;
INSERT INTO reservations (order_id, state, created_at, updated_at)
VALUES (:order_id, :reserved, :now, :now) ON CONFLICT (order_id) DO NOTHING;
UPDATE products SET stock = stock - :qty WHERE id = :product AND stock >= :qty;
INSERT INTO reservation_lines (order_id, line_no, product_id, quantity, out_of_stock)
VALUES (:order_id, :line_no, :product, :qty, :zero);
COMMIT;

-- @order orders: reserved: on to `capture` (OrderStore::advance; one statement, no transaction)
UPDATE orders SET status = :pending, saga_step = :capture, saga_attempts = 0, saga_due_at = :lease,
       rejection_reason = :none, out_of_stock = :none, decline_reason = :none, updated_at = :now
WHERE id = :order_id AND status = :pending AND COALESCE(saga_step, '') = :reserve;

-- @order payments: capture (PaymentStore::apply)
UPDATE payments SET state = :captured, updated_at = :now
WHERE order_id = :order_id AND state = :authorized
RETURNING order_id, state, amount_cents, currency, decline_reason, created_at, updated_at;

-- @order orders: captured: confirmed, with the cart removal's outbox row, claimed by this
-- instance's relay (OrderStore::advance)
BEGIN;
UPDATE orders SET status = :confirmed, saga_step = :none, saga_attempts = 0, saga_due_at = :none,
       rejection_reason = :none, out_of_stock = :none, decline_reason = :none, updated_at = :now
WHERE id = :order_id AND status = :pending AND COALESCE(saga_step, '') = :capture;
INSERT INTO outbox (id, kind, user_id, order_id, payload, attempts, next_attempt_at, created_at, claimed_by, lease_until, traceparent)
VALUES (:outbox_id, :kind, :uid, :order_id, :payload, 0, :now, :now, :relay, :relay_lease, :traceparent);
COMMIT;

-- @order cart: the relay delivers the removal at once: the ordered line leaves the cart
-- (CartStore::remove_order_lines)
BEGIN;
INSERT INTO applied_orders (order_id, user_id, applied_at) VALUES (:order_id, :uid, :now)
ON CONFLICT (order_id) DO NOTHING;
DELETE FROM cart_items
WHERE user_id = :uid AND product_id = :product AND quantity <= :qty AND set_version <= :snapshot;
INSERT INTO carts (user_id, version, updated_at) VALUES (:uid, 1, :now)
ON CONFLICT (user_id) DO UPDATE SET version = carts.version + 1, updated_at = excluded.updated_at
RETURNING version;
COMMIT;

-- ======== after the answer ========

-- @background orders: the acknowledger marks the delivery (OrderStore::mark_delivered,
-- crates/orders/src/relay.rs Acknowledger: one statement for every delivery waiting, so one per
-- order here is an upper bound)
UPDATE outbox SET delivered_at = :now, claimed_by = NULL, lease_until = NULL, last_error = NULL
WHERE claimed_by = :relay AND delivered_at IS NULL AND id IN (:outbox_id)
RETURNING id;
