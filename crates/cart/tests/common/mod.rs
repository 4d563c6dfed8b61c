//! A small stack for cart tests: users, catalog and cart instances on
//! 127.0.0.1 port 0, finding each other through one in-process registry.

#![allow(dead_code)] // each test binary uses a different subset
#![allow(clippy::expect_used)] // test helpers: a failed setup should fail the test

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde_json::{Value, json};
use shop_common::config::{AdminSettings, DatabaseSettings, HttpSettings};
use shop_discovery::Registry;
use shop_testkit::{Engine, TestDatabase};
use tokio_util::sync::CancellationToken;

/// The service credential the test carts accept.
pub const SERVICE_TOKEN: &str = "test-service-token";

fn loopback() -> HttpSettings {
    HttpSettings::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)
}

/// The admin listener (`/metrics`) on a free loopback port.
fn admin_loopback() -> AdminSettings {
    AdminSettings::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)
}

/// A running service and how to stop it.
pub struct Running {
    pub base: String,
    /// Its admin listener's base URL (`/metrics`).
    pub admin: String,
    pub stop: CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// users + catalog + `carts` cart replicas over one cart database.
pub struct Stack {
    pub registry: Registry,
    pub users: Running,
    pub catalog: Running,
    pub carts: Vec<Running>,
    pub engine: Engine,
    /// The cart database.
    pub cart_url: String,
    pub client: reqwest::Client,
    _dbs: Vec<TestDatabase>,
}

/// Starts a stack whose cart database is `cart_db`, carts with defaults.
pub async fn spawn_stack(cart_db: TestDatabase, carts: usize) -> Stack {
    spawn_stack_with(cart_db, carts, |_| {}).await
}

/// Starts users, catalog and one cart on SQLite whose catalog cache keeps
/// products for `ttl_ms` (0: off).
pub async fn spawn_with_catalog_cache(ttl_ms: u64) -> Stack {
    spawn_stack_with(TestDatabase::sqlite(), 1, |settings| {
        settings.catalog_cache.ttl_ms = ttl_ms;
    })
    .await
}

/// Starts a stack whose cart database is `cart_db`; `configure` adjusts each
/// cart's settings.
pub async fn spawn_stack_with(
    cart_db: TestDatabase,
    carts: usize,
    configure: impl Fn(&mut shop_cart::Settings),
) -> Stack {
    if std::env::var_os("TEST_LOG").is_some() {
        shop_common::telemetry::init();
    }
    let registry = Registry::in_process();
    let users_db = TestDatabase::sqlite();
    let catalog_db = TestDatabase::sqlite();

    let users_settings = shop_users::Settings {
        http: loopback(),
        admin: admin_loopback(),
        database: DatabaseSettings::new(&users_db.url),
        ..shop_users::Settings::default()
    };
    let users = shop_users::Application::build_in(users_settings, registry.clone())
        .await
        .expect("users starts");
    let users = run(users.port(), users.admin_addr(), |stop| {
        users.run_until_stopped(stop)
    });

    let catalog_settings = shop_catalog::Settings {
        http: loopback(),
        admin: admin_loopback(),
        database: DatabaseSettings::new(&catalog_db.url),
        ..shop_catalog::Settings::default()
    };
    let catalog = shop_catalog::Application::build_in(catalog_settings, registry.clone())
        .await
        .expect("catalog starts");
    let catalog = run(catalog.port(), catalog.admin_addr(), |stop| {
        catalog.run_until_stopped(stop)
    });

    let mut running = Vec::new();
    for _ in 0..carts {
        running.push(spawn_cart(&registry, &cart_db.url, &configure).await);
    }
    Stack {
        registry,
        users,
        catalog,
        carts: running,
        engine: cart_db.engine,
        cart_url: cart_db.url.clone(),
        client: reqwest::Client::new(),
        _dbs: vec![users_db, catalog_db, cart_db],
    }
}

/// Starts one more cart instance over the database at `url`.
async fn spawn_cart(
    registry: &Registry,
    url: &str,
    configure: impl Fn(&mut shop_cart::Settings),
) -> Running {
    let mut settings = shop_cart::Settings {
        http: loopback(),
        admin: admin_loopback(),
        database: DatabaseSettings::new(url),
        ..shop_cart::Settings::default()
    };
    settings.internal.service_token = Some(SERVICE_TOKEN.to_owned().into());
    configure(&mut settings);
    let cart = shop_cart::Application::build_in(settings, registry.clone())
        .await
        .expect("cart starts");
    run(cart.port(), cart.admin_addr(), |stop| {
        cart.run_until_stopped(stop)
    })
}

fn run<F>(
    port: u16,
    admin: Option<SocketAddr>,
    start: impl FnOnce(CancellationToken) -> F,
) -> Running
where
    F: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
{
    let stop = CancellationToken::new();
    tokio::spawn(start(stop.clone()));
    Running {
        base: format!("http://127.0.0.1:{port}"),
        admin: format!("http://{}", admin.expect("the admin listener is on")),
        stop,
    }
}

impl Stack {
    /// Registers and logs in a user; returns the access token.
    pub async fn token(&self, username: &str) -> String {
        let password = "correct horse battery";
        let response = self
            .client
            .post(format!("{}/api/users", self.users.base))
            .json(&json!({"username": username, "email": format!("{username}@example.com"), "password": password}))
            .send()
            .await
            .expect("register");
        assert_eq!(response.status(), 201);
        let session: Value = self
            .client
            .post(format!("{}/api/sessions", self.users.base))
            .json(&json!({"login": username, "password": password}))
            .send()
            .await
            .expect("login")
            .json()
            .await
            .expect("json");
        session["access_token"].as_str().expect("token").to_owned()
    }

