//! What the services' integration tests share (feature `testing`): a
//! [`TestStack`] on throwaway databases, users that register and log in,
//! and the requests and bounded waits every test repeats.
//!
//! Logs print only when `TEST_LOG` is set.

// Test support: a failed setup or request should fail the test loudly.
#![allow(clippy::expect_used, clippy::panic)]

use std::fmt::Debug;
use std::future::Future;
use std::ops::Deref;
use std::time::Duration;

use serde_json::{Value, json};
use shop_testkit::{Engine, TestDatabase};

use crate::{DATABASES, Stack, StackBuilder};

/// Longest wait for an asynchronous outcome (a relay, a purge, readiness).
pub const WAIT: Duration = Duration::from_secs(15);
/// The password of every test user.
pub const PASSWORD: &str = "correct horse battery";

impl StackBuilder {
    /// A builder for a test: free loopback ports, admin listeners on, every
    /// service on a fresh SQLite database of its own, the services' logs on
    /// the test's output when `TEST_LOG` is set.
    pub fn for_tests() -> Self {
        if shop_testkit::test_log() {
            shop_common::telemetry::init();
        }
        DATABASES.into_iter().fold(Self::new(), |builder, service| {
            builder.test_database(service, TestDatabase::sqlite())
        })
    }

    /// `service` on `db`, which lives as long as the stack.
    #[must_use]
    pub fn test_database(self, service: &str, db: TestDatabase) -> Self {
        self.database(service, db.url.clone()).keep(db)
    }

    /// Every service on a fresh database on `engine`.
    pub async fn on(self, engine: Engine) -> Self {
        let mut builder = self;
        for service in DATABASES {
            builder = builder.test_database(service, database(engine).await);
        }
        builder
    }

    /// Starts the stack for a test whose database under test runs on
    /// `engine`.
    pub async fn start_test(self, engine: Engine) -> TestStack {
        TestStack {
            stack: self.start().await.expect("the stack starts"),
            client: reqwest::Client::new(),
            engine,
        }
    }
}

/// A fresh database on `engine`.
///
/// # Panics
/// When `engine` is PostgreSQL and no test server is configured.
pub async fn database(engine: Engine) -> TestDatabase {
    match engine {
        Engine::Sqlite => TestDatabase::sqlite(),
        Engine::Postgres => TestDatabase::postgres()
            .await
            .expect("PostgreSQL is configured"),
    }
}

/// Orders settings for tests: quick drains, and a relay that polls every
/// 50 ms and backs off briefly, so deliveries land within a test's wait.
pub fn quick_orders(settings: &mut shop_orders::Settings) {
    settings.grpc.drain_timeout_secs = 2;
    settings.http.drain_timeout_secs = 2;
    settings.relay.poll_interval_ms = 50;
    settings.relay.initial_backoff_ms = 20;
    settings.relay.max_backoff_ms = 200;
    // Checkout: participants' calls bounded well under the lease, so an
    // order whose driver died is taken over within seconds; retries soon.
    settings.catalog.deadline_ms = 2_000;
    settings.payments.deadline_ms = 2_000;
    settings.saga.lease_ms = 3_000;
    settings.saga.poll_interval_ms = 50;
    settings.saga.initial_backoff_ms = 20;
    settings.saga.max_backoff_ms = 200;
}

/// A started [`Stack`] with a client, for one test (the stack's own
/// methods through `Deref`; taking a service out through
/// [`TestStack::stop_service`]).
pub struct TestStack {
    /// The services.
    pub stack: Stack,
    /// A client for the test's requests.
    pub client: reqwest::Client,
    /// The engine of the database under test, for failure messages.
    pub engine: Engine,
}

impl Deref for TestStack {
    type Target = Stack;

    fn deref(&self) -> &Stack {
        &self.stack
    }
}

impl TestStack {
    /// The base URL (`http://addr`) of the service labelled `label`.
    ///
    /// # Panics
    /// When the stack runs no such service.
    pub fn base(&self, label: &str) -> String {
        self.running(label)
            .unwrap_or_else(|| panic!("the stack runs no {label}"))
            .base()
    }

    /// The admin listener's base URL of the service labelled `label`.
    ///
    /// # Panics
    /// When the stack runs no such service or it has no admin listener.
    pub fn admin(&self, label: &str) -> String {
        self.running(label)
            .and_then(shop_runtime::Running::admin_base)
            .unwrap_or_else(|| panic!("the stack runs no {label} with an admin listener"))
    }

    /// Where a client enters: the gateway when the stack runs one, else
    /// the service labelled `label` itself.
    pub fn entry(&self, label: &str) -> String {
        let front = if self.running("gateway").is_some() {
            "gateway"
        } else {
            label
        };
        self.base(front)
    }

