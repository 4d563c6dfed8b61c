//! Per-route degradation and fail-over through the gateway, over the real
//! stack on loopback (no containers):
//!
//! - with every orders instance gone, the gateway is still ready and only
//!   the orders routes answer 503 problem+json with `Retry-After`;
//! - with the catalog gone, only the product routes do;
//! - a cart replica dying abruptly mid-run (its listener closed, its
//!   connections cut, its registration left behind like a killed
//!   container's) costs no request, and is ejected at its first refused
//!   connection;
//! - a replica that accepts connections and never answers costs an
//!   idempotent request one per-try timeout, not the request.

#![allow(clippy::expect_used)] // test setup: a failed bind or registration should fail the test

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{assert_problem, register_dead, spawn_stack, spawn_stack_with};
use serde_json::json;
use shop::stack::Cart;
use shop::testing::{Shopper, eventually};
use shop_discovery::{Instance, PolicySettings, Registry, Scheme};
use shop_testkit::{Engine, send};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// A TCP relay in front of a real instance, standing in for its process:
/// [`Relay::kill`] closes the listener and cuts every connection at once,
/// as a SIGKILL does, while the registration the test made for it stays.
struct Relay {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("relay binds");
        let addr = listener.local_addr().expect("relay addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let accepted = Arc::clone(&accepted);
            let stop = stop.clone();
            async move {
                // Dropped with the task: every connection task is aborted
                // and its sockets closed, the listener with them.
                let mut connections = JoinSet::new();
                loop {
                    let (mut inbound, _) = tokio::select! {
                        () = stop.cancelled() => return,
                        accepted = listener.accept() => match accepted {
                            Ok(accepted) => accepted,
                            Err(_) => continue,
                        },
                    };
                    accepted.fetch_add(1, Ordering::SeqCst);
                    connections.spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(target).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                }
            }
        });
        Self {
            addr,
            accepted,
            stop,
            task,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Closes the listener and every connection; returns once they are
    /// closed, so that the next connection attempt is refused.
    async fn kill(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// A listener that accepts connections and never answers on them: a hung
/// process whose kernel still completes handshakes.
struct Hang {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Hang {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let accepted = Arc::clone(&accepted);
            async move {
                let mut held = Vec::new();
                while let Ok((socket, _)) = listener.accept().await {
                    accepted.fetch_add(1, Ordering::SeqCst);
                    held.push(socket);
                }
            }
        });
        Self {
            addr,
            accepted,
            task,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Hang {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Asserts a 503 problem+json with `Retry-After`.
async fn assert_unavailable(response: reqwest::Response, what: &str) {
    assert!(
        response.headers().contains_key("retry-after"),
        "{what}: Retry-After missing"
    );
    let body = assert_problem(response, 503, what).await;
    assert_eq!(body["type"], "/problems/upstream", "{what}: {body}");
}

/// Asserts the status of `response`, showing its body when it differs.
async fn assert_status(response: reqwest::Response, status: u16, what: &str) {
    let actual = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    assert_eq!(actual, status, "{what}: {body}");
}

#[tokio::test]
async fn with_every_orders_instance_gone_only_the_orders_routes_answer_503() {
    let mut stack = spawn_stack(Engine::Sqlite, 1).await;
    let shopper = stack.shopper("no-orders").await;
    let product = stack.product_ids().await.remove(0);
    shopper.put_item(&product, 1).await;
    stack.stop_service("orders").await;

    let client = &stack.client;
    assert_status(
        send(client.get(stack.url("/readyz"))).await,
        200,
        "the gateway is ready: it can serve",
    )
    .await;
    assert_status(
        send(client.get(stack.url("/api/products"))).await,
        200,
        "products",
    )
    .await;
    assert_status(shopper.get("/api/cart").await, 200, "the cart").await;
    shopper.put_item(&product, 2).await;
    assert_status(shopper.get("/api/users/me").await, 200, "the user").await;

    assert_unavailable(shopper.place("no-orders-1").await, "placing an order").await;
    assert_unavailable(shopper.get("/api/orders").await, "listing orders").await;

    // A killed replica whose registration has not lapsed yet: nothing can
    // connect to it, which is just as unavailable.
    let _dead = register_dead(stack.registry(), "orders", Scheme::Grpc).await;
    for attempt in 0..3 {
        let response = shopper.place(&format!("no-orders-{attempt}")).await;
        assert_unavailable(response, "placing an order, every instance refusing").await;
    }
    assert_status(
        send(client.get(stack.url("/readyz"))).await,
        200,
        "still ready",
    )
    .await;
}

#[tokio::test]
async fn with_the_catalog_gone_only_the_product_routes_answer_503() {
    let mut stack = spawn_stack(Engine::Sqlite, 1).await;
    let shopper = stack.shopper("no-catalog").await;
    let product = stack.product_ids().await.remove(0);
    stack.stop_service("catalog").await;

    let client = &stack.client;
    assert_status(
        send(client.get(stack.url("/readyz"))).await,
        200,
        "the gateway is ready: it can serve",
    )
    .await;
    assert_unavailable(
        send(client.get(stack.url("/api/products"))).await,
        "the product list",
    )
    .await;
    assert_unavailable(
        send(client.get(stack.url(&format!("/api/products/{product}")))).await,
        "one product",
    )
    .await;
    let orders = shopper.get_json("/api/orders").await;
    assert_eq!(orders["items"], json!([]), "order listing works");
    let me = shopper.get_json("/api/users/me").await;
    assert_eq!(me["username"], "no-catalog", "users routes work");
}

#[tokio::test]
async fn a_cart_replica_dying_mid_run_fails_no_request_and_is_ejected_at_once() {
    // Round robin so that the dying replica is sure to have traffic; no
    // health checks and an unreachable failure threshold, so that only a
    // refused connection can eject it.
    let stack = spawn_stack_with(Engine::Sqlite, 1, |settings| {
        let cart = &mut settings.upstreams.cart;
        cart.balance = PolicySettings::RoundRobin;
        cart.health_check.enabled = false;
        cart.outlier.consecutive_failures = 1_000;
    })
    .await;
    // The second replica: a real cart on the same database, reached only
    // through the relay registered in its name. It registers in a registry
    // of its own, where it finds the users (token keys) and the catalog
    // (prices) it needs.
    let own = Registry::in_process();
    let mut peers = Vec::new();
    for peer in ["users", "catalog"] {
        let addr = stack.addr(peer).expect("the stack runs it");
        let instance = Instance::new(peer, format!("{peer}-peer"), addr.to_string());
        peers.push(own.register(instance).expect("registered"));
    }
    let second = stack
        .spawn::<Cart>(Some(&own), |_| {})
        .await
        .expect("the second cart starts");
    let relay = Relay::start(second.addr()).await;
    let _registration = stack
        .registry()
        .register(Instance::new(
            "cart",
            "cart-relayed",
            relay.addr.to_string(),
        ))
        .expect("registered");
    let ejections = || {
        stack.metric(
            "gateway",
            "upstream_ejections_total",
            &[("service", "gateway"), ("upstream", "cart")],
        )
    };
    let ejected_before = ejections().await;

    let ids: Vec<String> = stack.product_ids().await.into_iter().take(4).collect();
    let stop = CancellationToken::new();
    let mut loops = Vec::new();
    for user in 0..3 {
        let shopper = stack.shopper(&format!("dying-cart{user}")).await;
        let ids = ids.clone();
        let stop = stop.clone();
        loops.push(tokio::spawn(async move {
            shop_loop(&shopper, &ids, &stop).await
        }));
    }
    eventually("the relayed replica to carry traffic", || async {
        relay.accepted() > 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    relay.kill().await;
    // Keep shopping well past the kill.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    stop.cancel();

    let mut total = 0;
    for task in loops {
        let (requests, failures) = task.await.expect("loop");
        total += requests;
        assert!(failures.is_empty(), "failed requests: {failures:?}");
    }
    assert!(total > 30, "the loops ran: {total} requests");
    let ejected = ejections().await - ejected_before;
    assert_eq!(
        ejected, 1.0,
        "the dead replica was ejected at its first refused connection"
    );
    drop(second);
}

/// PUT, GET and DELETE in a loop until `stop`; the requests sent and the
/// failures seen.
async fn shop_loop(
    shopper: &Shopper,
    ids: &[String],
    stop: &CancellationToken,
) -> (usize, Vec<String>) {
    let client = &shopper.client;
    let mut failures = Vec::new();
    let mut requests = 0;
    let mut i = 0;
    while !stop.is_cancelled() {
        i += 1;
        let product = &ids[i % ids.len()];
        let item = shopper.url(&format!("/api/cart/items/{product}"));
        let steps = [
            (
                "PUT",
                client
                    .put(&item)
                    .json(&json!({"quantity": 1 + i % 5}))
                    .bearer_auth(&shopper.token)
                    .send()
                    .await,
            ),
            (
                "GET",
                client
                    .get(shopper.url("/api/cart"))
                    .bearer_auth(&shopper.token)
                    .send()
                    .await,
            ),
            (
                "DELETE",
                client
                    .delete(&item)
                    .bearer_auth(&shopper.token)
                    .send()
                    .await,
            ),
        ];
        for (what, result) in steps {
            requests += 1;
            match result {
                Ok(response) if response.status().is_success() => {}
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
}

#[tokio::test]
async fn a_hung_replica_costs_an_idempotent_request_one_try_not_the_request() {
    let stack = spawn_stack_with(Engine::Sqlite, 1, |settings| {
        for upstream in [
            &mut settings.upstreams.catalog,
            &mut settings.upstreams.orders,
        ] {
            upstream.balance = PolicySettings::RoundRobin;
            upstream.health_check.enabled = false;
            upstream.per_try_timeout_ms = 500;
        }
    })
    .await;
    let shopper = stack.shopper("hung").await;
    let hung_catalog = Hang::start().await;
    let hung_orders = Hang::start().await;
    let _catalog = stack
        .registry()
        .register(Instance::new(
            "catalog",
            "catalog-hung",
            hung_catalog.addr.to_string(),
        ))
        .expect("registered");
    let _orders = stack
        .registry()
        .register(
            Instance::new("orders", "orders-hung", hung_orders.addr.to_string())
                .with_scheme(Scheme::Grpc),
        )
        .expect("registered");

    // Round robin over two: within a few requests each upstream picks the
    // hung replica first at least once.
    for attempt in 0..6 {
        let products = send(
            stack
                .client
                .get(stack.url("/api/products"))
                .timeout(Duration::from_secs(10)),
        )
        .await;
        assert_status(products, 200, &format!("products, attempt {attempt}")).await;
        let orders = shopper.get("/api/orders").await;
        assert_status(orders, 200, &format!("orders, attempt {attempt}")).await;
    }
    assert!(hung_catalog.accepted() > 0, "the hung catalog was tried");
    assert!(hung_orders.accepted() > 0, "the hung orders was tried");
}
