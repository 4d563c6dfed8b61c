//! The storefront's paths, defined once: the `web` service serves them and the
//! gateway forwards them to it.
//!
//! The paths use axum's `{param}` syntax. The web crate checks in a test that
//! its router serves exactly these rows, and the gateway builds its routes to
//! the `web` upstream from them, so a page cannot be added on one side only.
//! None of them starts with `/api/`: the public API keeps its own routes.

/// The HTTP method of a storefront route: pages are read with `GET`, forms
/// post with `POST` (HTML forms know no other methods).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WebMethod {
    /// A page.
    Get,
    /// A form's action.
    Post,
}

impl WebMethod {
    /// The method's name as HTTP writes it (`"GET"`, `"POST"`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
        }
    }
}

/// Every storefront route: the method and the path (axum `{param}` syntax).
pub const ROUTES: &[(WebMethod, &str)] = &[
    // The product list, first page; `?cursor=…` for later pages.
    (WebMethod::Get, "/"),
    // One product.
    (WebMethod::Get, "/products/{id}"),
    // The sign-up form; creating the account, logging in, 303 to `/` (or `next`).
    (WebMethod::Get, "/signup"),
    (WebMethod::Post, "/signup"),
    // The login form; logging in, 303 to `next` (a local path only) or `/`.
    (WebMethod::Get, "/login"),
    (WebMethod::Post, "/login"),
    // Clearing the session, 303 to `/`.
    (WebMethod::Post, "/logout"),
    // The cart.
    (WebMethod::Get, "/cart"),
    // Adding `product_id` with `quantity` to what is in the cart, 303 to `/cart`.
    (WebMethod::Post, "/cart/items"),
    // Setting a line's `quantity` (0 removes), 303 to `/cart`.
    (WebMethod::Post, "/cart/items/{product_id}"),
    // Removing a line, 303 to `/cart`.
    (WebMethod::Post, "/cart/items/{product_id}/remove"),
    // The checkout page; placing the order, 303 to `/orders/{id}`.
    (WebMethod::Get, "/checkout"),
    (WebMethod::Post, "/checkout"),
    // The order history (`?cursor=` paging).
    (WebMethod::Get, "/orders"),
    // One order.
    (WebMethod::Get, "/orders/{id}"),
    // Cancelling an order, 303 to `/orders/{id}`.
    (WebMethod::Post, "/orders/{id}/cancel"),
    // The embedded assets: style.css, app.js, favicon.svg.
    (WebMethod::Get, "/assets/{file}"),
];

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::{ROUTES, WebMethod};

    #[test]
    fn paths_are_unique_per_method() {
        let mut seen = HashSet::new();
        for &(method, path) in ROUTES {
            assert!(
                seen.insert((method, path)),
                "{} {path} is listed twice",
                method.as_str()
            );
        }
    }

    #[test]
    fn paths_are_absolute_and_leave_the_api_alone() {
        for &(method, path) in ROUTES {
            assert!(
                path.starts_with('/'),
                "{} {path} does not start with /",
                method.as_str()
            );
            assert!(
                !path.starts_with("/api"),
                "{} {path} is under /api",
                method.as_str()
            );
            assert!(!path.ends_with('/') || path == "/", "{path} ends with /");
        }
    }

    #[test]
    fn every_form_page_has_its_action() {
        for path in ["/signup", "/login", "/checkout"] {
            assert!(
                ROUTES.contains(&(WebMethod::Get, path)),
                "GET {path} missing"
            );
            assert!(
                ROUTES.contains(&(WebMethod::Post, path)),
                "POST {path} missing"
            );
        }
    }
}