    /// The gateway URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base("gateway"))
    }

    /// The first cart's base URL.
    pub fn cart(&self) -> String {
        self.base("cart-1")
    }

    /// The credential cart accepts and orders presents.
    pub fn service_token(&self) -> &str {
        self.plan().service_token()
    }

    /// The URL of `service`'s database.
    pub fn db_url(&self, service: &str) -> String {
        self.plan()
            .database_url(service)
            .unwrap_or_else(|| panic!("the stack gave {service} no database"))
            .to_owned()
    }

    /// Registers and logs in `username` (through the gateway when there is
    /// one); returns the access token.
    pub async fn token(&self, username: &str) -> String {
        login(&self.client, &self.entry("users"), username).await
    }

    /// `username`, registered and logged in through the gateway, shopping
    /// there.
    ///
    /// # Panics
    /// When the stack runs no gateway.
    pub async fn shopper(&self, username: &str) -> Shopper {
        Shopper::login(&self.client, &self.base("gateway"), username).await
    }

    /// Every product in the catalog, in list order.
    pub async fn products(&self) -> Vec<Value> {
        products(&self.client, &self.entry("catalog")).await
    }

    /// The ids of every product in the catalog, in list order.
    pub async fn product_ids(&self) -> Vec<String> {
        ids(&self.products().await)
    }

    /// `GET {base}/api/cart` as `token`.
    pub async fn get_cart(&self, base: &str, token: &str) -> reqwest::Response {
        shop_testkit::send(
            self.client
                .get(format!("{base}/api/cart"))
                .bearer_auth(token),
        )
        .await
    }

    /// `token`'s cart at `base`, as JSON.
    pub async fn cart_json(&self, base: &str, token: &str) -> Value {
        self.get_cart(base, token).await.json().await.expect("json")
    }

    /// `PUT {base}/api/cart/items/{product}` as `token` with `body`.
    pub async fn put_item(
        &self,
        base: &str,
        token: &str,
        product: &str,
        body: Value,
    ) -> reqwest::Response {
        let url = format!("{base}/api/cart/items/{product}");
        shop_testkit::send(self.client.put(url).bearer_auth(token).json(&body)).await
    }

    /// `DELETE {base}{path}` as `token`.
    pub async fn delete(&self, base: &str, path: &str, token: &str) -> reqwest::Response {
        shop_testkit::send(
            self.client
                .delete(format!("{base}{path}"))
                .bearer_auth(token),
        )
        .await
    }

    /// Cart's internal order removal for `user` with `body`, presenting
    /// `credential` as the service token when given.
    pub async fn remove_order(
        &self,
        base: &str,
        user: &str,
        body: &Value,
        credential: Option<&str>,
    ) -> reqwest::Response {
        let url = format!("{base}/internal/carts/{user}/order-removals");
        let mut request = self.client.post(url).json(body);
        if let Some(credential) = credential {
            request = request.header(shop_common::wire::SERVICE_TOKEN, credential);
        }
        shop_testkit::send(request).await
    }

    /// The value of the first metric `name` of the service labelled `label`
    /// whose labels include all of `labels`, from its admin listener.
    ///
    /// # Panics
    /// When there is none.
    pub async fn metric(&self, label: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
        let text = shop_testkit::scrape(&self.client, &self.admin(label)).await;
        shop_testkit::metric_value(&text, name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{text}"))
    }

    /// Takes the service labelled `label` out of the stack and waits until
    /// it has drained and stopped (its listener closed).
    ///
    /// # Panics
    /// When there is no such service or it stops with an error.
    pub async fn stop_service(&mut self, label: &str) {
        let mut running = self
            .stack
            .take(label)
            .unwrap_or_else(|| panic!("the stack runs no {label}"));
        running.stopped().await.expect("stopped cleanly");
    }

    /// Waits (bounded) until the gateway reports ready: it serves. (Its
    /// readiness does not wait for upstreams; in the in-process stack its
    /// registry is the in-memory one, which every upstream client sees at
    /// once.)
    pub async fn wait_ready(&self) {
        let url = self.url("/readyz");
        eventually("the gateway to be ready", || async {
            let response = self.client.get(&url).send().await;
            response.is_ok_and(|response| response.status() == 200)
        })
        .await;
    }
}

/// Registers `username` at `base` (users or the gateway) and logs in;
/// returns the access token.
pub async fn login(client: &reqwest::Client, base: &str, username: &str) -> String {
    let user = json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD});
    let created = shop_testkit::send(client.post(format!("{base}/api/users")).json(&user)).await;
    let status = created.status();
    let text = created.text().await.unwrap_or_default();
    assert_eq!(status, 201, "register {username}: {text}");
    let login = json!({"login": username, "password": PASSWORD});
    let session = shop_testkit::send(client.post(format!("{base}/api/sessions")).json(&login));
    let session: Value = session.await.json().await.expect("json");
    session["access_token"].as_str().expect("token").to_owned()
}

