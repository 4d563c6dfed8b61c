//! The lines of a stock reservation, checked once at the edge.

use std::collections::HashMap;

use shop_api::stock::Reservation;
use shop_common::error::{FieldErrors, field};

use super::{ProductId, Quantity};

/// Most lines one reservation may hold. One line is one conditional
/// `UPDATE` inside the reservation's transaction, so this bounds how long
/// one order holds the write lock (SQLite) or row locks (PostgreSQL); it is
/// far above the products of any real basket.
pub const MAX_LINES: usize = 500;

/// One line: a product and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReservationLine {
    /// The product.
    pub product_id: ProductId,
    /// How many units.
    pub quantity: Quantity,
}

/// 1 to [`MAX_LINES`] lines, each naming a different product, in the
/// order's line order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationLines(Vec<ReservationLine>);

impl ReservationLines {
    /// Checks every line of `reservation`.
    ///
    /// # Errors
    /// Every problem found, keyed by field: `lines` when there are none or
    /// too many, `lines[i].quantity` for a quantity out of range,
    /// `lines[i].product_id` for a product an earlier line already names.
    pub fn parse(reservation: &Reservation) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let count = reservation.lines.len();
        if count == 0 || count > MAX_LINES {
            errors.insert(
                "lines".to_owned(),
                format!("must hold 1 to {MAX_LINES} lines (got {count})"),
            );
            return Err(errors);
        }
        let mut first_line: HashMap<ProductId, usize> = HashMap::with_capacity(count);
        let mut lines = Vec::with_capacity(count);
        for (i, line) in reservation.lines.iter().enumerate() {
            if let Some(&first) = first_line.get(&line.product_id) {
                errors.insert(
                    format!("lines[{i}].product_id"),
                    format!("names the same product as lines[{first}]; give one line per product"),
                );
            } else {
                first_line.insert(line.product_id, i);
            }
            let quantity = Quantity::parse(line.quantity);
            if let Some(quantity) = field(&mut errors, &format!("lines[{i}].quantity"), quantity) {
                lines.push(ReservationLine {
                    product_id: line.product_id,
                    quantity,
                });
            }
        }
        if errors.is_empty() {
            Ok(Self(lines))
        } else {
            Err(errors)
        }
    }

    /// The lines, in the order's line order.
    pub fn as_slice(&self) -> &[ReservationLine] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use shop_api::stock::ReservationLine as WireLine;
    use uuid::Uuid;

    use super::*;
    use crate::domain::MAX_QUANTITY;

    fn product(n: u128) -> ProductId {
        ProductId::from_uuid(Uuid::from_u128(n))
    }

    fn reservation(lines: &[(u128, i64)]) -> Reservation {
        Reservation {
            lines: lines
                .iter()
                .map(|&(n, quantity)| WireLine {
                    product_id: product(n),
                    quantity,
                })
                .collect(),
        }
    }

    #[test]
    fn lines_keep_the_order_line_order() {
        let lines =
            ReservationLines::parse(&reservation(&[(2, 1), (1, MAX_QUANTITY)])).expect("valid");
        let ids: Vec<ProductId> = lines.as_slice().iter().map(|l| l.product_id).collect();
        assert_eq!(ids, [product(2), product(1)]);
        assert_eq!(lines.as_slice()[1].quantity.get(), MAX_QUANTITY);
    }

    #[test]
    fn every_bad_line_is_named() {
        let errors = ReservationLines::parse(&reservation(&[
            (1, 0),
            (2, 1),
            (1, 3),
            (3, MAX_QUANTITY + 1),
        ]))
        .expect_err("invalid");
        let keys: Vec<&str> = errors.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "lines[0].quantity",
                "lines[2].product_id",
                "lines[3].quantity"
            ]
        );
        assert!(errors["lines[2].product_id"].contains("lines[0]"));
    }

    #[test]
    fn a_reservation_holds_one_to_max_lines() {
        let errors = ReservationLines::parse(&reservation(&[])).expect_err("empty");
        assert!(errors.contains_key("lines"), "{errors:?}");
        let many: Vec<(u128, i64)> = (0..=MAX_LINES as u128).map(|n| (n, 1)).collect();
        let errors = ReservationLines::parse(&reservation(&many)).expect_err("too many");
        assert!(errors.contains_key("lines"), "{errors:?}");
        let most = &many[..MAX_LINES];
        assert!(ReservationLines::parse(&reservation(most)).is_ok());
    }
}
