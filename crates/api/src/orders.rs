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
    /// `placed` or `cancelled`.
    pub status: OrderStatus,
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

/// The state of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    /// Placed; may still be cancelled.
    Placed,
    /// Cancelled.
    Cancelled,
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
        let json = serde_json::to_value([OrderStatus::Placed, OrderStatus::Cancelled]);
        assert_eq!(
            json.expect("json"),
            serde_json::json!(["placed", "cancelled"])
        );
    }
}
