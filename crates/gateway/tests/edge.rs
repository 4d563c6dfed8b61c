//! Edge protection, against fake upstreams that count what reaches them:
//! tokens, CORS, size limits, the rate limits and who they count a request
//! against, shedding, unknown and internal routes, header hygiene, and the
//! docs.

#![allow(clippy::expect_used, clippy::panic)] // test helpers: a failed setup should fail the test

mod common;

use std::time::Duration;

use common::{
    Fake, FakeUsers, assert_problem, chunked, gateway_settings, raw, send_many, spawn_fake,
    spawn_fake_users, spawn_gateway,
};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;
use shop_common::auth::{IssuerSettings, TokenIssuer};
use shop_discovery::Registry;
use shop_gateway::config::TrustedProxies;
use shop_testkit::{assert_limited, send};

/// A gateway before fake users, cart and catalog services.
struct Edge {
    _registry: Registry,
    users: FakeUsers,
    cart: Fake,
    catalog: Fake,
    _gateway: common::Running,
    /// The gateway's public base URL.
    base: String,
    /// The gateway's admin base URL.
    admin: String,
    client: reqwest::Client,
}

impl Edge {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request to `path` on the gateway's public port, not yet sent.
    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// `GET path` on the public port.
    async fn get(&self, path: &str) -> Response {
        send(self.request(Method::GET, path)).await
    }

    /// `GET path` on the public port, expecting 200; returns the body.
    async fn text(&self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        response.text().await.expect("text")
    }

    /// The admin port's `/metrics`, checked to be 200 Prometheus text.
    async fn scrape(&self) -> String {
        shop_testkit::scrape(&self.client, &self.admin).await
    }

    /// Sends six `GET /api/products`, the i-th forwarded for
    /// `forwarded_for(i)` (nothing when empty), and asserts that a burst of
    /// three passes and a later one is told to retry within two seconds.
    async fn assert_burst_of_three(&self, forwarded_for: impl Fn(usize) -> String, case: &str) {
        let products = self.url("/api/products");
        let (statuses, refused) =
            send_many(&self.client, &products, Method::GET, 6, forwarded_for).await;
        assert_eq!(&statuses[..3], &[200, 200, 200], "{case}: {statuses:?}");
        let refused = refused.unwrap_or_else(|| panic!("{case}: no 429 in {statuses:?}"));
        assert_limited(refused, 2, case).await;
    }
}

/// A gateway whose general bucket holds a burst of three at one a second,
/// taking forwarded addresses from `trusted_proxies` (none when empty).
async fn rate_limited(trusted_proxies: &[&str]) -> Edge {
    edge(|settings| {
        settings.rate_limit.per_second = 1;
        settings.rate_limit.burst = 3;
        if !trusted_proxies.is_empty() {
            settings.proxy.trusted_proxies = TrustedProxies::parse(trusted_proxies).expect("range");
        }
    })
    .await
}

async fn edge(configure: impl FnOnce(&mut shop_gateway::Settings)) -> Edge {
    let registry = Registry::in_process();
    let users = spawn_fake_users(&registry).await;
    let cart = spawn_fake(&registry, "cart", Duration::from_secs(30)).await;
    let catalog = spawn_fake(&registry, "catalog", Duration::from_secs(30)).await;
    let mut settings = gateway_settings();
    configure(&mut settings);
    let gateway = spawn_gateway(&registry, settings).await;
    let admin = gateway.admin_addr().expect("the admin listener is on");
    Edge {
        _registry: registry,
        users,
        cart,
        catalog,
        base: gateway.base(),
        admin: format!("http://{admin}"),
        _gateway: gateway,
        client: reqwest::Client::new(),
    }
}

