//! Parsed user values. Each type can only hold a valid value: handlers parse
//! raw input once at the edge and the rest of the service trusts the type.

pub mod email;
pub mod password;
pub mod username;

pub use email::Email;
pub use password::Password;
pub use username::Username;

/// A registered user as the API shows it (never any password material): the
/// wire type itself.
pub use shop_api::users::User;
