//! Email addresses: syntactically valid, at most 254 characters,
//! case-insensitive for uniqueness.

use std::str::FromStr;

use email_address::EmailAddress;

/// Most characters in an address (RFC 5321's path limit).
pub const MAX_LEN: usize = shop_api::users::EMAIL_MAX_LEN;

/// A valid email address, kept as typed, with a lower-case key for uniqueness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    address: String,
    key: String,
}

impl Email {
    /// Parses an address.
    ///
    /// # Errors
    /// A message for the client when it is too long or not an address.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.chars().count() > MAX_LEN {
            return Err(format!("must be at most {MAX_LEN} characters long"));
        }
        let parsed =
            EmailAddress::from_str(raw).map_err(|_| "is not a valid email address".to_owned())?;
        // Display names ("Bob <bob@x>") and IP-literal domains are valid
        // RFC 5322 but not something a shop account should be keyed on.
        if parsed.email() != raw || parsed.domain().starts_with('[') {
            return Err("is not a valid email address".to_owned());
        }
        Ok(Self {
            address: raw.to_owned(),
            key: raw.to_lowercase(),
        })
    }

    /// The address as typed.
    pub fn as_str(&self) -> &str {
        &self.address
    }

    /// The case-folded address that uniqueness is enforced on.
    pub fn key(&self) -> &str {
        &self.key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_keep_their_case_and_get_a_folded_key() {
        let email = Email::parse("Alice@Example.COM").expect("valid");
        assert_eq!(email.as_str(), "Alice@Example.COM");
        assert_eq!(email.key(), "alice@example.com");
    }

    #[test]
    fn invalid_addresses_are_rejected() {
        let long = format!("{}@example.com", "a".repeat(250));
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "a b@example.com",
            "Bob <bob@example.com>",
            "x@[127.0.0.1]",
            &long,
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} must be rejected");
        }
    }
}
