//! `spawn_app()` for the catalog service: a real service on 127.0.0.1 port 0
//! over a fresh (migrated and seeded) database, with typed request helpers.

#![allow(dead_code)] // each test binary uses a different subset
#![allow(clippy::expect_used)] // test helpers: a failed setup should fail the test

use std::net::{IpAddr, Ipv4Addr};

use serde_json::Value;
use shop_catalog::{Application, Settings};
use shop_common::config::{AdminSettings, DatabaseSettings, HttpSettings};
use shop_testkit::{Engine, TestDatabase};
use tokio_util::sync::CancellationToken;

/// How many products the seed migration inserts.
pub const SEEDED: usize = 16;

/// A running catalog service.
pub struct TestApp {
    pub base: String,
    /// The admin listener's base URL (`/metrics`).
    pub admin: String,
    pub client: reqwest::Client,
    pub engine: Engine,
    pub db_url: String,
    stop: CancellationToken,
    _db: TestDatabase,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Settings for a test: loopback, port 0 (API and admin), the given database.
pub fn settings(db: &TestDatabase) -> Settings {
    Settings {
        http: HttpSettings::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        admin: AdminSettings::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        database: DatabaseSettings::new(&db.url),
        ..Settings::default()
    }
}

/// Starts the service over `db`.
pub async fn spawn_app(db: TestDatabase) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        shop_common::telemetry::init();
    }
    let app = Application::build_in(settings(&db), shop_discovery::Registry::in_process())
        .await
        .expect("the catalog service starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    let admin = format!(
        "http://{}",
        app.admin_addr().expect("the admin listener is on")
    );
    let stop = CancellationToken::new();
    tokio::spawn(app.run_until_stopped(stop.clone()));
    TestApp {
        base,
        admin,
        client: reqwest::Client::new(),
        engine: db.engine,
        db_url: db.url.clone(),
        stop,
        _db: db,
    }
}

/// One running service per test database (SQLite, and PostgreSQL when configured).
pub async fn apps() -> Vec<TestApp> {
    let mut apps = Vec::new();
    for db in shop_testkit::databases().await {
        apps.push(spawn_app(db).await);
    }
    apps
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET path` (with its query string as given).
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    /// `GET /api/products` with `query` pairs, URL-encoded by the client.
    pub async fn products(&self, query: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .get(self.url("/api/products"))
            .query(query)
            .send()
            .await
            .expect("request sent")
    }

    /// `GET /api/products` with `query`, expecting 200; returns the body.
    pub async fn products_ok(&self, query: &[(&str, &str)]) -> Value {
        let response = self.products(query).await;
        assert_eq!(response.status(), 200, "{}: {query:?}", self.engine);
        response.json().await.expect("json")
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
        let response = self
            .client
            .get(format!("{}/metrics", self.admin))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 200, "{}: admin /metrics", self.engine);
        let content_type = response.headers()["content-type"].clone();
        assert!(
            content_type
                .to_str()
                .is_ok_and(|t| t.starts_with("text/plain")),
            "{content_type:?}"
        );
        let text = response.text().await.expect("text");
        let status = status.to_string();
        let labels = [
            ("service", "catalog"),
            ("method", "GET"),
            ("route", route),
            ("status", status.as_str()),
        ];
        shop_testkit::metric_value(&text, "http_requests_total", &labels).unwrap_or(0.0)
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
