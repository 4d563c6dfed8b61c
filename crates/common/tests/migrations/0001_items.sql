-- A table for shop-common's own database tests.
CREATE TABLE items (
    id   TEXT PRIMARY KEY,
    name TEXT NOT NULL
);
CREATE UNIQUE INDEX items_name_key ON items (name);
