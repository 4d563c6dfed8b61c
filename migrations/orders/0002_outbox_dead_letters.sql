-- Dead letters and purging of the outbox. Portable SQL (SQLite and
-- PostgreSQL).
--
-- `dead_at` is set when a row can never be delivered: cart refused it (a
-- 4xx other than 408/429), its transient failures reached
-- `relay.max_attempts`, or it grew older than the relay delivers. A dead
-- row is never claimed again and never purged: it waits for a human
-- (`last_error` holds the cause).
ALTER TABLE outbox ADD COLUMN dead_at TEXT;

-- What the relay claims: neither delivered nor dead.
DROP INDEX outbox_pending;
CREATE INDEX outbox_pending ON outbox (next_attempt_at)
    WHERE delivered_at IS NULL AND dead_at IS NULL;

-- Delivered rows, oldest first: what the purge deletes once past
-- `outbox.retention_secs`.
CREATE INDEX outbox_delivered ON outbox (delivered_at) WHERE delivered_at IS NOT NULL;

-- Dead rows: counted for the `outbox_dead_letter_rows` gauge.
CREATE INDEX outbox_dead ON outbox (dead_at) WHERE dead_at IS NOT NULL;
