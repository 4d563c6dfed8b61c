//! Parsed cart values and the priced cart.

use serde::Serialize;
/// The id of a product, as the catalog knows it (the wire type).
pub use shop_api::ProductId;
/// The priced cart and its lines as the API shows them (the wire types).
pub use shop_api::cart::{Cart, CartItem as CartLine, MAX_QUANTITY, MIN_QUANTITY};
/// What the catalog says about a product: the catalog's wire type, read as
/// the catalog serves it (unknown fields are ignored).
pub use shop_api::catalog::Product as CatalogProduct;

/// A line quantity, 1–99.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Quantity(i64);

impl Quantity {
    /// Parses a quantity.
    ///
    /// # Errors
    /// A message for the client when it is outside 1–99.
    pub fn parse(raw: i64) -> Result<Self, String> {
        if (MIN_QUANTITY..=MAX_QUANTITY).contains(&raw) {
            Ok(Self(raw))
        } else {
            Err(format!("must be between {MIN_QUANTITY} and {MAX_QUANTITY}"))
        }
    }

    /// The quantity.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// Why a cart cannot be priced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    /// A line total or the cart total does not fit in an i64.
    #[error("cart total overflows")]
    Overflow,
    /// The catalog priced products in different currencies.
    #[error("cart mixes currencies {0} and {1}")]
    MixedCurrencies(String, String),
}

/// Prices `lines` (product, quantity) with `products`; lines whose
/// product the catalog no longer has are left out. An empty cart is in
/// `default_currency`. All arithmetic is checked.
///
/// # Errors
/// [`PricingError`] on overflow or mixed currencies.
pub fn price(
    lines: &[(ProductId, i64)],
    products: &std::collections::HashMap<ProductId, CatalogProduct>,
    version: i64,
    default_currency: &str,
) -> Result<Cart, PricingError> {
    let mut items = Vec::with_capacity(lines.len());
    let mut total: i64 = 0;
    let mut currency: Option<&str> = None;
    for (product_id, quantity) in lines {
        let Some(product) = products.get(product_id) else {
            continue;
        };
        match currency {
            Some(seen) if seen != product.currency => {
                return Err(PricingError::MixedCurrencies(
                    seen.to_owned(),
                    product.currency.clone(),
                ));
            }
            _ => currency = Some(&product.currency),
        }
        let line_total = product
            .price_cents
            .checked_mul(*quantity)
            .ok_or(PricingError::Overflow)?;
        total = total
            .checked_add(line_total)
            .ok_or(PricingError::Overflow)?;
        items.push(CartLine {
            product_id: *product_id,
            name: product.name.clone(),
            unit_price_cents: product.price_cents,
            quantity: *quantity,
            line_total_cents: line_total,
        });
    }
    Ok(Cart {
        items,
        total_cents: total,
        currency: currency.unwrap_or(default_currency).to_owned(),
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use uuid::Uuid;

    fn id(n: u128) -> ProductId {
        ProductId(Uuid::from_u128(n))
    }

    /// The catalog's products `(n, price, currency)`, by id.
    fn catalog(products: &[(u128, i64, &str)]) -> HashMap<ProductId, CatalogProduct> {
        products
            .iter()
            .map(|&(n, price, currency)| {
                let product = CatalogProduct {
                    id: id(n),
                    sku: format!("SKU-{n}"),
                    name: format!("p{n}"),
                    description: String::new(),
                    price_cents: price,
                    currency: currency.to_owned(),
                    image: None,
                    stock: 10,
                };
                (product.id, product)
            })
            .collect()
    }

    #[test]
    fn quantities_are_bounded() {
        assert!(Quantity::parse(0).is_err());
        assert!(Quantity::parse(100).is_err());
        assert!(Quantity::parse(-1).is_err());
        assert_eq!(Quantity::parse(99).map(Quantity::get), Ok(99));
    }

    #[test]
    fn carts_are_priced_with_checked_arithmetic() {
        let products = catalog(&[(1, 1999, "EUR"), (2, 250, "EUR")]);
        let lines = [(id(1), 3), (id(2), 2), (id(9), 1)];
        let cart = price(&lines, &products, 4, "USD").expect("priced");
        assert_eq!(cart.items.len(), 2, "unknown products are left out");
        assert_eq!(cart.items[0].line_total_cents, 5997);
        assert_eq!(cart.total_cents, 6497);
        assert_eq!(cart.currency, "EUR");
        assert_eq!(cart.version, 4);

        let empty = price(&[], &products, 0, "USD").expect("priced");
        assert_eq!((empty.total_cents, empty.currency.as_str()), (0, "USD"));

        let huge = catalog(&[(1, i64::MAX / 2, "EUR")]);
        assert_eq!(
            price(&[(id(1), 3)], &huge, 1, "EUR"),
            Err(PricingError::Overflow)
        );

        let mixed = catalog(&[(1, 1, "EUR"), (2, 1, "USD")]);
        assert!(matches!(
            price(&[(id(1), 1), (id(2), 1)], &mixed, 1, "EUR"),
            Err(PricingError::MixedCurrencies(..))
        ));
    }
}
