//! Edge protection, against fake upstreams that count what reaches them:
//! tokens, CORS, size limits, the rate limits and who they count a request
//! against, shedding, unknown and internal routes, header hygiene, and the
//! docs.

mod common;

use std::time::Duration;

use common::{
    Fake, FakeUsers, assert_problem, chunked, gateway_settings, raw, send_many, spawn_fake,
    spawn_fake_users, spawn_gateway,
};
use reqwest::Method;
use serde_json::Value;
use shop_common::auth::{IssuerSettings, TokenIssuer};
use shop_discovery::Registry;
use shop_gateway::config::TrustedProxies;

struct Edge {
    _registry: Registry,
    users: FakeUsers,
    cart: Fake,
    catalog: Fake,
    gateway: common::Running,
    client: reqwest::Client,
}

impl Edge {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway.base)
    }
}

async fn edge(configure: impl FnOnce(&mut shop_gateway::Settings)) -> Edge {
    let registry = Registry::in_process();
    let users = spawn_fake_users(&registry).await;
    let cart = spawn_fake(&registry, "cart", Duration::from_secs(30)).await;
    let catalog = spawn_fake(&registry, "catalog", Duration::from_secs(30)).await;
    let mut settings = gateway_settings();
    configure(&mut settings);
    let gateway = spawn_gateway(&registry, settings).await;
    Edge {
        _registry: registry,
        users,
        cart,
        catalog,
        gateway,
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
            let mut request = edge.client.get(edge.url(path));
            if let Some(token) = &token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.expect("sent");
            assert!(response.headers().contains_key("www-authenticate"));
            assert_problem(response, 401, &format!("{case} token on {path}")).await;
        }
    }
    assert!(edge.cart.hits().is_empty(), "cart never saw a bad token");
    let valid = edge.users.token("0190c9f0-0000-7000-8000-000000000001");
    let response = edge
        .client
        .get(edge.url("/api/cart"))
        .bearer_auth(&valid)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    assert_eq!(edge.cart.hits().len(), 1, "a valid token is forwarded");
}

