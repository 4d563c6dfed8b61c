//! Test support for the gateway: the real stack (users, catalog, cart
//! replicas, orders and the gateway on 127.0.0.1 port 0, one in-process
//! registry), and for edge tests small fake upstreams that count what
//! reaches them, with a fake users service publishing a test key set.

#![allow(dead_code)] // each test binary uses a different subset
#![allow(clippy::expect_used, clippy::panic)] // test helpers: a failed setup should fail the test

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use shop_common::auth::{IssuerSettings, TokenIssuer};
use shop_common::config::{AdminSettings, DatabaseSettings, HttpSettings};
use shop_discovery::{Instance, Registration, Registry, Scheme, UpstreamSettings};
use shop_testkit::{Engine, TestDatabase};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// The service credential carts accept and orders present.
pub const SERVICE_TOKEN: &str = "test-service-token";
/// Longest wait for an asynchronous outcome (the outbox relay).
pub const WAIT: Duration = Duration::from_secs(15);

pub fn loopback() -> HttpSettings {
    HttpSettings::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)
}

/// The admin listener (`/metrics`) on a free loopback port.
pub fn admin_loopback() -> AdminSettings {
    AdminSettings::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)
}

/// A running service and how to stop it.
pub struct Running {
    pub base: String,
    /// Its admin listener's base URL (`/metrics`), when it has one.
    pub admin: Option<String>,
    pub stop: CancellationToken,
    pub task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Running {
    /// The admin listener's base URL; panics when it has none.
    pub fn admin_base(&self) -> &str {
        self.admin.as_deref().expect("the admin listener is on")
    }

    /// Stops the service and waits until it has drained and stopped.
    pub async fn shutdown(&mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("service task").expect("stopped cleanly");
        }
    }
}

pub fn run<F>(
    port: u16,
    admin: Option<SocketAddr>,
    start: impl FnOnce(CancellationToken) -> F,
) -> Running
where
    F: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
{
    let stop = CancellationToken::new();
    let task = tokio::spawn(start(stop.clone()));
    Running {
        base: format!("http://127.0.0.1:{port}"),
        admin: admin.map(|addr| format!("http://{addr}")),
        stop,
        task: Some(task),
    }
}

/// Upstream settings for tests: quick health checks, quick breaker.
pub fn fast_upstream() -> UpstreamSettings {
    let mut settings = UpstreamSettings::default();
    settings.health_check.interval_ms = 200;
    settings.breaker.open_ms = 1_000;
    settings
}

/// Gateway settings for tests: loopback port 0, quick upstreams, a rate
/// limit high enough not to interfere.
pub fn gateway_settings() -> shop_gateway::Settings {
    let mut settings = shop_gateway::Settings {
        http: loopback(),
        admin: admin_loopback(),
        ..shop_gateway::Settings::default()
    };
    settings.http.drain_timeout_secs = 2;
    settings.upstreams.users = fast_upstream();
    settings.upstreams.catalog = fast_upstream();
    settings.upstreams.cart = shop_discovery::UpstreamSettings {
        balance: settings.upstreams.cart.balance.clone(),
        ..fast_upstream()
    };
    settings.upstreams.orders = fast_upstream();
    settings.rate_limit.per_second = 10_000;
    settings.rate_limit.burst = 10_000;
    settings.rate_limit.login.per_minute = 100_000;
    settings.rate_limit.login.burst = 10_000;
    settings
}

/// Starts a gateway with `settings` in `registry`.
pub async fn spawn_gateway(registry: &Registry, settings: shop_gateway::Settings) -> Running {
    if std::env::var_os("TEST_LOG").is_some() {
        shop_common::telemetry::init();
    }
    let gateway = shop_gateway::Application::build_in(settings, registry.clone())
        .await
        .expect("gateway starts");
    run(gateway.port(), gateway.admin_addr(), |stop| {
        gateway.run_until_stopped(stop)
    })
}

// ---------------------------------------------------------------- fakes

/// What a fake upstream saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body_len: usize,
}

/// A fake upstream: answers 200 `{"ok":true}` to everything (after
/// `delay` for paths ending in `/slow`) and records each request.
pub struct Fake {
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub addr: String,
    _registration: Registration,
    stop: CancellationToken,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Fake {
    /// Requests seen so far, probes (`/readyz`) excluded.
    pub fn hits(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .expect("lock")
            .iter()
            .filter(|seen| seen.path != "/readyz")
            .cloned()
            .collect()
    }
}

#[derive(Clone)]
struct FakeState {
    seen: Arc<Mutex<Vec<Seen>>>,
    delay: Duration,
    jwks: Option<Value>,
}

async fn fake_handler(
    State(state): State<FakeState>,
    request: Request,
) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    state.seen.lock().expect("lock").push(Seen {
        method: parts.method.to_string(),
        path: path.clone(),
        headers: parts.headers,
        body_len: body.len(),
    });
    if path.ends_with("/slow") {
        tokio::time::sleep(state.delay).await;
    }
    if path == "/.well-known/jwks.json"
        && let Some(jwks) = &state.jwks
    {
        return axum::Json(jwks.clone()).into_response();
    }
    axum::Json(json!({"ok": true, "path": path})).into_response()
}

