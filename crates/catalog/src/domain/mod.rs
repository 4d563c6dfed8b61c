//! Products and the parsed values of catalog requests. Handlers parse raw
//! query and path values into these types once at the edge; the store and
//! the rest of the service trust them.

mod cursor;
mod limit;
mod product_id;
mod product_ids;

pub use cursor::Cursor;
pub use limit::{DEFAULT_LIMIT, MAX_LIMIT, PageLimit};
pub use product_id::ProductId;
pub use product_ids::{MAX_IDS, ProductIds};

use serde::Serialize;

/// A product as the API shows it.
///
/// Money is integer minor units plus an ISO 4217 code, never a float.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    pub price_cents: i64,
    /// The ISO 4217 currency code of `price_cents`, e.g. `EUR`.
    pub currency: String,
    /// A path to the product image, relative to the shop's static files; may be absent.
    pub image: Option<String>,
}

/// One page of the product list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProductPage {
    /// The products of this page, in list order (by id).
    pub items: Vec<Product>,
    /// Where the next page starts; `None` (JSON `null`) on the last page.
    pub next_cursor: Option<Cursor>,
}
