//! The etcd v3 backend (cargo feature `etcd`).
//!
//! Registration: one key per instance, `<prefix><service>/<id>`, holding the
//! instance as JSON and attached to a lease with a TTL that a background task
//! keeps alive. A crashed process stops the keep-alives, so etcd deletes its
//! key when the lease runs out; a graceful deregistration revokes the lease,
//! which deletes the key at once. Whenever the session breaks (etcd down at
//! start-up, restarted, or the lease lost) the task grants a new lease and
//! writes the key again, with exponential backoff between attempts.
//!
//! Discovery: a full `get` of the service's prefix, then a watch from the
//! next revision. Any error, cancellation (e.g. compaction) or end of the
//! watch stream starts over with a full `get`, so a watcher never misses a
//! change that happened while it was disconnected.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions, EventType, GetOptions, PutOptions, WatchOptions};
use rand::Rng;
use serde::Deserialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Backend, Instances, Registration, RegistryError, Watches, canonical, publish};
use crate::instance::Instance;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The `etcd` backend's settings.
///
/// ```toml
/// [registry]
/// backend = "etcd"
/// endpoints = ["http://etcd:2379"]
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EtcdSettings {
    /// etcd client URLs (default `["http://127.0.0.1:2379"]`).
    pub endpoints: Vec<String>,
    /// Lease TTL in seconds (default 10): how long a crashed instance stays
    /// discoverable. etcd raises TTLs below its minimum (about 1.5 s).
    pub lease_ttl_secs: u64,
    /// Key prefix under which instances live (default `/ferroshop/services/`).
    pub prefix: String,
    /// Bound on each etcd request, in milliseconds (default 3000).
    pub request_timeout_ms: u64,
    /// First delay before retrying after etcd failed, in milliseconds (default 100).
    pub backoff_initial_ms: u64,
    /// Largest delay between retries, in milliseconds (default 5000).
    pub backoff_max_ms: u64,
}

impl Default for EtcdSettings {
    fn default() -> Self {
        Self {
            endpoints: vec!["http://127.0.0.1:2379".to_owned()],
            lease_ttl_secs: 10,
            prefix: "/ferroshop/services/".to_owned(),
            request_timeout_ms: 3_000,
            backoff_initial_ms: 100,
            backoff_max_ms: 5_000,
        }
    }
}

impl EtcdSettings {
    /// Settings for these endpoints, everything else default.
    pub fn new(endpoints: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms.max(1))
    }

    fn ttl(&self) -> Duration {
        Duration::from_secs(self.lease_ttl_secs)
    }

    fn service_prefix(&self, service: &str) -> String {
        format!("{}{service}/", self.prefix)
    }
}

/// The etcd registry: one client (a tonic channel that reconnects by
/// itself), one watch task per watched service.
pub(crate) struct Etcd {
    client: Client,
    settings: Arc<EtcdSettings>,
    watches: Watches,
}

impl Etcd {
    pub(crate) async fn connect(mut settings: EtcdSettings) -> Result<Self, RegistryError> {
        if settings.endpoints.is_empty() {
            return Err(RegistryError::InvalidSettings(
                "registry.endpoints: at least one etcd URL is needed".into(),
            ));
        }
        if settings.lease_ttl_secs == 0 {
            return Err(RegistryError::InvalidSettings(
                "registry.lease_ttl_secs: must be at least 1".into(),
            ));
        }
        if !settings.prefix.ends_with('/') {
            settings.prefix.push('/');
        }
        let options = ConnectOptions::new()
            .with_connect_timeout(settings.request_timeout())
            // HTTP/2 pings notice a dead etcd even when no request is pending,
            // so watches and keep-alives fail over instead of hanging.
            .with_keep_alive(Duration::from_secs(3), Duration::from_secs(3))
            .with_keep_alive_while_idle(true);
        // The channel connects lazily: an etcd that is down now is not an error.
        let client = Client::connect(&settings.endpoints, Some(options)).await?;
        Ok(Self {
            client,
            settings: Arc::new(settings),
            watches: Watches::new("etcd"),
        })
    }
}