/// Starts a fake `service` registered in `registry`; requests to paths
/// ending in `/slow` wait `delay` first.
pub async fn spawn_fake(registry: &Registry, service: &str, delay: Duration) -> Fake {
    spawn_fake_with(registry, service, delay, None).await
}

async fn spawn_fake_with(
    registry: &Registry,
    service: &str,
    delay: Duration,
    jwks: Option<Value>,
) -> Fake {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let state = FakeState {
        seen: Arc::clone(&seen),
        delay,
        jwks,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("fake binds");
    let addr = listener.local_addr().expect("addr").to_string();
    let router = axum::Router::new().fallback(fake_handler).with_state(state);
    let stop = CancellationToken::new();
    let stopping = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(stopping.cancelled_owned())
            .await
    });
    let registration = registry
        .register(Instance::new(
            service,
            format!("{service}-fake"),
            addr.clone(),
        ))
        .expect("fake registered");
    Fake {
        seen,
        addr,
        _registration: registration,
        stop,
    }
}

/// A fake users service publishing the keys of a test issuer.
pub struct FakeUsers {
    pub issuer: TokenIssuer,
    pub fake: Fake,
}

impl FakeUsers {
    /// A valid token for `sub`.
    pub fn token(&self, sub: &str) -> String {
        self.issuer.issue(sub).expect("signs").token
    }
}

/// Starts a fake users service whose JWKS holds a fresh test key.
pub async fn spawn_fake_users(registry: &Registry) -> FakeUsers {
    let issuer = TokenIssuer::from_settings(&IssuerSettings::default()).expect("test key");
    let jwks = serde_json::to_value(issuer.jwks()).expect("jwks json");
    let fake = spawn_fake_with(registry, "users", Duration::ZERO, Some(jwks)).await;
    FakeUsers { issuer, fake }
}

/// Registers an instance of `service` at an address where nothing listens.
pub async fn register_dead(registry: &Registry, service: &str, scheme: Scheme) -> Registration {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("addr").to_string();
    drop(listener);
    registry
        .register(Instance::new(service, format!("{service}-dead"), addr).with_scheme(scheme))
        .expect("registered")
}

// ---------------------------------------------------------------- raw HTTP

/// Sends a raw HTTP/1.1 request and returns the status and the answer.
pub async fn raw(base: &str, request: &[u8]) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    stream.write_all(request).await.expect("writes");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await;
        match read {
            Ok(Ok(n)) if n > 0 => {
                answer.extend_from_slice(&buf[..n]);
                if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                    break;
                }
            }
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Sends `count` JSON requests of `method` to `url`, the i-th with
/// `X-Forwarded-For: forwarded_for(i)` unless that is empty, and returns
/// the statuses and the first 429.
pub async fn send_many(
    client: &reqwest::Client,
    url: &str,
    method: reqwest::Method,
    count: usize,
    forwarded_for: impl Fn(usize) -> String,
) -> (Vec<u16>, Option<reqwest::Response>) {
    let mut statuses = Vec::new();
    let mut refused = None;
    for i in 0..count {
        let mut request = client.request(method.clone(), url).json(&json!({}));
        let forwarded_for = forwarded_for(i);
        if !forwarded_for.is_empty() {
            request = request.header("x-forwarded-for", forwarded_for);
        }
        let response = request.send().await.expect("sent");
        statuses.push(response.status().as_u16());
        if response.status() == 429 && refused.is_none() {
            refused = Some(response);
        }
    }
    (statuses, refused)
}

/// A chunked request of `total` body bytes; an unfinished one (no last
/// chunk) lets the server refuse it without leaving unread bytes behind,
/// which would reset the connection before the answer is read.
pub fn chunked(method: &str, path: &str, token: &str, total: usize, finish: bool) -> Vec<u8> {
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: gateway\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    )
    .into_bytes();
    let chunk = vec![b'a'; 1024];
    let mut sent = 0;
    while sent < total {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(&chunk);
        request.extend_from_slice(b"\r\n");
        sent += chunk.len();
    }
    if finish {
        request.extend_from_slice(b"0\r\n\r\n");
    }
    request
}

// ---------------------------------------------------------------- the stack

/// users, catalog, cart replicas, orders and the gateway; every request of
/// a test goes to `gateway`.
pub struct Stack {
    pub registry: Registry,
    pub users: Running,
    pub catalog: Running,
    pub carts: Vec<Running>,
    pub orders: Running,
    pub gateway: Running,
    pub engine: Engine,
    pub cart_url: String,
    pub client: reqwest::Client,
    _dbs: Vec<TestDatabase>,
}

async fn database(engine: Engine) -> TestDatabase {
    match engine {
        Engine::Sqlite => TestDatabase::sqlite(),
        Engine::Postgres => TestDatabase::postgres()
            .await
            .expect("PostgreSQL is configured"),
    }
}

