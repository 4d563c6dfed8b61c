//! Traces across real processes: gateway, users, catalog, payments, cart
//! and orders as separate binaries (etcd discovery, PostgreSQL), each
//! exporting its spans over OTLP/gRPC to a receiver in this test. A
//! checkout through the gateway must be one trace holding every service's
//! spans, correctly parented; and the outbox relay's delivery, done by an
//! orders process started after the checkout, must join that trace. The
//! all-in-one stack, one exporter for every service, must tell the
//! services apart by the `service` attribute of every span.
//! Runs under the `etcd` feature (as `scripts/test.sh` builds the
//! workspace) and needs the test servers.

#![cfg(feature = "etcd")]
#![allow(clippy::expect_used, clippy::panic)] // a failed setup should fail the test

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use shop::testing::{Shopper, ids, products, workspace_binary};
use shop_discovery::registry::EtcdSettings;
use shop_discovery::{Instances, Registry};
use shop_testkit::TestDatabase;
use shop_testkit::otlp::{OtlpReceiver, ReceivedSpan};

const SERVICE_TOKEN: &str = "trace-service-token";
/// How long the spans of one request may take to arrive: each process
/// exports every [`BATCH_DELAY_MS`].
const SPANS_WITHIN: Duration = Duration::from_secs(30);
const BATCH_DELAY_MS: &str = "100";

/// One service process.
struct Proc {
    binary: &'static str,
    env: Vec<(String, String)>,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    fn start(&mut self) {
        let log = std::fs::File::create(&self.log).expect("log file");
        let mut command = Command::new(workspace_binary(self.binary));
        // The services reject unknown SHOP_ keys, and the exporter reads
        // OTEL_ ones: give them only their own.
        for (key, _) in
            std::env::vars().filter(|(key, _)| key.starts_with("SHOP_") || key.starts_with("OTEL_"))
        {
            command.env_remove(key);
        }
        let child = command
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RUST_LOG", "info")
            .env("SHOP_LOG_FORMAT", "json")
            .env("OTEL_BSP_SCHEDULE_DELAY", BATCH_DELAY_MS)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", self.binary));
        self.child = Some(child);
    }

    /// SIGTERM, and waits for the clean stop (which flushes its spans).
    async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
        let exited = tokio::task::spawn_blocking(move || child.wait())
            .await
            .expect("join")
            .expect("wait");
        assert!(
            exited.success(),
            "{} stopped cleanly: {exited}",
            self.binary
        );
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

struct Cluster {
    procs: HashMap<&'static str, Proc>,
    registry: Registry,
    client: reqwest::Client,
    gateway_admin: String,
    receiver: OtlpReceiver,
    _dir: tempfile::TempDir,
    _dbs: Vec<TestDatabase>,
}

impl Cluster {
    /// Every service but web, one process each, orders' relay off (so the
    /// cart removal waits for an orders process started later).
    async fn start() -> Option<Self> {
        let endpoints = shop_testkit::etcd_endpoints()?;
        let receiver = OtlpReceiver::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let prefix = format!("/ferroshop-traces-{}/", uuid::Uuid::new_v4().simple());
        let mut etcd = EtcdSettings::new(endpoints.clone());
        etcd.prefix = prefix.clone();
        let registry = Registry::etcd(etcd).await.expect("etcd registry");
        let key = shop_common::auth::generate_signing_key_pem().expect("key");
        let endpoints = endpoints
            .iter()
            .map(|e| format!("\"{e}\""))
            .collect::<Vec<_>>()
            .join(",");
        let common = [
            ("SHOP_REGISTRY__BACKEND", "etcd".to_owned()),
            ("SHOP_REGISTRY__ENDPOINTS", format!("[{endpoints}]")),
            ("SHOP_REGISTRY__PREFIX", prefix),
            ("SHOP_HTTP__HOST", "127.0.0.1".to_owned()),
            ("SHOP_HTTP__PORT", "0".to_owned()),
            ("SHOP_TELEMETRY__OTLP_ENDPOINT", receiver.endpoint()),
        ];
        let token = ("SHOP_INTERNAL__SERVICE_TOKEN", SERVICE_TOKEN.to_owned());
        let gateway_admin_port = free_port();
        let mut procs = HashMap::new();
        let mut dbs = Vec::new();
        for (name, extra) in [
            ("users", vec![("SHOP_AUTH__SIGNING_KEY_PEM", key.clone())]),
            ("catalog", vec![token.clone()]),
            ("payments", vec![token.clone()]),
            ("cart", vec![token.clone()]),
            (
                "orders",
                vec![
                    token.clone(),
                    ("SHOP_GRPC__HOST", "127.0.0.1".to_owned()),
                    ("SHOP_GRPC__PORT", "0".to_owned()),
                    ("SHOP_RELAY__ENABLED", "false".to_owned()),
                ],
            ),
            (
                "gateway",
                vec![
                    ("SHOP_RATE_LIMIT__ENABLED", "false".to_owned()),
                    ("SHOP_ADMIN__PORT", gateway_admin_port.to_string()),
                ],
            ),
        ] {
            let mut env: Vec<(String, String)> = common
                .iter()
                .chain(&extra)
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect();
            if !matches!(name, "orders" | "gateway") {
                env.push(("SHOP_ADMIN__PORT".to_owned(), "0".to_owned()));
            }
            if name != "gateway" {
                let db = TestDatabase::postgres().await?;
                env.push(("SHOP_DATABASE__URL".to_owned(), db.url.clone()));
                dbs.push(db);
            }
            let binary = match name {
                "users" => "shop-users",
                "catalog" => "shop-catalog",
                "payments" => "shop-payments",
                "cart" => "shop-cart",
                "orders" => "shop-orders",
                _ => "shop-gateway",
            };
            let mut proc = Proc {
                binary,
                env,
                child: None,
                log: dir.path().join(format!("{name}.log")),
            };
            proc.start();
            procs.insert(name, proc);
        }
        let cluster = Self {
            procs,
            registry,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
            gateway_admin: format!("http://127.0.0.1:{gateway_admin_port}"),
            receiver,
            _dir: dir,
            _dbs: dbs,
        };
        for service in ["users", "catalog", "payments", "cart", "orders", "gateway"] {
            cluster
                .wait_for(service, |instances| instances.len() == 1)
                .await;
        }
        Some(cluster)
    }

