//! The gateway's routes, all in one table ([`ROUTES`]): the router is built
//! from it and the OpenAPI document is checked against it, so a route
//! cannot be served without being documented (or the other way round).
//!
//! Only listed routes are served: anything else — notably the services'
//! `/internal/*` routes — is a 404 problem+json from the gateway and never
//! reaches a service.

pub mod docs;
pub mod orders;

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Request, State};
use axum::routing::{MethodFilter, MethodRouter, on};
use http::Method;
use shop_common::auth::TokenVerifier;

use crate::forward;
use crate::middleware::auth::AuthLayer;
use crate::state::{AppState, Upstream};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone.
    Public,
    /// Callers with a valid bearer token; checked at the gateway.
    Bearer,
}

/// What answers a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Forwarded unchanged to this upstream.
    Proxy(Upstream),
    /// The REST facade over the orders gRPC API.
    Orders(OrdersOp),
    /// The OpenAPI document.
    OpenApi,
}

/// The operations of the orders facade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrdersOp {
    /// `PlaceOrder`.
    Place,
    /// `ListOrders`.
    List,
    /// `GetOrder`.
    Get,
    /// `CancelOrder`.
    Cancel,
}

/// The HTTP methods the gateway routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    /// GET (and HEAD).
    Get,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// DELETE.
    Delete,
}

impl Verb {
    /// The method.
    pub fn method(self) -> Method {
        match self {
            Self::Get => Method::GET,
            Self::Post => Method::POST,
            Self::Put => Method::PUT,
            Self::Delete => Method::DELETE,
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            Self::Get => MethodFilter::GET,
            Self::Post => MethodFilter::POST,
            Self::Put => MethodFilter::PUT,
            Self::Delete => MethodFilter::DELETE,
        }
    }
}

/// One public route.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// The method.
    pub verb: Verb,
    /// The path, in axum's (and OpenAPI's) `{param}` syntax.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// What answers it.
    pub target: Target,
}

const fn route(verb: Verb, path: &'static str, access: Access, target: Target) -> Route {
    Route {
        verb,
        path,
        access,
        target,
    }
}

use Access::{Bearer, Public};
use Target::Proxy;
use Upstream::{Cart, Catalog, Users};
use Verb::{Delete, Get, Post, Put};

/// Every public route of the gateway, except the probes (`/healthz`,
/// `/readyz`, see [`PROBES`]) and the docs page (`/docs`). `/metrics` is
/// not public: it is served on the admin listener only.
pub const ROUTES: &[Route] = &[
    route(Post, "/api/users", Public, Proxy(Users)),
    route(Get, "/api/users/me", Bearer, Proxy(Users)),
    route(Post, "/api/sessions", Public, Proxy(Users)),
    route(Get, "/.well-known/jwks.json", Public, Proxy(Users)),
    route(Get, "/api/products", Public, Proxy(Catalog)),
    route(Get, "/api/products/{id}", Public, Proxy(Catalog)),
    route(Get, "/api/cart", Bearer, Proxy(Cart)),
    route(Delete, "/api/cart", Bearer, Proxy(Cart)),
    route(Put, "/api/cart/items/{product_id}", Bearer, Proxy(Cart)),
    route(Delete, "/api/cart/items/{product_id}", Bearer, Proxy(Cart)),
    route(Post, "/api/orders", Bearer, Target::Orders(OrdersOp::Place)),
    route(Get, "/api/orders", Bearer, Target::Orders(OrdersOp::List)),
    route(
        Get,
        "/api/orders/{id}",
        Bearer,
        Target::Orders(OrdersOp::Get),
    ),
    route(
        Post,
        "/api/orders/{id}/cancel",
        Bearer,
        Target::Orders(OrdersOp::Cancel),
    ),
    route(Get, "/api/openapi.json", Public, Target::OpenApi),
];

/// The probe routes, served outside the edge limits (never shed or rate
/// limited).
pub const PROBES: [&str; 2] = ["/healthz", "/readyz"];

/// The path of the interactive API docs page.
pub const DOCS_PATH: &str = "/docs";

/// The router of every route in [`ROUTES`] (without edge layers, probes
/// or fallbacks). Bearer routes verify the token with `verifier` first.
pub fn router(state: AppState, verifier: &TokenVerifier) -> Router {
    let mut paths: BTreeMap<&'static str, (Access, MethodRouter<AppState>)> = BTreeMap::new();
    for route in ROUTES {
        let (_, methods) = paths
            .entry(route.path)
            .or_insert_with(|| (route.access, MethodRouter::new()));
        *methods = std::mem::take(methods).merge(method_router(route));
    }
    let mut router = Router::new();
    for (path, (access, methods)) in paths {
        let methods = match access {
            Access::Public => methods,
            Access::Bearer => methods.route_layer(AuthLayer::new(verifier.clone())),
        };
        router = router.route(path, methods);
    }
    // Set here, before the edge layers wrap the routes, so that a 405 (and
    // a CORS preflight, which no route lists) passes through those layers;
    // one set later would replace the layered default.
    router
        .method_not_allowed_fallback(shop_common::error::method_not_allowed)
        .with_state(state)
}

fn method_router(route: &Route) -> MethodRouter<AppState> {
    let filter = route.verb.filter();
    match route.target {
        Target::Proxy(upstream) => on(
            filter,
            move |State(state): State<AppState>, request: Request| async move {
                forward::forward(&state, upstream, request).await
            },
        ),
        Target::Orders(OrdersOp::Place) => on(filter, orders::place_order),
        Target::Orders(OrdersOp::List) => on(filter, orders::list_orders),
        Target::Orders(OrdersOp::Get) => on(filter, orders::get_order),
        Target::Orders(OrdersOp::Cancel) => on(filter, orders::cancel_order),
        Target::OpenApi => on(filter, docs::get_openapi),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_has_one_access_rule_and_no_route_is_listed_twice() {
        let mut seen = std::collections::HashSet::new();
        let mut access = BTreeMap::new();
        for route in ROUTES {
            assert!(seen.insert((route.verb, route.path)), "{route:?} twice");
            let first = *access.entry(route.path).or_insert(route.access);
            assert_eq!(first, route.access, "{}: mixed access", route.path);
            assert!(!route.path.starts_with("/internal"));
        }
    }
}
