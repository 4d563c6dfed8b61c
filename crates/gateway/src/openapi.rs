//! The OpenAPI 3.1 document of the public API, generated from code with
//! utoipa, from the very types the services serialize ([`shop_api`], and
//! [`Problem`] for every error body).
//!
//! Each operation is described once, by a documentation-only function of
//! [`paths`] listing what is particular to it (its success, its own 404 or
//! 409). What the edge and the forwarding add to every operation of a kind
//! — 401 on a bearer route, 400/413/415/422 on a JSON body, 429, 502–504 —
//! is added by `EdgeResponses` from the route table, so a new route gets
//! them by being listed in [`crate::routes::ROUTES`]. A test checks that
//! the document lists exactly the routes of that table — and none of the
//! storefront's pages ([`crate::routes::web_routes`]), which are HTML.

use shop_common::error::{PROBLEM_JSON, Problem};
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, Type, header::Header, schema::Object};
use utoipa::{Modify, OpenApi};

use crate::routes::{Access, ROUTES, Route, Target};

/// The whole document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "ferroshop API",
        description = "The public API of ferroshop, served by its gateway. Money is integer \
                       minor units (`*_cents`) plus an ISO 4217 currency; ids are UUIDs; \
                       timestamps RFC 3339 UTC; errors are `application/problem+json` (RFC 9457).",
        license(name = "MIT OR Apache-2.0")
    ),
    paths(
        paths::create_user,
        paths::get_me,
        paths::create_session,
        paths::get_jwks,
        paths::list_products,
        paths::get_product,
        paths::get_cart,
        paths::delete_cart,
        paths::put_cart_item,
        paths::delete_cart_item,
        paths::place_order,
        paths::list_orders,
        paths::get_order,
        paths::cancel_order,
        paths::get_openapi,
        paths::get_docs,
        paths::healthz,
        paths::readyz,
    ),
    components(schemas(Problem)),
    modifiers(&BearerAuth, &EdgeResponses),
    tags(
        (name = "users", description = "Registration, login and the current user"),
        (name = "catalog", description = "Products"),
        (name = "cart", description = "The caller's cart"),
        (name = "orders", description = "The caller's orders (a REST facade over the orders gRPC API)"),
        (name = "meta", description = "This document, the docs page and probes"),
    )
)]
pub struct ApiDoc;

/// Adds the `bearer` security scheme (JWT access tokens from `POST /api/sessions`).
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Adds to each operation of [`ROUTES`] the problem responses that do not
/// depend on the operation but on its kind; a response the operation
/// describes itself is kept.
struct EdgeResponses;

impl Modify for EdgeResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in &mut openapi.paths.paths {
            for route in ROUTES.iter().filter(|route| route.path == path.as_str()) {
                if let Some(operation) = operation_mut(item, route) {
                    for (status, description) in edge_responses(route, operation) {
                        operation
                            .responses
                            .responses
                            .entry(status.to_string())
                            .or_insert_with(|| problem_response(status, description));
                    }
                }
            }
        }
    }
}

fn operation_mut<'a>(item: &'a mut PathItem, route: &Route) -> Option<&'a mut Operation> {
    use crate::routes::Verb;
    match route.verb {
        Verb::Get => item.get.as_mut(),
        Verb::Post => item.post.as_mut(),
        Verb::Put => item.put.as_mut(),
        Verb::Delete => item.delete.as_mut(),
    }
}