    /// Waits (bounded) until the instances of `service` satisfy `done`.
    async fn wait_for(&self, service: &str, done: impl Fn(&Instances) -> bool) -> Instances {
        let mut watch = self.registry.watch(service);
        let outcome = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let current = watch.borrow_and_update().clone();
                if done(&current) || watch.changed().await.is_err() {
                    return current;
                }
            }
        })
        .await;
        match outcome {
            Ok(instances) if done(&instances) => instances,
            _ => panic!(
                "{service} did not reach the expected instances\n{}",
                self.logs()
            ),
        }
    }

    fn logs(&self) -> String {
        self.procs
            .iter()
            .map(|(name, proc)| format!("--- {name} ---\n{}", proc.log_text()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The gateway's base URL once it serves and knows every upstream it
    /// is about to call (its etcd watch may lag the test's).
    async fn gateway(&self) -> String {
        let instances = self.wait_for("gateway", |i| !i.is_empty()).await;
        let base = format!("http://{}", instances[0].address);
        let ready = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let metrics = match self
                    .client
                    .get(format!("{}/metrics", self.gateway_admin))
                    .send()
                    .await
                {
                    Ok(response) => response.text().await.unwrap_or_default(),
                    Err(_) => String::new(),
                };
                let known = |upstream: &str| {
                    shop_testkit::metric_value(
                        &metrics,
                        "upstream_instances",
                        &[("upstream", upstream)],
                    ) == Some(1.0)
                };
                if ["users", "catalog", "cart", "orders"]
                    .into_iter()
                    .all(known)
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(
            ready.is_ok(),
            "the gateway never knew its upstreams\n{}",
            self.logs()
        );
        base
    }
}

/// A loopback port free when asked (bound, then released for a child).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

/// The spans of trace `trace_id` among `spans`.
fn trace_of<'a>(spans: &'a [ReceivedSpan], trace_id: &str) -> Vec<&'a ReceivedSpan> {
    spans
        .iter()
        .filter(|span| span.trace_id == trace_id)
        .collect()
}

/// One line per span (process, service, name, kind, trace, span, parent),
/// for failure messages.
fn summary<'a>(spans: impl IntoIterator<Item = &'a ReceivedSpan>) -> String {
    spans
        .into_iter()
        .map(|span| {
            format!(
                "{}/{} {:?} kind={} trace={} span={} parent={:?} route={:?}\n",
                span.resource_service,
                span.service(),
                span.name,
                span.kind,
                span.trace_id,
                span.span_id,
                span.parent_span_id,
                span.attribute("route").or(span.attribute("rpc.method")),
            )
        })
        .collect()
}

