//! The all-in-one stack: starts in a temp directory on free ports, serves,
//! keeps its signing key across restarts, and stops cleanly.

#![allow(clippy::expect_used)] // test helpers: a failed setup should fail the test

use std::time::Duration;

use serde_json::json;
use shop::testing::{PASSWORD, login};
use shop::{Options, Shop};
use shop_testkit::send;
use tokio_util::sync::CancellationToken;

async fn start(dir: &std::path::Path) -> (Shop, CancellationToken) {
    let shop = Shop::start(&Options::ephemeral(dir))
        .await
        .expect("the stack starts");
    (shop, CancellationToken::new())
}

/// Stops `shop` through `stop` and waits for a clean stop.
async fn stop_cleanly(shop: Shop, stop: CancellationToken) {
    let task = tokio::spawn(shop.run_until_stopped(stop.clone()));
    stop.cancel();
    task.await.expect("join").expect("clean stop");
}

/// Registers bob with users; returns the status.
async fn register_bob(client: &reqwest::Client, shop: &Shop) -> u16 {
    let bob = json!({"username": "bob", "email": "bob@example.com", "password": PASSWORD});
    let sent = client.post(url(shop, "users", "/api/users")).json(&bob);
    send(sent).await.status().as_u16()
}

fn url(shop: &Shop, service: &str, path: &str) -> String {
    format!("http://{}{path}", shop.addr(service).expect("service runs"))
}

/// `GET {path}` of `service`, whatever the answer.
async fn get(client: &reqwest::Client, shop: &Shop, service: &str, path: &str) -> u16 {
    send(client.get(url(shop, service, path)))
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn the_stack_starts_serves_and_stops_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (shop, stop) = start(dir.path()).await;
    let client = reqwest::Client::new();
    for service in [
        "gateway",
        "users",
        "catalog",
        "payments",
        "cart-1",
        "cart-2",
        "orders-admin",
        "web",
    ] {
        let ready = get(&client, &shop, service, "/readyz").await;
        assert_eq!(ready, 200, "{service}");
    }
    let banner = shop.banner();
    assert!(
        banner.contains("cart-2") && banner.contains("curl"),
        "{banner}"
    );
    let metrics_base = format!("http://{}", shop.metrics_addr());
    assert!(
        banner.contains(&format!("{metrics_base}/metrics")),
        "{banner}"
    );

    // One /metrics for the process, on no API port; it counts the gateway's
    // requests as well as every other service's.
    let listed = get(&client, &shop, "gateway", "/api/products?limit=1").await;
    assert_eq!(listed, 200);
    for service in [
        "gateway", "users", "catalog", "payments", "cart-1", "cart-2", "web",
    ] {
        let public = get(&client, &shop, service, "/metrics").await;
        assert_eq!(public, 404, "{service} serves /metrics publicly");
        assert!(
            shop.addr(&format!("{service}-admin")).is_none(),
            "{service} has an admin listener of its own"
        );
    }
    let metrics = shop_testkit::scrape(&client, &metrics_base).await;
    for service in ["gateway", "catalog"] {
        assert!(
            metrics
                .lines()
                .any(|line| line.starts_with("http_requests_total{")
                    && line.contains(&format!(r#"service="{service}""#))
                    && line.contains(r#"route="/api/products""#)),
            "no {service} request series in:\n{metrics}"
        );
    }
    for name in [
        "users.db",
        "catalog.db",
        "payments.db",
        "cart.db",
        "orders.db",
        "dev-signing-key.pem",
    ] {
        assert!(dir.path().join(name).is_file(), "{name} created");
    }

    // A user's token from users is accepted by both carts (keys found through the registry).
    let token = &login(&client, &url(&shop, "users", ""), "alice").await;
    for cart in ["cart-1", "cart-2"] {
        let response = send(client.get(url(&shop, cart, "/api/cart")).bearer_auth(token));
        assert_eq!(response.await.status(), 200, "{cart}");
    }

    // payments answers only with the stack's service credential.
    let payment = format!("/internal/payments/{}", uuid::Uuid::now_v7());
    let unknown = get(&client, &shop, "payments", &payment).await;
    assert_eq!(unknown, 401, "payments without the credential");

    let carts = shop.registry().watch("cart");
    assert_eq!(carts.borrow().len(), 2);
    assert_eq!(shop.registry().watch("payments").borrow().len(), 1);
    let registry = shop.registry().clone();
    let cart_addr = shop.addr("cart-1").expect("cart");
    let running = tokio::spawn(shop.run_until_stopped(stop.clone()));
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(20), running)
        .await
        .expect("stops within the drain time")
        .expect("join")
        .expect("clean stop");
    assert_eq!(
        registry.watch("cart").borrow().len(),
        0,
        "instances deregistered"
    );
    assert!(
        client
            .get(format!("http://{cart_addr}/healthz"))
            .send()
            .await
            .is_err(),
        "listeners closed"
    );
}

#[tokio::test]
async fn the_signing_key_survives_restarts_and_reset_empties_the_databases() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("dev-signing-key.pem");
    let (shop, stop) = start(dir.path()).await;
    let first_key = std::fs::read_to_string(&key).expect("key");
    let client = reqwest::Client::new();
    let created = register_bob(&client, &shop).await;
    assert_eq!(created, 201);
    stop_cleanly(shop, stop).await;

    let mut options = Options::ephemeral(dir.path());
    let shop = Shop::start(&options).await.expect("restarts");
    assert_eq!(
        std::fs::read_to_string(&key).expect("key"),
        first_key,
        "the key is kept"
    );
    let again = register_bob(&client, &shop).await;
    assert_eq!(again, 409, "data kept across a restart");
    stop_cleanly(shop, CancellationToken::new()).await;

    options.reset = true;
    let shop = Shop::start(&options).await.expect("restarts with --reset");
    let fresh = register_bob(&client, &shop).await;
    assert_eq!(fresh, 201, "--reset starts from empty databases");
    assert_eq!(
        std::fs::read_to_string(&key).expect("key"),
        first_key,
        "--reset keeps the key"
    );
}

#[tokio::test]
async fn the_smoke_script_passes_against_the_stack() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (shop, stop) = start(dir.path()).await;
    let gateway = format!("http://{}", shop.addr("gateway").expect("gateway"));
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/smoke.sh");
    let output = tokio::process::Command::new("sh")
        .arg(&script)
        .arg(&gateway)
        .output()
        .await
        .expect("sh runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "smoke.sh failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("smoke test passed"), "{stdout}");

    stop_cleanly(shop, stop).await;
}
