//! `spawn_app()` for the payments service: a real service on 127.0.0.1 port
//! 0 over a fresh (migrated) database, with typed request helpers.

#![allow(dead_code)] // each test binary uses a different subset
#![allow(clippy::expect_used)] // test helpers: a failed setup should fail the test

use std::ops::Deref;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Value, json};
use shop_api::OrderId;
use shop_api::payments::{Payment, PaymentState, tokens};
use shop_common::config::{AdminSettings, DatabaseSettings, HttpSettings, InternalSettings};
use shop_common::wire::SERVICE_TOKEN as SERVICE_TOKEN_HEADER;
use shop_payments::config::ProviderSettings;
use shop_payments::{Application, Settings};
/// Asserts a problem+json response (shared by every crate's tests).
pub use shop_testkit::assert_problem;
use shop_testkit::{LOOPBACK, TestDatabase, TestService, send};

/// The service credential the test service accepts.
pub const SERVICE_TOKEN: &str = "test-service-token";
/// How long the test provider takes for `tok_slow`.
pub const SLOW: Duration = Duration::from_millis(300);

/// A running payments service: the shared [`TestService`] handle (URLs,
/// client, database; stopped when dropped) with payments' request helpers.
pub struct TestApp(TestService);

impl Deref for TestApp {
    type Target = TestService;

    fn deref(&self) -> &TestService {
        &self.0
    }
}

/// Settings for a test: loopback, port 0 (API and admin), the given
/// database, the test credential and a short slow token.
pub fn settings(db: &TestDatabase) -> Settings {
    Settings {
        http: HttpSettings::new(LOOPBACK, 0),
        admin: AdminSettings::new(LOOPBACK, 0),
        database: DatabaseSettings::new(&db.url),
        internal: InternalSettings {
            service_token: Some(SecretString::from(SERVICE_TOKEN)),
        },
        provider: ProviderSettings {
            slow_ms: SLOW.as_millis() as u64,
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
        .expect("the payments service starts")
        .spawn();
    let (api, admin) = (running.addr(), running.admin_addr().expect("admin is on"));
    TestApp(shop_testkit::started(api, admin, running, db))
}

/// One running service per test database (SQLite, and PostgreSQL when
/// configured).
pub async fn apps() -> Vec<TestApp> {
    shop_testkit::per_database(spawn_app).await
}

/// A new order id.
pub fn new_order() -> OrderId {
    OrderId(uuid::Uuid::now_v7())
}

/// An authorization body of `amount_cents` EUR with `token`.
pub fn authorize(amount_cents: i64, token: &str) -> Value {
    json!({"amount_cents": amount_cents, "currency": "EUR", "payment_token": token})
}

/// The answer's status and JSON body.
pub async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.json().await.expect("json body");
    (status, body)
}

impl TestApp {
    /// The URL of the payment of `order`, plus `suffix` (`/capture`, …).
    pub fn payment_url(&self, order: OrderId, suffix: &str) -> String {
        self.url(&format!("/internal/payments/{order}{suffix}"))
    }

    /// `PUT /internal/payments/{order}` with `body`, with the credential.
    pub async fn put(&self, order: OrderId, body: &Value) -> reqwest::Response {
        let request = self.client.put(self.payment_url(order, "")).json(body);
        send(request.header(SERVICE_TOKEN_HEADER, SERVICE_TOKEN)).await
    }

    /// `POST /internal/payments/{order}/{operation}`, with the credential.
    pub async fn post(&self, order: OrderId, operation: &str) -> reqwest::Response {
        let request = self
            .client
            .post(self.payment_url(order, &format!("/{operation}")));
        send(request.header(SERVICE_TOKEN_HEADER, SERVICE_TOKEN)).await
    }

    /// `GET /internal/payments/{order}`, with the credential.
    pub async fn fetch(&self, order: OrderId) -> reqwest::Response {
        let request = self.client.get(self.payment_url(order, ""));
        send(request.header(SERVICE_TOKEN_HEADER, SERVICE_TOKEN)).await
    }

    /// Authorizes `order` with `body`, asserting 200; the payment.
    pub async fn authorize_ok(&self, order: OrderId, body: &Value) -> Payment {
        let (status, answer) = read(self.put(order, body).await).await;
        assert_eq!(status, 200, "{}: authorize {body}: {answer}", self.engine);
        serde_json::from_value(answer).expect("a payment")
    }

    /// Authorizes `order` for 1999 EUR with `tok_visa`, asserting it is
    /// authorized.
    pub async fn authorized(&self, order: OrderId) -> Payment {
        let payment = self
            .authorize_ok(order, &authorize(1999, tokens::SUCCESS))
            .await;
        assert_eq!(payment.state, PaymentState::Authorized, "{}", self.engine);
        payment
    }

    /// `POST …/{operation}` of `order`, asserting 200 and that the payment
    /// is then in `state`; the payment.
    pub async fn change_ok(&self, order: OrderId, operation: &str, state: PaymentState) -> Payment {
        let (status, answer) = read(self.post(order, operation).await).await;
        assert_eq!(status, 200, "{}: {operation}: {answer}", self.engine);
        let payment: Payment = serde_json::from_value(answer).expect("a payment");
        assert_eq!(payment.state, state, "{}: {operation}", self.engine);
        payment
    }

    /// Asserts that `response` is a problem with `status` (`case` and the
    /// engine name a failure); returns its body.
    pub async fn assert_problem(
        &self,
        response: reqwest::Response,
        status: u16,
        case: &str,
    ) -> Value {
        assert_problem(response, status, &format!("{}: {case}", self.engine)).await
    }

    /// How many payment rows the database holds for `order`.
    pub async fn rows(&self, order: OrderId) -> i64 {
        let db = self.db().await;
        let count = db
            .count(&format!(
                "SELECT COUNT(*) FROM payments WHERE order_id = '{order}'"
            ))
            .await
            .expect("count");
        db.close().await;
        count
    }

    /// A direct connection to the service's database.
    pub async fn db(&self) -> shop_common::db::Db {
        shop_common::db::Db::connect(&DatabaseSettings::new(&self.db_url))
            .await
            .expect("connect")
    }

    /// `payments_operations_total{operation, outcome}` from the admin
    /// listener.
    pub async fn counted(&self, operation: &str, outcome: &str) -> f64 {
        let text = self.scrape().await;
        let labels = [("operation", operation), ("outcome", outcome)];
        shop_testkit::metric_value(&text, "payments_operations_total", &labels)
            .unwrap_or_else(|| panic!("no payments_operations_total {labels:?} in:\n{text}"))
    }
}
