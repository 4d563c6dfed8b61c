-- The cart version at which each line was last set (written, subtracted,
-- re-added): a late order removal that names the cart version its order was
-- made from takes out only the lines whose `set_version` is at most that
-- version, and leaves alone a line the shopper changed after the snapshot
-- (see `CartStore::remove_order_lines`). Portable SQL (SQLite and PostgreSQL).
ALTER TABLE cart_items ADD COLUMN set_version BIGINT NOT NULL DEFAULT 0;

-- Existing lines get their cart's current version, not 0. When each was
-- last set was never recorded; their cart's current version is the only
-- bound known not to be too early. The removal relies on "set_version <=
-- snapshot means unchanged since the snapshot": 0 would make every existing
-- line look unchanged, so a removal in flight across this migration could
-- still cut a line the shopper set again after ordering (the defect this
-- column fixes). The current version errs the other way: such a removal may
-- leave in the cart a line that was in fact ordered, which the shopper sees
-- and can take out; a snapshot taken after this migration is never affected.
UPDATE cart_items SET set_version = COALESCE(
    (SELECT carts.version FROM carts WHERE carts.user_id = cart_items.user_id),
    0
);
