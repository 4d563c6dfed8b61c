//! Metrics over real sockets and real databases: HTTP requests labelled by
//! the matched route (never the raw path), the service a metric is
//! registered for, and the pool gauges and acquire histogram of each
//! service's database on SQLite and PostgreSQL.
//!
//! Every test uses a service name of its own: the recorder is process-wide.

#![allow(clippy::expect_used, clippy::panic)] // test helpers: a failed setup should fail the test

use std::time::Duration;

use axum::Router;
use axum::routing;
use shop_common::config::{DatabaseSettings, ListenerLimits};
use shop_common::db::{DB_POOL_ACQUIRE_DURATION, DB_POOL_CONNECTIONS, DB_POOL_MAX_CONNECTIONS, Db};
use shop_common::health::Readiness;
use shop_common::metrics::{self, HTTP_REQUEST_DURATION, HTTP_REQUESTS};
use shop_common::server::{admin_router, serve, with_common_layers};
use shop_testkit::{databases, metric_value, send};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

fn limits() -> ListenerLimits {
    ListenerLimits {
        shutdown_delay: Duration::ZERO,
        drain: Duration::from_secs(1),
        header_read_timeout: Some(Duration::from_secs(10)),
        max_connections: 64,
    }
}

/// Serves `router` on a fresh loopback port until `stop`; returns its base URL.
async fn serve_on_loopback(router: Router, stop: &CancellationToken) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(serve(listener, router, stop.clone(), limits()));
    base
}

/// The lines of the series of `name` whose labels include `service`.
fn series_of<'a>(text: &'a str, name: &str, service: &str) -> Vec<&'a str> {
    let service = format!(r#"service="{service}""#);
    text.lines()
        .filter(|line| line.starts_with(name) && line.contains(&service))
        .collect()
}

