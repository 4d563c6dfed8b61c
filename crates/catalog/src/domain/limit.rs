//! Page sizes of the product list.

use std::str::FromStr;

/// The page size when the client names none.
pub const DEFAULT_LIMIT: u32 = shop_api::catalog::DEFAULT_LIMIT;
/// The largest page a client may ask for. It bounds the rows one request
/// reads and the size of one response.
pub const MAX_LIMIT: u32 = shop_api::catalog::MAX_LIMIT;

/// A page size in `1..=MAX_LIMIT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimit(u32);

impl PageLimit {
    /// Parses the `limit` query value.
    ///
    /// # Errors
    /// A message for the client when the value is not an integer in range.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let message = || format!("must be an integer from 1 to {MAX_LIMIT}");
        let value = i64::from_str(raw.trim()).map_err(|_| message())?;
        u32::try_from(value)
            .ok()
            .filter(|value| (1..=MAX_LIMIT).contains(value))
            .map(Self)
            .ok_or_else(message)
    }

    /// The page size.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl Default for PageLimit {
    fn default() -> Self {
        Self(DEFAULT_LIMIT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_in_range_parse() {
        assert_eq!(PageLimit::parse("1").expect("valid").get(), 1);
        assert_eq!(PageLimit::parse("100").expect("valid").get(), 100);
        assert_eq!(PageLimit::default().get(), 20);
    }

    #[test]
    fn limits_out_of_range_or_not_integers_are_rejected() {
        for bad in [
            "0",
            "101",
            "-1",
            "abc",
            "",
            "1.5",
            "99999999999999999999",
            "1; DROP TABLE products",
        ] {
            assert!(PageLimit::parse(bad).is_err(), "{bad:?} must be rejected");
        }
    }
}
