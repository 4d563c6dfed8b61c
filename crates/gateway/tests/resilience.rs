//! Resilience through the gateway: an instance leaving mid-run costs no
//! request, a slow upstream is cut off at the deadline with 504, a dead
//! one is answered with 503 + `Retry-After` (quickly once its breaker
//! opens). Per-route degradation and fail-over are in `degrade.rs`.

mod common;

use std::time::{Duration, Instant};

use common::{
    assert_problem, gateway_settings, register_dead, spawn_fake, spawn_fake_users, spawn_gateway,
    spawn_stack_with,
};
use serde_json::json;
use shop_discovery::{PolicySettings, Registry, Scheme};
use shop_testkit::{Engine, scrape, send};

#[tokio::test]
async fn stopping_a_cart_instance_mid_run_fails_no_request() {
    // Round robin so that the instance stopped is sure to have had traffic.
    let mut stack = spawn_stack_with(Engine::Sqlite, 2, |settings| {
        settings.upstreams.cart.balance = PolicySettings::RoundRobin;
    })
    .await;
    stack.wait_ready().await;
    let ids: Vec<String> = stack.product_ids().await.into_iter().take(5).collect();
    let mut loops = Vec::new();
    for user in 0..3 {
        let token = stack.token(&format!("shopper{user}")).await;
        let client = stack.client.clone();
        let base = stack.base("gateway");
        let ids = ids.clone();
        loops.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut failures = Vec::new();
            let mut requests = 0;
            let mut i = 0;
            while started.elapsed() < Duration::from_millis(2_000) {
                i += 1;
                let product = &ids[i % ids.len()];
                let put = client
                    .put(format!("{base}/api/cart/items/{product}"))
                    .bearer_auth(&token)
                    .json(&json!({"quantity": 1 + i % 5}))
                    .send()
                    .await;
                let get = client
                    .get(format!("{base}/api/cart"))
                    .bearer_auth(&token)
                    .send()
                    .await;
                requests += 2;
                for (what, result) in [("PUT", put), ("GET", get)] {
                    match result {
                        Ok(response) if response.status() == 200 => {}
                        Ok(response) => failures.push(format!(
                            "{what} {}: {}",
                            response.status(),
                            response.text().await.unwrap_or_default()
                        )),
                        Err(err) => failures.push(format!("{what}: {err}")),
                    }
                }
            }
            (requests, failures)
        }));
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    stack.stop_service("cart-1").await;
    let mut total = 0;
    for task in loops {
        let (requests, failures) = task.await.expect("loop");
        total += requests;
        assert!(failures.is_empty(), "failed requests: {failures:?}");
    }
    assert!(total > 20, "the loops ran: {total} requests");
}

#[tokio::test]
async fn a_slow_upstream_yields_504_within_the_deadline() {
    let registry = Registry::in_process();
    let _catalog = spawn_fake(&registry, "catalog", Duration::from_secs(30)).await;
    let _users = spawn_fake_users(&registry).await;
    let mut settings = gateway_settings();
    settings.limits.request_timeout_ms = 1_000;
    settings.upstreams.catalog.per_try_timeout_ms = 10_000;
    settings.upstreams.catalog.deadline_ms = 10_000;
    let gateway = spawn_gateway(&registry, settings).await;
    let client = reqwest::Client::new();

    let started = Instant::now();
    let response = send(client.get(format!("{}/api/products/slow", gateway.base))).await;
    let body = assert_problem(response, 504, "request deadline").await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "cut off at the deadline, not after the upstream's 30 s"
    );
    assert!(
        !body.to_string().contains("127.0.0.1"),
        "no internals: {body}"
    );
}

#[tokio::test]
async fn a_dead_upstream_yields_503_quickly_once_the_breaker_opens() {
    let registry = Registry::in_process();
    let users = spawn_fake_users(&registry).await;
    let _catalog = register_dead(&registry, "catalog", Scheme::Http).await;
    let _orders = register_dead(&registry, "orders", Scheme::Grpc).await;
    let mut settings = gateway_settings();
    for upstream in [
        &mut settings.upstreams.catalog,
        &mut settings.upstreams.orders,
    ] {
        // The breaker alone decides here.
        upstream.health_check.enabled = false;
        upstream.outlier.enabled = false;
        upstream.breaker.consecutive_failures = 3;
        upstream.breaker.open_ms = 30_000;
    }
    let gateway = spawn_gateway(&registry, settings).await;
    let client = reqwest::Client::new();
    let products = || send(client.get(format!("{}/api/products", gateway.base)));

    // Refused connections (nothing reached a server), then the open
    // breaker: unavailable, try again later, every time.
    for _ in 0..5 {
        let response = products().await;
        assert!(response.headers().contains_key("retry-after"));
        let body = assert_problem(response, 503, "connection refused, then breaker open").await;
        assert_eq!(body["type"], "/problems/upstream");
    }
    let started = Instant::now();
    assert_eq!(products().await.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "an open breaker answers at once"
    );

    // The orders facade over gRPC maps the same way.
    let token = users.token("0190c9f0-0000-7000-8000-000000000001");
    for _ in 0..5 {
        let response = send(
            client
                .get(format!("{}/api/orders", gateway.base))
                .bearer_auth(&token),
        );
        let response = response.await;
        assert!(response.headers().contains_key("retry-after"));
        assert_problem(response, 503, "orders facade, dead instance").await;
    }

    let metrics = scrape(&client, &gateway.admin_base()).await;
    for series in [
        "upstream_requests_total",
        "upstream_breaker_state",
        "upstream_request_duration_seconds",
    ] {
        assert!(metrics.contains(series), "{series} missing");
    }
}