#[tokio::test]
async fn bad_tokens_are_refused_without_reaching_the_service() {
    let edge = edge(|_| {}).await;
    let forger = TokenIssuer::from_settings(&IssuerSettings::default()).expect("key");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let expired = edge
        .users
        .issuer
        .issue_at(
            "0190c9f0-0000-7000-8000-000000000001",
            now - 3600,
            now - 600,
        )
        .expect("signs")
        .token;
    let forged = forger
        .issue("0190c9f0-0000-7000-8000-000000000001")
        .expect("signs")
        .token;
    let cases = [
        (None, "missing"),
        (Some("not-a-jwt".to_owned()), "garbage"),
        (Some(forged), "forged"),
        (Some(expired), "expired"),
    ];
    for (token, case) in cases {
        for path in ["/api/cart", "/api/orders", "/api/users/me"] {
            let mut request = edge.request(Method::GET, path);
            if let Some(token) = &token {
                request = request.bearer_auth(token);
            }
            let response = send(request).await;
            assert!(response.headers().contains_key("www-authenticate"));
            assert_problem(response, 401, &format!("{case} token on {path}")).await;
        }
    }
    assert!(edge.cart.hits().is_empty(), "cart never saw a bad token");
    let valid = edge.users.token("0190c9f0-0000-7000-8000-000000000001");
    let response = send(edge.request(Method::GET, "/api/cart").bearer_auth(&valid)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(edge.cart.hits().len(), 1, "a valid token is forwarded");
}

#[tokio::test]
async fn forwarded_requests_carry_trace_ids_and_lose_hop_by_hop_headers() {
    let edge = edge(|_| {}).await;
    let request = edge
        .request(Method::GET, "/api/products?limit=2")
        .header("connection", "x-hop")
        .header("x-hop", "1")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic eA==")
        .header("x-forwarded-for", "198.51.100.9")
        .header("x-shop-service-token", "guess")
        .header("x-shop-client-ip", "203.0.113.7");
    let response = send(request).await;
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"].clone();
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["path"], "/api/products");
    let hits = edge.catalog.hits();
    assert_eq!(hits.len(), 1);
    let headers = &hits[0].headers;
    for gone in [
        "x-hop",
        "keep-alive",
        "proxy-authorization",
        "x-shop-service-token",
    ] {
        assert!(!headers.contains_key(gone), "{gone} was forwarded");
    }
    assert_eq!(
        headers["x-forwarded-for"], "127.0.0.1",
        "a client cannot claim an address"
    );
    assert_eq!(
        headers["x-shop-client-ip"], "127.0.0.1",
        "the resolved client address overwrites a client's claim"
    );
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["x-request-id"], request_id);
    let traceparent = headers["traceparent"].to_str().expect("ascii");
    assert_eq!(traceparent.len(), 55, "{traceparent}");
    assert!(traceparent.starts_with("00-"));
    assert!(
        headers.contains_key("x-shop-deadline-ms"),
        "the deadline travels"
    );

    // A valid incoming trace context keeps its trace (the span id is the
    // gateway's client span's when tracing is on), and the request id is
    // passed on unchanged.
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let traced = edge
        .request(Method::GET, "/api/products")
        .header("traceparent", traceparent)
        .header("x-request-id", "req-42");
    send(traced).await;
    let hits = edge.catalog.hits();
    let passed = hits[1].headers["traceparent"].to_str().expect("ascii");
    assert_eq!(passed.len(), 55, "{passed}");
    assert_eq!(passed[..35], traceparent[..35], "the same trace");
    assert_eq!(hits[1].headers["x-request-id"], "req-42");
}

#[tokio::test]
async fn unknown_and_internal_routes_are_404_at_the_gateway() {
    let edge = edge(|_| {}).await;
    let token = edge.users.token("0190c9f0-0000-7000-8000-000000000001");
    for (method, path) in [
        ("GET", "/nope"),
        ("GET", "/api/cart/secret"),
        (
            "POST",
            "/internal/carts/0190c9f0-0000-7000-8000-000000000001/order-removals",
        ),
        ("GET", "/internal/anything"),
        ("GET", "/api/productsx"),
    ] {
        let request = edge
            .request(method.parse().expect("method"), path)
            .bearer_auth(&token)
            .header("x-shop-service-token", "guess");
        assert_problem(send(request).await, 404, path).await;
    }
    let patch = send(edge.request(Method::PATCH, "/api/cart").bearer_auth(&token)).await;
    assert_problem(patch, 405, "wrong method").await;
    assert!(edge.cart.hits().is_empty());
    assert!(edge.catalog.hits().is_empty());
}

#[tokio::test]
async fn cors_preflights_are_answered_by_the_gateway() {
    let edge = edge(|settings| {
        settings.cors.allowed_origins = vec!["https://shop.example".to_owned()];
    })
    .await;
    let preflight = |origin: &'static str| {
        let request = edge
            .request(Method::OPTIONS, "/api/cart/items/x")
            .header("origin", origin)
            .header("access-control-request-method", "PUT")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            );
        send(request)
    };
    let response = preflight("https://shop.example").await;
    assert!(response.status().is_success(), "{}", response.status());
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://shop.example"
    );
    let methods = response.headers()["access-control-allow-methods"]
        .to_str()
        .expect("ascii");
    assert!(methods.contains("PUT"), "{methods}");
    let response = preflight("https://evil.example").await;
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin")
    );
    assert!(
        edge.cart.hits().is_empty(),
        "preflights never reach a service"
    );

    let simple = edge
        .request(Method::GET, "/api/products")
        .header("origin", "https://shop.example");
    let simple = send(simple).await;
    assert_eq!(
        simple.headers()["access-control-allow-origin"],
        "https://shop.example"
    );
}