fn services(trace: &[&ReceivedSpan]) -> BTreeSet<String> {
    trace.iter().map(|span| span.service().to_owned()).collect()
}

/// The gateway's server span of `POST /api/orders`.
fn checkout_root(spans: &[ReceivedSpan]) -> Option<&ReceivedSpan> {
    spans.iter().find(|span| {
        span.service() == "gateway"
            && span.kind == ReceivedSpan::SERVER
            && span.attribute("route") == Some("/api/orders")
            && span.attribute("method") == Some("POST")
    })
}

/// Every span's parent is in `trace` but the root's, which has none; every
/// server span below the root is the child of another service's client
/// span calling its service, and every other span is its parent's
/// service's.
fn assert_parented(trace: &[&ReceivedSpan], root: &ReceivedSpan) {
    let by_id: HashMap<&str, &ReceivedSpan> = trace
        .iter()
        .map(|span| (span.span_id.as_str(), *span))
        .collect();
    assert_eq!(by_id.len(), trace.len(), "span ids are unique");
    let roots: Vec<_> = trace
        .iter()
        .filter(|span| span.parent_span_id.is_none())
        .collect();
    assert_eq!(roots.len(), 1, "one root: {roots:#?}");
    assert_eq!(
        roots[0].span_id, root.span_id,
        "the gateway's server span is the root"
    );
    for span in trace {
        let Some(parent) = &span.parent_span_id else {
            continue;
        };
        let Some(parent) = by_id.get(parent.as_str()) else {
            panic!("the parent of {span:#?} is not in the trace");
        };
        if span.kind == ReceivedSpan::SERVER {
            assert_eq!(
                parent.kind,
                ReceivedSpan::CLIENT,
                "{span:#?} below {parent:#?}"
            );
            assert_ne!(parent.service(), span.service(), "{span:#?}");
            assert_eq!(
                parent.attribute("upstream"),
                Some(span.service()),
                "a server span's parent is its caller's call to it: {span:#?} below {parent:#?}"
            );
        } else {
            assert_eq!(
                parent.service(),
                span.service(),
                "{span:#?} below {parent:#?}"
            );
        }
    }
}

