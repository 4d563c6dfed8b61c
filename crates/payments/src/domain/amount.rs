//! Amounts to authorize.

/// An amount in minor units, at least 1: an authorization of nothing is a
/// mistake of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amount(i64);

impl Amount {
    /// Parses `amount_cents`.
    ///
    /// # Errors
    /// A message for the client when it is below 1.
    pub fn parse(raw: i64) -> Result<Self, String> {
        if raw >= 1 {
            Ok(Self(raw))
        } else {
            Err("must be at least 1 (minor units)".to_owned())
        }
    }

    /// The amount in minor units.
    pub const fn cents(self) -> i64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_positive() {
        assert_eq!(Amount::parse(1).map(Amount::cents), Ok(1));
        assert_eq!(Amount::parse(i64::MAX).map(Amount::cents), Ok(i64::MAX));
        for bad in [0, -1, i64::MIN] {
            assert!(Amount::parse(bad).is_err(), "{bad}");
        }
    }
}
