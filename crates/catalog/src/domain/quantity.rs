//! How many units of one product a reservation line takes.

/// Most units of one product one order may reserve. A bound far above any
/// real basket, so that a runaway or hostile caller cannot drain a product's
/// stock in one line by mistake (restocking goes through `SetStock`).
pub const MAX_QUANTITY: i64 = 10_000;

/// A reservation line's quantity, in `1..=MAX_QUANTITY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(i64);

impl Quantity {
    /// Checks a quantity from a request.
    ///
    /// # Errors
    /// A message for the client when it is outside `1..=MAX_QUANTITY`.
    pub fn parse(raw: i64) -> Result<Self, String> {
        if (1..=MAX_QUANTITY).contains(&raw) {
            Ok(Self(raw))
        } else {
            Err(format!("must be an integer from 1 to {MAX_QUANTITY}"))
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
    fn quantities_run_from_one_to_the_maximum() {
        for good in [1, 2, MAX_QUANTITY] {
            assert_eq!(Quantity::parse(good).map(Quantity::get), Ok(good));
        }
        for bad in [0, -1, MAX_QUANTITY + 1, i64::MIN, i64::MAX] {
            assert!(Quantity::parse(bad).is_err(), "{bad}");
        }
    }
}
