-- Carts: one per user. Portable SQL (SQLite and PostgreSQL).
-- `carts.version` increases on every change to a cart's items. Prices and
-- names are not stored: they come from the catalog at read time.
CREATE TABLE carts (
    user_id    TEXT PRIMARY KEY,
    version    BIGINT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE cart_items (
    user_id    TEXT NOT NULL,
    product_id TEXT NOT NULL,
    quantity   INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 99),
    updated_at TEXT NOT NULL,
    PRIMARY KEY (user_id, product_id)
);

-- Orders whose lines were already removed from a cart: makes the removal
-- idempotent by order id (a repeat inserts nothing and changes nothing).
CREATE TABLE applied_orders (
    order_id   TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    applied_at TEXT NOT NULL
);
