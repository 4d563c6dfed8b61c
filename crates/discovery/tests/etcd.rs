//! The etcd backend against a real etcd: registration and watch, lease
//! expiry after a crash, graceful deregistration, and recovery after etcd
//! itself restarts (on an empty data directory, or on its own after being
//! killed or paused for longer than the lease, while watchers keep the
//! instances they knew). Needs `--features etcd`; the shared test etcd
//! comes from `SHOP_TEST_ETCD_ENDPOINTS` (scripts/test.sh), and the outage
//! tests run an etcd of their own.
#![cfg(feature = "etcd")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed setup should fail the test

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shop_discovery::registry::EtcdSettings;
use shop_discovery::{Instance, Instances, Registry};
use tokio::sync::watch;

/// A key prefix no other test run shares.
fn unique_prefix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("/ferroshop-test/{}-{nanos}/", std::process::id())
}

async fn registry(endpoints: &[String], prefix: &str, ttl_secs: u64) -> Registry {
    Registry::etcd(EtcdSettings {
        endpoints: endpoints.to_vec(),
        lease_ttl_secs: ttl_secs,
        prefix: prefix.to_owned(),
        backoff_max_ms: 500,
        ..EtcdSettings::default()
    })
    .await
    .unwrap()
}

async fn wait_for(
    watch: &mut watch::Receiver<Instances>,
    timeout: Duration,
    condition: impl FnMut(&Instances) -> bool,
) -> Option<Instances> {
    tokio::time::timeout(timeout, watch.wait_for(condition))
        .await
        .ok()
        .map(|set| set.unwrap().clone())
}

async fn raw_get(endpoints: &[String], key: &str) -> Option<Vec<u8>> {
    let mut client = etcd_client::Client::connect(endpoints, None).await.ok()?;
    let response = tokio::time::timeout(Duration::from_secs(2), client.get(key, None))
        .await
        .ok()?
        .ok()?;
    response.kvs().first().map(|kv| kv.value().to_vec())
}