#[tokio::test]
async fn a_wildcard_origin_with_credentials_does_not_start() {
    let mut settings = gateway_settings();
    settings.cors.allowed_origins = vec!["*".to_owned()];
    settings.cors.allow_credentials = true;
    let err = shop_gateway::Application::build_in(settings, Registry::in_process())
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("cors.allowed_origins"), "{err}");
}

#[tokio::test]
async fn oversized_bodies_headers_and_uris_are_refused() {
    let edge = edge(|settings| {
        settings.limits.body_bytes = 4 * 1024;
        settings.limits.header_bytes = 4 * 1024;
        settings.limits.uri_bytes = 1024;
    })
    .await;
    let token = edge.users.token("0190c9f0-0000-7000-8000-000000000001");

    // Declared too large: refused before reading.
    let declared = edge
        .request(Method::POST, "/api/users")
        .header("content-type", "application/json")
        .body(vec![b'x'; 8 * 1024]);
    assert_problem(send(declared).await, 413, "declared length").await;
    // Chunked, streamed to the upstream (POST) and buffered for retries
    // (PUT); within the limit, forwarded whole.
    for (method, path, total, finish, status, case) in [
        ("POST", "/api/users", 5, false, 413, "streamed chunked POST"),
        (
            "PUT",
            "/api/cart/items/x",
            5,
            false,
            413,
            "buffered chunked PUT",
        ),
        (
            "PUT",
            "/api/cart/items/x",
            2,
            true,
            200,
            "chunked PUT within the limit",
        ),
    ] {
        let request = chunked(method, path, &token, total * 1024, finish);
        let (got, text) = raw(&edge.base, &request).await;
        assert_eq!(got, status, "{case}: {text}");
    }
    assert_eq!(edge.cart.hits().last().expect("hit").body_len, 2 * 1024);

    let big = edge
        .request(Method::GET, "/api/products")
        .header("x-big", "y".repeat(6 * 1024));
    assert_problem(send(big).await, 431, "header bytes").await;
    let mut request = edge.request(Method::GET, "/api/products");
    for i in 0..80 {
        request = request.header(format!("x-h{i}"), "1");
    }
    assert_problem(send(request).await, 431, "header count").await;
    let long = format!("/api/products?cursor={}", "c".repeat(2048));
    assert_problem(edge.get(&long).await, 414, "uri").await;
    assert!(
        edge.catalog.hits().is_empty(),
        "no oversized request reached the catalog"
    );
}

#[tokio::test]
async fn clients_over_the_rate_are_told_when_to_retry() {
    let edge = rate_limited(&[]).await;
    edge.assert_burst_of_three(|_| String::new(), "rate limited")
        .await;
    let health = edge.get("/healthz").await;
    assert_eq!(health.status(), 200, "probes are not rate limited");
}

#[tokio::test]
async fn overload_is_shed_but_probes_still_answer() {
    let edge = edge(|settings| {
        settings.limits.max_concurrent_requests = 2;
        settings.limits.request_timeout_ms = 20_000;
        settings.upstreams.catalog.per_try_timeout_ms = 20_000;
        settings.upstreams.catalog.deadline_ms = 20_000;
    })
    .await;
    // Two slow requests take both permits.
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let request = edge.request(Method::GET, "/api/products/slow").send();
            tokio::spawn(request)
        })
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while edge.catalog.hits().len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "slow requests never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let shed = edge.get("/api/products").await;
    assert!(shed.headers().contains_key("retry-after"));
    assert_problem(shed, 503, "shed").await;
    let response = edge.get("/healthz").await;
    assert_eq!(response.status(), 200, "/healthz under overload");
    // Admin /metrics under overload: 200 Prometheus text.
    edge.scrape().await;
    let readyz = edge.get("/readyz").await;
    // Ready although orders has no instance here: readiness is the
    // gateway's own, and /readyz is not shed.
    assert_eq!(readyz.status(), 200, "/readyz under overload");
    let report: Value = readyz.json().await.expect("json");
    assert_eq!(report["status"], "ready");
    for task in slow {
        task.abort();
    }
}

