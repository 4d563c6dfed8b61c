//! Test support for the gateway: the real stack (users, catalog, payments,
//! cart replicas, orders, the gateway and the storefront from the shared
//! stack builder), and
//! for edge tests a gateway alone before small fake upstreams that count
//! what reaches them, with a fake users service publishing a test key set.

#![allow(dead_code, unused_imports)] // each test binary uses a different subset
#![allow(clippy::expect_used, clippy::panic)] // test helpers: a failed setup should fail the test

use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use shop::StackBuilder;
use shop::stack::{Cart, Gateway, Orders, Web};
pub use shop::testing::TestStack as Stack;
use shop::testing::quick_orders;
use shop_common::auth::{IssuerSettings, TokenIssuer};
use shop_discovery::{Instance, Registration, Registry, Scheme, UpstreamSettings};
use shop_testkit::{Engine, LOOPBACK};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// The service credential carts accept and orders present.
pub const SERVICE_TOKEN: &str = "test-service-token";

/// A gateway started alone: its API base URL and its handle.
pub struct Running {
    pub base: String,
    running: shop_runtime::Running,
}

impl Deref for Running {
    type Target = shop_runtime::Running;

    fn deref(&self) -> &shop_runtime::Running {
        &self.running
    }
}

impl Running {
    /// The admin listener's base URL; panics when it has none.
    pub fn admin_base(&self) -> String {
        self.running.admin_base().expect("the admin listener is on")
    }
}

/// Upstream settings for tests: quick health checks, quick breaker.
pub fn fast_upstream() -> UpstreamSettings {
    let mut settings = UpstreamSettings::default();
    settings.health_check.interval_ms = 200;
    settings.breaker.open_ms = 1_000;
    settings
}

/// Tunes gateway settings for tests: a quick drain, quick upstreams, a
/// rate limit high enough not to interfere.
pub fn tune(settings: &mut shop_gateway::Settings) {
    settings.http.drain_timeout_secs = 2;
    settings.upstreams.users = fast_upstream();
    settings.upstreams.catalog = fast_upstream();
    settings.upstreams.cart = UpstreamSettings {
        balance: settings.upstreams.cart.balance.clone(),
        ..fast_upstream()
    };
    // Orders keep their timeouts: a PlaceOrder may take the saga's answer
    // time before answering.
    settings.upstreams.orders = UpstreamSettings {
        per_try_timeout_ms: settings.upstreams.orders.per_try_timeout_ms,
        deadline_ms: settings.upstreams.orders.deadline_ms,
        ..fast_upstream()
    };
    settings.rate_limit.per_second = 10_000;
    settings.rate_limit.burst = 10_000;
    settings.rate_limit.login.per_minute = 100_000;
    settings.rate_limit.login.burst = 10_000;
}

/// Gateway settings for tests: loopback port 0 (admin too), tuned.
pub fn gateway_settings() -> shop_gateway::Settings {
    let mut settings = shop_gateway::Settings::default();
    settings.http.host = LOOPBACK;
    settings.http.port = 0;
    settings.admin.host = LOOPBACK;
    settings.admin.port = 0;
    tune(&mut settings);
    settings
}

/// Starts a gateway with `settings` in `registry`.
pub async fn spawn_gateway(registry: &Registry, settings: shop_gateway::Settings) -> Running {
    if shop_testkit::test_log() {
        shop_common::telemetry::init();
    }
    let running = shop_gateway::Application::build_in(settings, registry.clone())
        .await
        .expect("gateway starts")
        .spawn();
    Running {
        base: running.base(),
        running,
    }
}

// ---------------------------------------------------------------- fakes

/// What a fake upstream saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// The query, when there is one.
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body_len: usize,
    /// The body, as text (invalid UTF-8 replaced).
    pub body: String,
}

/// How a fake answers a request it saw, instead of its JSON.
pub type Answer = fn(&Seen) -> axum::response::Response;

/// A fake upstream: answers 200 `{"ok":true}` to everything (after
/// `delay` for paths ending in `/slow`), or what its [`Answer`] says, and
/// records each request.
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

    /// As [`Fake::hits`], forgetting them: the next call returns only
    /// what came after.
    pub fn take_hits(&self) -> Vec<Seen> {
        let mut seen = self.seen.lock().expect("lock");
        seen.drain(..)
            .filter(|seen| seen.path != "/readyz")
            .collect()
    }
}

#[derive(Clone)]
struct FakeState {
    seen: Arc<Mutex<Vec<Seen>>>,
    delay: Duration,
    jwks: Option<Value>,
    answer: Option<Answer>,
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
    let seen = Seen {
        method: parts.method.to_string(),
        path: path.clone(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body_len: body.len(),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let answer = state.answer.map(|answer| answer(&seen));
    state.seen.lock().expect("lock").push(seen);
    if let Some(answer) = answer {
        return answer;
    }
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
    spawn_fake_with(registry, service, delay, None, None).await
}

/// Starts a fake `service` registered in `registry` that answers each
/// request with `answer`.
pub async fn spawn_fake_answering(registry: &Registry, service: &str, answer: Answer) -> Fake {
    spawn_fake_with(registry, service, Duration::ZERO, None, Some(answer)).await
}

async fn spawn_fake_with(
    registry: &Registry,
    service: &str,
    delay: Duration,
    jwks: Option<Value>,
    answer: Option<Answer>,
) -> Fake {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let state = FakeState {
        seen: Arc::clone(&seen),
        delay,
        jwks,
        answer,
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
    let fake = spawn_fake_with(registry, "users", Duration::ZERO, Some(jwks), None).await;
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

/// Starts the whole stack with every database on `engine` and `carts`
/// cart instances over one cart database; every request of a test goes to
/// the gateway.
pub async fn spawn_stack(engine: Engine, carts: usize) -> Stack {
    spawn_stack_with(engine, carts, |_| {}).await
}

/// As [`spawn_stack`], the gateway's settings tuned and then adjusted by
/// `configure`.
pub async fn spawn_stack_with(
    engine: Engine,
    carts: usize,
    configure: impl Fn(&mut shop_gateway::Settings) + Send + Sync + 'static,
) -> Stack {
    start_stack(engine, carts, 1, configure).await
}

/// As [`spawn_stack_with`], without the storefront: a test's fake `web`
/// takes its place.
pub async fn spawn_stack_without_web(
    engine: Engine,
    carts: usize,
    configure: impl Fn(&mut shop_gateway::Settings) + Send + Sync + 'static,
) -> Stack {
    start_stack(engine, carts, 0, configure).await
}

async fn start_stack(
    engine: Engine,
    carts: usize,
    webs: usize,
    configure: impl Fn(&mut shop_gateway::Settings) + Send + Sync + 'static,
) -> Stack {
    StackBuilder::for_tests()
        .on(engine)
        .await
        .everything(carts)
        .replicas::<Web>(webs)
        .service_token(SERVICE_TOKEN)
        .configure::<Cart>(|settings| settings.http.drain_timeout_secs = 5)
        .configure::<Orders>(quick_orders)
        .configure::<Gateway>(tune)
        .configure::<Gateway>(configure)
        .start_test(engine)
        .await
}

/// Asserts a problem+json response (shared by every crate's tests).
pub use shop_testkit::assert_problem;
