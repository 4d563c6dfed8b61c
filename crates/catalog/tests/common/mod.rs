//! `spawn_app()` for the catalog service: a real service on 127.0.0.1 port 0
//! over a fresh (migrated and seeded) database, with typed request helpers.

#![allow(dead_code)] // each test binary uses a different subset
#![allow(clippy::expect_used)] // test helpers: a failed setup should fail the test

use std::ops::Deref;

use secrecy::SecretString;
use serde_json::{Value, json};
use shop_api::stock::ReservationOutcome;
use shop_api::{OrderId, ProductId};
use shop_catalog::{Application, Settings};
use shop_common::config::{AdminSettings, DatabaseSettings, HttpSettings, InternalSettings};
use shop_common::wire;
use shop_testkit::{LOOPBACK, TestDatabase, TestService, send};

/// How many products the seed migration inserts.
pub const SEEDED: usize = 16;

/// The credential the test services accept on internal routes.
pub const SERVICE_TOKEN: &str = "catalog-test-service-token";

/// A running catalog service: the shared [`TestService`] handle (URLs,
/// client, database; stopped when dropped) with catalog's request helpers.
pub struct TestApp(TestService);

impl Deref for TestApp {
    type Target = TestService;

    fn deref(&self) -> &TestService {
        &self.0
    }
}

/// Settings for a test: loopback, port 0 (API and admin), the given database.
pub fn settings(db: &TestDatabase) -> Settings {
    Settings {
        http: HttpSettings::new(LOOPBACK, 0),
        admin: AdminSettings::new(LOOPBACK, 0),
        database: DatabaseSettings::new(&db.url),
        internal: InternalSettings {
            service_token: Some(SecretString::from(SERVICE_TOKEN)),
        },
        ..Settings::default()
    }
}

/// Starts the service over `db`.
pub async fn spawn_app(db: TestDatabase) -> TestApp {
    if shop_testkit::test_log() {
        shop_common::telemetry::init();
    }
    let running = Application::build_in(settings(&db), shop_discovery::Registry::in_process())
        .await
        .expect("the catalog service starts")
        .spawn();
    let (api, admin) = (running.addr(), running.admin_addr().expect("admin is on"));
    TestApp(shop_testkit::started(api, admin, running, db))
}

/// One running service per test database (SQLite, and PostgreSQL when configured).
pub async fn apps() -> Vec<TestApp> {
    shop_testkit::per_database(spawn_app).await
}

impl TestApp {
    /// `GET /api/products` with `query` pairs, URL-encoded by the client.
    pub async fn products(&self, query: &[(&str, &str)]) -> reqwest::Response {
        send(self.client.get(self.url("/api/products")).query(query)).await
    }

    /// `GET /api/products` with `query`, expecting 200; returns the body.
    pub async fn products_ok(&self, query: &[(&str, &str)]) -> Value {
        let response = self.products(query).await;
        assert_eq!(response.status(), 200, "{}: {query:?}", self.engine);
        response.json().await.expect("json")
    }

    /// Asserts that `GET path` is a problem+json answer with `status`
    /// (`case` and the engine name a failure); returns its body.
    pub async fn assert_get_problem(&self, path: &str, status: u16, case: &str) -> Value {
        let context = format!("{}: {case}", self.engine);
        assert_problem(self.get(path).await, status, &context).await
    }

    /// Asserts that `GET /api/products` with `query` is a 422 problem whose
    /// `errors` name `field`.
    pub async fn assert_invalid(&self, query: &[(&str, &str)], field: &str) {
        let context = format!("{}: {query:?}", self.engine);
        let body = assert_problem(self.products(query).await, 422, &context).await;
        assert!(body["errors"][field].is_string(), "{context}: {body}");
    }

