//! Products, stock and the parsed values of catalog requests. Handlers
//! parse raw query, path and body values into these types once at the
//! edge; the store and the rest of the service trust them.

mod cursor;
mod limit;
mod product_ids;
mod quantity;
mod reservation_lines;
mod stock;

pub use cursor::Cursor;
pub use limit::{DEFAULT_LIMIT, MAX_LIMIT, PageLimit};
pub use product_ids::{MAX_IDS, ProductIds};
pub use quantity::{MAX_QUANTITY, Quantity};
pub use reservation_lines::{MAX_LINES, ReservationLine, ReservationLines};
/// The id of an order, as orders issues it.
pub use shop_api::OrderId;
/// Stock reservations as the API shows them (the wire types).
pub use shop_api::stock::{ReservationOutcome, ReservationState};
/// A product and its id as the API shows them: the wire types themselves.
pub use shop_api::{ProductId, catalog::Product};
pub use stock::{MAX_STOCK, Stock};

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
