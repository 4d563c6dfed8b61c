//! Currency codes.

use std::fmt;

/// An ISO 4217 code: three upper-case ASCII letters (`^[A-Z]{3}$`, as the
/// schema of [`shop_api::payments::Authorize`] says).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Currency(String);

impl Currency {
    /// The currency of a void recorded before any authorization: ISO
    /// 4217's "no currency".
    pub const NONE: &'static str = "XXX";

    /// Parses `currency`.
    ///
    /// # Errors
    /// A message for the client when it is not three upper-case letters.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.len() == 3 && raw.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err("must be a three-letter ISO 4217 code such as EUR".to_owned())
        }
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_three_upper_case_letters() {
        assert_eq!(
            Currency::parse("EUR").map(|c| c.to_string()),
            Ok("EUR".to_owned())
        );
        assert!(Currency::parse(Currency::NONE).is_ok());
        for bad in ["", "EU", "EURO", "eur", "E1R", "ÉUR", " EUR"] {
            assert!(Currency::parse(bad).is_err(), "{bad:?}");
        }
    }
}