    /// Every product, walking the list page by page with `limit`.
    pub async fn all_products(&self, limit: usize) -> Vec<Value> {
        let limit = limit.to_string();
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut query = vec![("limit", limit.as_str())];
            if let Some(cursor) = &cursor {
                query.push(("cursor", cursor));
            }
            let page = self.products_ok(&query).await;
            all.extend(page["items"].as_array().expect("items").iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => {
                    assert!(page["next_cursor"].is_null(), "{page}");
                    return all;
                }
            }
            assert!(
                all.len() <= SEEDED * 2,
                "{}: paging does not end",
                self.engine
            );
        }
    }

    /// The ids of every product, in list order.
    pub async fn all_ids(&self) -> Vec<String> {
        self.all_products(100)
            .await
            .iter()
            .map(|product| product["id"].as_str().expect("id").to_owned())
            .collect()
    }

    /// `http_requests_total` of the catalog for `GET route` answered
    /// `status`, read from the admin listener's `/metrics` (0 before the
    /// first); checks that the scrape answers 200 Prometheus text.
    pub async fn requests_counted(&self, route: &str, status: u16) -> f64 {
        let text = self.scrape().await;
        let status = status.to_string();
        let labels = [
            ("service", "catalog"),
            ("method", "GET"),
            ("route", route),
            ("status", status.as_str()),
        ];
        shop_testkit::metric_value(&text, "http_requests_total", &labels).unwrap_or(0.0)
    }

    /// `PUT /internal/reservations/{order}` with the service credential
    /// and `lines` of (product, quantity).
    pub async fn reserve(&self, order: OrderId, lines: &[(ProductId, i64)]) -> reqwest::Response {
        let lines: Vec<Value> = lines
            .iter()
            .map(|(product, quantity)| json!({"product_id": product, "quantity": quantity}))
            .collect();
        let path = format!("/internal/reservations/{order}");
        self.internal_put(&path, &json!({ "lines": lines })).await
    }

    /// [`TestApp::reserve`], expecting 200; returns the outcome.
    pub async fn reserve_ok(
        &self,
        order: OrderId,
        lines: &[(ProductId, i64)],
    ) -> ReservationOutcome {
        let response = self.reserve(order, lines).await;
        assert_eq!(response.status(), 200, "{}: reserve {order}", self.engine);
        response.json().await.expect("outcome")
    }

    /// `POST /internal/reservations/{order}/release` with the service
    /// credential, expecting 200; returns the outcome.
    pub async fn release_ok(&self, order: OrderId) -> ReservationOutcome {
        let path = format!("/internal/reservations/{order}/release");
        let response = send(self.internal(self.client.post(self.url(&path)))).await;
        assert_eq!(response.status(), 200, "{}: release {order}", self.engine);
        response.json().await.expect("outcome")
    }

    /// `PUT /internal/products/{product}/stock` with the service credential.
    pub async fn set_stock(&self, product: &str, stock: i64) -> reqwest::Response {
        let path = format!("/internal/products/{product}/stock");
        self.internal_put(&path, &json!({ "stock": stock })).await
    }

    /// [`TestApp::set_stock`], expecting 200; returns the product.
    pub async fn set_stock_ok(&self, product: ProductId, stock: i64) -> Value {
        let response = self.set_stock(&product.to_string(), stock).await;
        assert_eq!(
            response.status(),
            200,
            "{}: set stock of {product}",
            self.engine
        );
        let body: Value = response.json().await.expect("product");
        assert_eq!(body["stock"], stock, "{}: {body}", self.engine);
        body
    }

    /// The stock `GET /api/products/{product}` shows.
    pub async fn stock_of(&self, product: ProductId) -> i64 {
        let response = self.get(&format!("/api/products/{product}")).await;
        assert_eq!(response.status(), 200, "{}: {product}", self.engine);
        let body: Value = response.json().await.expect("product");
        body["stock"].as_i64().expect("stock is an integer")
    }

    /// `PUT path` with a JSON `body` and the service credential.
    pub async fn internal_put(&self, path: &str, body: &Value) -> reqwest::Response {
        send(self.internal(self.client.put(self.url(path)).json(body))).await
    }

    /// `request` carrying the service credential.
    pub fn internal(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request.header(wire::SERVICE_TOKEN, SERVICE_TOKEN)
    }

    /// `catalog_reservations_total` or `catalog_releases_total` (`name`)
    /// with `outcome`, read from `/metrics` (0 before the first). The
    /// recorder is the process's, shared by every test of this binary.
    pub async fn stock_counted(&self, name: &str, outcome: &str) -> f64 {
        let text = self.scrape().await;
        shop_testkit::metric_value(&text, name, &[("outcome", outcome)]).unwrap_or(0.0)
    }

    /// A direct connection to the service's database, for arranging data the
    /// read-only API cannot.
    pub async fn db(&self) -> shop_common::db::Db {
        shop_common::db::Db::connect(&DatabaseSettings::new(&self.db_url))
            .await
            .expect("connect")
    }
}

/// Asserts a problem+json response (shared by every crate's tests).
#[allow(unused_imports)] // not every test binary checks problems
pub use shop_testkit::assert_problem;
