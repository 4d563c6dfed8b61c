//! The catalog service: the read-only product catalog that the cart prices
//! from.
//!
//! | module | owns |
//! | --- | --- |
//! | [`config`] | [`Settings`] and their defaults (port 8082, `./data/catalog.db`) |
//! | [`app`] | the service on the shared lifecycle ([`shop_runtime`]); [`Application`] builds, registers and runs it |
//! | [`domain`] | [`domain::Product`] and the parsed request values: [`domain::ProductId`], [`domain::PageLimit`], [`domain::Cursor`], [`domain::ProductIds`] |
//! | [`store`] | the `products` table and its seed, the same queries on SQLite and PostgreSQL |
//! | [`routes`] | the HTTP handlers (`GET /api/products`, `GET /api/products/{id}`) |
//! | [`error`] | the service's [`Error`] and its problem+json mapping |

pub mod app;
pub mod config;
pub mod domain;
pub mod error;
pub mod routes;
pub mod store;

pub use app::Catalog;
pub use config::Settings;
pub use error::{Error, Result};

/// A catalog service that is bound, registered and ready to run.
pub type Application = shop_runtime::Application<Catalog>;
