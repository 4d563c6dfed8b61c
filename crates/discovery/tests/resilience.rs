//! The upstream client against real HTTP servers on loopback: ejection
//! (at once for a refused connection), per-try timeouts, the breaker, retry
//! rules and budget (none needed to fail over from a refused connection),
//! health checks, streaming, deadlines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed setup should fail the test

mod common;

use std::time::{Duration, Instant};

use common::{Mode, TestServer, eventually, get, post, settings, text};
use http::StatusCode;
use http_body_util::BodyExt;
use shop_common::error::Problem;
use shop_discovery::balance::PeakEwmaSettings;
use shop_discovery::{
    BodyDeadlineExceeded, BreakerSettings, CallError, Deadline, HealthCheckSettings, Idempotent,
    OutlierSettings, PolicySettings, Registry, RequestBody, RetrySettings, UpstreamClient,
    UpstreamSettings,
};

const SERVICE: &str = "catalog";

/// Servers registered in a registry of their own.
struct Fleet {
    registry: Registry,
    servers: Vec<TestServer>,
    _registrations: Vec<shop_discovery::Registration>,
}

impl Fleet {
    /// One server per id, each answering in `mode`.
    async fn start(ids: &[&str], mode: Mode) -> Self {
        let registry = Registry::in_process();
        let mut servers = Vec::new();
        let mut registrations = Vec::new();
        for id in ids {
            let server = TestServer::start(id).await;
            server.set_mode(mode);
            registrations.push(registry.register(server.instance(SERVICE)).unwrap());
            servers.push(server);
        }
        Self {
            registry,
            servers,
            _registrations: registrations,
        }
    }

    /// A round-robin client over the fleet, with the settings `adjust` makes.
    fn client(&self, adjust: impl FnOnce(&mut UpstreamSettings)) -> UpstreamClient {
        let mut settings = settings(PolicySettings::RoundRobin);
        adjust(&mut settings);
        UpstreamClient::new(SERVICE, &settings, &self.registry).unwrap()
    }

    /// Requests the servers received, all together.
    fn hits(&self) -> usize {
        self.servers.iter().map(TestServer::hits).sum()
    }
}

/// `GET path` with a caller's deadline `within` from now.
fn get_within(path: &str, within: Duration) -> http::Request<RequestBody> {
    let mut request = get(path);
    request.extensions_mut().insert(Deadline::after(within));
    request
}

/// Sends `n` GETs of `path`, asserting each answer's status.
async fn assert_statuses(client: &UpstreamClient, n: usize, path: &str, status: StatusCode) {
    for i in 0..n {
        let response = client.send(get(path)).await.unwrap();
        assert_eq!(response.status(), status, "request {i} of {n}");
    }
}

#[tokio::test]
async fn an_instance_answering_503_is_ejected_and_requests_still_succeed() {
    let fleet = Fleet::start(&["a", "b", "c"], Mode::Ok).await;
    let servers = &fleet.servers;
    servers[1].set_mode(Mode::Fail);
    let client = fleet.client(|settings| {
        settings.outlier = OutlierSettings {
            consecutive_failures: 2,
            base_ejection_ms: 60_000,
            ..OutlierSettings::default()
        };
    });

    for _ in 0..30 {
        let response = client.send(get("/api/products")).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_ne!(text(response).await, "b");
    }
    assert_eq!(servers[1].hits(), 2, "ejected after two failures in a row");
    let ejected: Vec<_> = client
        .balancer()
        .endpoints()
        .into_iter()
        .filter(|e| e.is_ejected())
        .collect();
    assert_eq!(ejected.len(), 1);
    assert_eq!(ejected[0].instance().id, "b");
}

#[tokio::test]
async fn ejection_never_takes_out_the_last_instance() {
    let fleet = Fleet::start(&["a", "b"], Mode::Fail).await;
    let client = fleet.client(|settings| {
        settings.outlier = OutlierSettings {
            consecutive_failures: 1,
            max_ejection_percent: 100,
            ..OutlierSettings::default()
        };
        settings.breaker.enabled = false;
    });
    // The upstream's own 503 is passed back.
    assert_statuses(&client, 10, "/", StatusCode::SERVICE_UNAVAILABLE).await;
    let available = client
        .balancer()
        .endpoints()
        .iter()
        .filter(|e| !e.is_ejected())
        .count();
    assert_eq!(available, 1);
}

