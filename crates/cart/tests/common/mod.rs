//! Cart tests' stack: users, catalog and cart replicas from the shared
//! stack builder ([`shop::Stack`]), and what only cart tests ask of it.

#![allow(dead_code, unused_imports)] // each test binary uses a different subset
#![allow(clippy::expect_used)] // test helpers: a failed setup should fail the test

use serde_json::{Value, json};
use shop::StackBuilder;
use shop::stack::{Cart, Catalog, Users};
pub use shop::testing::{TestStack as Stack, user_id};
use shop_testkit::TestDatabase;
/// Asserts a problem+json response (shared by every crate's tests).
pub use shop_testkit::assert_problem;

/// The service credential the test carts accept.
pub const SERVICE_TOKEN: &str = "test-service-token";

/// users, catalog and `carts` cart replicas over one cart database, with
/// the test service token.
fn builder(cart_db: TestDatabase, carts: usize) -> StackBuilder {
    StackBuilder::for_tests()
        .with::<Users>()
        .with::<Catalog>()
        .replicas::<Cart>(carts)
        .test_database("cart", cart_db)
        .service_token(SERVICE_TOKEN)
}

/// Starts a stack whose cart database is `cart_db`, carts with defaults.
pub async fn spawn_stack(cart_db: TestDatabase, carts: usize) -> Stack {
    spawn_stack_with(cart_db, carts, |_| {}).await
}

/// Starts users, catalog and one cart on SQLite whose catalog cache keeps
/// products for `ttl_ms` (0: off).
pub async fn spawn_with_catalog_cache(ttl_ms: u64) -> Stack {
    spawn_stack_with(TestDatabase::sqlite(), 1, move |settings| {
        settings.catalog_cache.ttl_ms = ttl_ms;
    })
    .await
}

/// Starts a stack whose cart database is `cart_db`; `configure` adjusts each
/// cart's settings.
pub async fn spawn_stack_with(
    cart_db: TestDatabase,
    carts: usize,
    configure: impl Fn(&mut shop_cart::Settings) + Send + Sync + 'static,
) -> Stack {
    let engine = cart_db.engine;
    builder(cart_db, carts)
        .configure::<Cart>(configure)
        .start_test(engine)
        .await
}

/// What cart tests ask of their stack beyond the shared helpers.
pub trait CartStack {
    /// The base URLs of the cart replicas, in start order.
    fn carts(&self) -> Vec<String>;
    /// Registers `username` and puts one of the catalog's first product in
    /// the first cart (checked to succeed); returns the token and product.
    async fn shopper_with_one_item(&self, username: &str) -> (String, String);
    /// The first cart's `cart_catalog_cache_lookups_total{result}`.
    async fn cache_lookups(&self, result: &str) -> f64;
    /// The first cart's metric `name` with `labels`, from its admin listener.
    async fn counter(&self, name: &str, labels: &[(&str, &str)]) -> f64;
    /// Sets `quantity` of `product` in `token`'s cart at the first cart,
    /// asserting 200; the cart as the change left it.
    async fn put(&self, token: &str, product: &str, quantity: i64) -> Value;
    /// Cart's answer to the order removal `body` for `user`, with the
    /// service credential, at `base`; asserts 200 and whether it `applied`.
    async fn assert_removal(&self, base: &str, user: &str, body: &Value, applied: bool) -> Value;
    /// The version of `token`'s cart at the first cart, as orders' snapshot
    /// reads it.
    async fn cart_version(&self, token: &str) -> i64;
}

/// An order-removal body: `order`'s (product, quantity) `lines`.
pub fn removal(order: uuid::Uuid, lines: &[(&str, i64)]) -> Value {
    let lines: Vec<Value> = lines
        .iter()
        .map(|(product, quantity)| json!({"product_id": product, "quantity": quantity}))
        .collect();
    json!({"order_id": order, "lines": lines})
}

/// An order-removal body for an order made from the cart at `cart_version`.
pub fn removal_at(order: uuid::Uuid, cart_version: i64, lines: &[(&str, i64)]) -> Value {
    let mut body = removal(order, lines);
    body["cart_version"] = json!(cart_version);
    body
}

impl CartStack for Stack {
    fn carts(&self) -> Vec<String> {
        self.instances("cart")
            .map(shop_runtime::Running::base)
            .collect()
    }

    async fn shopper_with_one_item(&self, username: &str) -> (String, String) {
        let token = self.token(username).await;
        let product = self.product_ids().await.remove(0);
        self.put(&token, &product, 1).await;
        (token, product)
    }

    async fn cache_lookups(&self, result: &str) -> f64 {
        self.counter("cart_catalog_cache_lookups_total", &[("result", result)])
            .await
    }

    async fn counter(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.metric("cart-1", name, labels).await
    }

    async fn put(&self, token: &str, product: &str, quantity: i64) -> Value {
        let body = json!({"quantity": quantity});
        let put = self.put_item(&self.cart(), token, product, body).await;
        let status = put.status();
        let answer: Value = put.json().await.expect("json");
        assert_eq!(
            status, 200,
            "{}: put {product} x{quantity}: {answer}",
            self.engine
        );
        answer
    }

    async fn assert_removal(&self, base: &str, user: &str, body: &Value, applied: bool) -> Value {
        let removal = self.remove_order(base, user, body, Some(SERVICE_TOKEN));
        let removal = removal.await;
        let status = removal.status();
        let answer: Value = removal.json().await.expect("json");
        assert_eq!(status, 200, "{}: {body}: {answer}", self.engine);
        assert_eq!(
            answer["applied"], applied,
            "{}: {body}: {answer}",
            self.engine
        );
        answer
    }

    async fn cart_version(&self, token: &str) -> i64 {
        let cart = self.cart_json(&self.cart(), token).await;
        cart["version"].as_i64().expect("version")
    }
}
