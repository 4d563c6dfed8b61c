//! The gateway's routes, in two tables. The API's are in [`ROUTES`]: the
//! router is built from it and the OpenAPI document is checked against it,
//! so an API route cannot be served without being documented (or the other
//! way round). The storefront's pages and form actions ([`web_routes`]) are
//! built from [`shop_api::web::ROUTES`], the list the web service serves
//! too, and forwarded unchanged to `web`; they are HTML, not the API, so
//! they stay out of the API's table and its document.
//!
//! Only listed routes are served: anything else — notably the services'
//! `/internal/*` routes — is a 404 problem+json from the gateway and never
//! reaches a service. One exception, for people: a `GET` of an unknown
//! page (outside `/api/`, `/internal/` and `/.well-known/`) from a browser,
//! whose `Accept` prefers HTML, is web's HTML 404 page ([`unrouted`]).

pub mod docs;
pub mod orders;

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, any, on};
use http::{HeaderMap, Method, header};
use shop_api::web::WebMethod;
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
use Upstream::{Cart, Catalog, Users, Web};
use Verb::{Delete, Get, Post, Put};

impl From<WebMethod> for Verb {
    fn from(method: WebMethod) -> Self {
        match method {
            WebMethod::Get => Self::Get,
            WebMethod::Post => Self::Post,
        }
    }
}

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

/// The storefront's routes: each row of [`shop_api::web::ROUTES`],
/// forwarded unchanged to `web` and open to anyone (web keeps its own
/// session cookie and sends people without one to its login page). Cookies
/// and every other header pass both ways as for any forwarded route; the
/// page request carries `X-Forwarded-Proto` (web marks its cookies `Secure`
/// by it) and `x-shop-client-ip`. Not in [`ROUTES`]: not part of the API or
/// its OpenAPI document.
pub fn web_routes() -> impl Iterator<Item = Route> {
    shop_api::web::ROUTES
        .iter()
        .map(|&(method, path)| route(method.into(), path, Public, Proxy(Web)))
}

/// The catch-all route of paths no table lists; see [`unrouted`].
const UNROUTED: &str = "/{*path}";

/// The probe routes, served outside the edge limits (never shed or rate
/// limited).
pub const PROBES: [&str; 2] = ["/healthz", "/readyz"];

/// The path of the interactive API docs page.
pub const DOCS_PATH: &str = "/docs";