#[tokio::test]
async fn forwarded_requests_carry_trace_ids_and_lose_hop_by_hop_headers() {
    let edge = edge(|_| {}).await;
    let response = edge
        .client
        .get(edge.url("/api/products?limit=2"))
        .header("connection", "x-hop")
        .header("x-hop", "1")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic eA==")
        .header("x-forwarded-for", "198.51.100.9")
        .header("x-shop-service-token", "guess")
        .header("x-shop-client-ip", "203.0.113.7")
        .send()
        .await
        .expect("sent");
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

    // A valid incoming trace context and request id are passed on unchanged.
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    edge.client
        .get(edge.url("/api/products"))
        .header("traceparent", traceparent)
        .header("x-request-id", "req-42")
        .send()
        .await
        .expect("sent");
    let hits = edge.catalog.hits();
    assert_eq!(hits[1].headers["traceparent"], traceparent);
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
        let response = edge
            .client
            .request(method.parse().expect("method"), edge.url(path))
            .bearer_auth(&token)
            .header("x-shop-service-token", "guess")
            .send()
            .await
            .expect("sent");
        assert_problem(response, 404, path).await;
    }
    let response = edge
        .client
        .patch(edge.url("/api/cart"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_problem(response, 405, "wrong method").await;
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
        edge.client
            .request(reqwest::Method::OPTIONS, edge.url("/api/cart/items/x"))
            .header("origin", origin)
            .header("access-control-request-method", "PUT")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let response = preflight("https://shop.example").await.expect("sent");
    assert!(response.status().is_success(), "{}", response.status());
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://shop.example"
    );
    let methods = response.headers()["access-control-allow-methods"]
        .to_str()
        .expect("ascii");
    assert!(methods.contains("PUT"), "{methods}");
    let response = preflight("https://evil.example").await.expect("sent");
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
        .client
        .get(edge.url("/api/products"))
        .header("origin", "https://shop.example")
        .send()
        .await
        .expect("sent");
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
    let response = edge
        .client
        .post(edge.url("/api/users"))
        .header("content-type", "application/json")
        .body(vec![b'x'; 8 * 1024])
        .send()
        .await
        .expect("sent");
    assert_problem(response, 413, "declared length").await;
    // Chunked, streamed to the upstream (POST) and buffered for retries (PUT).
    let (status, text) = raw(
        &edge.gateway.base,
        &chunked("POST", "/api/users", &token, 5 * 1024, false),
    )
    .await;
    assert_eq!(status, 413, "streamed chunked POST: {text}");
    let (status, text) = raw(
        &edge.gateway.base,
        &chunked("PUT", "/api/cart/items/x", &token, 5 * 1024, false),
    )
    .await;
    assert_eq!(status, 413, "buffered chunked PUT: {text}");
    // Within the limit: forwarded whole.
    let (status, text) = raw(
        &edge.gateway.base,
        &chunked("PUT", "/api/cart/items/x", &token, 2 * 1024, true),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(edge.cart.hits().last().expect("hit").body_len, 2 * 1024);

    let response = edge
        .client
        .get(edge.url("/api/products"))
        .header("x-big", "y".repeat(6 * 1024))
        .send()
        .await
        .expect("sent");
    assert_problem(response, 431, "header bytes").await;
    let mut request = edge.client.get(edge.url("/api/products"));
    for i in 0..80 {
        request = request.header(format!("x-h{i}"), "1");
    }
    assert_problem(request.send().await.expect("sent"), 431, "header count").await;
    let response = edge
        .client
        .get(edge.url(&format!("/api/products?cursor={}", "c".repeat(2048))))
        .send()
        .await
        .expect("sent");
    assert_problem(response, 414, "uri").await;
    assert!(
        edge.catalog.hits().is_empty(),
        "no oversized request reached the catalog"
    );
}

#[tokio::test]
async fn clients_over_the_rate_are_told_when_to_retry() {
    let edge = edge(|settings| {
        settings.rate_limit.per_second = 1;
        settings.rate_limit.burst = 3;
    })
    .await;
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..6 {
        let response = edge
            .client
            .get(edge.url("/api/products"))
            .send()
            .await
            .expect("sent");
        statuses.push(response.status().as_u16());
        if response.status() == 429 && limited.is_none() {
            limited = Some(response);
        }
    }
    assert_eq!(&statuses[..3], &[200, 200, 200], "{statuses:?}");
    let limited = limited.expect("a 429");
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_problem(limited, 429, "rate limited").await;
    let health = edge
        .client
        .get(edge.url("/healthz"))
        .send()
        .await
        .expect("sent");
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
            let request = edge.client.get(edge.url("/api/products/slow")).send();
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
    let shed = edge
        .client
        .get(edge.url("/api/products"))
        .send()
        .await
        .expect("sent");
    assert!(shed.headers().contains_key("retry-after"));
    assert_problem(shed, 503, "shed").await;
    let response = edge
        .client
        .get(edge.url("/healthz"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200, "/healthz under overload");
    let metrics = edge
        .client
        .get(format!("{}/metrics", edge.gateway.admin_base()))
        .send()
        .await
        .expect("sent");
    assert_eq!(metrics.status(), 200, "admin /metrics under overload");
    let readyz = edge
        .client
        .get(edge.url("/readyz"))
        .send()
        .await
        .expect("sent");
    // orders has no instance here: not ready, and the body says which.
    assert_eq!(readyz.status(), 503);
    let report: Value = readyz.json().await.expect("json");
    assert_eq!(report["checks"]["catalog"], "ok");
    assert_ne!(report["checks"]["orders"], "ok");
    for task in slow {
        task.abort();
    }
}

#[tokio::test]
async fn the_api_describes_itself_without_the_internet() {
    let edge = edge(|_| {}).await;
    let document: Value = edge
        .client
        .get(edge.url("/api/openapi.json"))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("the document parses");
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1"))
    );
    assert!(document["paths"]["/api/orders/{id}/cancel"]["post"].is_object());

    let page = edge
        .client
        .get(edge.url("/docs/"))
        .send()
        .await
        .expect("sent");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.to_lowercase().contains("swagger"), "{html}");
    assert!(
        !html.contains("https://") && !html.contains("http://"),
        "the page loads nothing from elsewhere: {html}"
    );
    let init = edge
        .client
        .get(edge.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .expect("sent");
    assert_eq!(init.status(), 200);
    let init = init.text().await.expect("js");
    assert!(init.contains("/api/openapi.json"), "{init}");
    let bundle = edge
        .client
        .get(edge.url("/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .expect("sent");
    assert_eq!(bundle.status(), 200, "assets are served by the gateway");
}

#[tokio::test]
async fn clients_in_one_ipv6_64_share_a_bucket_behind_a_trusted_proxy() {
    let edge = edge(|settings| {
        settings.rate_limit.per_second = 1;
        settings.rate_limit.burst = 3;
        // Loopback, where the test's requests come from, is the proxy.
        settings.proxy.trusted_proxies = TrustedProxies::parse(&["127.0.0.1/32"]).expect("range");
    })
    .await;
    let products = edge.url("/api/products");
    // One client rotating through the addresses of its /64.
    let (statuses, refused) = send_many(&edge.client, &products, Method::GET, 6, |i| {
        format!("2001:db8:1:2::{:x}", i + 1)
    })
    .await;
    assert_eq!(&statuses[..3], &[200, 200, 200], "{statuses:?}");
    let refused = refused.expect("one /64, one bucket");
    assert_problem(refused, 429, "rotating /64").await;
    // Another /64 has a bucket of its own.
    let (statuses, _) = send_many(&edge.client, &products, Method::GET, 1, |_| {
        "2001:db8:1:3::1".to_owned()
    })
    .await;
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
    let edge = edge(|settings| {
        settings.rate_limit.per_second = 1;
        settings.rate_limit.burst = 3;
        // Forwarding is trusted, but only from a proxy elsewhere.
        settings.proxy.trusted_proxies = TrustedProxies::parse(&["10.0.0.0/8"]).expect("range");
    })
    .await;
    let products = edge.url("/api/products");
    let (statuses, refused) = send_many(&edge.client, &products, Method::GET, 6, |i| {
        format!("198.51.100.{}", i + 1)
    })
    .await;
    assert_eq!(&statuses[..3], &[200, 200, 200], "{statuses:?}");
    let refused = refused.expect("a fresh X-Forwarded-For is no fresh bucket");
    assert_problem(refused, 429, "spoofed X-Forwarded-For").await;
    let hits = edge.catalog.hits();
    assert_eq!(hits[0].headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(hits[0].headers["x-shop-client-ip"], "127.0.0.1");
}

#[tokio::test]
async fn login_and_registration_have_a_stricter_bucket() {
    let edge = edge(|settings| {
        settings.rate_limit.per_second = 1_000;
        settings.rate_limit.burst = 1_000;
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
    let refused = refused.expect("a 429");
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_problem(refused, 429, "login").await;
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
    let scrape = || async {
        let response = edge
            .client
            .get(format!("{}/metrics", edge.gateway.admin_base()))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .is_ok_and(|t| t.starts_with("text/plain")),
            "{:?}",
            response.headers()["content-type"]
        );
        response.text().await.expect("text")
    };
    let before = series(&scrape().await);
    let listed = edge
        .client
        .get(edge.url("/api/products"))
        .send()
        .await
        .expect("sent");
    assert_eq!(listed.status(), 200);
    let after = scrape().await;
    assert!(
        series(&after) >= before + 1.0,
        "the public request is not counted: {before} -> {}",
        series(&after)
    );
    assert!(
        after.contains("upstream_requests_total"),
        "the upstream series are on the admin port too"
    );

    // The public port: the usual 404 problem, nothing forwarded upstream.
    let seen = edge.catalog.hits().len() + edge.cart.hits().len();
    let public = edge
        .client
        .get(edge.url("/metrics"))
        .send()
        .await
        .expect("sent");
    assert_problem(public, 404, "/metrics on the public port").await;
    assert_eq!(edge.catalog.hits().len() + edge.cart.hits().len(), seen);
}
