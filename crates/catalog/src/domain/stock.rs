//! A product's available stock, as an operator sets it.

/// The largest stock a product may be set to. Far above any real shelf, and
/// far enough below `i64::MAX` that giving released reservations back can
/// never overflow the column.
pub const MAX_STOCK: i64 = 1_000_000_000;

/// Units available to order, in `0..=MAX_STOCK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stock(i64);

impl Stock {
    /// Checks a stock level from a request.
    ///
    /// # Errors
    /// A message for the client when it is negative or above [`MAX_STOCK`].
    pub fn parse(raw: i64) -> Result<Self, String> {
        if (0..=MAX_STOCK).contains(&raw) {
            Ok(Self(raw))
        } else {
            Err(format!("must be an integer from 0 to {MAX_STOCK}"))
        }
    }

    /// The number of units.
    pub const fn get(self) -> i64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stock_runs_from_zero_to_the_maximum() {
        for good in [0, 1, MAX_STOCK] {
            assert_eq!(Stock::parse(good).map(Stock::get), Ok(good));
        }
        for bad in [-1, MAX_STOCK + 1, i64::MIN, i64::MAX] {
            assert!(Stock::parse(bad).is_err(), "{bad}");
        }
    }
}
