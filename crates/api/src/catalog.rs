//! `/api/products` and `/api/products/{id}`.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::ProductId;

/// The page size when the client names none.
pub const DEFAULT_LIMIT: u32 = 20;
/// The largest page a client may ask for.
pub const MAX_LIMIT: u32 = 100;
/// Most ids in one batch lookup.
pub const MAX_IDS: usize = 100;
/// What a page cursor looks like: base64url (no padding) of 16 bytes, so 22
/// characters whose last one carries 2 bits (its low 4 bits are zero).
pub const CURSOR_PATTERN: &str = "^[A-Za-z0-9_-]{21}[AQgw]$";

/// A product.
///
/// Money is integer minor units plus an ISO 4217 code, never a float.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Product {
    /// The stable product id.
    pub id: ProductId,
    /// The stock keeping unit, unique in the catalog.
    pub sku: String,
    /// The display name.
    pub name: String,
    /// A longer description, plain text.
    pub description: String,
    /// The unit price in minor units of `currency` (cents for EUR); never negative.
    #[schema(minimum = 0)]
    pub price_cents: i64,
    /// The ISO 4217 currency code of `price_cents`.
    #[schema(example = "EUR", pattern = "^[A-Z]{3}$")]
    pub currency: String,
    /// A path to the product image, relative to the shop's static files; may be absent.
    pub image: Option<String>,
}

/// One page of products, or the answer to a batch lookup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProductPage {
    /// The products of this page, in list order (by id).
    pub items: Vec<Product>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(pattern = "^[A-Za-z0-9_-]{21}[AQgw]$")]
    pub next_cursor: Option<String>,
}

/// The query of `GET /api/products`. Values stay text here so that a bad
/// one is reported per parameter (422) like any other invalid value; an
/// unknown parameter is a 400, so a misspelt `ids` cannot silently return
/// the first page instead.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProductQuery {
    /// Page size, 1–100; default 20 for the list, the whole batch with `ids`.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<String>, pattern = "^[A-Za-z0-9_-]{21}[AQgw]$")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Only these products (1–100 comma-separated ids; unknown ones are
    /// left out). `limit` and `cursor` page the batch like the list.
    #[param(value_type = Option<Vec<ProductId>>, style = Form, explode = false,
        min_items = 1, max_items = 100)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ids: Option<String>,
}

#[cfg(test)]
mod tests {
    use utoipa::{IntoParams, PartialSchema};

    use super::*;

    #[test]
    fn the_query_schema_states_the_bounds_the_service_enforces() {
        let params = serde_json::to_value(ProductQuery::into_params(|| None)).expect("params");
        let param = |name: &str| {
            params
                .as_array()
                .and_then(|all| all.iter().find(|p| p["name"] == name))
                .cloned()
                .unwrap_or_default()
        };
        assert_eq!(param("limit")["schema"]["minimum"], 1);
        assert_eq!(param("limit")["schema"]["maximum"], MAX_LIMIT);
        assert_eq!(param("cursor")["schema"]["pattern"], CURSOR_PATTERN);
        assert_eq!(param("ids")["schema"]["maxItems"], MAX_IDS);
        assert_eq!(
            param("ids")["schema"]["items"]["$ref"],
            "#/components/schemas/ProductId"
        );
        assert_eq!(param("ids")["explode"], false);
        let page = serde_json::to_value(ProductPage::schema()).expect("schema");
        assert!(
            page["properties"]["next_cursor"]
                .to_string()
                .contains("[AQgw]"),
            "{page}"
        );
    }
}