#[tokio::test]
async fn the_api_describes_itself_without_the_internet() {
    let edge = edge(|_| {}).await;
    let document = edge.text("/api/openapi.json").await;
    let document: Value = serde_json::from_str(&document).expect("the document parses");
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1"))
    );
    assert!(document["paths"]["/api/orders/{id}/cancel"]["post"].is_object());

    let html = edge.text("/docs/").await;
    assert!(html.to_lowercase().contains("swagger"), "{html}");
    assert!(
        !html.contains("https://") && !html.contains("http://"),
        "the page loads nothing from elsewhere: {html}"
    );
    let init = edge.text("/docs/swagger-initializer.js").await;
    assert!(init.contains("/api/openapi.json"), "{init}");
    // Assets are served by the gateway.
    edge.text("/docs/swagger-ui-bundle.js").await;
}

#[tokio::test]
async fn clients_in_one_ipv6_64_share_a_bucket_behind_a_trusted_proxy() {
    // Loopback, where the test's requests come from, is the proxy.
    let edge = rate_limited(&["127.0.0.1/32"]).await;
    // One client rotating through the addresses of its /64: one bucket.
    let rotating = |i: usize| format!("2001:db8:1:2::{:x}", i + 1);
    edge.assert_burst_of_three(rotating, "rotating /64").await;
    // Another /64 has a bucket of its own.
    let products = edge.url("/api/products");
    let another = |_| "2001:db8:1:3::1".to_owned();
    let (statuses, _) = send_many(&edge.client, &products, Method::GET, 1, another).await;
    assert_eq!(statuses, [200], "another /64");
    // The services still learn the full address.
    let hits = edge.catalog.hits();
    assert_eq!(hits[0].headers["x-shop-client-ip"], "2001:db8:1:2::1");
    assert_eq!(
        hits[0].headers["x-forwarded-for"],
        "2001:db8:1:2::1, 127.0.0.1"
    );
}

#[tokio::test]
async fn an_untrusted_peer_cannot_dodge_its_bucket_with_forwarded_for() {
    // Forwarding is trusted, but only from a proxy elsewhere.
    let edge = rate_limited(&["10.0.0.0/8"]).await;
    // A fresh X-Forwarded-For is no fresh bucket.
    let spoofed = |i: usize| format!("198.51.100.{}", i + 1);
    edge.assert_burst_of_three(spoofed, "spoofed X-Forwarded-For")
        .await;
    let hits = edge.catalog.hits();
    assert_eq!(hits[0].headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(hits[0].headers["x-shop-client-ip"], "127.0.0.1");
}

#[tokio::test]
async fn login_and_registration_have_a_stricter_bucket() {
    // The general bucket stays at the tests' generous default.
    let edge = edge(|settings| {
        settings.rate_limit.login.per_minute = 1;
        settings.rate_limit.login.burst = 3;
    })
    .await;
    let none = |_| String::new();
    // Logins and registrations share the one stricter bucket.
    let (statuses, _) = send_many(
        &edge.client,
        &edge.url("/api/sessions"),
        Method::POST,
        2,
        none,
    )
    .await;
    assert_eq!(statuses, [200, 200]);
    let (statuses, refused) =
        send_many(&edge.client, &edge.url("/api/users"), Method::POST, 2, none).await;
    assert_eq!(statuses, [200, 429]);
    assert_limited(refused.expect("a 429"), 60, "login").await;
    // Far under the general limit, everything else still passes.
    let (statuses, _) = send_many(
        &edge.client,
        &edge.url("/api/products"),
        Method::GET,
        20,
        none,
    )
    .await;
    assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}");
}

#[tokio::test]
async fn metrics_are_not_public_and_the_admin_port_counts_public_requests() {
    let edge = edge(|_| {}).await;
    let series = |text: &str| {
        let labels = [
            ("service", "gateway"),
            ("route", "/api/products"),
            ("status", "200"),
        ];
        shop_testkit::metric_value(text, "http_requests_total", &labels).unwrap_or(0.0)
    };
    let before = series(&edge.scrape().await);
    assert_eq!(edge.get("/api/products").await.status(), 200);
    let after = edge.scrape().await;
    assert!(
        series(&after) >= before + 1.0,
        "the public request is not counted: {before} -> {}",
        series(&after)
    );
    assert!(
        after.contains("upstream_requests_total"),
        "the upstream series are on the admin port too"
    );
    // Every rejection reason exists from start-up, refused or not.
    for reason in shop_gateway::middleware::REJECTION_REASONS {
        assert!(
            shop_testkit::metric_value(&after, "gateway_rejections_total", &[("reason", reason)])
                .is_some(),
            "no gateway_rejections_total series for {reason}"
        );
    }

    // The public port: the usual 404 problem, nothing forwarded upstream.
    let seen = edge.catalog.hits().len() + edge.cart.hits().len();
    let public = edge.get("/metrics").await;
    assert_problem(public, 404, "/metrics on the public port").await;
    assert_eq!(edge.catalog.hits().len() + edge.cart.hits().len(), seen);
}
