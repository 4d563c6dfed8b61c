//! Passwords: 10 to 256 characters, not the username.
//! Held as a secret that never prints.

use secrecy::{ExposeSecret, SecretString};

use super::Username;

/// Fewest characters in a password.
pub const MIN_LEN: usize = shop_api::users::PASSWORD_MIN_LEN;
/// Most characters (Unicode scalar values, as the API schema's `maxLength`
/// counts them) in a password; registration and login both check this one
/// bound, so a password that registers can always log in. A character is at
/// most 4 bytes of UTF-8, so it also bounds what is hashed to 1 KiB: the
/// hashing work one request can ask for.
pub const MAX_LEN: usize = shop_api::users::PASSWORD_MAX_LEN;

/// A password that meets the rules.
#[derive(Debug, Clone)]
pub struct Password(SecretString);

impl Password {
    /// Parses a new password for `username`.
    ///
    /// # Errors
    /// A message for the client when the length is wrong or it equals the username.
    pub fn parse(raw: &str, username: Option<&Username>) -> Result<Self, String> {
        if !Self::fits(raw) {
            return Err(format!("must be at most {MAX_LEN} characters long"));
        }
        if raw.chars().count() < MIN_LEN {
            return Err(format!("must be at least {MIN_LEN} characters long"));
        }
        if username.is_some_and(|name| raw.eq_ignore_ascii_case(name.as_str())) {
            return Err("must not be the username".to_owned());
        }
        Ok(Self(SecretString::from(raw.to_owned())))
    }

    /// Whether a password offered at login is within [`MAX_LEN`]; a longer
    /// one cannot have registered, so it simply fails to log in. Counts no
    /// further than the bound, whatever the length of `raw`.
    pub fn fits(raw: &str) -> bool {
        raw.chars().nth(MAX_LEN).is_none()
    }

    /// The password text, for hashing.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_least_ten_characters_at_most_256_characters() {
        assert!(Password::parse("ünïcødé-pw", None).is_ok(), "10 characters");
        assert!(Password::parse("short", None).is_err());
        assert!(Password::parse(&"x".repeat(256), None).is_ok());
        assert!(Password::parse(&"x".repeat(257), None).is_err());
        assert!(
            Password::parse(&"😀".repeat(256), None).is_ok(),
            "256 characters, 1 KiB"
        );
        assert!(
            Password::parse(&"😀".repeat(257), None).is_err(),
            "257 characters"
        );
        assert!(
            Password::parse(&format!("{}x", "é".repeat(256)), None).is_err(),
            "the bound is in characters, multi-byte or not"
        );
    }

    #[test]
    fn whatever_registers_fits_at_login() {
        for raw in [
            "é".repeat(256),
            "€".repeat(256),
            "😀".repeat(256),
            "x".repeat(256),
        ] {
            let password = Password::parse(&raw, None).expect("valid");
            assert!(Password::fits(password.expose()), "{} bytes", raw.len());
        }
        assert!(!Password::fits(&"é".repeat(257)));
    }

    #[test]
    fn the_username_is_not_a_password() {
        let name = Username::parse("longusername").expect("valid");
        assert!(Password::parse("LongUserName", Some(&name)).is_err());
    }

    #[test]
    fn passwords_never_print() {
        let password = Password::parse("correct horse battery", None).expect("valid");
        assert!(!format!("{password:?}").contains("horse"));
    }
}
