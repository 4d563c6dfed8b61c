//! Stock reservations: the catalog's internal routes orders calls during
//! checkout (behind the service credential, never through the gateway).
//!
//! - `PUT /internal/reservations/{order_id}` with a [`Reservation`]:
//!   reserves every line or none, idempotently by order id (a repeat
//!   answers the recorded outcome and changes nothing);
//! - `POST /internal/reservations/{order_id}/release`: gives reserved
//!   stock back; releasing an order never reserved records the release,
//!   so a reservation that arrives late reserves nothing;
//! - `PUT /internal/products/{product_id}/stock` with a [`SetStock`]:
//!   sets a product's available stock (restocking, tests, demos).
//!
//! Each answers a [`ReservationOutcome`] (or the product).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{OrderId, ProductId};

/// The lines an order asks stock for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Reservation {
    /// One entry per product (a product named twice is refused).
    pub lines: Vec<ReservationLine>,
}

/// How many of one product an order takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReservationLine {
    /// The product.
    pub product_id: ProductId,
    /// How many, at least 1.
    pub quantity: i64,
}

/// Where an order's reservation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReservationState {
    /// Every line's stock is held for the order.
    Reserved,
    /// Some line had too little stock (or no such product): nothing is
    /// held, and asking again answers the same.
    Rejected,
    /// Released: what was held is back in stock (or nothing was ever held).
    Released,
}

/// The answer of a reservation or a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReservationOutcome {
    /// The order.
    pub order_id: OrderId,
    /// Where its reservation stands now.
    pub state: ReservationState,
    /// When rejected: the products that had too little stock, in the
    /// order's line order; empty otherwise.
    #[serde(default)]
    pub out_of_stock: Vec<ProductId>,
}

/// The body of `PUT /internal/products/{product_id}/stock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SetStock {
    /// Units available to order, at least 0.
    pub stock: i64,
}
