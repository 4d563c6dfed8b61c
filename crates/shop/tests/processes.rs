//! End to end with real processes: gateway, users, catalog, payments, two
//! carts and orders as separate binaries, finding each other through the
//! test etcd, each on its own PostgreSQL database. Runs under the `etcd`
//! feature (as `scripts/test.sh` builds the workspace) and needs the test
//! servers.

#![cfg(feature = "etcd")]
#![allow(clippy::expect_used, clippy::panic)] // a failed setup should fail the test

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shop::testing::{Shopper, eventually, ids, products, workspace_binary};
use shop_discovery::registry::EtcdSettings;
use shop_discovery::{Instances, Registry};
use shop_testkit::TestDatabase;
use tokio::sync::watch;

/// Short leases so a killed instance leaves etcd quickly.
const LEASE_TTL_SECS: u64 = 2;
const SERVICE_TOKEN: &str = "e2e-service-token";

/// One service process and its environment, so it can be restarted.
struct Proc {
    name: String,
    env: Vec<(String, String)>,
    binary: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    fn start(&mut self) {
        let log = std::fs::File::create(&self.log).expect("log file");
        let mut command = Command::new(workspace_binary(&self.binary));
        // The services reject unknown SHOP_ keys (such as this harness's
        // SHOP_TEST_* variables): give them only their own.
        for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("SHOP_")) {
            command.env_remove(key);
        }
        let child = command
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", self.name));
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    fn terminate(&mut self) -> Child {
        let child = self.child.take().expect("running");
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
        child
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Cluster {
    procs: HashMap<String, Proc>,
    registry: Registry,
    client: reqwest::Client,
    /// The gateway's admin listener (`/metrics`), on a port picked here.
    gateway_admin: String,
    _dir: tempfile::TempDir,
    _dbs: Vec<TestDatabase>,
}

impl Cluster {
    async fn start() -> Option<Self> {
        let endpoints = shop_testkit::etcd_endpoints()?;
        let dir = tempfile::tempdir().expect("tempdir");
        let prefix = format!("/ferroshop-e2e-{}/", uuid::Uuid::new_v4().simple());
        let mut etcd = EtcdSettings::new(endpoints.clone());
        etcd.prefix = prefix.clone();
        let registry = Registry::etcd(etcd).await.expect("etcd registry");
        let key = shop_common::auth::generate_signing_key_pem().expect("key");
        let endpoints_env = format!(
            "[{}]",
            endpoints
                .iter()
                .map(|e| format!("\"{e}\""))
                .collect::<Vec<_>>()
                .join(",")
        );
        let common = [
            ("SHOP_REGISTRY__BACKEND", "etcd".to_owned()),
            ("SHOP_REGISTRY__ENDPOINTS", endpoints_env),
            ("SHOP_REGISTRY__PREFIX", prefix),
            ("SHOP_REGISTRY__LEASE_TTL_SECS", LEASE_TTL_SECS.to_string()),
            ("SHOP_HTTP__HOST", "127.0.0.1".to_owned()),
            ("SHOP_HTTP__PORT", "0".to_owned()),
        ];
        let gateway_admin_port = free_port();
        let mut procs = HashMap::new();
        let mut dbs = Vec::new();
        for (name, binary, extra) in [
            (
                "users",
                "shop-users",
                vec![
                    ("SHOP_AUTH__SIGNING_KEY_PEM", key.clone()),
                    ("SHOP_LOGIN_LIMIT__TRUST_FORWARDED_FOR", "true".to_owned()),
                ],
            ),
            (
                "catalog",
                "shop-catalog",
                vec![("SHOP_INTERNAL__SERVICE_TOKEN", SERVICE_TOKEN.to_owned())],
            ),
            (
                "payments",
                "shop-payments",
                vec![("SHOP_INTERNAL__SERVICE_TOKEN", SERVICE_TOKEN.to_owned())],
            ),
            (
                "cart-1",
                "shop-cart",
                vec![
                    ("SHOP_INTERNAL__SERVICE_TOKEN", SERVICE_TOKEN.to_owned()),
                    ("SHOP_INSTANCE__ID", "cart-1".to_owned()),
                ],
            ),
            (
                "cart-2",
                "shop-cart",
                vec![
                    ("SHOP_INTERNAL__SERVICE_TOKEN", SERVICE_TOKEN.to_owned()),
                    ("SHOP_INSTANCE__ID", "cart-2".to_owned()),
                ],
            ),
            (
                "orders",
                "shop-orders",
                vec![
                    ("SHOP_INTERNAL__SERVICE_TOKEN", SERVICE_TOKEN.to_owned()),
                    ("SHOP_GRPC__HOST", "127.0.0.1".to_owned()),
                    ("SHOP_GRPC__PORT", "0".to_owned()),
                ],
            ),
            // The client loop below is far faster than one client should be.
            (
                "gateway",
                "shop-gateway",
                vec![("SHOP_RATE_LIMIT__ENABLED", "false".to_owned())],
            ),
        ] {
            let mut env: Vec<(String, String)> = common
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect();
            env.extend(extra.into_iter().map(|(k, v)| (k.to_owned(), v)));
            if name != "orders" {
                // The admin listeners on free ports too: two carts share a host.
                // (orders' admin listener is its `http` one.) The gateway's is
                // known, to read its view of the upstreams.
                let port = if name == "gateway" {
                    gateway_admin_port
                } else {
                    0
                };
                env.push(("SHOP_ADMIN__HOST".to_owned(), "127.0.0.1".to_owned()));
                env.push(("SHOP_ADMIN__PORT".to_owned(), port.to_string()));
            }
            if name != "gateway" {
                // The carts share one database, as replicas do.
                let db_name = name.split('-').next().expect("name");
                let url = match dbs
                    .iter()
                    .find(|(n, _): &&(String, TestDatabase)| n == db_name)
                {
                    Some((_, db)) => db.url.clone(),
                    None => {
                        let db = TestDatabase::postgres().await?;
                        let url = db.url.clone();
                        dbs.push((db_name.to_owned(), db));
                        url
                    }
                };
                env.push(("SHOP_DATABASE__URL".to_owned(), url));
            }
            let log = dir.path().join(format!("{name}.log"));
            let mut proc = Proc {
                name: name.to_owned(),
                env,
                binary: binary.to_owned(),
                child: None,
                log,
            };
            proc.start();
            procs.insert(name.to_owned(), proc);
        }
        let cluster = Self {
            procs,
            registry,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
            gateway_admin: format!("http://127.0.0.1:{gateway_admin_port}"),
            _dir: dir,
            _dbs: dbs.into_iter().map(|(_, db)| db).collect(),
        };
        for (service, count) in [
            ("users", 1),
            ("catalog", 1),
            ("payments", 1),
            ("cart", 2),
            ("orders", 1),
            ("gateway", 1),
        ] {
            cluster
                .wait_for(service, |instances| instances.len() == count)
                .await;
        }
        Some(cluster)
    }

    /// Waits (bounded) until the instances of `service` satisfy `done`.
    async fn wait_for(&self, service: &str, done: impl Fn(&Instances) -> bool) -> Instances {
        let mut watch: watch::Receiver<Instances> = self.registry.watch(service);
        let outcome = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let current = watch.borrow_and_update().clone();
                if done(&current) {
                    return current;
                }
                if watch.changed().await.is_err() {
                    return current;
                }
            }
        })
        .await;
        match outcome {
            Ok(instances) if done(&instances) => instances,
            _ => panic!(
                "{service} did not reach the expected instances; logs:\n{}",
                self.logs()
            ),
        }
    }

    fn logs(&self) -> String {
        self.procs
            .values()
            .map(|p| format!("--- {} ---\n{}", p.name, p.log_text()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The gateway's address, once it serves and knows every upstream:
    /// its `/readyz` says it serves (it does not wait for upstreams, so a
    /// missing service degrades only its routes), and registered in etcd is
    /// not enough, its own etcd watch may still lag the test's, and a
    /// request then would find no instance. So this also waits until the
    /// gateway's `upstream_instances` gauges count every instance.
    async fn gateway(&self) -> String {
        let instances = self.wait_for("gateway", |i| !i.is_empty()).await;
        let base = format!("http://{}", instances[0].address);
        let expected = [
            ("users", 1.0),
            ("catalog", 1.0),
            ("cart", 2.0),
            ("orders", 1.0),
        ];
        let ready = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let serving = self.client.get(format!("{base}/readyz")).send().await;
                if serving.is_ok_and(|r| r.status() == 200) {
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
                        )
                    };
                    if expected
                        .iter()
                        .all(|(upstream, count)| known(upstream) == Some(*count))
                    {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(
            ready.is_ok(),
            "the gateway did not serve with every upstream known within 20 s; logs:\n{}",
            self.logs()
        );
        base
    }

    /// `username`, registered and logged in through the gateway at `base`.
    async fn shopper(&self, base: &str, username: &str) -> Shopper {
        Shopper::login(&self.client, base, username).await
    }

    async fn product_ids(&self, base: &str) -> Vec<String> {
        ids(&products(&self.client, base).await)
    }

    /// Reads and updates carts through the gateway until `stop`; counts failures.
    fn client_loop(
        shopper: Shopper,
        product: String,
        stop: Arc<tokio::sync::Notify>,
    ) -> tokio::task::JoinHandle<(usize, Vec<String>)> {
        let Shopper {
            client,
            base,
            token,
        } = shopper;
        tokio::spawn(async move {
            let mut done = 0;
            let mut failures = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(30);
            let stopped = stop.notified();
            tokio::pin!(stopped);
            let mut quantity = 1;
            while Instant::now() < deadline {
                let get = client.get(format!("{base}/api/cart")).bearer_auth(&token);
                quantity = quantity % 9 + 1;
                let put = client
                    .put(format!("{base}/api/cart/items/{product}"))
                    .bearer_auth(&token)
                    .json(&json!({"quantity": quantity}));
                for request in [get, put] {
                    tokio::select! {
                        () = &mut stopped => return (done, failures),
                        result = request.send() => match result {
                            Ok(response) if response.status().is_success() => done += 1,
                            Ok(response) => failures.push(format!("{} {}", response.status(), response.text().await.unwrap_or_default())),
                            Err(err) => failures.push(err.to_string()),
                        }
                    }
                }
            }
            (done, failures)
        })
    }
}

#[tokio::test]
async fn the_journey_and_instances_dying_under_load() {
    let Some(mut cluster) = Cluster::start().await else {
        return;
    };
    let base = cluster.gateway().await;

    // The journey through the gateway.
    let alice = cluster.shopper(&base, "alice").await;
    let products = cluster.product_ids(&base).await;
    alice.put_item(&products[0], 2).await;
    alice.put_item(&products[1], 1).await;
    let first = alice.place("e2e-1").await;
    assert_eq!(first.status(), 201, "{}", cluster.logs());
    let order: Value = first.json().await.expect("json");
    let again: Value = alice.place("e2e-1").await.json().await.expect("json");
    assert_eq!(order["id"], again["id"], "one key, one order");
    let order_id = order["id"].as_str().expect("id");
    let list = alice.get_json("/api/orders").await;
    assert!(list.to_string().contains(order_id));
    let cancel = alice.post(&format!("/api/orders/{order_id}/cancel")).await;
    assert_eq!(cancel.status(), 200);
    alice
        .wait_for_empty_cart("the relay to clear the ordered lines")
        .await;

    // SIGKILL one cart while a client loop reads and updates carts.
    let stop = Arc::new(tokio::sync::Notify::new());
    let looping = Cluster::client_loop(alice.clone(), products[2].clone(), Arc::clone(&stop));
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.procs.get_mut("cart-1").expect("cart-1").kill();
    let killed = Instant::now();
    cluster
        .wait_for("cart", |instances| instances.len() == 1)
        .await;
    assert!(
        killed.elapsed() <= Duration::from_secs(LEASE_TTL_SECS + 2),
        "the dead instance left etcd with its lease"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Start a third cart, then SIGTERM the second: it deregisters as it stops.
    let mut third = Proc {
        name: "cart-3".to_owned(),
        env: cluster.procs["cart-2"]
            .env
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    if k == "SHOP_INSTANCE__ID" {
                        "cart-3".to_owned()
                    } else {
                        v.clone()
                    },
                )
            })
            .collect(),
        binary: "shop-cart".to_owned(),
        child: None,
        log: cluster._dir.path().join("cart-3.log"),
    };
    third.start();
    cluster.procs.insert("cart-3".to_owned(), third);
    cluster
        .wait_for("cart", |instances| instances.len() == 2)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut child = cluster.procs.get_mut("cart-2").expect("cart-2").terminate();
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(status.success(), "SIGTERM is a clean stop: {status}");
    let now: Instances = cluster.registry.watch("cart").borrow().clone();
    let what = format!("cart-2 to deregister (instances when it exited: {now:?})");
    eventually(&what, || async {
        cluster
            .registry
            .watch("cart")
            .borrow()
            .iter()
            .all(|i| i.id != "cart-2")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.notify_one();
    let (done, failures) = looping.await.expect("join");
    assert!(done > 10, "the loop made progress ({done} requests)");
    assert!(
        failures.is_empty(),
        "no request failed while instances died: {failures:?}\n{}",
        cluster.logs()
    );
}

#[tokio::test]
async fn orders_killed_after_accepting_an_order_keeps_it_once() {
    let Some(mut cluster) = Cluster::start().await else {
        return;
    };
    let base = cluster.gateway().await;
    let bob = cluster.shopper(&base, "bob").await;
    let products = cluster.product_ids(&base).await;
    for product in &products[..2] {
        bob.put_item(product, 3).await;
    }
    let placed = bob.place("kill-1").await;
    assert_eq!(placed.status(), 201);
    let order: Value = placed.json().await.expect("json");
    // Right after it accepted the order, possibly before its relay ran.
    cluster.procs.get_mut("orders").expect("orders").kill();
    cluster
        .wait_for("orders", |instances| instances.is_empty())
        .await;
    cluster.procs.get_mut("orders").expect("orders").start();
    cluster
        .wait_for("orders", |instances| instances.len() == 1)
        .await;

    // The gateway learns of the new instance through its own etcd watch; a
    // client retries a keyed placement until it answers.
    let mut again = Value::Null;
    let mut last = String::new();
    for _ in 0..100 {
        let response = bob.place("kill-1").await;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        if status.is_success() {
            again = body;
            break;
        }
        last = format!("{status} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !again.is_null(),
        "orders never answered after its restart: {last}\n{}",
        cluster.logs()
    );
    assert_eq!(again["id"], order["id"], "the order exists once");
    let list = bob.get_json("/api/orders").await;
    let orders = list["orders"]
        .as_array()
        .or_else(|| list["items"].as_array())
        .expect("orders");
    assert_eq!(orders.len(), 1, "{list}");
    bob.wait_for_empty_cart("the cart to be cleared after the restart")
        .await;
    let cart = bob.cart().await;
    assert_eq!(
        cart["version"], 3,
        "two puts and exactly one removal: {cart}"
    );
}

/// A loopback port free when asked (bound, then released for a child).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}
