//! Checking a service's settings validation.

use std::fmt::Display;

/// Asserts that `validate` refuses the default settings with `change`
/// applied, naming `key` in its message.
///
/// # Panics
/// When the changed settings are accepted or the message does not name
/// `key`.
pub fn assert_rejected<S: Default, E: Display>(
    validate: impl Fn(&S) -> Result<(), E>,
    change: impl FnOnce(&mut S),
    key: &str,
) {
    let mut settings = S::default();
    change(&mut settings);
    match validate(&settings) {
        Ok(()) => panic!("settings with a bad {key} were accepted"),
        Err(err) => assert!(err.to_string().contains(key), "{key} not named in: {err}"),
    }
}
