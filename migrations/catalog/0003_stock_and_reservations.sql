-- Stock, and the reservations orders make against it during checkout.
-- Portable SQL: runs unchanged on SQLite and PostgreSQL.
--
-- `products.stock` is the number of units still available to order. The
-- CHECK keeps it from going below zero whatever the code does: a reservation
-- takes stock with a conditional UPDATE, and should that ever be bypassed the
-- database refuses the write. (SQLite accepts a CHECK on an added column and
-- tests it against existing rows; the default satisfies it.)
ALTER TABLE products ADD COLUMN stock BIGINT NOT NULL DEFAULT 0 CHECK (stock >= 0);

-- The demo catalog's stock. The descaling tablets are sold out, so the
-- README can show an order refused for want of stock.
UPDATE products SET stock = CASE id
    WHEN '0196a1c0-5e00-7000-8000-000000000001' THEN 120
    WHEN '0196a1c0-5e00-7000-8000-000000000002' THEN 35
    WHEN '0196a1c0-5e00-7000-8000-000000000003' THEN 25
    WHEN '0196a1c0-5e00-7000-8000-000000000004' THEN 80
    WHEN '0196a1c0-5e00-7000-8000-000000000005' THEN 500
    WHEN '0196a1c0-5e00-7000-8000-000000000006' THEN 60
    WHEN '0196a1c0-5e00-7000-8000-000000000007' THEN 75
    WHEN '0196a1c0-5e00-7000-8000-000000000008' THEN 40
    WHEN '0196a1c0-5e00-7000-8000-000000000009' THEN 200
    WHEN '0196a1c0-5e00-7000-8000-00000000000a' THEN 180
    WHEN '0196a1c0-5e00-7000-8000-00000000000b' THEN 90
    WHEN '0196a1c0-5e00-7000-8000-00000000000c' THEN 45
    WHEN '0196a1c0-5e00-7000-8000-00000000000d' THEN 150
    WHEN '0196a1c0-5e00-7000-8000-00000000000e' THEN 70
    WHEN '0196a1c0-5e00-7000-8000-00000000000f' THEN 0
    WHEN '0196a1c0-5e00-7000-8000-000000000010' THEN 300
    ELSE stock
END;

-- One row per order that asked for stock or released it: the primary key
-- makes a reservation idempotent by order id, and makes concurrent attempts
-- of one order record one outcome. `released` without lines is a tombstone:
-- the order was released before any reservation arrived, so a late one
-- reserves nothing.
CREATE TABLE reservations (
    order_id   TEXT PRIMARY KEY CHECK (length(order_id) = 36 AND order_id = lower(order_id)),
    state      TEXT NOT NULL CHECK (state IN ('reserved', 'rejected', 'released')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- The lines of a reservation, in the order's line order (`line_no`): what a
-- release gives back. Lines of a rejected reservation are kept too, with
-- `out_of_stock` = 1 on those that were short (or named no product), so a
-- repeat answers the same list; nothing of a rejected order was taken.
-- `product_id` has no foreign key: an unknown product is recorded as short.
CREATE TABLE reservation_lines (
    order_id     TEXT NOT NULL REFERENCES reservations (order_id),
    line_no      INTEGER NOT NULL,
    product_id   TEXT NOT NULL,
    quantity     BIGINT NOT NULL CHECK (quantity >= 1),
    out_of_stock INTEGER NOT NULL CHECK (out_of_stock IN (0, 1)),
    PRIMARY KEY (order_id, line_no)
);

CREATE UNIQUE INDEX reservation_lines_order_product ON reservation_lines (order_id, product_id);
