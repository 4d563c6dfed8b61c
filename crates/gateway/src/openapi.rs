//! The OpenAPI 3.1 document of the public API, generated from code with
//! utoipa. Forwarded routes have no handler of their own in the gateway,
//! so they are described by the documentation-only functions of
//! [`paths`]; the schemas mirror the services' JSON. A test checks that
//! the document lists exactly the routes of [`crate::routes::ROUTES`].

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

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
        crate::routes::orders::place_order,
        crate::routes::orders::list_orders,
        crate::routes::orders::get_order,
        crate::routes::orders::cancel_order,
        paths::get_openapi,
        paths::get_docs,
        paths::healthz,
        paths::readyz,
    ),
    components(schemas(
        Problem,
        NewUser,
        User,
        NewSession,
        Session,
        Jwks,
        Product,
        ProductPage,
        Cart,
        CartItem,
        SetQuantity,
        crate::routes::orders::Order,
        crate::routes::orders::OrderLine,
        crate::routes::orders::OrderStatus,
        crate::routes::orders::OrderPage,
    )),
    modifiers(&BearerAuth),
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

/// An RFC 9457 problem details body (`application/problem+json`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Problem {
    /// A URI reference naming the kind of problem (`about:blank` when the status says it all).
    #[schema(rename = "type", example = "/problems/validation")]
    kind: String,
    /// A short summary of the kind of problem.
    title: String,
    /// The HTTP status code.
    status: u16,
    /// What went wrong with this request.
    detail: Option<String>,
    /// Field name to message, on validation failures (422).
    errors: Option<std::collections::BTreeMap<String, String>>,
}

/// A registration.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct NewUser {
    /// 3–32 letters, digits, `_`, `-` or `.`; unique, case-insensitively.
    #[schema(example = "alice")]
    username: String,
    /// Unique, case-insensitively.
    #[schema(example = "alice@example.com")]
    email: String,
    /// At least 8 characters.
    password: String,
}

/// A user.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct User {
    /// The user id.
    id: uuid::Uuid,
    /// The username.
    username: String,
    /// The email address.
    email: String,
    /// When the user registered (RFC 3339).
    created_at: String,
}

/// A login.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct NewSession {
    /// Username or email.
    login: String,
    /// The password.
    password: String,
}

/// An access token.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Session {
    /// A JWT (EdDSA) to send as `Authorization: Bearer <token>`.
    access_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    token_type: String,
    /// Seconds until the token expires.
    expires_in: u64,
}

/// The token-signing public keys (RFC 7517 JWK set).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Jwks {
    /// Ed25519 public keys (`kty` `OKP`, `crv` `Ed25519`) with their `kid`.
    keys: Vec<serde_json::Value>,
}

/// A product.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Product {
    /// The product id.
    id: uuid::Uuid,
    /// The stock keeping unit.
    sku: String,
    /// The display name.
    name: String,
    /// A longer description, plain text.
    description: String,
    /// Unit price in minor units of `currency`.
    price_cents: i64,
    /// ISO 4217 code.
    #[schema(example = "EUR")]
    currency: String,
    /// A path to the product image, relative to the shop's static files.
    image: Option<String>,
}

/// One page of products.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ProductPage {
    /// The products of this page, by id.
    items: Vec<Product>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

/// The caller's cart, priced by the catalog now.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Cart {
    /// The lines.
    items: Vec<CartItem>,
    /// Sum of the line totals.
    total_cents: i64,
    /// ISO 4217 code.
    currency: String,
    /// Changes on every change of the cart.
    version: i64,
}

/// A cart line.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CartItem {
    /// The product.
    product_id: uuid::Uuid,
    /// Its name, from the catalog.
    name: String,
    /// Its price, from the catalog (never from the client).
    unit_price_cents: i64,
    /// 1–99.
    quantity: i64,
    /// `unit_price_cents × quantity`.
    line_total_cents: i64,
}

/// The quantity to set.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SetQuantity {
    /// 1–99.
    #[schema(minimum = 1, maximum = 99)]
    quantity: i64,
}

/// Documentation-only descriptions of the routes the gateway forwards
/// (the services hold the handlers) and of the routes it serves itself
/// outside the route table.
#[allow(clippy::unused_async)]
pub mod paths {
    use super::{
        Cart, Jwks, NewSession, NewUser, Problem, ProductPage, Session, SetQuantity, User,
    };

