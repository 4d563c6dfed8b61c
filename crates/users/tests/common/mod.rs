//! `spawn_app()` for the users service: a real service on 127.0.0.1 port 0
//! over a fresh database, with typed request helpers.

#![allow(dead_code)] // each test binary uses a different subset
#![allow(clippy::expect_used)] // test helpers: a failed setup should fail the test

use std::ops::Deref;
use std::sync::Arc;

use serde_json::{Value, json};
use shop_common::auth::TokenIssuer;
use shop_common::config::{AdminSettings, DatabaseSettings, HttpSettings};
use shop_testkit::{LOOPBACK, TestDatabase, TestService, send};
use shop_users::login_limit::LoginLimitSettings;
use shop_users::routes::CLIENT_IP_HEADER;
use shop_users::{Application, Settings};

/// The password the helpers register with.
pub const PASSWORD: &str = "correct horse battery";

/// A running users service: the shared [`TestService`] handle (URLs, client,
/// database; stopped when dropped) and the service's token issuer.
pub struct TestApp {
    service: TestService,
    pub issuer: Arc<TokenIssuer>,
}

impl Deref for TestApp {
    type Target = TestService;

    fn deref(&self) -> &TestService {
        &self.service
    }
}

/// Settings for a test: loopback, port 0 (API and admin), the given database.
pub fn settings(db: &TestDatabase) -> Settings {
    Settings {
        http: HttpSettings::new(LOOPBACK, 0),
        admin: AdminSettings::new(LOOPBACK, 0),
        database: DatabaseSettings::new(&db.url),
        login_limit: LoginLimitSettings {
            max_failures: 5,
            window_secs: 300,
            trust_forwarded_for: false,
            ..LoginLimitSettings::default()
        },
        ..Settings::default()
    }
}

/// Starts the service over `db` with the default test settings.
pub async fn spawn_app(db: TestDatabase) -> TestApp {
    spawn_app_with(db, |_| {}).await
}

/// Starts the service over `db` with the test [`settings`] adjusted by
/// `adjust`.
pub async fn spawn_app_with(db: TestDatabase, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    if shop_testkit::test_log() {
        shop_common::telemetry::init();
    }
    let mut settings = settings(&db);
    adjust(&mut settings);
    let app = Application::build_in(settings, shop_discovery::Registry::in_process())
        .await
        .expect("the users service starts");
    let issuer = app.service().issuer();
    let running = app.spawn();
    let (api, admin) = (running.addr(), running.admin_addr().expect("admin is on"));
    TestApp {
        service: shop_testkit::started(api, admin, running, db),
        issuer,
    }
}

/// One running service per test database (SQLite, and PostgreSQL when configured).
pub async fn apps() -> Vec<TestApp> {
    shop_testkit::per_database(spawn_app).await
}

impl TestApp {
    pub async fn register(&self, username: &str, email: &str, password: &str) -> reqwest::Response {
        self.post_json(
            "/api/users",
            &json!({ "username": username, "email": email, "password": password }),
        )
        .await
    }

    /// `POST /api/sessions` for `login`, not yet sent (a test adds headers).
    pub fn login_request(&self, login: &str, password: &str) -> reqwest::RequestBuilder {
        self.client
            .post(self.url("/api/sessions"))
            .json(&json!({ "login": login, "password": password }))
    }

    pub async fn login(&self, login: &str, password: &str) -> reqwest::Response {
        send(self.login_request(login, password)).await
    }

    /// Logs in as the gateway would forward it for the client at `client_ip`
    /// (counted against that address when `trust_forwarded_for` is on).
    pub async fn login_from(
        &self,
        client_ip: &str,
        login: &str,
        password: &str,
    ) -> reqwest::Response {
        send(
            self.login_request(login, password)
                .header(CLIENT_IP_HEADER, client_ip),
        )
        .await
    }

    /// Registers `username` (`username@example.com`, [`PASSWORD`]),
    /// asserting a 201.
    pub async fn register_as(&self, username: &str) {
        let email = format!("{username}@example.com");
        let registered = self.register(username, &email, PASSWORD).await;
        assert_eq!(registered.status(), 201, "{}: {username}", self.engine);
    }

    /// Registers `username` and logs in; returns the access token.
    pub async fn token_for(&self, username: &str) -> String {
        self.register_as(username).await;
        let session: Value = self
            .login(username, PASSWORD)
            .await
            .json()
            .await
            .expect("json");
        session["access_token"].as_str().expect("token").to_owned()
    }

    pub async fn me(&self, token: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(self.url("/api/users/me"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        send(request).await
    }

    /// How many users the database holds, read directly.
    pub async fn user_count(&self) -> i64 {
        let db = shop_common::db::Db::connect(&DatabaseSettings::new(&self.db_url))
            .await
            .expect("connect");
        let count = shop_users::store::UserStore::new(db.clone())
            .count()
            .await
            .expect("count");
        db.close().await;
        count
    }
}

/// Asserts problem+json responses (shared by every crate's tests).
#[allow(unused_imports)] // not every test binary checks problems
pub use shop_testkit::{assert_limited, assert_problem};