/// Renders until `done` holds of the text (at most 5 s); returns the text.
async fn rendered_until(done: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let text = metrics::render();
        if done(&text) {
            return text;
        }
        assert!(tokio::time::Instant::now() < deadline, "never held: {text}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn requests_are_counted_by_matched_route_never_by_raw_path() {
    const SERVICE: &str = "metrics-test-routes";
    let stop = CancellationToken::new();
    let api = Router::new()
        .route("/items/{id}", routing::get(|| async { "item" }))
        .route(
            "/boom",
            routing::post(|| async { (http::StatusCode::BAD_GATEWAY, "no") }),
        );
    let base = serve_on_loopback(with_common_layers(api, SERVICE), &stop).await;
    let admin = serve_on_loopback(admin_router(Readiness::new(), SERVICE), &stop).await;
    let client = reqwest::Client::new();
    for id in ["41", "42", "secret-token-in-a-path"] {
        let response = send(client.get(format!("{base}/items/{id}"))).await;
        assert_eq!(response.status(), 200);
    }
    assert_eq!(
        send(client.post(format!("{base}/boom"))).await.status(),
        502
    );
    assert_eq!(
        send(client.get(format!("{base}/no/such/{}", 7)))
            .await
            .status(),
        404
    );

    let text = shop_testkit::scrape(&client, &admin).await;
    let item = [
        ("service", SERVICE),
        ("method", "GET"),
        ("route", "/items/{id}"),
        ("status", "200"),
    ];
    assert_eq!(
        metric_value(&text, HTTP_REQUESTS, &item),
        Some(3.0),
        "{text}"
    );
    let count = format!("{HTTP_REQUEST_DURATION}_count");
    assert_eq!(metric_value(&text, &count, &item), Some(3.0), "{text}");
    assert_eq!(
        metric_value(
            &text,
            &format!("{HTTP_REQUEST_DURATION}_bucket"),
            &[("route", "/items/{id}"), ("le", "+Inf")]
        ),
        Some(3.0),
        "the duration is a histogram in seconds: {text}"
    );
    let boom = [
        ("service", SERVICE),
        ("route", "/boom"),
        ("status", "502"),
        ("method", "POST"),
    ];
    assert_eq!(
        metric_value(&text, HTTP_REQUESTS, &boom),
        Some(1.0),
        "{text}"
    );
    let unmatched = [
        ("service", SERVICE),
        ("route", "unmatched"),
        ("status", "404"),
    ];
    assert_eq!(
        metric_value(&text, HTTP_REQUESTS, &unmatched),
        Some(1.0),
        "{text}"
    );
    for raw in ["/items/4", "secret-token", "/no/such"] {
        assert!(
            !text.contains(raw),
            "a raw path ({raw}) must never become a label: {text}"
        );
    }
    stop.cancel();
}

#[tokio::test]
async fn metrics_are_registered_for_the_service_in_scope() {
    assert_eq!(metrics::current_service(), metrics::UNSCOPED_SERVICE);
    let inner = metrics::scope("metrics-test-scope", async {
        tokio::task::yield_now().await;
        metrics::current_service()
    })
    .await;
    assert_eq!(inner, "metrics-test-scope");
    assert_eq!(metrics::current_service(), metrics::UNSCOPED_SERVICE);
}

#[tokio::test]
async fn pool_gauges_follow_connections_in_use_per_service_on_both_engines() {
    for test_db in databases().await {
        let engine = test_db.engine;
        let service: &'static str = match engine {
            shop_testkit::Engine::Sqlite => "metrics-test-pool-sqlite",
            shop_testkit::Engine::Postgres => "metrics-test-pool-postgres",
        };
        let mut settings = DatabaseSettings::new(&test_db.url);
        settings.max_connections = 4;
        let db = metrics::scope(service, Db::connect(&settings))
            .await
            .expect("connect");
        let gauge = |text: &str, state: &str| {
            metric_value(
                text,
                DB_POOL_CONNECTIONS,
                &[("service", service), ("state", state)],
            )
        };

        // From the start, before any scrape or query.
        let text = metrics::render();
        assert_eq!(
            metric_value(&text, DB_POOL_MAX_CONNECTIONS, &[("service", service)]),
            Some(4.0),
            "{engine}: {text}"
        );
        assert!(gauge(&text, "in_use").is_some(), "{engine}: {text}");
        assert!(gauge(&text, "idle").is_some(), "{engine}: {text}");
        let acquired = format!("{DB_POOL_ACQUIRE_DURATION}_count");
        let acquires = |text: &str| metric_value(text, &acquired, &[("service", service)]);
        let before = acquires(&text).expect("the acquire histogram shows from the start");

        // Two connections held: two in use.
        let first = db.acquire().await.expect("first");
        let second = db.acquire().await.expect("second");
        let text = metrics::render();
        assert_eq!(gauge(&text, "in_use"), Some(2.0), "{engine}: {text}");
        assert_eq!(acquires(&text), Some(before + 2.0), "{engine}: {text}");
        drop((first, second));

        // Returned (sqlx returns a connection on a task of its own): none
        // in use, the connections idle.
        let text = rendered_until(|text| gauge(text, "in_use") == Some(0.0)).await;
        assert!(
            gauge(&text, "idle").is_some_and(|idle| idle >= 1.0),
            "{engine}: {text}"
        );

        // A write transaction waits for a connection too.
        let tx = db.begin_write().await.expect("begin");
        tx.rollback().await.expect("rollback");
        assert_eq!(acquires(&metrics::render()), Some(before + 3.0));

        // Closed: nothing open, still reported.
        db.close().await;
        let text = metrics::render();
        assert_eq!(gauge(&text, "in_use"), Some(0.0), "{engine}: {text}");
        assert_eq!(gauge(&text, "idle"), Some(0.0), "{engine}: {text}");
        assert_eq!(
            series_of(&text, DB_POOL_MAX_CONNECTIONS, service).len(),
            1,
            "{engine}: {text}"
        );
    }
}
