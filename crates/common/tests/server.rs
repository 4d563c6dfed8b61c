//! Serving with the shared layers over real sockets: request ids, problem
//! fallbacks, metrics on the admin listener only, readiness during shutdown,
//! the shutdown delay before the listener stops accepting, a bounded drain
//! of both listeners, and the listener's limits against
//! slow, idle and too many clients.

#![allow(clippy::expect_used, clippy::panic)] // test helpers: a failed setup should fail the test

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use axum::Router;
use axum::routing;
use shop_common::config::{AdminSettings, HttpSettings, ListenerLimits};
use shop_common::health::{self, Readiness};
use shop_common::server::{self, Service, serve, with_common_layers};
use shop_testkit::{assert_problem, send};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

struct Served {
    base: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Limits with `drain` and generous timeouts (the defaults' shape).
fn drain(drain: Duration) -> ListenerLimits {
    ListenerLimits {
        shutdown_delay: Duration::ZERO,
        drain,
        header_read_timeout: Some(Duration::from_secs(10)),
        max_connections: 1024,
    }
}

/// The test routes: `/fast` answers at once, `/slow` after 400 ms, `/stuck`
/// never (within a test).
fn routes() -> Router {
    let after = |delay: Duration, body: &'static str| {
        routing::get(move || async move {
            tokio::time::sleep(delay).await;
            body
        })
    };
    Router::new()
        .route("/fast", routing::get(|| async { "fast" }))
        .route("/slow", after(Duration::from_millis(400), "slow"))
        .route("/stuck", after(Duration::from_secs(3600), "never"))
}

/// `GET url` on a new connection; panics when nothing answers.
async fn get(url: String) -> reqwest::Response {
    send(reqwest::Client::new().get(url)).await
}

/// Whether a new connection to `url` is refused (or otherwise gets no answer).
async fn refused(url: String) -> bool {
    reqwest::Client::new().get(url).send().await.is_err()
}

async fn start(limits: ListenerLimits) -> Served {
    let stop = CancellationToken::new();
    let readiness = Readiness::new().with_stop(stop.clone());
    let router = with_common_layers(routes().merge(health::router(readiness)), "test");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let task = tokio::spawn(serve(listener, router, stop.clone(), limits));
    Served { base, stop, task }
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let served = start(drain(Duration::from_secs(5))).await;
    let fast = format!("{}/fast", served.base);
    let given = send(
        reqwest::Client::new()
            .get(&fast)
            .header("x-request-id", "abc-123"),
    )
    .await;
    assert_eq!(given.headers()["x-request-id"], "abc-123");
    let generated = get(fast).await;
    let id = generated.headers()["x-request-id"].to_str().expect("ascii");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    served.stop.cancel();
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let served = start(drain(Duration::from_secs(5))).await;
    assert_problem(
        get(format!("{}/nope", served.base)).await,
        404,
        "unknown route",
    )
    .await;
    let wrong = send(reqwest::Client::new().delete(format!("{}/fast", served.base))).await;
    assert_problem(wrong, 405, "unknown method").await;
    served.stop.cancel();
}

/// A service run by `server::run`: its API and admin listeners on port 0.
struct RunService {
    api: String,
    admin: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn run_service(name: &'static str, limits: ListenerLimits) -> RunService {
    let loopback = HttpSettings::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
    let (listener, api) = server::bind(&loopback).await.expect("bind");
    let (admin, admin_addr) = server::bind_admin(&AdminSettings::new(loopback.host, 0))
        .await
        .expect("bind admin")
        .expect("enabled");
    let stop = CancellationToken::new();
    let service = Service {
        name,
        listener,
        admin: Some(admin),
        router: routes(),
        readiness: Readiness::new(),
        db: None,
        limits,
        on_stop: async {},
    };
    let task = tokio::spawn(server::run(service, stop.clone()));
    RunService {
        api: format!("http://{api}"),
        admin: format!("http://{admin_addr}"),
        stop,
        task,
    }
}

/// The value of `http_requests_total` for `service`, `route` and `status`
/// in a Prometheus text body, if the series exists.
fn request_count(text: &str, service: &str, route: &str, status: u16) -> Option<f64> {
    let status = status.to_string();
    let labels = [
        ("service", service),
        ("route", route),
        ("status", status.as_str()),
    ];
    shop_testkit::metric_value(text, "http_requests_total", &labels)
}

#[tokio::test]
async fn metrics_are_served_on_the_admin_port_only_and_count_api_requests() {
    let served = run_service("metrics-test", drain(Duration::from_secs(5))).await;
    for _ in 0..3 {
        assert_eq!(get(format!("{}/fast", served.api)).await.status(), 200);
    }
    let public = get(format!("{}/metrics", served.api)).await;
    assert_problem(public, 404, "the API port serves /metrics").await;
    let text = shop_testkit::scrape(&reqwest::Client::new(), &served.admin).await;
    let count = request_count(&text, "metrics-test", "/fast", 200)
        .unwrap_or_else(|| panic!("no counter for /fast in:\n{text}"));
    assert!(count >= 3.0, "{count}");
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "histogram missing"
    );
    // The refused scrape on the API port counts as an unmatched request.
    assert!(
        request_count(&text, "metrics-test", "unmatched", 404).is_some(),
        "{text}"
    );