impl Backend for Etcd {
    fn register(&self, instance: Instance) -> Result<Registration, RegistryError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| RegistryError::NoRuntime)?;
        let (registered_tx, registered) = watch::channel(false);
        let stop = CancellationToken::new();
        let task = runtime.spawn(keep_registered(
            self.client.clone(),
            Arc::clone(&self.settings),
            instance.clone(),
            stop.clone(),
            registered_tx,
        ));
        Ok(Registration::task(instance, registered, stop, task))
    }

    fn watch(&self, service: &str) -> watch::Receiver<Instances> {
        self.watches.subscribe(service, |tx| {
            let settings = Arc::clone(&self.settings);
            Some(watch_service(
                self.client.clone(),
                settings,
                service.to_owned(),
                tx,
            ))
        })
    }

    fn kind(&self) -> &'static str {
        "etcd"
    }
}

/// Exponential backoff with full jitter, so that many instances that lost
/// etcd together do not reconnect in lockstep.
struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    fn new(settings: &EtcdSettings) -> Self {
        let initial = Duration::from_millis(settings.backoff_initial_ms.max(1));
        Self {
            initial,
            max: Duration::from_millis(settings.backoff_max_ms).max(initial),
            current: initial,
        }
    }

    fn next(&mut self) -> Duration {
        let ceiling = self.current;
        self.current = (self.current * 2).min(self.max);
        let millis = u64::try_from(ceiling.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        Duration::from_millis(rand::rng().random_range(millis / 2..=millis))
    }

    fn reset(&mut self) {
        self.current = self.initial;
    }

    /// Tells `lost` the next delay and waits it out; `false` when `stopped`
    /// completes first.
    async fn wait(
        &mut self,
        stopped: impl Future<Output = ()>,
        lost: impl FnOnce(Duration),
    ) -> bool {
        let delay = self.next();
        lost(delay);
        until(stopped, tokio::time::sleep(delay)).await.is_some()
    }
}

async fn with_timeout<T>(
    limit: Duration,
    what: &'static str,
    request: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, BoxError> {
    match tokio::time::timeout(limit, request).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(format!("{what}: {err}").into()),
        Err(_) => Err(format!("{what}: no answer within {} ms", limit.as_millis()).into()),
    }
}

/// `work`'s output, or `None` when `stopped` completes first.
async fn until<T>(stopped: impl Future<Output = ()>, work: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        () = stopped => None,
        output = work => Some(output),
    }
}

/// Keeps one instance registered until `stop` is cancelled, then revokes its lease.
async fn keep_registered(
    client: Client,
    settings: Arc<EtcdSettings>,
    instance: Instance,
    stop: CancellationToken,
    registered: watch::Sender<bool>,
) {
    let key = format!(
        "{}{}",
        settings.service_prefix(&instance.service),
        instance.id
    );
    let value = match serde_json::to_vec(&instance) {
        Ok(value) => value,
        Err(err) => {
            tracing::error!(error = %err, "cannot encode the instance; not registering it");
            return;
        }
    };
    let mut backoff = Backoff::new(&settings);
    let mut lease = None;
    while let Some(Err(err)) = until(
        stop.cancelled(),
        session(
            &client,
            &settings,
            &key,
            &value,
            &registered,
            &mut lease,
            &mut backoff,
        ),
    )
    .await
    {
        registered.send_replace(false);
        let lost = |delay: Duration| tracing::warn!(key, error = %err, retry_in_ms = delay.as_millis(), "etcd registration lost; re-registering");
        if !backoff.wait(stop.cancelled(), lost).await {
            break;
        }
    }
    registered.send_replace(false);
    // Revoking the lease deletes the key with it. If etcd is unreachable the
    // lease expires on its own within the TTL.
    if let Some(id) = lease {
        let mut client = client.clone();
        match with_timeout(
            settings.request_timeout(),
            "revoke",
            client.lease_revoke(id),
        )
        .await
        {
            Ok(_) => tracing::info!(key, "deregistered from etcd"),
            Err(err) => {
                tracing::warn!(key, error = %err, "could not revoke the lease; the key expires with it")
            }
        }
    }
}

