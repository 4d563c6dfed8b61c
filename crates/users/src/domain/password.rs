//! Passwords: 10–128 characters, not the username. Held as a secret that
//! never prints.

use secrecy::{ExposeSecret, SecretString};

use super::Username;

/// Fewest characters in a password.
pub const MIN_LEN: usize = 10;
/// Most characters in a password; bounds the hashing work one request can ask for.
pub const MAX_LEN: usize = 128;

/// A password that meets the rules.
#[derive(Debug, Clone)]
pub struct Password(SecretString);

impl Password {
    /// Parses a new password for `username`.
    ///
    /// # Errors
    /// A message for the client when the length is wrong or it equals the username.
    pub fn parse(raw: &str, username: Option<&Username>) -> Result<Self, String> {
        let len = raw.chars().count();
        if !(MIN_LEN..=MAX_LEN).contains(&len) {
            return Err(format!("must be {MIN_LEN} to {MAX_LEN} characters long"));
        }
        if username.is_some_and(|name| raw.eq_ignore_ascii_case(name.as_str())) {
            return Err("must not be the username".to_owned());
        }
        Ok(Self(SecretString::from(raw.to_owned())))
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
    fn length_is_counted_in_characters() {
        assert!(Password::parse("ünïcødé-pw", None).is_ok());
        assert!(Password::parse("short", None).is_err());
        assert!(Password::parse(&"x".repeat(129), None).is_err());
        assert!(Password::parse(&"x".repeat(128), None).is_ok());
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
