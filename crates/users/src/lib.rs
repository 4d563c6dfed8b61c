//! The users service: registration, login and access tokens.
//!
//! | module | owns |
//! | --- | --- |
//! | [`config`] | [`Settings`] and their defaults (port 8081, `./data/users.db`) |
//! | [`app`] | the service on the shared lifecycle ([`shop_runtime`]); [`Application`] builds, registers and runs it |
//! | [`domain`] | parsed values: [`domain::Username`], [`domain::Email`], [`domain::Password`] |
//! | [`store`] | the `users` table, the same queries on SQLite and PostgreSQL |
//! | [`hashing`] | Argon2id off the async workers, with a dummy hash for unknown users |
//! | [`login_limit`] | the login limiter per client and login and per account, in bounded memory |
//! | [`routes`] | the HTTP handlers |
//! | [`error`] | the service's [`Error`] and its problem+json mapping |

pub mod app;
pub mod config;
pub mod domain;
pub mod error;
pub mod hashing;
pub mod login_limit;
pub mod routes;
pub mod store;

pub use app::Users;
pub use config::Settings;
pub use error::{Error, Result};

/// A users service that is bound, registered and ready to run.
pub type Application = shop_runtime::Application<Users>;
