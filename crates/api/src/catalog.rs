//! `/api/products` and `/api/products/{id}`.

use serde::{Deserialize, Serialize};
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn, ParameterStyle};
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Type};
use utoipa::openapi::{Required, Schema};
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
    /// Units available to order now: what is in stock less what orders
    /// hold reserved. Never negative; 0 means out of stock (an order for
    /// it is rejected). A snapshot, not a promise: another order may take
    /// the last units first.
    #[schema(minimum = 0, example = 25)]
    pub stock: i64,
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

/// The query of `GET /api/products`: a page of the list (`limit`,
/// `cursor`) or a batch lookup (`ids`), never both — a limit or cursor next
/// to ids is a client bug, not something to ignore. Values stay text here
/// so that a bad one is reported per parameter (422) like any other invalid
/// value; an unknown parameter is a 400, so a misspelt `ids` cannot
/// silently return the first page instead.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductQuery {
    /// Page size, 1–100 (default 20).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// 1–100 comma-separated product ids; unknown ones are left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ids: Option<String>,
}

/// What `ids` looks like: 1 to [`MAX_IDS`] canonical UUIDs, comma-separated.
pub fn ids_pattern() -> String {
    const UUID: &str =
        "[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}";
    format!("^{UUID}(,{UUID}){{0,{}}}$", MAX_IDS - 1)
}

/// One query parameter object (form style, exploded: each property is a
/// parameter of its own) that is either a page or a batch. Separate
/// parameters could not say that the two forms exclude each other.
impl IntoParams for ProductQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let text = |pattern: String| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(pattern))
        };
        let closed = |builder: ObjectBuilder| {
            builder
                .schema_type(Type::Object)
                .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)))
        };
        let page = closed(ObjectBuilder::new().title(Some("Page")))
            .description(Some("A page of the list, by id"))
            .property(
                "limit",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1))
                    .maximum(Some(MAX_LIMIT))
                    .description(Some("Page size, 1–100 (default 20)")),
            )
            .property(
                "cursor",
                text(CURSOR_PATTERN.to_owned())
                    .description(Some("`next_cursor` of the previous page")),
            );
        let batch = closed(ObjectBuilder::new().title(Some("Batch")))
            .description(Some(
                "The products with these ids (unknown ones are left out)",
            ))
            .property(
                "ids",
                text(ids_pattern()).description(Some("1–100 comma-separated product ids")),
            )
            .required("ids");
        let query = ParameterBuilder::new()
            .name("query")
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .style(Some(ParameterStyle::Form))
            .explode(Some(true))
            .description(Some(
                "Either a page of the list (`limit`, `cursor`) or a batch lookup (`ids`), \
                 never both",
            ))
            .schema(Some(OneOfBuilder::new().item(page).item(batch)));
        vec![query.build()]
    }
}

#[cfg(test)]
mod tests {
    use utoipa::PartialSchema;

    use super::*;

    #[test]
    fn the_query_is_a_page_or_a_batch_with_the_bounds_the_service_enforces() {
        let params = serde_json::to_value(ProductQuery::into_params(|| None)).expect("params");
        let query = &params[0];
        assert_eq!(
            (&query["in"], &query["style"], &query["explode"]),
            (&"query".into(), &"form".into(), &true.into())
        );
        let [page, batch] = [0, 1].map(|i| &query["schema"]["oneOf"][i]);
        assert_eq!(page["properties"]["limit"]["minimum"], 1);
        assert_eq!(page["properties"]["limit"]["maximum"], MAX_LIMIT);
        assert_eq!(page["properties"]["cursor"]["pattern"], CURSOR_PATTERN);
        assert_eq!(batch["required"], serde_json::json!(["ids"]));
        for form in [page, batch] {
            assert_eq!(form["additionalProperties"], false, "{form}");
        }
        let ids = batch["properties"]["ids"]["pattern"]
            .as_str()
            .expect("pattern");
        assert!(ids.ends_with(&format!("{{0,{}}}$", MAX_IDS - 1)), "{ids}");
        let page = serde_json::to_value(ProductPage::schema()).expect("schema");
        assert!(
            page["properties"]["next_cursor"]
                .to_string()
                .contains("[AQgw]"),
            "{page}"
        );
    }

    #[test]
    fn every_product_states_its_stock_which_is_never_negative() {
        let product = serde_json::to_value(Product::schema()).expect("schema");
        let stock = &product["properties"]["stock"];
        assert_eq!(stock["type"], "integer", "{product}");
        assert_eq!(stock["minimum"], 0, "{product}");
        let required = product["required"].as_array().expect("required");
        assert!(required.contains(&"stock".into()), "{product}");
    }
}