    /// Register a user.
    #[utoipa::path(post, path = "/api/users", tag = "users",
        request_body = NewUser,
        responses(
            (status = 201, description = "Registered", body = User),
            (status = 409, description = "Username or email taken", body = Problem, content_type = "application/problem+json"),
            (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
        ))]
    pub fn create_user() {}

    /// The current user.
    #[utoipa::path(get, path = "/api/users/me", tag = "users", security(("bearer" = [])),
        responses(
            (status = 200, description = "The caller", body = User),
            (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        ))]
    pub fn get_me() {}

    /// Log in: exchange credentials for an access token.
    #[utoipa::path(post, path = "/api/sessions", tag = "users",
        request_body = NewSession,
        responses(
            (status = 200, description = "Logged in", body = Session),
            (status = 401, description = "Bad credentials (the same answer for an unknown user)", body = Problem, content_type = "application/problem+json"),
            (status = 429, description = "Too many attempts", body = Problem, content_type = "application/problem+json"),
        ))]
    pub fn create_session() {}

    /// The public keys that verify access tokens.
    #[utoipa::path(get, path = "/.well-known/jwks.json", tag = "users",
        responses((status = 200, description = "The key set", body = Jwks)))]
    pub fn get_jwks() {}

    /// List products (paged), or look several up by id.
    #[utoipa::path(get, path = "/api/products", tag = "catalog",
        params(
            ("limit" = Option<u32>, Query, description = "Page size, 1–100 (default 20)"),
            ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
            ("ids" = Option<String>, Query, description = "Comma-separated product ids (at most 100); not with limit/cursor"),
        ),
        responses(
            (status = 200, description = "A page of products", body = ProductPage),
            (status = 400, description = "Unknown query parameter", body = Problem, content_type = "application/problem+json"),
            (status = 422, description = "Invalid query parameter", body = Problem, content_type = "application/problem+json"),
        ))]
    pub fn list_products() {}

    /// One product.
    #[utoipa::path(get, path = "/api/products/{id}", tag = "catalog",
        params(("id" = String, Path, description = "Product id (UUID)")),
        responses(
            (status = 200, description = "The product", body = super::Product),
            (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
        ))]
    pub fn get_product() {}

    /// The caller's cart.
    #[utoipa::path(get, path = "/api/cart", tag = "cart", security(("bearer" = [])),
        responses(
            (status = 200, description = "The cart", body = Cart),
            (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        ))]
    pub fn get_cart() {}

    /// Empty the caller's cart.
    #[utoipa::path(delete, path = "/api/cart", tag = "cart", security(("bearer" = [])),
        responses(
            (status = 204, description = "Emptied"),
            (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        ))]
    pub fn delete_cart() {}

    /// Set the quantity of a product in the cart (idempotent).
    #[utoipa::path(put, path = "/api/cart/items/{product_id}", tag = "cart", security(("bearer" = [])),
        params(("product_id" = String, Path, description = "Product id (UUID)")),
        request_body = SetQuantity,
        responses(
            (status = 200, description = "The updated cart", body = Cart),
            (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
            (status = 404, description = "Unknown product", body = Problem, content_type = "application/problem+json"),
            (status = 422, description = "Invalid quantity", body = Problem, content_type = "application/problem+json"),
        ))]
    pub fn put_cart_item() {}

    /// Remove a product from the cart.
    #[utoipa::path(delete, path = "/api/cart/items/{product_id}", tag = "cart", security(("bearer" = [])),
        params(("product_id" = String, Path, description = "Product id (UUID)")),
        responses(
            (status = 204, description = "Removed (or was not there)"),
            (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        ))]
    pub fn delete_cart_item() {}

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
    use crate::routes::{DOCS_PATH, PROBES, ROUTES};

    #[test]
    fn the_document_lists_exactly_the_routes_served() {
        let json = ApiDoc::openapi().to_json().expect("serialises");
        let document: serde_json::Value = serde_json::from_str(&json).expect("parses");
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

        let schemas = document["components"]["schemas"]
            .as_object()
            .expect("schemas");
        for name in ["Problem", "Order", "Cart", "User", "ProductPage"] {
            assert!(schemas.contains_key(name), "{name} schema");
        }
        assert!(schemas["Problem"]["properties"].get("type").is_some());
        assert!(document["components"]["securitySchemes"]["bearer"].is_object());
    }
}
