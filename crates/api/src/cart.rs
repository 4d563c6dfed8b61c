//! `/api/cart` and `/api/cart/items/{product_id}`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ProductId;

/// Fewest items of one product in a cart line.
pub const MIN_QUANTITY: i64 = 1;
/// Most items of one product in a cart line.
pub const MAX_QUANTITY: i64 = 99;

/// The caller's cart, priced by the catalog now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Cart {
    /// The lines, in product id order.
    pub items: Vec<CartItem>,
    /// The sum of the line totals in minor units.
    pub total_cents: i64,
    /// ISO 4217 code of every price in the cart.
    #[schema(example = "EUR", pattern = "^[A-Z]{3}$")]
    pub currency: String,
    /// Increases on every change to the cart's items.
    pub version: i64,
}

/// One priced line of a cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CartItem {
    /// The product.
    pub product_id: ProductId,
    /// Its name, from the catalog.
    pub name: String,
    /// Its price in minor units, from the catalog (never from the client).
    pub unit_price_cents: i64,
    /// How many, 1–99.
    #[schema(minimum = 1, maximum = 99)]
    pub quantity: i64,
    /// `unit_price_cents × quantity`.
    pub line_total_cents: i64,
}

/// The body of `PUT /api/cart/items/{product_id}`. Anything else the client
/// sends (a price, a name) is ignored: those come from the catalog.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct SetQuantity {
    /// How many, 1–99. Required; read as `Option` so that a missing one is
    /// reported by name (422). `2.0` is the integer 2, as in JSON Schema.
    #[schema(value_type = i64, required = true, minimum = 1, maximum = 99)]
    #[serde(
        default,
        deserialize_with = "crate::integer::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub quantity: Option<i64>,
}

#[cfg(test)]
mod tests {
    use utoipa::PartialSchema;

    use super::*;

    #[test]
    fn the_schema_states_the_bounds_the_service_enforces() {
        for schema in [SetQuantity::schema(), CartItem::schema()] {
            let schema = serde_json::to_value(schema).expect("schema");
            let quantity = &schema["properties"]["quantity"];
            assert_eq!(quantity["type"], "integer");
            assert_eq!(quantity["minimum"], MIN_QUANTITY);
            assert_eq!(quantity["maximum"], MAX_QUANTITY);
        }
    }

    #[test]
    fn quantities_read_as_json_schema_integers() {
        let body: SetQuantity = serde_json::from_str(r#"{"quantity": 3.0}"#).expect("reads");
        assert_eq!(body.quantity, Some(3));
        let body: SetQuantity = serde_json::from_str("{}").expect("reads");
        assert_eq!(body.quantity, None);
    }
}