    // The probes answer on both listeners; the service's routes only on the API's.
    for base in [&served.api, &served.admin] {
        for probe in ["/healthz", "/readyz"] {
            let response = get(format!("{base}{probe}")).await;
            assert_eq!(response.status(), 200, "{base}{probe}");
        }
    }
    assert_eq!(get(format!("{}/fast", served.admin)).await.status(), 404);
    served.stop.cancel();
}

#[tokio::test]
async fn the_admin_listener_answers_during_the_drain_and_stops_after_it() {
    let served = run_service("drain-test", drain(Duration::from_secs(5))).await;
    let slow = tokio::spawn(get(format!("{}/slow", served.api)));
    tokio::time::sleep(Duration::from_millis(100)).await;
    served.stop.cancel();
    tokio::time::sleep(Duration::from_millis(50)).await;

    // Draining: scrapes still answer and readiness says why it is not ready.
    assert_eq!(get(format!("{}/metrics", served.admin)).await.status(), 200);
    assert_eq!(get(format!("{}/readyz", served.admin)).await.status(), 503);

    let response = slow.await.expect("the in-flight request completes");
    assert_eq!(response.text().await.expect("body"), "slow");
    tokio::time::timeout(Duration::from_secs(10), served.task)
        .await
        .expect("run returns once both listeners drained")
        .expect("join")
        .expect("clean stop");
    for base in [&served.api, &served.admin] {
        assert!(
            refused(format!("{base}/healthz")).await,
            "{base} still accepts after the stop"
        );
    }
}

#[tokio::test]
async fn admin_limits_follow_the_api_listener_within_their_own_bounds() {
    let api = drain(Duration::from_secs(10));
    let admin = server::admin_limits(api);
    assert_eq!(admin.header_read_timeout, api.header_read_timeout);
    assert_eq!(admin.max_connections, server::ADMIN_MAX_CONNECTIONS);
    assert_eq!(admin.drain, server::ADMIN_DRAIN);
    let small = server::admin_limits(strict(Duration::from_millis(300), 2));
    assert_eq!(small.max_connections, 2);
    assert!(
        server::bind_admin(&AdminSettings {
            enabled: false,
            ..AdminSettings::default()
        })
        .await
        .expect("nothing to bind")
        .is_none()
    );
}

#[tokio::test]
async fn in_flight_requests_finish_and_readiness_drops_during_shutdown() {
    let served = start(drain(Duration::from_secs(5))).await;
    assert_eq!(get(format!("{}/readyz", served.base)).await.status(), 200);

    let slow = tokio::spawn(get(format!("{}/slow", served.base)));
    tokio::time::sleep(Duration::from_millis(100)).await;
    served.stop.cancel();
    let response = slow.await.expect("the in-flight request completes");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("body"), "slow");
    served.task.await.expect("join").expect("clean stop");
    assert!(
        refused(format!("{}/fast", served.base)).await,
        "no new connections after stop"
    );
}

