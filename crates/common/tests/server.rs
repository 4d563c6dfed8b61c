//! Serving with the shared layers over real sockets: request ids, problem
//! fallbacks, metrics, readiness during shutdown, and a bounded drain.

#![allow(clippy::expect_used)] // test helpers: a failed setup should fail the test

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use shop_common::health::{self, Readiness};
use shop_common::server::{serve, with_common_layers};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

struct Served {
    base: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(drain: Duration) -> Served {
    let stop = CancellationToken::new();
    let readiness = Readiness::new().with_stop(stop.clone());
    let router = Router::new()
        .route("/fast", get(|| async { "fast" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(400)).await;
                "slow"
            }),
        )
        .route(
            "/stuck",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                "never"
            }),
        )
        .merge(health::router(readiness));
    let router = with_common_layers(router, "test");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let task = tokio::spawn(serve(listener, router, stop.clone(), drain));
    Served { base, stop, task }
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let served = start(Duration::from_secs(5)).await;
    let client = reqwest::Client::new();
    let given = client
        .get(format!("{}/fast", served.base))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .expect("send");
    assert_eq!(given.headers()["x-request-id"], "abc-123");
    let generated = client
        .get(format!("{}/fast", served.base))
        .send()
        .await
        .expect("send");
    let id = generated.headers()["x-request-id"].to_str().expect("ascii");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    served.stop.cancel();
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let served = start(Duration::from_secs(5)).await;
    let client = reqwest::Client::new();
    let missing = client
        .get(format!("{}/nope", served.base))
        .send()
        .await
        .expect("send");
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
    let body: serde_json::Value = missing.json().await.expect("json");
    assert_eq!(body["status"], 404);
    let wrong = client
        .delete(format!("{}/fast", served.base))
        .send()
        .await
        .expect("send");
    assert_eq!(wrong.status(), 405);
    assert_eq!(wrong.headers()["content-type"], "application/problem+json");
    served.stop.cancel();
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let served = start(Duration::from_secs(5)).await;
    let client = reqwest::Client::new();
    for _ in 0..3 {
        client
            .get(format!("{}/fast", served.base))
            .send()
            .await
            .expect("send");
    }
    let text = client
        .get(format!("{}/metrics", served.base))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    let line = text
        .lines()
        .find(|line| {
            line.starts_with("http_requests_total{")
                && line.contains(r#"service="test""#)
                && line.contains(r#"route="/fast""#)
                && line.contains(r#"status="200""#)
        })
        .unwrap_or_else(|| panic!("no counter for /fast in:\n{text}"));
    let count: f64 = line
        .rsplit(' ')
        .next()
        .expect("value")
        .parse()
        .expect("number");
    assert!(count >= 3.0, "{line}");
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "histogram missing"
    );
    served.stop.cancel();
}

#[tokio::test]
async fn in_flight_requests_finish_and_readiness_drops_during_shutdown() {
    let served = start(Duration::from_secs(5)).await;
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(format!("{}/readyz", served.base))
            .send()
            .await
            .expect("send")
            .status(),
        200
    );

    let slow = tokio::spawn(client.get(format!("{}/slow", served.base)).send());
    tokio::time::sleep(Duration::from_millis(100)).await;
    served.stop.cancel();
    let response = slow
        .await
        .expect("join")
        .expect("the in-flight request completes");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("body"), "slow");
    served.task.await.expect("join").expect("clean stop");
    assert!(
        reqwest::Client::new()
            .get(format!("{}/fast", served.base))
            .send()
            .await
            .is_err(),
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
    let served = start(Duration::from_millis(300)).await;
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
