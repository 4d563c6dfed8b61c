//! The orders service (gRPC): places orders from the caller's cart exactly
//! once per idempotency key, lists and cancels them, and clears ordered
//! lines from the cart through a transactional outbox.
//!
//! | module | owns |
//! | --- | --- |
//! | [`config`] | [`Settings`] and their defaults (gRPC 50051, admin 8084, `./data/orders.db`) |
//! | [`app`] | [`Application`]: build from settings, register, run gRPC + admin + relay until stopped |
//! | [`grpc`] | `ferroshop.orders.v1.OrderService`: authentication, lookups, cancellation; translates placement |
//! | [`placement`] | placing an order exactly once per key: cart read, order + outbox row in one transaction |
//! | [`domain`] | parsed values: [`domain::IdempotencyKey`], [`domain::OrderId`], paging; the [`domain::Order`] |
//! | [`store`] | the `orders`, `order_lines` and `outbox` tables |
//! | [`cart`] | the cart client: the caller's cart, and order removals on cart's internal route |
//! | [`relay`] | the outbox relay: leased claims, delivery, backoff, dead letters |
//! | [`purge`] | the outbox purge: delivered rows deleted after their retention |
//! | [`metrics`] | the outbox's and the saga backlog's metric names; the outbox's handles |
//! | [`backlog`] | the sampler of the saga and outbox backlog gauges (pending, oldest age) |
//! | [`grpc_metrics`] | the gRPC server's RED metrics: its methods |
//! | [`error`] | the service's [`Error`] and its gRPC status mapping |

pub mod app;
pub mod backlog;
pub mod cart;
pub mod config;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod grpc_metrics;
pub mod machine;
pub mod metrics;
pub mod participants;
pub mod placement;
pub mod purge;
pub mod relay;
pub mod saga;
pub mod store;

pub use app::Orders;
pub use config::Settings;
pub use error::{Error, Result};

/// An orders service that is bound, registered and ready to run.
pub type Application = shop_runtime::Application<Orders>;