/// Every product the catalog at `base` (catalog or the gateway) lists on
/// its first page of 100, in list order.
pub async fn products(client: &reqwest::Client, base: &str) -> Vec<Value> {
    let list = client.get(format!("{base}/api/products?limit=100"));
    let page: Value = shop_testkit::send(list).await.json().await.expect("json");
    page["items"].as_array().expect("items").clone()
}

/// The `id` of each of `items`.
pub fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|item| item["id"].as_str().expect("id").to_owned())
        .collect()
}

/// (product, quantity) of each line of `cart`, in the cart's order.
pub fn lines(cart: &Value) -> Vec<(String, i64)> {
    cart["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|line| {
            let product = line["product_id"].as_str().expect("product_id");
            (
                product.to_owned(),
                line["quantity"].as_i64().expect("quantity"),
            )
        })
        .collect()
}

/// The `sub` (user id) of a token, read without verification.
pub fn user_id(token: &str) -> String {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64");
    let claims: Value = serde_json::from_slice(&bytes).expect("json");
    claims["sub"].as_str().expect("sub").to_owned()
}

/// A binary of this workspace, built next to the test executable that
/// calls this (the end-to-end tests start the services as processes).
///
/// # Panics
/// When it is not built (`scripts/test.sh` builds every binary with
/// `--all-features` first).
pub fn workspace_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is not built (scripts/test.sh builds every binary with --all-features)",
        path.display()
    );
    path
}

/// Reads with `read` every 25 ms until `done` holds of what it read, and
/// returns that.
///
/// # Panics
/// When it does not within [`WAIT`]; the message names `what` and shows
/// the last value read.
pub async fn wait_until<T, F, Fut>(what: &str, mut read: F, done: impl Fn(&T) -> bool) -> T
where
    T: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let value = read().await;
        if done(&value) {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; last read: {value:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until `predicate` holds, polling every 25 ms.
///
/// # Panics
/// When it does not within [`WAIT`].
pub async fn eventually<F, Fut>(what: &str, predicate: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_until(what, predicate, |held| *held).await;
}

/// A registered, logged-in user of the public API at `base` (the gateway,
/// or a service itself) and the requests a shopping journey sends.
#[derive(Debug, Clone)]
pub struct Shopper {
    /// The client the requests go through.
    pub client: reqwest::Client,
    /// Where they go (`http://addr`).
    pub base: String,
    /// The user's access token, sent as a bearer token.
    pub token: String,
}

impl Shopper {
    /// Registers and logs in `username` at `base`.
    pub async fn login(client: &reqwest::Client, base: &str, username: &str) -> Self {
        Self {
            client: client.clone(),
            base: base.to_owned(),
            token: login(client, base, username).await,
        }
    }

    /// The URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET {path}` as this user, whatever the answer.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        shop_testkit::send(self.client.get(self.url(path)).bearer_auth(&self.token)).await
    }

    /// `GET {path}` as this user, asserting a 200 answer; its JSON body.
    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        let status = response.status();
        let body: Value = response.json().await.expect("json");
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// `POST {path}` as this user without a body, whatever the answer.
    pub async fn post(&self, path: &str) -> reqwest::Response {
        shop_testkit::send(self.client.post(self.url(path)).bearer_auth(&self.token)).await
    }

    /// Places this user's cart under the idempotency `key`, paid with the
    /// test token that always succeeds, whatever the answer.
    pub async fn place(&self, key: &str) -> reqwest::Response {
        self.place_paying(key, shop_api::payments::tokens::SUCCESS)
            .await
    }

    /// Places this user's cart under the idempotency `key`, paid with
    /// `payment_token`, whatever the answer.
    pub async fn place_paying(&self, key: &str, payment_token: &str) -> reqwest::Response {
        let request = self.client.post(self.url("/api/orders"));
        let request = request
            .bearer_auth(&self.token)
            .header("idempotency-key", key)
            .json(&json!({ "payment_token": payment_token }));
        shop_testkit::send(request).await
    }

    /// Sets the quantity of `product` in this user's cart, asserting 200.
    pub async fn put_item(&self, product: &str, quantity: i64) {
        let url = self.url(&format!("/api/cart/items/{product}"));
        let body = json!({"quantity": quantity});
        let put = self.client.put(url).bearer_auth(&self.token).json(&body);
        let response = shop_testkit::send(put).await;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert_eq!(status, 200, "put {product} x{quantity}: {text}");
    }

    /// This user's cart as JSON, whatever the answer (a problem body
    /// while the cart is unreachable).
    pub async fn cart(&self) -> Value {
        self.get("/api/cart").await.json().await.expect("json")
    }

    /// Waits (bounded) until this user's cart is empty, as after the relay
    /// removed what was ordered; the failure shows the cart last read.
    pub async fn wait_for_empty_cart(&self, what: &str) {
        wait_until(what, || self.cart(), |cart| cart["items"] == json!([])).await;
    }
}
