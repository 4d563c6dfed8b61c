-- The product catalog. Portable SQL: runs unchanged on SQLite and PostgreSQL.
-- Ids are UUID text in canonical lower-case form (the CHECK keeps other
-- spellings out), so text order is id order and the list pages by `id`.
-- Money is integer minor units plus an ISO 4217 code, never a float.
CREATE TABLE products (
    id          TEXT PRIMARY KEY CHECK (length(id) = 36 AND id = lower(id)),
    sku         TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    price_cents BIGINT NOT NULL CHECK (price_cents >= 0),
    currency    TEXT NOT NULL CHECK (length(currency) = 3 AND currency = upper(currency)),
    image       TEXT
);

CREATE UNIQUE INDEX products_sku_key ON products (sku);
