//! Products and the parsed values of catalog requests. Handlers parse raw
//! query and path values into these types once at the edge; the store and
//! the rest of the service trust them.

mod cursor;
mod limit;
mod product_ids;

pub use cursor::Cursor;
pub use limit::{DEFAULT_LIMIT, MAX_LIMIT, PageLimit};
pub use product_ids::{MAX_IDS, ProductIds};
/// A product and its id as the API shows them: the wire types themselves.
pub use shop_api::{ProductId, catalog::Product};

/// One page of the product list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductPage {
    /// The products of this page, in list order (by id).
    pub items: Vec<Product>,
    /// Where the next page starts; `None` (JSON `null`) on the last page.
    pub next_cursor: Option<Cursor>,
}

impl From<ProductPage> for shop_api::catalog::ProductPage {
    fn from(page: ProductPage) -> Self {
        Self {
            items: page.items,
            next_cursor: page.next_cursor.map(|cursor| cursor.to_string()),
        }
    }
}
