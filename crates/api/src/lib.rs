//! The wire types of ferroshop's public HTTP API, defined once.
//!
//! The services serialize their answers and deserialize their requests with
//! these types, and the gateway's OpenAPI document (`/api/openapi.json`) is
//! generated from the very same types, so what is documented cannot drift
//! from what is served. Each schema states the real constraints (formats,
//! patterns, lengths, bounds); the services still parse every value into
//! their own domain types ("parse, don't validate"), and a test per module
//! checks that the numbers in the schema are the ones the services enforce.
//!
//! - [`ids`]: `UserId`, `ProductId`, `OrderId` — UUIDs, one newtype each;
//! - [`users`]: registration, login, the current user, the key set;
//! - [`catalog`]: products and their pages;
//! - [`cart`]: the priced cart and the quantity to set;
//! - [`orders`]: orders and their pages;
//! - [`stock`]: the catalog's internal stock reservations (orders → catalog);
//! - [`payments`]: the payments service's internal API (orders → payments);
//! - [`integer`]: integers that JSON writes as `71.0`;
//! - [`web`]: the storefront's paths (served by `web`, forwarded by the gateway).
//!
//! The problem body of every error is `shop_common::error::Problem`.

pub mod cart;
pub mod catalog;
pub mod ids;
pub mod integer;
pub mod orders;
pub mod payments;
pub mod stock;
pub mod users;
pub mod web;

pub use ids::{OrderId, ProductId, UserId};