/// One registration session: grant a lease, write the key, keep the lease
/// alive. Returns only when something broke.
async fn session(
    client: &Client,
    settings: &EtcdSettings,
    key: &str,
    value: &[u8],
    registered: &watch::Sender<bool>,
    lease: &mut Option<i64>,
    backoff: &mut Backoff,
) -> Result<Infallible, BoxError> {
    let mut client = client.clone();
    let limit = settings.request_timeout();
    let ttl = i64::try_from(settings.lease_ttl_secs).unwrap_or(i64::MAX);
    let granted = with_timeout(limit, "lease grant", client.lease_grant(ttl, None)).await?;
    let previous = lease.replace(granted.id());
    let options = PutOptions::new().with_lease(granted.id());
    with_timeout(limit, "put", client.put(key, value, Some(options))).await?;
    if let Some(previous) = previous {
        // The key now belongs to the new lease; an old lease that survived an
        // etcd restart holds nothing but would linger until its TTL.
        with_timeout(limit, "revoke old lease", client.lease_revoke(previous))
            .await
            .ok();
    }
    let (mut keeper, mut acks) =
        with_timeout(limit, "keep-alive", client.lease_keep_alive(granted.id())).await?;
    registered.send_replace(true);
    backoff.reset();
    tracing::info!(key, lease = granted.id(), ttl, "registered in etcd");

    // Three keep-alives per TTL, so one lost round trip does not expire the lease.
    let mut ticker = tokio::time::interval(settings.ttl() / 3);
    let mut last_ack = Instant::now();
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if last_ack.elapsed() > settings.ttl() {
                    return Err("no keep-alive answer within the TTL; the lease may have expired".into());
                }
                keeper.keep_alive().await.map_err(|err| format!("keep-alive: {err}"))?;
            }
            ack = acks.message() => match ack.map_err(|err| format!("keep-alive stream: {err}"))? {
                Some(ack) if ack.ttl() > 0 => last_ack = Instant::now(),
                Some(_) => return Err("the lease expired (etcd answered TTL 0)".into()),
                None => return Err("the keep-alive stream ended".into()),
            },
        }
    }
}

/// Keeps `tx` up to date with the instances of `service` until every
/// receiver is gone.
async fn watch_service(
    client: Client,
    settings: Arc<EtcdSettings>,
    service: String,
    tx: watch::Sender<Instances>,
) {
    let prefix = settings.service_prefix(&service);
    let mut backoff = Backoff::new(&settings);
    while let Some(Err(err)) = until(
        tx.closed(),
        watch_session(&client, &settings, &prefix, &tx, &mut backoff),
    )
    .await
    {
        let lost = |delay: Duration| tracing::warn!(service, error = %err, retry_in_ms = delay.as_millis(), "etcd watch lost; re-syncing");
        if !backoff.wait(tx.closed(), lost).await {
            return;
        }
    }
}

/// One watch session: a full get, then every change from the next revision.
async fn watch_session(
    client: &Client,
    settings: &EtcdSettings,
    prefix: &str,
    tx: &watch::Sender<Instances>,
    backoff: &mut Backoff,
) -> Result<Infallible, BoxError> {
    let mut client = client.clone();
    let limit = settings.request_timeout();
    let snapshot = with_timeout(
        limit,
        "get",
        client.get(prefix, Some(GetOptions::new().with_prefix())),
    )
    .await?;
    let revision = snapshot
        .header()
        .map_or(0, etcd_client::ResponseHeader::revision);
    let mut current = BTreeMap::new();
    for kv in snapshot.kvs() {
        if let Some(instance) = decode(kv.key(), kv.value()) {
            current.insert(kv.key().to_vec(), instance);
        }
    }
    publish(tx, canonical(current.values().cloned().collect()));

    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(revision + 1);
    let mut stream = with_timeout(limit, "watch", client.watch(prefix, Some(options))).await?;
    backoff.reset();
    while let Some(response) = stream
        .message()
        .await
        .map_err(|err| format!("watch stream: {err}"))?
    {
        if response.canceled() {
            return Err(format!(
                "watch cancelled by etcd ({}; compacted at {})",
                response.cancel_reason(),
                response.compact_revision()
            )
            .into());
        }
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            match event.event_type() {
                EventType::Put => match decode(kv.key(), kv.value()) {
                    Some(instance) => current.insert(kv.key().to_vec(), instance),
                    None => current.remove(kv.key()),
                },
                EventType::Delete => current.remove(kv.key()),
            };
        }
        publish(tx, canonical(current.values().cloned().collect()));
    }
    Err("the watch stream ended".into())
}

/// Decodes one key's value; a malformed value is logged and skipped so that
/// one bad writer cannot hide every other instance.
fn decode(key: &[u8], value: &[u8]) -> Option<Instance> {
    match serde_json::from_slice::<Instance>(value) {
        Ok(instance) if instance.validate().is_ok() => Some(instance),
        Ok(_) | Err(_) => {
            tracing::warn!(key = %String::from_utf8_lossy(key), "ignoring a malformed instance in etcd");
            None
        }
    }
}