#[tokio::test]
async fn readiness_reports_shutting_down() {
    let stop = CancellationToken::new();
    let readiness = Readiness::new().with_stop(stop.clone());
    assert_eq!(readiness.report().await.status, "ready");
    stop.cancel();
    let report = readiness.report().await;
    assert_eq!(report.status, "not ready");
    assert_eq!(report.checks["shutdown"], "shutting down");
}

#[tokio::test]
async fn the_drain_is_bounded() {
    let served = start(drain(Duration::from_millis(300))).await;
    let stuck = tokio::spawn(
        reqwest::Client::new()
            .get(format!("{}/stuck", served.base))
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    served.stop.cancel();
    // serve() returns once the drain time is over even though /stuck never ends.
    tokio::time::timeout(Duration::from_secs(10), served.task)
        .await
        .expect("serve returns after the drain time")
        .expect("join")
        .expect("ok");
    stuck.abort();
}

/// A listener that gives a client `timeout` to send its headers (or to send
/// the next request) and serves at most `max_connections` at once.
fn strict(timeout: Duration, max_connections: usize) -> ListenerLimits {
    ListenerLimits {
        shutdown_delay: Duration::ZERO,
        drain: Duration::from_secs(1),
        header_read_timeout: Some(timeout),
        max_connections,
    }
}

/// A strict listener (see [`strict`]) and one raw connection to it that
/// has sent `sent` (nothing when empty).
async fn connected(limits: ListenerLimits, sent: &[u8]) -> (Served, TcpStream) {
    let served = start(limits).await;
    let mut stream = TcpStream::connect(addr(&served)).await.expect("connect");
    if !sent.is_empty() {
        stream.write_all(sent).await.expect("write");
    }
    (served, stream)
}

fn addr(served: &Served) -> String {
    served.base.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection; `None` if it is still
/// open after `within` (a bound for the test, far above the limit tested).
async fn closed_by_server(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    let read_all = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read_all).await.ok()?;
    Some(seen)
}

/// Asserts that the server closes `stream` (`what` names it) `within` a
/// bound far above the limit tested, and answers others afterwards; returns
/// what the stream read.
async fn assert_closed(
    served: &Served,
    stream: &mut TcpStream,
    within: Duration,
    what: &str,
) -> Vec<u8> {
    let seen = closed_by_server(stream, within)
        .await
        .unwrap_or_else(|| panic!("{what} stayed open"));
    assert!(
        fast_answers(served).await,
        "{what}: others are served after"
    );
    seen
}

async fn fast_answers(served: &Served) -> bool {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    match client.get(format!("{}/fast", served.base)).send().await {
        Ok(response) => response.status() == 200,
        Err(_) => false,
    }
}

#[tokio::test]
async fn a_client_that_sends_nothing_is_disconnected() {
    let (served, mut silent) = connected(strict(Duration::from_millis(300), 64), b"").await;
    assert!(fast_answers(&served).await, "others are served meanwhile");
    let silent_one = "a silent connection";
    assert_closed(&served, &mut silent, Duration::from_secs(10), silent_one).await;
    served.stop.cancel();
}

#[tokio::test]
async fn headers_sent_too_slowly_are_cut_off() {
    let limits = strict(Duration::from_millis(500), 64);
    let (served, mut slow) = connected(limits, b"GET /fast HTTP/1.1\r\nhost: test\r\n").await;
    // One header line every 100 ms: each write is well within any idle
    // bound, but the whole header block never completes in time.
    let mut cut_off = false;
    for i in 0..100 {
        if slow
            .write_all(format!("x-slow-{i}: 1\r\n").as_bytes())
            .await
            .is_err()
        {
            cut_off = true;
            break;
        }
        if i == 2 {
            assert!(fast_answers(&served).await, "others are served meanwhile");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = if cut_off {
        Vec::new()
    } else {
        let trickling = "a connection trickling its headers for 10 s";
        assert_closed(&served, &mut slow, Duration::from_secs(5), trickling).await
    };
    assert!(
        !String::from_utf8_lossy(&seen).contains(" 200 "),
        "the request was served: {}",
        String::from_utf8_lossy(&seen)
    );
    assert!(fast_answers(&served).await);
    served.stop.cancel();
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let limits = strict(Duration::from_millis(300), 64);
    let (served, mut idle) = connected(limits, b"GET /fast HTTP/1.1\r\nhost: test\r\n\r\n").await;
    let mut buf = [0u8; 1024];
    let n = idle.read(&mut buf).await.expect("response");
    let head = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    // Kept alive after the answer, then closed once idle for the bound.
    let idle_one = "an idle keep-alive connection";
    assert_closed(&served, &mut idle, Duration::from_secs(10), idle_one).await;
    served.stop.cancel();
}

#[tokio::test]
async fn past_the_connection_cap_a_client_waits_until_one_closes() {
    let (served, first) = connected(strict(Duration::from_secs(30), 2), b"").await;
    let second = TcpStream::connect(addr(&served)).await.expect("connect");
    // Let the server take both before the third arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let third = tokio::spawn(get(format!("{}/fast", served.base)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !third.is_finished(),
        "a third connection was served past a cap of two"
    );
    drop(first);
    let response = tokio::time::timeout(Duration::from_secs(10), third)
        .await
        .expect("the waiting client is served once a connection closes")
        .expect("the request is answered");
    assert_eq!(response.status(), 200);
    drop(second);
    served.stop.cancel();
}

/// The stop sequence of `server::run` with a shutdown delay: at the signal
/// the instance deregisters (`on_stop`) and `/readyz` turns 503, yet new
/// requests are still served (with `Connection: close`) until the delay is
/// over; then new connections are refused while a request in flight
/// finishes.
#[tokio::test]
async fn a_stopping_listener_serves_through_its_shutdown_delay_then_drains() {
    let limits = ListenerLimits {
        // Long enough that the checks below run inside it on a busy machine.
        shutdown_delay: Duration::from_secs(3),
        ..drain(Duration::from_secs(10))
    };
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let held = {
        let release = release.clone();
        routing::get(move || async move {
            release.notified().await;
            "held"
        })
    };
    let router = routes().route("/held", held);
    let loopback = HttpSettings::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
    let (listener, addr) = server::bind(&loopback).await.expect("bind");
    let base = format!("http://{addr}");
    let stop = CancellationToken::new();
    let (deregistered_tx, deregistered) = tokio::sync::oneshot::channel::<()>();
    let service = Service {
        name: "delay-test",
        listener,
        admin: None,
        router,
        readiness: Readiness::new(),
        db: None,
        limits,
        on_stop: async move {
            let _ = deregistered_tx.send(());
        },
    };
    let task = tokio::spawn(server::run(service, stop.clone()));
    assert_eq!(get(format!("{base}/readyz")).await.status(), 200);

    let in_flight = tokio::spawn(get(format!("{base}/held")));
    // Wait until the held request is being served: the listener accepted it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(2), deregistered)
        .await
        .expect("on_stop runs at the signal")
        .expect("on_stop ran");

    // Inside the delay: not ready, but a new connection is still served,
    // and told not to keep the connection.
    let ready = get(format!("{base}/readyz")).await;
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(body["checks"]["shutdown"], "shutting down", "{body}");
    let fast = get(format!("{base}/fast")).await;
    assert_eq!(fast.status(), 200);
    assert_eq!(fast.headers()["connection"], "close");
    assert!(!task.is_finished(), "run returned inside the delay");

    // After the delay: new connections are refused (a bounded wait for it).
    let refused_after = async {
        while !refused(format!("{base}/fast")).await {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), refused_after)
        .await
        .expect("the listener stops accepting after the delay");
    assert!(!in_flight.is_finished(), "the held request ended early");

    // The request in flight still finishes within the drain, then run returns.
    release.notify_one();
    let response = tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .expect("the in-flight request finishes")
        .expect("join");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("body"), "held");
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("run returns after the drain")
        .expect("join")
        .expect("clean stop");
}
