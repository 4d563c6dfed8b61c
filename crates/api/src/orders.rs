//! `/api/orders`, `/api/orders/{id}` and `/api/orders/{id}/cancel`.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{OrderId, ProductId, UserId};

/// Most orders per page.
pub const MAX_LIMIT: i32 = 100;
/// What a page cursor looks like (opaque to clients).
pub const CURSOR_PATTERN: &str = "^o1\\.[0-9A-Fa-f]{32}$";
/// What an `Idempotency-Key` looks like: 1–128 printable ASCII characters,
/// not starting or ending with a space (HTTP trims those).
pub const IDEMPOTENCY_KEY_PATTERN: &str = "^[!-~]([ -~]{0,126}[!-~])?$";

/// An order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Order {
    /// The order id.
    pub id: OrderId,
    /// The owner.
    pub user_id: UserId,
    /// Where the order is in checkout ([`OrderStatus`]).
    pub status: OrderStatus,
    /// Why the order was rejected; only on `rejected` orders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection: Option<Rejection>,
    /// What was ordered, priced when the order was placed.
    pub lines: Vec<OrderLine>,
    /// Sum of the line totals.
    pub total_cents: i64,
    /// ISO 4217 code.
    #[schema(example = "EUR", pattern = "^[A-Z]{3}$")]
    pub currency: String,
    /// When the order was placed (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When the order last changed (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// The state of an order. `pending` moves to `confirmed` or `rejected`;
/// `confirmed` may move to `cancelling` and then `cancelled`. No other
/// change happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    /// Checkout is under way: payment and stock are being settled. Poll the
    /// order until it is settled.
    Pending,
    /// Stock is reserved and the payment captured.
    Confirmed,
    /// Not accepted ([`Rejection`] says why); no stock is held and no money
    /// taken.
    Rejected,
    /// Cancelled by its owner; the refund and the return of the stock are
    /// under way.
    Cancelling,
    /// Cancelled: the payment is refunded and the stock returned.
    Cancelled,
}

impl OrderStatus {
    /// Every status, in the order of the enum.
    pub const ALL: [Self; 5] = [
        Self::Pending,
        Self::Confirmed,
        Self::Rejected,
        Self::Cancelling,
        Self::Cancelled,
    ];

    /// The lower-case word (as on the wire and in the store).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Rejected => "rejected",
            Self::Cancelling => "cancelling",
            Self::Cancelled => "cancelled",
        }
    }

    /// The status named `word` ([`OrderStatus::as_str`]).
    pub fn from_word(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == word)
    }

    /// Whether checkout or cancellation is still under way.
    pub fn is_settled(self) -> bool {
        !matches!(self, Self::Pending | Self::Cancelling)
    }
}

/// Why an order was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Rejection {
    /// The reason.
    pub reason: RejectionReason,
    /// For `out_of_stock`: the products there were too few of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub out_of_stock: Vec<ProductId>,
    /// For `payment_declined`: the provider's reason (`card_declined`,
    /// `insufficient_funds`, `invalid_payment_token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decline_reason: Option<String>,
}

/// The reason an order was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RejectionReason {
    /// Too few of some product in stock.
    OutOfStock,
    /// The payment provider declined the payment.
    PaymentDeclined,
    /// The payment provider kept failing; nothing was charged.
    PaymentFailed,
}

impl RejectionReason {
    /// Every reason.
    pub const ALL: [Self; 3] = [Self::OutOfStock, Self::PaymentDeclined, Self::PaymentFailed];

    /// The snake-case word (as on the wire and in the store).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OutOfStock => "out_of_stock",
            Self::PaymentDeclined => "payment_declined",
            Self::PaymentFailed => "payment_failed",
        }
    }

    /// The reason named `word`.
    pub fn from_word(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|reason| reason.as_str() == word)
    }
}

/// The body of `POST /api/orders`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct PlaceOrder {
    /// How the order is paid: a payment token of the provider (the
    /// built-in test provider knows `tok_visa`, `tok_declined`,
    /// `tok_insufficient_funds`, `tok_provider_error` and `tok_slow`).
    /// Never a card number. Required; read as `Option` so that a missing
    /// one is reported by name (422).
    #[schema(value_type = String, required = true, pattern = "^tok_[a-z_]{1,60}$", example = "tok_visa")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_token: Option<String>,
}

/// An order line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderLine {
    /// The product.
    pub product_id: ProductId,
    /// Its name when ordered.
    pub name: String,
    /// Its price when ordered.
    pub unit_price_cents: i64,
    /// How many.
    #[schema(minimum = 1)]
    pub quantity: i64,
    /// `unit_price_cents × quantity`.
    pub line_total_cents: i64,
}

/// One page of the caller's orders, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderPage {
    /// The orders of this page.
    pub items: Vec<Order>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(pattern = "^o1\\.[0-9A-Fa-f]{32}$")]
    pub next_cursor: Option<String>,
}

/// The query of `GET /api/orders`; values stay text so a bad one is a 422
/// naming it, and an unknown parameter is a 400.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrderQuery {
    /// Page size, 1–100 (default 20).
    #[param(value_type = Option<i32>, minimum = 1, maximum = 100)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<String>, pattern = "^o1\\.[0-9A-Fa-f]{32}$")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use utoipa::{IntoParams, PartialSchema};

    use super::*;

    #[test]
    fn the_schema_states_the_bounds_the_gateway_enforces() {
        let params = serde_json::to_value(OrderQuery::into_params(|| None)).expect("params");
        assert_eq!(params[0]["name"], "limit");
        assert_eq!(params[0]["schema"]["maximum"], MAX_LIMIT);
        assert_eq!(params[1]["schema"]["pattern"], CURSOR_PATTERN);
        let page = serde_json::to_value(OrderPage::schema()).expect("schema");
        assert!(
            page["properties"]["next_cursor"].to_string().contains("o1"),
            "{page}"
        );
    }

    #[test]
    fn statuses_are_lower_case_words() {
        let json = serde_json::to_value(OrderStatus::ALL).expect("json");
        let words: Vec<&str> = OrderStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(json, serde_json::json!(words));
        for status in OrderStatus::ALL {
            assert_eq!(OrderStatus::from_word(status.as_str()), Some(status));
        }
        for reason in RejectionReason::ALL {
            let json = serde_json::to_value(reason).expect("json");
            assert_eq!(json, reason.as_str());
            assert_eq!(RejectionReason::from_word(reason.as_str()), Some(reason));
        }
    }

    #[test]
    fn the_payment_token_pattern_is_the_one_payments_enforces() {
        let schema = serde_json::to_value(PlaceOrder::schema()).expect("schema");
        assert_eq!(
            schema["properties"]["payment_token"]["pattern"],
            crate::payments::TOKEN_PATTERN
        );
    }
}