    /// Registers `username` and puts one of the catalog's first product in
    /// the first cart (checked to succeed); returns the token and product.
    pub async fn shopper_with_one_item(&self, username: &str) -> (String, String) {
        let token = self.token(username).await;
        let product = self.product_ids().await.remove(0);
        let put = self
            .put_item(self.cart(), &token, &product, json!({"quantity": 1}))
            .await;
        assert_eq!(put.status(), 200, "putting the first item");
        (token, product)
    }

    /// Every product in the catalog, in list order.
    pub async fn products(&self) -> Vec<Value> {
        let page: Value = self
            .client
            .get(format!("{}/api/products?limit=100", self.catalog.base))
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        page["items"].as_array().expect("items").clone()
    }

    /// The ids of every product in the catalog, in list order.
    pub async fn product_ids(&self) -> Vec<String> {
        self.products()
            .await
            .iter()
            .map(|product| product["id"].as_str().expect("id").to_owned())
            .collect()
    }

    /// Stops the catalog and waits (bounded) until its listener refuses
    /// connections; deregistration is immediate.
    pub async fn stop_catalog(&self) {
        self.catalog.stop.cancel();
        let addr = self.catalog.base.trim_start_matches("http://");
        for _ in 0..500 {
            if tokio::net::TcpStream::connect(addr).await.is_err() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the catalog at {addr} still accepts connections after 5 s");
    }

    /// The first cart instance's base URL.
    pub fn cart(&self) -> &str {
        &self.carts[0].base
    }

    /// The first cart instance's admin base URL (`/metrics`).
    pub fn cart_admin(&self) -> &str {
        &self.carts[0].admin
    }

    /// The cart's `cart_catalog_cache_lookups_total{result}` from `/metrics`.
    pub async fn cache_lookups(&self, result: &str) -> f64 {
        self.counter("cart_catalog_cache_lookups_total", &[("result", result)])
            .await
    }

    /// The value of the first cart counter `name` whose labels include all
    /// of `labels` (none: any, or an unlabelled counter), from the admin
    /// listener's `/metrics`; panics when there is none.
    pub async fn counter(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let text = self
            .client
            .get(format!("{}/metrics", self.cart_admin()))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        shop_testkit::metric_value(&text, name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{text}"))
    }

    pub async fn get_cart(&self, base: &str, token: &str) -> reqwest::Response {
        self.client
            .get(format!("{base}/api/cart"))
            .bearer_auth(token)
            .send()
            .await
            .expect("sent")
    }

    pub async fn put_item(
        &self,
        base: &str,
        token: &str,
        product: &str,
        body: Value,
    ) -> reqwest::Response {
        self.client
            .put(format!("{base}/api/cart/items/{product}"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("sent")
    }

    pub async fn remove_order(
        &self,
        base: &str,
        user: &str,
        body: &Value,
        credential: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{base}/internal/carts/{user}/order-removals"))
            .json(body);
        if let Some(credential) = credential {
            request = request.header("x-shop-service-token", credential);
        }
        request.send().await.expect("sent")
    }
}

/// The `sub` (user id) of a token, read without verification (tests only).
pub fn user_id(token: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("jwt");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("b64");
    let claims: Value = serde_json::from_slice(&bytes).expect("json");
    claims["sub"].as_str().expect("sub").to_owned()
}

/// Asserts a problem+json response (shared by every crate's tests).
#[allow(unused_imports)] // not every test binary checks problems
pub use shop_testkit::assert_problem;
