//! Usernames: 3–32 characters of `[a-z0-9_.-]`, case-insensitive.

use std::fmt;

/// Fewest characters in a username.
pub const MIN_LEN: usize = shop_api::users::USERNAME_MIN_LEN;
/// Most characters in a username.
pub const MAX_LEN: usize = shop_api::users::USERNAME_MAX_LEN;

/// A valid username in canonical (lower-case) form, so that uniqueness in the
/// database is case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    /// Parses a username, folding ASCII upper case to lower case.
    ///
    /// # Errors
    /// A message for the client when the length or a character is not allowed.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let len = raw.chars().count();
        if !(MIN_LEN..=MAX_LEN).contains(&len) {
            return Err(format!("must be {MIN_LEN} to {MAX_LEN} characters long"));
        }
        let canonical = raw.to_ascii_lowercase();
        if let Some(bad) = canonical
            .chars()
            .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '_' | '.' | '-'))
        {
            return Err(format!(
                "may only contain a-z, 0-9, '_', '.' and '-' (found {bad:?})"
            ));
        }
        Ok(Self(canonical))
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names_are_folded_to_lower_case() {
        assert_eq!(
            Username::parse("Alice_01.x-y").expect("valid").as_str(),
            "alice_01.x-y"
        );
        assert!(Username::parse("abc").is_ok());
        assert!(Username::parse(&"a".repeat(32)).is_ok());
    }

    #[test]
    fn invalid_names_are_rejected() {
        for bad in [
            "ab",
            &"a".repeat(33),
            "al ice",
            "alice@x",
            "ålice",
            "'; DROP TABLE users;--",
            "",
            "bob\0",
        ] {
            assert!(Username::parse(bad).is_err(), "{bad:?} must be rejected");
        }
    }
}