#[tokio::test]
async fn a_registered_instance_appears_as_json_and_graceful_deregistration_removes_it_at_once() {
    let Some(endpoints) = shop_testkit::etcd_endpoints() else {
        return;
    };
    let prefix = unique_prefix();
    // A long TTL, so that a quick disappearance can only be the revoke.
    let service = registry(&endpoints, &prefix, 30).await;
    let observer = registry(&endpoints, &prefix, 30).await;
    let mut cart = observer.watch("cart");

    let instance = Instance::new("cart", "cart-1", "127.0.0.1:8083")
        .with_weight(3)
        .with_zone("z1")
        .with_version("1.2.3");
    let registration = service.register(instance.clone()).unwrap();
    assert!(registration.registered(Duration::from_secs(10)).await);
    let seen = wait_for(&mut cart, Duration::from_secs(10), |set| set.len() == 1)
        .await
        .expect("appears in the watch");
    assert_eq!(seen[0], instance, "metadata survives the round trip");

    let stored = raw_get(&endpoints, &format!("{prefix}cart/cart-1"))
        .await
        .expect("one key per instance");
    assert_eq!(
        serde_json::from_slice::<Instance>(&stored).unwrap(),
        instance
    );

    registration.deregister().await;
    assert!(
        wait_for(&mut cart, Duration::from_secs(2), |set| set.is_empty())
            .await
            .is_some(),
        "gone at once, long before its 30 s lease would run out"
    );
    assert!(
        raw_get(&endpoints, &format!("{prefix}cart/cart-1"))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn a_crashed_instance_disappears_when_its_lease_expires() {
    let Some(endpoints) = shop_testkit::etcd_endpoints() else {
        return;
    };
    let prefix = unique_prefix();
    let ttl = 2;
    let service = registry(&endpoints, &prefix, ttl).await;
    let observer = registry(&endpoints, &prefix, ttl).await;
    let mut cart = observer.watch("cart");

    let registration = service
        .register(Instance::new("cart", "doomed", "127.0.0.1:9"))
        .unwrap();
    let survivor = service
        .register(Instance::new("cart", "survivor", "127.0.0.1:10"))
        .unwrap();
    assert!(registration.registered(Duration::from_secs(10)).await);
    assert!(survivor.registered(Duration::from_secs(10)).await);
    wait_for(&mut cart, Duration::from_secs(10), |set| set.len() == 2)
        .await
        .expect("both appear");
    // Wait past a few keep-alives: the lease is being refreshed, not just fresh.
    tokio::time::sleep(Duration::from_secs(ttl + 1)).await;
    assert_eq!(cart.borrow().len(), 2, "kept alive beyond its TTL");

    // Simulate a crash: stop the keep-alives without revoking anything.
    registration.abandon();
    let crashed = Instant::now();
    let remaining = wait_for(&mut cart, Duration::from_secs(ttl + 1), |set| {
        set.len() == 1
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "still listed {:?} after the crash (TTL {ttl} s)",
            crashed.elapsed()
        )
    });
    assert_eq!(remaining[0].id, "survivor");
    drop(survivor);
}

/// An etcd of our own, on free ports, that a test can stop and start.
struct OwnEtcd {
    binary: PathBuf,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
    dirs: Vec<tempfile::TempDir>,
}

impl OwnEtcd {
    /// The etcd binary, or `None` (skip) outside CI when it is missing.
    fn binary() -> Option<PathBuf> {
        let found = ["/usr/bin/etcd", "/usr/local/bin/etcd"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file());
        if found.is_none() {
            let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(
                !in_ci,
                "the etcd binary is missing: under CI=true the restart test must run"
            );
            eprintln!("note: no etcd binary; skipping the etcd restart test");
        }
        found
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn new(binary: PathBuf) -> Self {
        Self {
            binary,
            client_port: Self::free_port(),
            peer_port: Self::free_port(),
            child: None,
            dirs: Vec::new(),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// Starts etcd on a fresh, empty data directory: every key and lease
    /// from before is gone, as after losing the etcd volume.
    fn start(&mut self) {
        self.dirs.push(tempfile::tempdir().unwrap());
        self.start_again();
    }

    /// Starts etcd on the data directory it last ran on (a fresh one the
    /// first time): keys and leases survive, as after `docker restart`.
    fn start_again(&mut self) {
        if self.dirs.is_empty() {
            self.dirs.push(tempfile::tempdir().unwrap());
        }
        let dir = self.dirs.last().unwrap().path().to_owned();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new(&self.binary)
            .args(["--name", "default", "--data-dir"])
            .arg(&dir)
            .args([
                "--listen-client-urls",
                &self.url(),
                "--advertise-client-urls",
                &self.url(),
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args([
                "--initial-cluster",
                &format!("default={peer}"),
                "--initial-cluster-state",
                "new",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// Sends `signal` (`STOP`, `CONT`) to the running etcd.
    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("etcd runs");
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} etcd");
    }

    /// SIGKILLs etcd (a paused one too) and waits for it to exit.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

impl Drop for OwnEtcd {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
async fn registrations_come_back_after_etcd_restarts_without_restarting_services() {
    let Some(binary) = OwnEtcd::binary() else {
        return;
    };
    let mut etcd = OwnEtcd::new(binary);
    etcd.start();
    let endpoints = vec![etcd.url()];
    let prefix = unique_prefix();
    let service = registry(&endpoints, &prefix, 2).await;
    let observer = registry(&endpoints, &prefix, 2).await;
    let mut cart = observer.watch("cart");

    // Registration retries until the just-started etcd answers.
    let registration = service
        .register(Instance::new("cart", "cart-1", "127.0.0.1:8083"))
        .unwrap();
    assert!(
        registration.registered(Duration::from_secs(15)).await,
        "registered once etcd is up"
    );
    wait_for(&mut cart, Duration::from_secs(10), |set| set.len() == 1)
        .await
        .expect("appears");

    etcd.stop();
    let lost = async {
        while registration.is_registered() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), lost)
        .await
        .expect("the loss of etcd is noticed");

    // A new, empty etcd on the same address: lease and key must be re-created.
    etcd.start();
    assert!(
        registration.registered(Duration::from_secs(20)).await,
        "re-registered after the restart"
    );
    let key = format!("{prefix}cart/cart-1");
    let mut stored = None;
    for _ in 0..100 {
        stored = raw_get(&endpoints, &key).await;
        if stored.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stored.is_some(), "the key is back in the new etcd");

    // The observer's watch re-synced too: it sees a registration made after the restart.
    let _second = service
        .register(Instance::new("cart", "cart-2", "127.0.0.1:8084"))
        .unwrap();
    let both = wait_for(&mut cart, Duration::from_secs(15), |set| set.len() == 2).await;
    assert!(
        both.is_some(),
        "the watch follows the new etcd: {:?}",
        cart.borrow()
    );
}

/// Asserts, every 100 ms for `outage`, that `watch` still holds exactly the
/// instances `expected` names: a watcher keeps the last known set while
/// etcd does not answer.
async fn assert_kept(watch: &watch::Receiver<Instances>, expected: &[&str], outage: Duration) {
    let until = Instant::now() + outage;
    while Instant::now() < until {
        let ids: Vec<String> = watch.borrow().iter().map(|i| i.id.clone()).collect();
        assert_eq!(
            ids, expected,
            "the watch changed while etcd was unreachable"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The start of an outage test: its own etcd, an instance `cart-1`
/// registered on a 2 s lease, and another registry's watch that sees it.
struct Outage {
    etcd: OwnEtcd,
    endpoints: Vec<String>,
    prefix: String,
    ttl: Duration,
    service: Registry,
    /// Kept so its watch stays open.
    _observer: Registry,
    registration: shop_discovery::Registration,
    cart: watch::Receiver<Instances>,
}

impl Outage {
    async fn start(binary: PathBuf) -> Self {
        let mut etcd = OwnEtcd::new(binary);
        etcd.start_again();
        let endpoints = vec![etcd.url()];
        let prefix = unique_prefix();
        let ttl = Duration::from_secs(2);
        let service = registry(&endpoints, &prefix, ttl.as_secs()).await;
        let observer = registry(&endpoints, &prefix, ttl.as_secs()).await;
        let mut cart = observer.watch("cart");
        let registration = service
            .register(Instance::new("cart", "cart-1", "127.0.0.1:8083"))
            .unwrap();
        assert!(registration.registered(Duration::from_secs(15)).await);
        wait_for(&mut cart, Duration::from_secs(10), |set| set.len() == 1)
            .await
            .expect("appears");
        Self {
            etcd,
            endpoints,
            prefix,
            ttl,
            service,
            _observer: observer,
            registration,
            cart,
        }
    }
}

/// After an outage: the registration is back, its key is in etcd and still
/// there a whole TTL later (on a lease that is kept alive, not a leftover of
/// the old one), and the watch shows the instance and follows new changes.
async fn assert_recovered(
    endpoints: &[String],
    prefix: &str,
    service: &Registry,
    registration: &shop_discovery::Registration,
    cart: &mut watch::Receiver<Instances>,
    ttl: Duration,
) {
    assert!(
        registration.registered(Duration::from_secs(30)).await,
        "re-registered after etcd came back"
    );
    let key = format!("{prefix}cart/cart-1");
    let present = async {
        while raw_get(endpoints, &key).await.is_none() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), present)
        .await
        .expect("the key is back in etcd");
    tokio::time::sleep(ttl + Duration::from_secs(1)).await;
    assert!(
        raw_get(endpoints, &key).await.is_some(),
        "the key outlives a TTL after the outage: its lease is kept alive"
    );
    assert!(
        wait_for(cart, Duration::from_secs(15), |set| set.len() == 1)
            .await
            .is_some(),
        "the watch shows the instance again: {:?}",
        cart.borrow()
    );
    let _second = service
        .register(Instance::new("cart", "cart-2", "127.0.0.1:8084"))
        .unwrap();
    assert!(
        wait_for(cart, Duration::from_secs(15), |set| set.len() == 2)
            .await
            .is_some(),
        "the watch re-synced and follows changes: {:?}",
        cart.borrow()
    );
}

/// etcd killed (SIGKILL) for longer than the lease and started again on
/// its own data: the watchers keep their instances throughout, and the
/// instance is registered again without restarting it.
#[tokio::test]
async fn an_etcd_down_longer_than_the_lease_keeps_watchers_and_gets_registrations_back() {
    let Some(binary) = OwnEtcd::binary() else {
        return;
    };
    let Outage {
        mut etcd,
        endpoints,
        prefix,
        ttl,
        service,
        _observer,
        registration,
        mut cart,
    } = Outage::start(binary).await;

    etcd.stop();
    assert_kept(&cart, &["cart-1"], ttl * 3).await;

    etcd.start_again();
    assert_recovered(&endpoints, &prefix, &service, &registration, &mut cart, ttl).await;
}

/// etcd paused (SIGSTOP: it holds its connections but answers nothing) for
/// longer than the lease, then resumed: its leases have expired meanwhile,
/// so the keeper must grant a new one and write the key again; the
/// watchers keep their instances while it is paused.
#[tokio::test]
async fn a_paused_etcd_keeps_watchers_and_the_keeper_re_grants_after_it() {
    let Some(binary) = OwnEtcd::binary() else {
        return;
    };
    let Outage {
        etcd,
        endpoints,
        prefix,
        ttl,
        service,
        _observer,
        registration,
        mut cart,
    } = Outage::start(binary).await;

    etcd.signal("STOP");
    // Long enough for the HTTP/2 pings to give the connections up (3 s + 3 s).
    assert_kept(&cart, &["cart-1"], ttl * 5).await;
    let lost = async {
        while registration.is_registered() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), lost)
        .await
        .expect("the keeper notices the lease is not kept alive");

    etcd.signal("CONT");
    assert_recovered(&endpoints, &prefix, &service, &registration, &mut cart, ttl).await;
}
