//! The cart service: one cart per user, priced by the catalog at read time.
//!
//! | module | owns |
//! | --- | --- |
//! | [`config`] | [`Settings`] and their defaults (port 8083, `./data/cart.db`) |
//! | [`app`] | [`Cart`] on the shared lifecycle; [`Application`] builds, registers and runs it |
//! | [`domain`] | parsed values: [`domain::ProductId`], [`domain::Quantity`], the priced [`domain::Cart`] |
//! | [`store`] | the `carts`, `cart_items` and `applied_orders` tables |
//! | [`catalog`] | the catalog client: names and prices, through discovery |
//! | [`routes`] | public `/api/cart` routes and the internal order-removal route |
//! | [`error`] | the service's [`Error`] and its problem+json mapping |

pub mod app;
pub mod catalog;
pub mod config;
pub mod domain;
pub mod error;
pub mod routes;
pub mod store;

pub use app::Cart;
pub use config::Settings;
pub use error::{Error, Result};

/// A cart service that is bound, registered and ready to run.
pub type Application = shop_runtime::Application<Cart>;