/// The statuses the gateway (or any service behind it) can answer
/// `operation` with, whatever the operation does.
fn edge_responses(route: &Route, operation: &Operation) -> Vec<(u16, &'static str)> {
    // The edge layers, in front of every route of the table.
    let mut responses = vec![
        (414, "The URI is too long"),
        (431, "The request headers are too large"),
        (
            429,
            "Rate limited: too many requests from this client (see `Retry-After`)",
        ),
        (
            503,
            "The gateway is overloaded, or a service this needs is unavailable (see `Retry-After`)",
        ),
        (504, "The request's deadline passed before an answer"),
    ];
    if route.access == Access::Bearer {
        responses.push((401, "Missing, invalid or expired bearer token"));
    }
    if matches!(route.target, Target::Proxy(_) | Target::Orders(_)) {
        responses.push((
            500,
            "An unexpected error in a service (details only in its log)",
        ));
        responses.push((502, "A service this needs failed or answered badly"));
    }
    let parameters = operation.parameters.as_deref().unwrap_or_default();
    let located = |wanted: utoipa::openapi::path::ParameterIn| {
        parameters
            .iter()
            .any(|parameter| matches!(parameter, RefOr::T(p) if p.parameter_in == wanted))
    };
    if located(utoipa::openapi::path::ParameterIn::Path) {
        responses.push((400, "A malformed path parameter (an id that is not a UUID)"));
        responses.push((
            404,
            "Nothing has this id (for orders: no order of the caller's)",
        ));
    }
    if located(utoipa::openapi::path::ParameterIn::Query) {
        responses.push((400, "An unknown or malformed query parameter"));
        responses.push((422, "An invalid query parameter (the problem names it)"));
    }
    if operation.request_body.is_some() {
        responses.extend([
            (400, "Malformed JSON, or a body that could not be read"),
            (413, "The body is larger than the limit"),
            (415, "The body is not `application/json`"),
            (
                422,
                "Well-formed JSON of the wrong shape, or invalid fields (the problem names them)",
            ),
        ]);
    }
    responses
}

fn problem_response(status: u16, description: &str) -> RefOr<Response> {
    let mut response = ResponseBuilder::new().description(description).content(
        PROBLEM_JSON,
        Content::new(Some(Ref::from_schema_name("Problem"))),
    );
    if matches!(status, 429 | 503) {
        response = response.header("Retry-After", Header::new(Object::with_type(Type::Integer)));
    }
    RefOr::T(response.build())
}

/// Documentation-only descriptions of the public operations: the routes the
/// gateway forwards (the services hold the handlers), the orders facade
/// (its handlers are in `routes/orders.rs`) and the routes it serves
/// itself outside the route table. Each lists the answers particular to it;
/// `EdgeResponses` adds the rest.
#[allow(clippy::unused_async)]
pub mod paths {
    use shop_api::cart::{Cart, SetQuantity};
    use shop_api::catalog::{Product, ProductPage, ProductQuery};
    use shop_api::orders::{Order, OrderPage, OrderQuery, PlaceOrder};
    use shop_api::users::{Jwks, NewSession, NewUser, Session, User};
    use shop_api::{OrderId, ProductId};
    use shop_common::error::Problem;

