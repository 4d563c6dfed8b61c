//! Parsed user values. Each type can only hold a valid value: handlers parse
//! raw input once at the edge and the rest of the service trusts the type.

pub mod email;
pub mod password;
pub mod username;

pub use email::Email;
pub use password::Password;
pub use username::Username;

use serde::Serialize;
use uuid::Uuid;

/// A registered user as the API shows it (never any password material).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// The user id (UUID v7).
    pub id: Uuid,
    /// The username, lower case.
    pub username: String,
    /// The email address as registered.
    pub email: String,
    /// Registration time, RFC 3339 UTC.
    pub created_at: String,
}
