-- Traces across time. Portable SQL (SQLite and PostgreSQL).
--
-- The W3C `traceparent` of the span that wrote the row: for an order, the
-- request that placed it; for an outbox row, the saga step that confirmed
-- its order. Whoever handles the row later — the saga's recovery worker
-- resuming the order, the outbox relay delivering the cart removal —
-- starts its span as a child of this one, so the work joins the order's
-- trace. NULL for rows written before traces, or outside a traced span.
ALTER TABLE orders ADD COLUMN traceparent TEXT;
ALTER TABLE outbox ADD COLUMN traceparent TEXT;
