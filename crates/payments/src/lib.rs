//! The payments service: one payment per order, authorized, captured,
//! voided or refunded by a built-in fake provider that answers by test
//! token (the wire contract is [`shop_api::payments`]). Every route is
//! internal — orders calls it during checkout and cancellation, behind the
//! service credential — and idempotent by order id.
//!
//! | module | owns |
//! | --- | --- |
//! | [`config`] | [`Settings`] and their defaults (port 8086, admin 9086, `./data/payments.db`) |
//! | [`app`] | [`Payments`] on the shared lifecycle; [`Application`] builds, registers and runs it |
//! | [`domain`] | parsed values: [`domain::Amount`], [`domain::Currency`], [`domain::PaymentToken`]; states and [`domain::Operation`]s |
//! | [`provider`] | the fake provider: what each test token decides |
//! | [`ledger`] | the rules: authorize once per order, one conditional change per transition |
//! | [`store`] | the `payments` table, the same queries on SQLite and PostgreSQL |
//! | [`metrics`] | `payments_operations_total` by operation and outcome |
//! | [`routes`] | the internal `/internal/payments/{order_id}` routes |
//! | [`error`] | the service's [`Error`] and its problem+json mapping |

pub mod app;
pub mod config;
pub mod domain;
pub mod error;
pub mod ledger;
pub mod metrics;
pub mod provider;
pub mod routes;
pub mod store;

pub use app::Payments;
pub use config::Settings;
pub use error::{Error, Result};

/// A payments service that is bound, registered and ready to run.
pub type Application = shop_runtime::Application<Payments>;
