//! The pages and form actions: one thin handler per row of
//! [`shop_api::web::ROUTES`], each reading from or writing to the API
//! ([`crate::api`]) and filling a view ([`crate::views`]). The router is
//! built from that table ([`router`]), so the storefront serves exactly the
//! paths the gateway forwards to it.
//!
//! | module | owns |
//! | --- | --- |
//! | `catalog` | the product list and a product's page |
//! | `account` | sign-up, log-in and log-out |
//! | `cart` | the cart and its forms |
//! | `checkout` | the checkout page and placing the order |
//! | `orders` | the order history, an order's page, cancelling |
//! | `extract` | the extractors: form, path id, query (refused as our pages) |
//! | `redirect` | 303s, the notices they leave, local paths for `next` |
//! | `errors` | the pages of failures |

mod account;
mod cart;
mod catalog;
mod checkout;
mod errors;
mod extract;
mod orders;
mod redirect;

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::routing::{MethodRouter, any, get, post};
use shop_api::web::{ROUTES, WebMethod};

use crate::Settings;
use crate::api::Api;
use crate::assets;
use crate::error::Error;
use crate::security;
use crate::session;

pub use errors::error_page;
pub use extract::{Fields, Param, Params};
pub use redirect::{local_path, login_path, see_other};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The public API, through the gateway.
    pub api: Api,
    /// The service's settings.
    pub settings: Arc<Settings>,
}

/// The storefront's router: every row of [`ROUTES`], a "Page not found"
/// page for any other path, the session middleware
/// ([`session::guard`]) and the security headers ([`security::headers`])
/// around all of it.
///
/// # Errors
/// A row of [`ROUTES`] this crate has no handler for (a route added to the
/// table but not here): the service refuses to start rather than let the
/// gateway forward to a page that does not exist.
pub fn router(state: AppState) -> Result<Router, String> {
    let mut router = Router::new();
    let mut paths: Vec<&str> = Vec::new();
    for &(_, path) in ROUTES {
        if !paths.contains(&path) {
            paths.push(path);
        }
    }
    for path in paths {
        let mut methods = MethodRouter::new();
        let mut allow: Vec<&str> = Vec::new();
        for &(method, _) in ROUTES.iter().filter(|(_, row)| *row == path) {
            let handler = route(method, path)
                .ok_or_else(|| format!("no handler for {} {path}", method.as_str()))?;
            methods = methods.merge(handler);
            allow.push(method.as_str());
            if method == WebMethod::Get {
                // axum answers HEAD with the GET handler, without the body.
                allow.push("HEAD");
            }
        }
        let allow = allow.join(", ");
        router = router.route(
            path,
            methods.fallback(move || {
                let allow = allow.clone();
                async move { Error::MethodNotAllowed { allow } }
            }),
        );
    }
    Ok(router
        .route("/{*rest}", any(errors::not_found))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            session::guard,
        ))
        .layer(middleware::from_fn(security::headers))
        .with_state(state))
}

/// The handler of one row of [`ROUTES`].
pub fn route(method: WebMethod, path: &str) -> Option<MethodRouter<AppState>> {
    Some(match (method, path) {
        (WebMethod::Get, "/") => get(catalog::list_products),
        (WebMethod::Get, "/products/{id}") => get(catalog::show_product),
        (WebMethod::Get, "/signup") => get(account::signup_form),
        (WebMethod::Post, "/signup") => post(account::create_account),
        (WebMethod::Get, "/login") => get(account::login_form),
        (WebMethod::Post, "/login") => post(account::create_session),
        (WebMethod::Post, "/logout") => post(account::delete_session),
        (WebMethod::Get, "/cart") => get(cart::show_cart),
        (WebMethod::Post, "/cart/items") => post(cart::add_cart_item),
        (WebMethod::Post, "/cart/items/{product_id}") => post(cart::set_cart_item),
        (WebMethod::Post, "/cart/items/{product_id}/remove") => post(cart::remove_cart_item),
        (WebMethod::Get, "/checkout") => get(checkout::checkout_form),
        (WebMethod::Post, "/checkout") => post(checkout::place_order),
        (WebMethod::Get, "/orders") => get(orders::list_orders),
        (WebMethod::Get, "/orders/{id}") => get(orders::show_order),
        (WebMethod::Post, "/orders/{id}/cancel") => post(orders::cancel_order),
        (WebMethod::Get, "/assets/{file}") => get(assets::serve),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_storefront_route_has_its_handler() {
        for &(method, path) in ROUTES {
            assert!(
                route(method, path).is_some(),
                "{} {path} has no handler",
                method.as_str()
            );
        }
        assert!(route(WebMethod::Post, "/").is_none());
    }
}