#[tokio::test]
async fn a_checkout_is_one_trace_across_every_service_and_the_relay_joins_it() {
    let Some(mut cluster) = Cluster::start().await else {
        return;
    };
    let base = cluster.gateway().await;
    let shopper = Shopper::login(&cluster.client, &base, "tracy").await;
    let products = ids(&products(&cluster.client, &base).await);
    shopper.put_item(&products[0], 2).await;
    let placed = shopper.place("trace-1").await;
    assert_eq!(placed.status(), 201, "{}", cluster.logs());
    let order: Value = placed.json().await.expect("json");
    assert_eq!(order["status"], "confirmed", "{order}");

    // One trace from the gateway's server span down.
    let expected = ["cart", "catalog", "gateway", "orders", "payments"];
    let spans = cluster
        .receiver
        .wait_for(SPANS_WITHIN, |spans| {
            checkout_root(spans).is_some_and(|root| {
                let trace = trace_of(spans, &root.trace_id);
                let seen = services(&trace);
                expected.iter().all(|service| seen.contains(*service))
                    && trace
                        .iter()
                        .any(|span| span.attribute("step") == Some("capture"))
            })
        })
        .await;
    let root = checkout_root(&spans).expect("the gateway's span of the checkout");
    let trace = trace_of(&spans, &root.trace_id);
    let seen = services(&trace);
    for service in expected {
        assert!(
            seen.contains(service),
            "{service} is in the trace {}; every span received:\n{}\n{}",
            root.trace_id,
            summary(&spans),
            cluster.logs()
        );
    }
    assert_parented(&trace, root);
    for step in ["authorize", "reserve", "capture"] {
        assert!(
            trace.iter().any(|span| span.name == "saga.step"
                && span.attribute("step") == Some(step)
                && span.service() == "orders"),
            "the {step} step is in the trace"
        );
    }
    assert!(
        trace.iter().any(|span| span.name == "db.transaction"
            && span.attribute("db.operation") == Some("insert_order")
            && span.attribute("db.system") == Some("postgresql")),
        "orders' insert is a db.transaction span"
    );
    assert!(
        trace.iter().any(|span| span.kind == ReceivedSpan::SERVER
            && span.resource_service == "orders"
            && span.name == "ferroshop.orders.v1.OrderService/PlaceOrder"
            && span.attribute("rpc.method") == Some("PlaceOrder")),
        "orders' gRPC server span is in the trace"
    );
    // The gateway's log line of the checkout carries its trace id.
    let gateway_log = cluster.procs["gateway"].log_text();
    assert!(
        gateway_log
            .lines()
            .any(|line| line.contains("\"route\":\"/api/orders\"")
                && line.contains(&format!("\"trace_id\":\"{}\"", root.trace_id))),
        "the gateway logged the checkout with its trace id:\n{gateway_log}"
    );

    // No relay ran: the ordered lines are still in the cart.
    assert_eq!(
        shopper.cart().await["items"].as_array().map(Vec::len),
        Some(1)
    );

    // An orders process with its relay on delivers the removal later, in
    // the checkout's trace.
    let orders = cluster.procs.get_mut("orders").expect("orders");
    orders.stop().await;
    for (key, value) in &mut orders.env {
        if key == "SHOP_RELAY__ENABLED" {
            *value = "true".to_owned();
        }
    }
    orders.start();
    shopper
        .wait_for_empty_cart("the relay of the new orders process to clear the cart")
        .await;
    let delivered = |spans: &[ReceivedSpan]| {
        spans
            .iter()
            .find(|span| span.name == "outbox.deliver" && span.trace_id == root.trace_id)
            .cloned()
    };
    let spans = cluster
        .receiver
        .wait_for(SPANS_WITHIN, |spans| {
            delivered(spans).is_some_and(|delivery| {
                spans.iter().any(|span| {
                    span.resource_service == "cart"
                        && span.kind == ReceivedSpan::SERVER
                        && span.trace_id == delivery.trace_id
                        && span.attribute("route")
                            == Some("/internal/carts/{user_id}/order-removals")
                })
            })
        })
        .await;
    let delivery = delivered(&spans).unwrap_or_else(|| {
        panic!(
            "the relay's delivery joined the checkout's trace {}: {spans:#?}\n{}",
            root.trace_id,
            cluster.logs()
        )
    });
    assert_eq!(delivery.service(), "orders");
    let trace = trace_of(&spans, &root.trace_id);
    assert!(
        trace.iter().any(
            |span| Some(&span.span_id) == delivery.parent_span_id.as_ref()
                && span.resource_service == "orders"
        ),
        "the delivery's parent is the span of the checkout that confirmed the order: {delivery:#?}"
    );
    assert_parented(&trace, root);
    assert!(
        trace.iter().any(|span| span.resource_service == "cart"
            && span.kind == ReceivedSpan::SERVER
            && span
                .attribute("route")
                .is_some_and(|route| route.starts_with("/internal/"))),
        "cart's removal is in the checkout's trace: {trace:#?}"
    );
}

/// In one process (the all-in-one stack: one exporter, `service.name`
/// `shop`), every span of a checkout names its service.
#[tokio::test]
async fn the_all_in_one_names_the_service_of_every_span() {
    let receiver = OtlpReceiver::start().await;
    shop_common::telemetry::init();
    let settings = shop_common::telemetry::TelemetrySettings {
        otlp_endpoint: Some(receiver.endpoint()),
        ..Default::default()
    };
    let export = shop_common::telemetry::start_export("shop", &settings)
        .expect("export starts")
        .expect("an endpoint is set");
    let stack = shop::StackBuilder::for_tests()
        .everything(1)
        .start_test(shop_testkit::Engine::Sqlite)
        .await;
    let shopper = stack.shopper("allinone").await;
    let products = stack.product_ids().await;
    shopper.put_item(&products[0], 1).await;
    assert_eq!(shopper.place("one-process").await.status(), 201);

    let expected = ["cart", "catalog", "gateway", "orders", "payments"];
    let spans = receiver
        .wait_for(SPANS_WITHIN, |spans| {
            checkout_root(spans).is_some_and(|root| {
                let seen = services(&trace_of(spans, &root.trace_id));
                expected.iter().all(|service| seen.contains(*service))
            })
        })
        .await;
    let root = checkout_root(&spans).expect("the gateway's span of the checkout");
    let trace = trace_of(&spans, &root.trace_id);
    for span in &trace {
        assert_eq!(span.resource_service, "shop");
        assert!(
            span.attribute("service").is_some(),
            "every span names its service: {span:#?}"
        );
    }
    let seen = services(&trace);
    for service in expected {
        assert!(
            seen.contains(service),
            "{service}: {}",
            summary(trace.iter().copied())
        );
    }
    assert_parented(&trace, root);
    tokio::task::spawn_blocking(move || export.shutdown_blocking())
        .await
        .expect("export stops");
}
