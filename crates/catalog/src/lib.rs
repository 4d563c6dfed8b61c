//! The catalog service: the product catalog that the cart prices from, and
//! its stock, which orders reserve at checkout (never below zero).
//!
//! | module | owns |
//! | --- | --- |
//! | [`config`] | [`Settings`] and their defaults (port 8082, `./data/catalog.db`) |
//! | [`app`] | the service on the shared lifecycle ([`shop_runtime`]); [`Application`] builds, registers and runs it |
//! | [`domain`] | [`domain::Product`] and the parsed request values: [`domain::ProductId`], [`domain::PageLimit`], [`domain::Cursor`], [`domain::ProductIds`], [`domain::ReservationLines`], [`domain::Stock`] |
//! | [`store`] | reads of the `products` table and its seed, the same queries on SQLite and PostgreSQL |
//! | [`stock`] | stock and its reservations: reserve all-or-none and release, idempotent by order id |
//! | [`metrics`] | counters of reservations and releases by outcome |
//! | [`routes`] | the HTTP handlers (`GET /api/products`, `GET /api/products/{id}`, and behind the service credential `/internal/reservations/…`, `/internal/products/{id}/stock`) |
//! | [`error`] | the service's [`Error`] and its problem+json mapping |

pub mod app;
pub mod config;
pub mod domain;
pub mod error;
pub mod metrics;
pub mod routes;
pub mod stock;
pub mod store;

pub use app::Catalog;
pub use config::Settings;
pub use error::{Error, Result};

/// A catalog service that is bound, registered and ready to run.
pub type Application = shop_runtime::Application<Catalog>;
