//! `bench-growth`: what the index-backed paths cost as the data grows.
//!
//! - [`rows`]: the seeded rows, each a pure function of its number, so a
//!   seed can stop at any size and grow later, and `measure` can name rows
//!   that exist at every size without reading the database.
//! - [`seed`]: brings the catalog, orders and users databases (SQLite or
//!   PostgreSQL, schemas made by the services' own migrations) up to a size,
//!   adding only what is missing, in large multi-row transactions.
//! - [`measure`]: p50/p99 of each path through a running gateway.

pub mod measure;
pub mod rows;
pub mod seed;