/// The router of every route in [`ROUTES`] and [`web_routes`], and of
/// [`unrouted`] paths (without edge layers, probes or fallbacks). Bearer
/// routes verify the token with `verifier` first.
pub fn router(state: AppState, verifier: &TokenVerifier) -> Router {
    let mut paths: BTreeMap<&'static str, (Access, MethodRouter<AppState>)> = BTreeMap::new();
    for route in ROUTES.iter().copied().chain(web_routes()) {
        let (_, methods) = paths
            .entry(route.path)
            .or_insert_with(|| (route.access, MethodRouter::new()));
        *methods = std::mem::take(methods).merge(method_router(&route));
    }
    let mut router = Router::new();
    for (path, (access, methods)) in paths {
        let methods = match access {
            Access::Public => methods,
            Access::Bearer => methods.route_layer(AuthLayer::new(verifier.clone())),
        };
        router = router.route(path, methods);
    }
    // A route rather than the fallback: the runtime sets the fallback of
    // every service (a plain 404) after this, which would replace it. Any
    // path a table lists, with a parameter or not, is matched before it.
    router = router.route(UNROUTED, any(unrouted));
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

/// A request no table routes: web's HTML 404 page for a browser asking for
/// a page (see [`wants_page`]), else the gateway's 404 problem+json, so a
/// person never sees JSON for a mistyped address and an API client never
/// sees HTML.
pub async fn unrouted(State(state): State<AppState>, request: Request) -> Response {
    if wants_page(request.method(), request.uri().path(), request.headers()) {
        forward::forward(&state, Web, request).await
    } else {
        shop_common::error::not_found().await.into_response()
    }
}

/// Whether an unrouted request is a person's browser asking for a page: a
/// `GET` (or `HEAD`) outside the API (`/api`), the services' internal
/// routes (`/internal`, which never leave the gateway) and
/// `/.well-known`, whose `Accept` prefers HTML to JSON.
pub fn wants_page(method: &Method, path: &str, headers: &HeaderMap) -> bool {
    (method == Method::GET || method == Method::HEAD)
        && !["/api", "/internal", "/.well-known"]
            .iter()
            .any(|prefix| path.starts_with(prefix))
        && prefers_html(headers)
}

/// Whether `Accept` rates HTML (`text/html`, `application/xhtml+xml`)
/// above zero and at least as high as any JSON type. `*/*` alone (curl's
/// default) does not count: a client that says nothing gets problem+json.
fn prefers_html(headers: &HeaderMap) -> bool {
    let (mut html, mut json) = (0.0_f32, 0.0_f32);
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut params = item.split(';');
            let media = params.next().unwrap_or_default().trim();
            let quality = params
                .filter_map(|param| param.split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
                .map_or(1.0, |(_, q)| q.trim().parse::<f32>().unwrap_or(0.0));
            if media.eq_ignore_ascii_case("text/html")
                || media.eq_ignore_ascii_case("application/xhtml+xml")
            {
                html = html.max(quality);
            } else if media.to_ascii_lowercase().ends_with("json") {
                json = json.max(quality);
            }
        }
    }
    html > 0.0 && html >= json
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn every_path_has_one_access_rule_and_no_route_is_listed_twice() {
        let mut seen = std::collections::HashSet::new();
        let mut access = BTreeMap::new();
        for route in ROUTES.iter().copied().chain(web_routes()) {
            assert!(seen.insert((route.verb, route.path)), "{route:?} twice");
            let first = *access.entry(route.path).or_insert(route.access);
            assert_eq!(first, route.access, "{}: mixed access", route.path);
            assert!(!route.path.starts_with("/internal"));
        }
    }

    /// The storefront's routes are exactly the shared list's, all forwarded
    /// to web, open to anyone, and none is an API route or the docs page,
    /// which they would shadow (or be documented as).
    #[test]
    fn the_web_routes_are_the_shared_list_forwarded_to_web() {
        let routes: Vec<(Method, &str)> = web_routes()
            .map(|route| {
                assert_eq!(route.target, Proxy(Web), "{route:?}");
                assert_eq!(route.access, Public, "{route:?}");
                (route.verb.method(), route.path)
            })
            .collect();
        let shared: Vec<(Method, &str)> = shop_api::web::ROUTES
            .iter()
            .map(|&(method, path)| {
                (
                    Method::from_bytes(method.as_str().as_bytes()).expect("method"),
                    path,
                )
            })
            .collect();
        assert_eq!(routes, shared);
        let api: std::collections::HashSet<&str> = ROUTES.iter().map(|route| route.path).collect();
        for (_, path) in &routes {
            assert!(!api.contains(path), "{path} is an API route too");
            assert!(
                !path.starts_with("/api") && !path.starts_with("/internal"),
                "{path}"
            );
            assert!(
                !path.starts_with("/.well-known") && !path.starts_with(DOCS_PATH),
                "{path}"
            );
            assert!(!PROBES.contains(path), "{path}");
        }
    }

    #[test]
    fn only_a_browser_asking_for_a_page_is_sent_to_web() {
        let accept = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT, HeaderValue::from_static(value));
            headers
        };
        let browser = accept("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8");
        // (method, path, headers, to web, why)
        let cases = [
            (Method::GET, "/no-such-page", &browser, true, "a browser"),
            (
                Method::HEAD,
                "/no-such-page",
                &browser,
                true,
                "a browser's HEAD",
            ),
            (
                Method::GET,
                "/products/x/y",
                &accept("application/xhtml+xml"),
                true,
                "XHTML",
            ),
            (Method::POST, "/no-such-page", &browser, false, "a POST"),
            (Method::GET, "/api/nothing", &browser, false, "the API"),
            (
                Method::GET,
                "/internal/orders",
                &browser,
                false,
                "internal routes",
            ),
            (Method::GET, "/internal", &browser, false, "internal routes"),
            (Method::GET, "/.well-known/x", &browser, false, "well-known"),
            (Method::GET, "/no-such-page", &accept("*/*"), false, "curl"),
            (
                Method::GET,
                "/no-such-page",
                &HeaderMap::new(),
                false,
                "no Accept",
            ),
            (
                Method::GET,
                "/x",
                &accept("application/json, text/html;q=0.5"),
                false,
                "JSON first",
            ),
            (
                Method::GET,
                "/x",
                &accept("application/problem+json;q=0.5, text/html"),
                true,
                "HTML first",
            ),
            (
                Method::GET,
                "/x",
                &accept("text/html;q=0"),
                false,
                "HTML refused",
            ),
            (
                Method::GET,
                "/x",
                &accept("TEXT/HTML; Q=0.4"),
                true,
                "any case",
            ),
        ];
        for (method, path, headers, expected, why) in cases {
            assert_eq!(
                wants_page(&method, path, headers),
                expected,
                "{why}: {method} {path}"
            );
        }
    }
}
