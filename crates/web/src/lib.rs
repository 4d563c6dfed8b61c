//! The storefront: server-rendered HTML pages to browse the catalog, sign
//! up and log in, fill a cart, check out and follow orders. It has no data
//! of its own: it is a client of the public API, which it calls through
//! the gateway (discovery name `gateway`) as curl would, with the user's
//! token from an `HttpOnly` cookie. Every flow works without JavaScript.
//! The gateway routes the storefront's paths ([`shop_api::web::ROUTES`])
//! here.
//!
//! | module | owns |
//! | --- | --- |
//! | [`config`] | [`Settings`] and their defaults (port 8087, admin 9087, the gateway client's timeouts) |
//! | [`app`] | [`Web`] on the shared lifecycle; [`Application`] builds, registers and runs it |
//! | [`api`] | typed calls to the public API and [`api::ApiError`] |
//! | [`session`] | the cookies (session, CSRF, notice), the visitor extractors, the CSRF and origin checks |
//! | [`security`] | the security headers and `Cache-Control` of every response |
//! | [`pages`] | the router (built from [`shop_api::web::ROUTES`]); one file of handlers per resource, the extractors, redirects and error pages |
//! | [`views`] | the askama templates' structs, notices, money formatting |
//! | [`tile`] | a product's picture: a tile of its own colour with its initials |
//! | [`assets`] | the style sheet, script and favicon compiled into the binary |
//! | [`error`] | the pages' [`Error`] and its status |

pub mod api;
pub mod app;
pub mod assets;
pub mod config;
pub mod error;
pub mod pages;
pub mod security;
pub mod session;
pub mod tile;
pub mod views;

pub use app::Web;
pub use config::Settings;
pub use error::{Error, Result};

/// A storefront that is bound, registered and ready to run.
pub type Application = shop_runtime::Application<Web>;
