-- The purge of `applied_orders` deletes the oldest rows first, once past
-- `applied_orders.retention_secs` (see `CartStore::purge_applied_orders`
-- for why a row may go then). Portable SQL (SQLite and PostgreSQL).
CREATE INDEX applied_orders_applied_at ON applied_orders (applied_at);