#[tokio::test]
async fn a_hanging_instance_costs_one_per_try_timeout_and_the_request_succeeds_elsewhere() {
    let registry = Registry::in_process();
    let hanging = TestServer::start("hanging").await;
    let healthy = TestServer::start("healthy").await;
    hanging.set_mode(Mode::Hang);
    // Smooth WRR picks the heavier instance first: the hanging one.
    let _a = registry
        .register(hanging.instance(SERVICE).with_weight(5))
        .unwrap();
    let _b = registry
        .register(healthy.instance(SERVICE).with_weight(1))
        .unwrap();
    let mut settings = settings(PolicySettings::WeightedRoundRobin);
    settings.per_try_timeout_ms = 300;
    let client = UpstreamClient::new(SERVICE, &settings, &registry).unwrap();

    let started = Instant::now();
    let response = client.send(get("/api/products/1")).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(text(response).await, "healthy");
    assert_eq!((hanging.hits(), healthy.hits()), (1, 1), "one try on each");
    assert!(
        elapsed >= Duration::from_millis(300),
        "the hanging try was waited for"
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "and only once: {elapsed:?}"
    );
}

#[tokio::test]
async fn all_instances_failing_open_the_breaker_which_answers_without_contacting_servers() {
    let fleet = Fleet::start(&["a", "b"], Mode::Fail).await;
    let client = fleet.client(|settings| {
        settings.outlier.enabled = false;
        settings.retry.max_retries = 1;
        settings.breaker = BreakerSettings {
            consecutive_failures: 3,
            open_ms: 1_000,
            ..BreakerSettings::default()
        };
    });

    assert_statuses(&client, 3, "/", StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(fleet.hits(), 6, "three calls, each tried on both instances");
    for _ in 0..5 {
        let err = client.send(get("/")).await.unwrap_err();
        assert!(matches!(err, CallError::BreakerOpen { .. }), "{err:?}");
        assert_eq!(err.status_code(), StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(fleet.hits(), 6, "an open breaker contacts no server");
    let problem = Problem::from(client.send(get("/")).await.unwrap_err());
    assert_eq!(problem.status, 503);
    assert!(
        problem
            .headers
            .iter()
            .any(|(name, _)| name == http::header::RETRY_AFTER)
    );

    // Once open time is over a probe goes through; its success closes the breaker.
    for server in &fleet.servers {
        server.set_mode(Mode::Ok);
    }
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_statuses(&client, 2, "/", StatusCode::OK).await;
    assert_eq!(fleet.hits(), 8);
}

#[tokio::test]
async fn a_post_that_timed_out_after_being_sent_is_not_retried_but_a_get_is() {
    let fleet = Fleet::start(&["a", "b"], Mode::Hang).await;
    let client = fleet.client(|settings| {
        settings.per_try_timeout_ms = 200;
        settings.outlier.enabled = false;
        settings.breaker.enabled = false;
    });

    let err = client.send(post("/api/orders", "{}")).await.unwrap_err();
    assert!(matches!(err, CallError::Timeout { .. }), "{err:?}");
    assert_eq!(err.status_code(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        fleet.hits(),
        1,
        "a POST that may have reached a server is sent once"
    );

    let err = client.send(get("/api/products")).await.unwrap_err();
    assert!(matches!(err, CallError::Timeout { .. }), "{err:?}");
    assert_eq!(fleet.hits(), 3, "a GET is retried, on the other instance");

    let mut marked = post("/api/orders", "{}");
    marked.extensions_mut().insert(Idempotent);
    client.send(marked).await.unwrap_err();
    assert_eq!(fleet.hits(), 5, "a POST marked idempotent is retried too");

    // A streaming body cannot be replayed: sent once even for a PUT.
    let stream = http_body_util::StreamBody::new(futures::stream::iter([Ok::<_, std::io::Error>(
        http_body::Frame::data(bytes::Bytes::from_static(b"chunk")),
    )]));
    let put = http::Request::put("/api/cart/items/1")
        .body(RequestBody::streaming(stream))
        .unwrap();
    client.send(put).await.unwrap_err();
    assert_eq!(fleet.hits(), 6);
}

#[tokio::test]
async fn a_post_is_retried_when_the_connection_was_refused() {
    let registry = Registry::in_process();
    let closed = closed_port();
    let healthy = TestServer::start("healthy").await;
    let _dead = registry
        .register(shop_discovery::Instance::new(SERVICE, "dead", closed.to_string()).with_weight(5))
        .unwrap();
    let _ok = registry.register(healthy.instance(SERVICE)).unwrap();
    let client = UpstreamClient::new(
        SERVICE,
        &settings(PolicySettings::WeightedRoundRobin),
        &registry,
    )
    .unwrap();

    let response = client.send(post("/echo", "order")).await.unwrap();
    assert_eq!(
        text(response).await,
        "order",
        "nothing reached the dead instance, so the POST went elsewhere"
    );
    assert_eq!(healthy.hits(), 1);
}

/// An address where nothing listens (a killed instance whose registration
/// has not gone away yet).
fn closed_port() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test]
async fn a_refused_connection_ejects_at_once_and_fails_over_without_budget() {
    let fleet = Fleet::start(&["a", "b"], Mode::Ok).await;
    let _dead = fleet
        .registry
        .register(shop_discovery::Instance::new(
            SERVICE,
            "dead",
            closed_port().to_string(),
        ))
        .unwrap();
    let client = fleet.client(|settings| {
        // Neither the threshold nor the budget allows anything: only the
        // rules for tries that reached no server are at work.
        settings.outlier.consecutive_failures = 1_000;
        settings.breaker.enabled = false;
        settings.retry = RetrySettings {
            max_retries: 0,
            budget_ratio: 0.0,
            budget_min_per_sec: 0,
            budget_window_secs: 10,
        };
    });
    assert!(client.wait_for_instances(3, Duration::from_secs(5)).await);

    for i in 0..12 {
        let request = if i % 2 == 0 {
            get("/api/cart")
        } else {
            // Not idempotent: retried only because nothing reached a server.
            post("/echo", "x")
        };
        let response = client.send(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "request {i}");
    }
    let endpoints = client.balancer().endpoints();
    let dead = endpoints
        .iter()
        .find(|endpoint| endpoint.instance().id == "dead")
        .unwrap();
    assert!(dead.is_ejected(), "ejected after its first refusal");
    assert_eq!(fleet.hits(), 12, "every request answered, each once");
}

#[tokio::test]
async fn an_instance_back_on_its_address_takes_traffic_only_once_ready() {
    let fleet = Fleet::start(&["a"], Mode::Ok).await;
    // "b" was killed; its registration (same id, same address) stays.
    let address = closed_port();
    let _b = fleet
        .registry
        .register(shop_discovery::Instance::new(
            SERVICE,
            "b",
            address.to_string(),
        ))
        .unwrap();
    let client = fleet.client(|settings| {
        settings.outlier.base_ejection_ms = 100;
        settings.health_check.interval_ms = 50;
        // Periodic checks off: only the re-admission probe is at work.
        settings.health_check.enabled = false;
    });
    assert!(client.wait_for_instances(2, Duration::from_secs(5)).await);
    for _ in 0..4 {
        assert_eq!(text(client.send(get("/")).await.unwrap()).await, "a");
    }
    let b = client
        .balancer()
        .endpoints()
        .into_iter()
        .find(|endpoint| endpoint.instance().id == "b")
        .unwrap();
    assert!(b.is_ejected(), "ejected at its first refused connection");

    // It restarts on the same address, not ready yet: still no traffic,
    // well past its ejection time.
    let restarted = TestServer::start_on("b", address).await;
    restarted.set_ready(false);
    tokio::time::sleep(Duration::from_millis(400)).await;
    for _ in 0..10 {
        assert_eq!(text(client.send(get("/")).await.unwrap()).await, "a");
    }
    assert!(b.is_ejected(), "not let back in while its probe fails");
    assert_eq!(restarted.hits(), 0);

    restarted.set_ready(true);
    assert!(eventually(Duration::from_secs(5), || !b.is_ejected()).await);
    for _ in 0..10 {
        client.send(get("/")).await.unwrap();
    }
    assert_eq!(restarted.hits(), 5, "round robin again once ready");
}

#[tokio::test]
async fn every_instance_refusing_is_503_with_retry_after_and_the_last_one_is_kept() {
    let registry = Registry::in_process();
    let _one = registry
        .register(shop_discovery::Instance::new(
            SERVICE,
            "one",
            closed_port().to_string(),
        ))
        .unwrap();
    let _two = registry
        .register(shop_discovery::Instance::new(
            SERVICE,
            "two",
            closed_port().to_string(),
        ))
        .unwrap();
    let mut settings = settings(PolicySettings::RoundRobin);
    settings.breaker.enabled = false;
    settings.outlier.max_ejection_percent = 100;
    let client = UpstreamClient::new(SERVICE, &settings, &registry).unwrap();
    assert!(client.wait_for_instances(2, Duration::from_secs(5)).await);

    for _ in 0..3 {
        let err = client.send(get("/api/products")).await.unwrap_err();
        assert!(matches!(err, CallError::Connect { .. }), "{err:?}");
        assert_eq!(err.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        let problem = Problem::from(err);
        assert_eq!(problem.status, 503);
        assert!(
            problem
                .headers
                .iter()
                .any(|(name, _)| name == http::header::RETRY_AFTER)
        );
    }
    let ejected = client
        .balancer()
        .endpoints()
        .iter()
        .filter(|endpoint| endpoint.is_ejected())
        .count();
    assert_eq!(ejected, 1, "the last available instance is never ejected");
}

#[tokio::test]
async fn retries_stop_when_the_budget_is_spent() {
    let fleet = Fleet::start(&["a", "b", "c"], Mode::Fail).await;
    let client = fleet.client(|settings| {
        settings.outlier.enabled = false;
        settings.breaker.enabled = false;
        // No ratio, a floor of one retry per second over a 10 s window: ten retries in all.
        settings.retry = RetrySettings {
            max_retries: 2,
            budget_ratio: 0.0,
            budget_min_per_sec: 1,
            budget_window_secs: 10,
        };
    });

    assert_statuses(&client, 30, "/", StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(
        fleet.hits(),
        30 + 10,
        "30 first tries and the 10 retries the budget allowed"
    );
}

#[tokio::test]
async fn an_instance_failing_its_health_check_gets_no_traffic_until_it_passes_again() {
    let fleet = Fleet::start(&["a", "b"], Mode::Ok).await;
    let servers = &fleet.servers;
    servers[0].set_ready(false);
    let client = fleet.client(|settings| {
        settings.health_check = HealthCheckSettings {
            interval_ms: 50,
            unhealthy_threshold: 1,
            healthy_threshold: 1,
            ..HealthCheckSettings::default()
        };
    });
    let endpoint = client
        .balancer()
        .endpoints()
        .into_iter()
        .find(|e| e.instance().id == "a")
        .unwrap();
    assert!(eventually(Duration::from_secs(5), || !endpoint.is_healthy()).await);

    for _ in 0..20 {
        assert_eq!(text(client.send(get("/")).await.unwrap()).await, "b");
    }
    assert_eq!(servers[0].hits(), 0);

    servers[0].set_ready(true);
    assert!(eventually(Duration::from_secs(5), || endpoint.is_healthy()).await);
    for _ in 0..20 {
        client.send(get("/")).await.unwrap();
    }
    assert_eq!(servers[0].hits(), 10, "round robin again once it passes");
}

#[tokio::test]
async fn peak_ewma_sends_clearly_less_traffic_to_a_slowed_instance() {
    let fleet = Fleet::start(&["slow", "fast1", "fast2"], Mode::Ok).await;
    fleet.servers[0].set_delay(Duration::from_millis(80));
    let client = fleet.client(|settings| {
        settings.balance = PolicySettings::PeakEwma(PeakEwmaSettings::default());
    });

    let workers: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                for _ in 0..50 {
                    let response = client.send(get("/")).await.unwrap();
                    text(response).await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let slow = fleet.servers[0].hits();
    assert_eq!(fleet.hits(), 200);
    assert!(
        slow < 200 / 10,
        "the slowed instance got {slow} of 200 requests (a third would be even)"
    );
}

#[tokio::test]
async fn responses_stream_and_deadlines_travel_to_the_upstream() {
    let fleet = Fleet::start(&["a"], Mode::Ok).await;
    let servers = &fleet.servers;
    let client = fleet.client(|settings| settings.per_try_timeout_ms = 1_500);

    let response = client.send(get("/stream")).await.unwrap();
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(
        &first[..],
        b"first;",
        "the first chunk arrives while the server still holds the second"
    );
    assert_eq!(
        client.balancer().endpoints()[0].in_flight(),
        1,
        "a streaming response counts as load"
    );
    servers[0].release_stream();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(&rest[..], b"second");
    assert_eq!(client.balancer().endpoints()[0].in_flight(), 0);

    let deadline: u64 = servers[0].last_deadline().unwrap().parse().unwrap();
    assert!(
        deadline > 0 && deadline <= 1_500,
        "the per-try budget is sent: {deadline}"
    );

    // A caller's shorter deadline wins, and is what the upstream hears.
    let request = get_within("/", Duration::from_millis(400));
    client.send(request).await.unwrap();
    let deadline: u64 = servers[0].last_deadline().unwrap().parse().unwrap();
    assert!(deadline <= 400, "{deadline}");

    // A streaming request body goes through as it comes.
    let stream = futures::stream::iter(["a", "b", "c"].map(|chunk| {
        Ok::<_, std::io::Error>(http_body::Frame::data(bytes::Bytes::from_static(
            chunk.as_bytes(),
        )))
    }));
    let request = http::Request::post("/echo")
        .body(RequestBody::streaming(http_body_util::StreamBody::new(
            stream,
        )))
        .unwrap();
    assert_eq!(text(client.send(request).await.unwrap()).await, "abc");
}

#[tokio::test]
async fn a_body_that_stalls_past_the_deadline_is_an_error() {
    let fleet = Fleet::start(&["a"], Mode::Ok).await;
    let client = fleet.client(|_| {});
    let request = get_within("/stream", Duration::from_millis(300));
    // The headers and the first chunk arrive; the rest never does.
    let response = client.send(request).await.unwrap();
    let read = tokio::time::timeout(Duration::from_secs(10), response.into_body().collect())
        .await
        .expect("reading a stalled body ends at the call's deadline, not never");
    let err = read.expect_err("a body cut off by the deadline is an error");
    assert!(err.is::<BodyDeadlineExceeded>(), "{err}");
    assert_eq!(
        client.balancer().endpoints()[0].in_flight(),
        0,
        "the call no longer counts as load"
    );
    fleet.servers[0].release_stream();
}

#[tokio::test]
async fn a_caller_deadline_that_runs_out_is_deadline_exceeded() {
    let fleet = Fleet::start(&["a", "b"], Mode::Hang).await;
    let client = fleet.client(|_| {});
    let request = get_within("/", Duration::from_millis(200));
    let err = client.send(request).await.unwrap_err();
    assert!(matches!(err, CallError::DeadlineExceeded { .. }), "{err:?}");
    assert_eq!(fleet.hits(), 1, "no retry once the deadline is spent");
}

#[tokio::test]
async fn no_instances_is_a_503_and_new_instances_are_followed() {
    let registry = Registry::in_process();
    let client =
        UpstreamClient::new(SERVICE, &settings(PolicySettings::RoundRobin), &registry).unwrap();
    let err = client.send(get("/")).await.unwrap_err();
    assert!(matches!(err, CallError::NoInstance { .. }));
    assert_eq!(Problem::from(err).status, 503);

    let server = TestServer::start("late").await;
    let registration = registry.register(server.instance(SERVICE)).unwrap();
    assert!(client.wait_for_instances(1, Duration::from_secs(5)).await);
    assert_eq!(text(client.send(get("/")).await.unwrap()).await, "late");

    registration.deregister().await;
    assert!(eventually(Duration::from_secs(5), || client.balancer().is_empty()).await);
}

#[test]
fn settings_have_defaults_and_reject_unknown_keys() {
    let settings: UpstreamSettings = serde_json::from_str("{}").unwrap();
    assert_eq!(settings, UpstreamSettings::default());
    let settings: UpstreamSettings = serde_json::from_str(
        r#"{"balance":{"policy":"consistent_hash","load_factor":1.5},"retry":{"max_retries":1}}"#,
    )
    .unwrap();
    assert!(
        matches!(settings.balance, PolicySettings::ConsistentHash(ref c) if c.load_factor == 1.5)
    );
    assert_eq!(settings.retry.max_retries, 1);
    assert!(serde_json::from_str::<UpstreamSettings>(r#"{"per_try_timeout":1}"#).is_err());
    assert!(serde_json::from_str::<UpstreamSettings>(r#"{"retry":{"max":1}}"#).is_err());
    let bad = UpstreamSettings {
        per_try_timeout_ms: 0,
        ..UpstreamSettings::default()
    };
    assert!(bad.validate().is_err());
}