/// Starts the whole stack with every database on `engine` and `carts`
/// cart instances over one cart database.
pub async fn spawn_stack(engine: Engine, carts: usize) -> Stack {
    spawn_stack_with(engine, carts, gateway_settings()).await
}

/// As [`spawn_stack`], with these gateway settings.
pub async fn spawn_stack_with(
    engine: Engine,
    carts: usize,
    gateway: shop_gateway::Settings,
) -> Stack {
    if std::env::var_os("TEST_LOG").is_some() {
        shop_common::telemetry::init();
    }
    let registry = Registry::in_process();
    let users_db = database(engine).await;
    let catalog_db = database(engine).await;
    let cart_db = database(engine).await;
    let orders_db = database(engine).await;

    let users = shop_users::Application::build_in(
        shop_users::Settings {
            http: loopback(),
            admin: admin_loopback(),
            database: DatabaseSettings::new(&users_db.url),
            ..shop_users::Settings::default()
        },
        registry.clone(),
    )
    .await
    .expect("users starts");
    let users = run(users.port(), users.admin_addr(), |stop| {
        users.run_until_stopped(stop)
    });

    let catalog = shop_catalog::Application::build_in(
        shop_catalog::Settings {
            http: loopback(),
            admin: admin_loopback(),
            database: DatabaseSettings::new(&catalog_db.url),
            ..shop_catalog::Settings::default()
        },
        registry.clone(),
    )
    .await
    .expect("catalog starts");
    let catalog = run(catalog.port(), catalog.admin_addr(), |stop| {
        catalog.run_until_stopped(stop)
    });

    let mut running = Vec::new();
    for _ in 0..carts {
        running.push(spawn_cart(&registry, &cart_db.url).await);
    }

    let mut orders_settings = shop_orders::Settings {
        http: loopback(),
        database: DatabaseSettings::new(&orders_db.url),
        ..shop_orders::Settings::default()
    };
    orders_settings.grpc.host = IpAddr::V4(Ipv4Addr::LOCALHOST);
    orders_settings.grpc.port = 0;
    orders_settings.grpc.drain_timeout_secs = 2;
    orders_settings.http.drain_timeout_secs = 2;
    orders_settings.internal.service_token = Some(SERVICE_TOKEN.to_owned().into());
    orders_settings.relay.poll_interval_ms = 50;
    orders_settings.relay.initial_backoff_ms = 20;
    orders_settings.relay.max_backoff_ms = 200;
    let orders = shop_orders::Application::build_in(orders_settings, registry.clone())
        .await
        .expect("orders starts");
    let orders_admin = orders.admin_addr();
    let orders = run(orders.port(), Some(orders_admin), |stop| {
        orders.run_until_stopped(stop)
    });

    let gateway = spawn_gateway(&registry, gateway).await;
    Stack {
        registry,
        users,
        catalog,
        carts: running,
        orders,
        gateway,
        engine,
        cart_url: cart_db.url.clone(),
        client: reqwest::Client::new(),
        _dbs: vec![users_db, catalog_db, cart_db, orders_db],
    }
}

/// Starts one more cart instance over the database at `url`.
pub async fn spawn_cart(registry: &Registry, url: &str) -> Running {
    let mut settings = shop_cart::Settings {
        http: loopback(),
        admin: admin_loopback(),
        database: DatabaseSettings::new(url),
        ..shop_cart::Settings::default()
    };
    settings.http.drain_timeout_secs = 5;
    settings.internal.service_token = Some(SERVICE_TOKEN.to_owned().into());
    let cart = shop_cart::Application::build_in(settings, registry.clone())
        .await
        .expect("cart starts");
    run(cart.port(), cart.admin_addr(), |stop| {
        cart.run_until_stopped(stop)
    })
}

impl Stack {
    /// The gateway URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway.base)
    }

    /// Registers and logs in a user through the gateway; returns the token.
    pub async fn token(&self, username: &str) -> String {
        let password = "correct horse battery";
        let response = self
            .client
            .post(self.url("/api/users"))
            .json(&json!({"username": username, "email": format!("{username}@example.com"), "password": password}))
            .send()
            .await
            .expect("register");
        assert_eq!(response.status(), 201, "register {username}");
        let session: Value = self
            .client
            .post(self.url("/api/sessions"))
            .json(&json!({"login": username, "password": password}))
            .send()
            .await
            .expect("login")
            .json()
            .await
            .expect("json");
        session["access_token"].as_str().expect("token").to_owned()
    }

    /// Waits until the gateway reports ready (every upstream healthy).
    pub async fn wait_ready(&self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let response = self.client.get(self.url("/readyz")).send().await;
            if response.is_ok_and(|response| response.status() == 200) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "gateway never ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Asserts a problem+json response (shared by every crate's tests).
#[allow(unused_imports)] // not every test binary checks problems
pub use shop_testkit::assert_problem;