    /// Register a user.
    #[utoipa::path(post, path = "/api/users", tag = "users",
        request_body = NewUser,
        responses(
            (status = 201, description = "Registered", body = User),
            (status = 409, description = "Username or email taken", body = Problem, content_type = "application/problem+json"),
        ))]
    pub fn create_user() {}

    /// The current user.
    #[utoipa::path(get, path = "/api/users/me", tag = "users", security(("bearer" = [])),
        responses((status = 200, description = "The caller", body = User)))]
    pub fn get_me() {}

    /// Log in: exchange credentials for an access token.
    #[utoipa::path(post, path = "/api/sessions", tag = "users",
        request_body = NewSession,
        responses(
            (status = 200, description = "Logged in", body = Session),
            (status = 401, description = "Bad credentials (the same answer for an unknown user)", body = Problem, content_type = "application/problem+json"),
        ))]
    pub fn create_session() {}

    /// The public keys that verify access tokens.
    #[utoipa::path(get, path = "/.well-known/jwks.json", tag = "users",
        responses((status = 200, description = "The key set", body = Jwks)))]
    pub fn get_jwks() {}

    /// List products (paged), or look several up by id.
    #[utoipa::path(get, path = "/api/products", tag = "catalog",
        params(ProductQuery),
        responses((status = 200, description = "A page of products", body = ProductPage)))]
    pub fn list_products() {}

    /// One product.
    #[utoipa::path(get, path = "/api/products/{id}", tag = "catalog",
        params(("id" = ProductId, Path, description = "The product id")),
        responses(
            (status = 200, description = "The product", body = Product),
        ))]
    pub fn get_product() {}

    /// The caller's cart.
    #[utoipa::path(get, path = "/api/cart", tag = "cart", security(("bearer" = [])),
        responses((status = 200, description = "The cart", body = Cart)))]
    pub fn get_cart() {}

    /// Empty the caller's cart.
    #[utoipa::path(delete, path = "/api/cart", tag = "cart", security(("bearer" = [])),
        responses((status = 204, description = "Emptied")))]
    pub fn delete_cart() {}

    /// Set the quantity of a product in the cart (idempotent).
    #[utoipa::path(put, path = "/api/cart/items/{product_id}", tag = "cart", security(("bearer" = [])),
        params(("product_id" = ProductId, Path, description = "The product id")),
        request_body = SetQuantity,
        responses(
            (status = 200, description = "The updated cart", body = Cart),
        ))]
    pub fn put_cart_item() {}

    /// Remove a product from the cart.
    #[utoipa::path(delete, path = "/api/cart/items/{product_id}", tag = "cart", security(("bearer" = [])),
        params(("product_id" = ProductId, Path, description = "The product id")),
        responses((status = 204, description = "Removed (or was not there)")))]
    pub fn delete_cart_item() {}

    /// Place an order from the caller's cart.
    ///
    /// Checkout authorizes the payment, reserves the stock and captures the
    /// payment; the answer is the order once settled — `confirmed`, or
    /// `rejected` with its reason (`out_of_stock` naming the products,
    /// `payment_declined`, `payment_failed`) — or, if that takes longer
    /// than the request may wait, the `pending` order (202) to poll at its
    /// `Location`. The `Idempotency-Key` header is required: a repeat with
    /// the same key returns the first order as it stands now and never
    /// places or charges a second one.
    #[utoipa::path(post, path = "/api/orders", tag = "orders", security(("bearer" = [])),
        params(("Idempotency-Key" = String, Header, pattern = "^[!-~]([ -~]{0,126}[!-~])?$",
            description = "1–128 printable ASCII characters chosen by the client")),
        request_body = PlaceOrder,
        responses(
            (status = 201, description = "Placed and settled: confirmed or rejected", body = Order, headers(("Location" = String, description = "The order's URL"))),
            (status = 202, description = "Placed, still pending: poll the Location", body = Order, headers(("Location" = String, description = "The order's URL"))),
            (status = 200, description = "A repeat of an earlier request with the same key: the first order, settled", body = Order),
            (status = 400, description = "No Idempotency-Key", body = Problem, content_type = "application/problem+json"),
            (status = 409, description = "The cart is empty", body = Problem, content_type = "application/problem+json"),
            (status = 422, description = "Invalid Idempotency-Key or payment token", body = Problem, content_type = "application/problem+json"),
        ))]
    pub fn place_order() {}

    /// The caller's orders, newest first.
    #[utoipa::path(get, path = "/api/orders", tag = "orders", security(("bearer" = [])),
        params(OrderQuery),
        responses((status = 200, description = "A page of orders", body = OrderPage)))]
    pub fn list_orders() {}

    /// One of the caller's orders; another user's order is 404.
    #[utoipa::path(get, path = "/api/orders/{id}", tag = "orders", security(("bearer" = [])),
        params(("id" = OrderId, Path, description = "The order id")),
        responses(
            (status = 200, description = "The order", body = Order),
        ))]
    pub fn get_order() {}

    /// Cancel one of the caller's confirmed orders: the payment is refunded
    /// and the stock returned (`cancelled`, or `cancelling` while that is
    /// under way).
    #[utoipa::path(post, path = "/api/orders/{id}/cancel", tag = "orders", security(("bearer" = [])),
        params(("id" = OrderId, Path, description = "The order id")),
        responses(
            (status = 200, description = "The cancelled order", body = Order),
            (status = 409, description = "Not cancellable (not confirmed)", body = Problem, content_type = "application/problem+json"),
        ))]
    pub fn cancel_order() {}

    /// This document.
    #[utoipa::path(get, path = "/api/openapi.json", tag = "meta",
        responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
    pub fn get_openapi() {}

    /// An interactive page for this API (Swagger UI, served by the gateway itself).
    #[utoipa::path(get, path = "/docs", tag = "meta",
        responses((status = 200, description = "HTML", content_type = "text/html")))]
    pub fn get_docs() {}

    /// Liveness: the gateway process answers.
    #[utoipa::path(get, path = "/healthz", tag = "meta",
        responses((status = 200, description = "Alive", content_type = "application/json")))]
    pub fn healthz() {}

    /// Readiness: every upstream has at least one healthy instance.
    #[utoipa::path(get, path = "/readyz", tag = "meta",
        responses(
            (status = 200, description = "Ready", content_type = "application/json"),
            (status = 503, description = "Not ready; the body names the upstreams without a healthy instance", content_type = "application/json"),
        ))]
    pub fn readyz() {}
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::routes::{DOCS_PATH, PROBES, web_routes};

    fn document() -> serde_json::Value {
        let json = ApiDoc::openapi().to_json().expect("serialises");
        serde_json::from_str(&json).expect("parses")
    }

    #[test]
    fn the_document_lists_exactly_the_routes_served() {
        let document = document();
        assert!(
            document["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3.1"))
        );
        let mut documented = BTreeSet::new();
        for (path, item) in document["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                if ["get", "post", "put", "delete", "patch", "head", "options"]
                    .contains(&method.as_str())
                {
                    documented.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        let mut served: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|route| (route.verb.method().to_string(), route.path.to_owned()))
            .collect();
        for path in PROBES.into_iter().chain([DOCS_PATH]) {
            served.insert(("GET".to_owned(), path.to_owned()));
        }
        assert_eq!(documented, served);
        // The storefront's pages are served too, but they are HTML for
        // people, not the API: left out of the document on purpose.
        for route in web_routes() {
            assert!(
                document["paths"].get(route.path).is_none(),
                "{} is a page, not an API route",
                route.path
            );
        }

        let schemas = document["components"]["schemas"]
            .as_object()
            .expect("schemas");
        for name in [
            "Problem",
            "Order",
            "Cart",
            "User",
            "ProductPage",
            "ProductId",
        ] {
            assert!(schemas.contains_key(name), "{name} schema");
        }
        assert!(schemas["Problem"]["properties"].get("type").is_some());
        assert!(document["components"]["securitySchemes"]["bearer"].is_object());
    }

    /// Every operation of the route table lists what the edge can answer
    /// it with, and every error is a problem body.
    #[test]
    fn every_operation_documents_its_errors_as_problems() {
        let document = document();
        for route in ROUTES {
            let method = route.verb.method().as_str().to_lowercase();
            let operation = &document["paths"][route.path][&method];
            let responses = operation["responses"].as_object().expect("responses");
            let mut expected = vec!["414", "429", "431", "503", "504"];
            if route.access == Access::Bearer {
                expected.push("401");
            }
            if operation.get("requestBody").is_some() {
                expected.extend(["400", "413", "415", "422"]);
            }
            if route.path.contains('{') {
                expected.extend(["400", "404"]);
            }
            if route.target != Target::OpenApi {
                expected.extend(["500", "502"]);
            }
            for status in expected {
                assert!(
                    responses.contains_key(status),
                    "{method} {}: {status}",
                    route.path
                );
            }
            for (status, response) in responses {
                if status.starts_with(['4', '5']) {
                    assert_eq!(
                        response["content"][PROBLEM_JSON]["schema"]["$ref"],
                        "#/components/schemas/Problem",
                        "{method} {} {status}",
                        route.path
                    );
                }
            }
        }
    }

    /// Ids in paths and bodies are UUIDs, and the documented constraints
    /// are the ones the wire types state.
    #[test]
    fn ids_are_uuids_and_bounds_are_stated() {
        let document = document();
        let id = &document["components"]["schemas"]["ProductId"];
        assert_eq!(
            (id["type"].as_str(), id["format"].as_str()),
            (Some("string"), Some("uuid"))
        );
        for (path, method) in [
            ("/api/products/{id}", "get"),
            ("/api/cart/items/{product_id}", "put"),
            ("/api/orders/{id}", "get"),
        ] {
            let parameter = &document["paths"][path][method]["parameters"][0];
            assert_eq!(parameter["in"], "path");
            assert!(
                parameter["schema"]["$ref"]
                    .as_str()
                    .is_some_and(|r| r.ends_with("Id")),
                "{path}: {parameter}"
            );
        }
        let quantity = &document["components"]["schemas"]["SetQuantity"]["properties"]["quantity"];
        assert_eq!(quantity["maximum"], shop_api::cart::MAX_QUANTITY);
        let username = &document["components"]["schemas"]["NewUser"]["properties"]["username"];
        assert_eq!(username["maxLength"], shop_api::users::USERNAME_MAX_LEN);
        let key = &document["paths"]["/api/orders"]["post"]["parameters"][0];
        assert_eq!(
            key["schema"]["pattern"],
            shop_api::orders::IDEMPOTENCY_KEY_PATTERN
        );
    }
}
