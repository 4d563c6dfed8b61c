//! Test support: real HTTP servers on 127.0.0.1 port 0 whose behaviour a
//! test switches at run time, and helpers to call them through a client.
#![allow(dead_code)] // each test crate uses a different part of it

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing;
use bytes::Bytes;
use http_body_util::BodyExt;
use shop_discovery::{
    HealthCheckSettings, Instance, PolicySettings, RequestBody, ResponseBody, UpstreamSettings,
};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// What a test server does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// 200 with the server's id as the body.
    Ok = 0,
    /// 503.
    Fail = 1,
    /// Never answers.
    Hang = 2,
    /// Waits `delay_ms`, then 200.
    Slow = 3,
}

#[derive(Clone)]
struct ServerState {
    id: Arc<str>,
    mode: Arc<AtomicU8>,
    delay_ms: Arc<AtomicU64>,
    ready: Arc<AtomicBool>,
    hits: Arc<AtomicUsize>,
    last_deadline: Arc<Mutex<Option<String>>>,
    release: Arc<Notify>,
}

/// A running test server.
pub struct TestServer {
    pub id: String,
    pub addr: SocketAddr,
    state: ServerState,
    task: JoinHandle<()>,
}

impl TestServer {
    pub async fn start(id: &str) -> Self {
        Self::start_on(id, "127.0.0.1:0".parse().unwrap()).await
    }

    /// A server on `addr` (an instance restarting on its old address).
    pub async fn start_on(id: &str, addr: SocketAddr) -> Self {
        let state = ServerState {
            id: Arc::from(id),
            mode: Arc::new(AtomicU8::new(Mode::Ok as u8)),
            delay_ms: Arc::new(AtomicU64::new(0)),
            ready: Arc::new(AtomicBool::new(true)),
            hits: Arc::new(AtomicUsize::new(0)),
            last_deadline: Arc::new(Mutex::new(None)),
            release: Arc::new(Notify::new()),
        };
        let router = Router::new()
            .route("/readyz", routing::get(readyz))
            .route("/stream", routing::get(stream))
            .route("/echo", routing::post(echo))
            .fallback(handle)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.ok();
        });
        Self {
            id: id.to_owned(),
            addr,
            state,
            task,
        }
    }

    pub fn instance(&self, service: &str) -> Instance {
        Instance::new(service, self.id.clone(), self.addr.to_string())
    }

    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.mode.store(mode as u8, Ordering::SeqCst);
    }

    pub fn set_delay(&self, delay: Duration) {
        self.state
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
        self.set_mode(Mode::Slow);
    }

    pub fn set_ready(&self, ready: bool) {
        self.state.ready.store(ready, Ordering::SeqCst);
    }

    pub fn last_deadline(&self) -> Option<String> {
        self.state.last_deadline.lock().unwrap().clone()
    }

    /// Lets a `/stream` response send its second chunk.
    pub fn release_stream(&self) {
        self.state.release.notify_one();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn count(state: &ServerState, request: &Request) {
    state.hits.fetch_add(1, Ordering::SeqCst);
    let deadline = request
        .headers()
        .get("x-shop-deadline-ms")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    *state.last_deadline.lock().unwrap() = deadline;
}

async fn readyz(State(state): State<ServerState>) -> StatusCode {
    if state.ready.load(Ordering::SeqCst) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

async fn handle(State(state): State<ServerState>, request: Request) -> Response {
    count(&state, &request);
    match state.mode.load(Ordering::SeqCst) {
        0 => state.id.to_string().into_response(),
        1 => (StatusCode::SERVICE_UNAVAILABLE, "unavailable").into_response(),
        2 => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK.into_response()
        }
        _ => {
            tokio::time::sleep(Duration::from_millis(state.delay_ms.load(Ordering::SeqCst))).await;
            state.id.to_string().into_response()
        }
    }
}

async fn stream(State(state): State<ServerState>, request: Request) -> Response {
    count(&state, &request);
    let release = Arc::clone(&state.release);
    let first =
        futures::stream::once(async { Ok::<_, std::io::Error>(Bytes::from_static(b"first;")) });
    let second = futures::stream::once(async move {
        release.notified().await;
        Ok::<_, std::io::Error>(Bytes::from_static(b"second"))
    });
    Body::from_stream(futures::StreamExt::chain(first, second)).into_response()
}

async fn echo(State(state): State<ServerState>, request: Request) -> Response {
    count(&state, &request);
    Body::new(request.into_body()).into_response()
}

/// Upstream settings for tests: the given policy, no health checks unless
/// a test turns them on.
pub fn settings(balance: PolicySettings) -> UpstreamSettings {
    UpstreamSettings {
        balance,
        health_check: HealthCheckSettings {
            enabled: false,
            ..HealthCheckSettings::default()
        },
        ..UpstreamSettings::default()
    }
}

pub fn get(path: &str) -> http::Request<RequestBody> {
    http::Request::get(path).body(RequestBody::empty()).unwrap()
}

pub fn post(path: &str, body: &'static str) -> http::Request<RequestBody> {
    http::Request::post(path)
        .body(RequestBody::from(body))
        .unwrap()
}

pub async fn text(response: http::Response<ResponseBody>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Polls `condition` every 20 ms for at most `timeout`.
pub async fn eventually(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition()
}
