//! Client-side load balancing: a [`Balancer`] holds the live endpoints of one
//! upstream and picks one per try with the configured policy.
//!
//! | policy | module | picks |
//! | --- | --- | --- |
//! | `round_robin` | [`round_robin`] | each available endpoint in turn |
//! | `weighted_round_robin` | [`weighted`] | nginx's smooth weighted round robin over metadata weights |
//! | `random` | [`random`] | uniformly at random |
//! | `least_outstanding` | [`least_outstanding`] | the endpoint with the fewest requests in flight |
//! | `peak_ewma` | [`p2c_ewma`] | the cheaper of two random endpoints by peak-EWMA latency × load |
//! | `consistent_hash` | [`consistent_hash`] | a hash ring on a request key, with bounded loads |
//!
//! Every policy only picks *available* endpoints: not ejected by the outlier
//! detector, not failing active health checks, and not already tried by the
//! current request. Endpoint state (in-flight count, latency estimate,
//! health) survives registry updates for instances that stay.

pub mod consistent_hash;
pub mod least_outstanding;
pub mod p2c_ewma;
pub mod random;
pub mod round_robin;
pub mod weighted;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use http::uri::Authority;
use serde::Deserialize;

use crate::instance::{Instance, Scheme};

/// Which policy picks an endpoint, chosen by the `policy` key.
///
/// ```toml
/// [upstreams.cart.balance]
/// policy = "consistent_hash"
/// load_factor = 1.25
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(tag = "policy", rename_all = "snake_case")]
pub enum PolicySettings {
    /// Each available endpoint in turn.
    RoundRobin,
    /// nginx's smooth weighted round robin; weights from instance metadata.
    WeightedRoundRobin,
    /// Uniformly at random.
    Random,
    /// The endpoint with the fewest requests in flight (ties broken randomly).
    LeastOutstanding,
    /// Power of two random choices over peak-EWMA latency × in-flight load
    /// (finagle, linkerd). The default: it adapts to slow instances.
    PeakEwma(PeakEwmaSettings),
    /// A hash ring on a request key (e.g. the user id) with bounded loads.
    ConsistentHash(ConsistentHashSettings),
}

impl Default for PolicySettings {
    fn default() -> Self {
        Self::PeakEwma(PeakEwmaSettings::default())
    }
}

/// Settings of the `peak_ewma` policy.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PeakEwmaSettings {
    /// Time constant of the moving average, in milliseconds (default 10000):
    /// how long a latency spike keeps weighing on an endpoint.
    pub decay_ms: u64,
    /// Latency assumed for an endpoint with no observations yet, in
    /// milliseconds (default 30).
    pub default_rtt_ms: u64,
}

impl Default for PeakEwmaSettings {
    fn default() -> Self {
        Self {
            decay_ms: 10_000,
            default_rtt_ms: 30,
        }
    }
}

/// Settings of the `consistent_hash` policy.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsistentHashSettings {
    /// The bound `c` of consistent hashing with bounded loads (Mirrokni et
    /// al.): no endpoint takes more than `c` × the average in-flight load
    /// (default 1.25; at least 1.0).
    pub load_factor: f64,
    /// Points per endpoint on the ring (default 100): more points spread
    /// keys more evenly at the cost of memory.
    pub virtual_nodes: u32,
}

impl Default for ConsistentHashSettings {
    fn default() -> Self {
        Self {
            load_factor: 1.25,
            virtual_nodes: 100,
        }
    }
}

/// The key a `consistent_hash` upstream routes on; put it in the request's
/// extensions. Requests without one are spread randomly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashKey(pub u64);

impl HashKey {
    /// The key for some bytes (a user id, a cart id, ...). Stable across
    /// processes and releases, unlike `std`'s hasher, so that every gateway
    /// replica maps a key to the same instance.
    pub fn new(key: impl AsRef<[u8]>) -> Self {
        Self(stable_hash(key.as_ref()))
    }
}

/// FNV-1a followed by a 64-bit finalizer (from MurmurHash3) so that
/// similar inputs land far apart on the ring.
pub(crate) fn stable_hash(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

/// Nanoseconds since a process-wide epoch, never 0 (0 means "unset" in the
/// atomics below).
pub(crate) fn now_nanos() -> u64 {
    static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);
    u64::try_from(EPOCH.elapsed().as_nanos())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// One instance as the balancer sees it, with the state the policies and
/// the resilience layers share.
#[derive(Debug)]
pub struct Endpoint {
    instance: Instance,
    authority: Authority,
    in_flight: AtomicUsize,
    /// Peak-EWMA latency: estimate in nanoseconds and when it was last updated.
    latency: Mutex<(f64, u64)>,
    decay_nanos: f64,
    /// Active health: false while health checks fail.
    healthy: AtomicBool,
    pub(crate) health_passes: AtomicU32,
    pub(crate) health_failures: AtomicU32,
    /// Passive health: consecutive failed tries and the ejection deadline.
    pub(crate) consecutive_failures: AtomicU32,
    pub(crate) ejected_until: AtomicU64,
    pub(crate) ejection: Mutex<EjectionHistory>,
}

/// How often and how recently an endpoint was ejected, so that a flapping
/// endpoint is ejected for longer each time.
#[derive(Debug, Default)]
pub(crate) struct EjectionHistory {
    pub(crate) times: u32,
    pub(crate) last_at: u64,
}

impl Endpoint {
    fn new(instance: Instance, authority: Authority, ewma: &PeakEwmaSettings) -> Self {
        let default_rtt = Duration::from_millis(ewma.default_rtt_ms).as_nanos() as f64;
        Self {
            instance,
            authority,
            in_flight: AtomicUsize::new(0),
            latency: Mutex::new((default_rtt, now_nanos())),
            decay_nanos: Duration::from_millis(ewma.decay_ms.max(1)).as_nanos() as f64,
            healthy: AtomicBool::new(true),
            health_passes: AtomicU32::new(0),
            health_failures: AtomicU32::new(0),
            consecutive_failures: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            ejection: Mutex::new(EjectionHistory::default()),
        }
    }

    /// The instance behind this endpoint.
    pub fn instance(&self) -> &Instance {
        &self.instance
    }

    /// The instance's address, parsed.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The instance's scheme.
    pub fn scheme(&self) -> Scheme {
        self.instance.scheme
    }

    /// Requests sent to this endpoint whose responses have not finished.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Whether active health checks currently pass.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub(crate) fn set_healthy(&self, healthy: bool) -> bool {
        self.healthy.swap(healthy, Ordering::Relaxed) != healthy
    }

    /// Whether the outlier detector has ejected this endpoint right now.
    pub fn is_ejected(&self) -> bool {
        self.is_ejected_at(now_nanos())
    }

    fn is_ejected_at(&self, now: u64) -> bool {
        self.ejected_until.load(Ordering::Relaxed) > now
    }

    /// Whether a policy may pick this endpoint at `now`.
    fn is_available_at(&self, now: u64) -> bool {
        self.is_healthy() && !self.is_ejected_at(now)
    }

    /// Marks a request as started; the returned guard ends it when dropped.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            endpoint: Arc::clone(self),
            started: Instant::now(),
        }
    }

    /// Feeds one observed latency into the peak-EWMA estimate: a slower
    /// observation replaces the estimate at once (the "peak"), a faster one
    /// is blended in with a weight that grows with the time since the last.
    pub fn observe_latency(&self, latency: Duration) {
        let rtt = latency.as_nanos() as f64;
        let now = now_nanos();
        let mut estimate = self.latency.lock().unwrap_or_else(PoisonError::into_inner);
        let (value, at) = *estimate;
        let next = if rtt > value {
            rtt
        } else {
            let weight = (-((now.saturating_sub(at)) as f64) / self.decay_nanos).exp();
            value * weight + rtt * (1.0 - weight)
        };
        *estimate = (next, now);
    }

    /// The current latency estimate in nanoseconds, decayed towards zero for
    /// the time since the last observation so an endpoint that stopped
    /// getting traffic because it was slow is eventually tried again.
    pub fn latency_estimate(&self) -> Duration {
        Duration::from_nanos(self.latency_nanos_at(now_nanos()) as u64)
    }

    fn latency_nanos_at(&self, now: u64) -> f64 {
        let (value, at) = *self.latency.lock().unwrap_or_else(PoisonError::into_inner);
        value * (-((now.saturating_sub(at)) as f64) / self.decay_nanos).exp()
    }
}

/// A request in flight on an endpoint; counts towards its load until dropped.
#[derive(Debug)]
pub struct InFlight {
    endpoint: Arc<Endpoint>,
    started: Instant,
}

impl InFlight {
    /// The endpoint the request went to.
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }

    /// When the request started.
    pub fn started(&self) -> Instant {
        self.started
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a pick may take into account besides the endpoints.
#[derive(Debug, Default, Clone, Copy)]
pub struct PickRequest<'a> {
    /// The consistent-hashing key, if the request has one.
    pub key: Option<HashKey>,
    /// Endpoints this request already tried; a retry goes elsewhere.
    pub exclude: &'a [Arc<Endpoint>],
}

/// The per-policy state, rebuilt whenever the endpoint set changes.
enum PolicyState {
    RoundRobin(round_robin::RoundRobin),
    Weighted(weighted::SmoothWeighted),
    Random,
    LeastOutstanding,
    PeakEwma,
    ConsistentHash(consistent_hash::Ring),
}

impl PolicyState {
    fn new(settings: &PolicySettings, endpoints: &[Arc<Endpoint>]) -> Self {
        match settings {
            PolicySettings::RoundRobin => Self::RoundRobin(round_robin::RoundRobin::new()),
            PolicySettings::WeightedRoundRobin => {
                Self::Weighted(weighted::SmoothWeighted::new(endpoints))
            }
            PolicySettings::Random => Self::Random,
            PolicySettings::LeastOutstanding => Self::LeastOutstanding,
            PolicySettings::PeakEwma(_) => Self::PeakEwma,
            PolicySettings::ConsistentHash(settings) => {
                Self::ConsistentHash(consistent_hash::Ring::new(endpoints, settings))
            }
        }
    }

    fn pick(
        &self,
        endpoints: &[Arc<Endpoint>],
        key: Option<HashKey>,
        available: &impl Fn(usize) -> bool,
    ) -> Option<usize> {
        match self {
            Self::RoundRobin(policy) => policy.pick(endpoints.len(), available),
            Self::Weighted(policy) => policy.pick(endpoints, available),
            Self::Random => random::pick(endpoints.len(), available),
            Self::LeastOutstanding => least_outstanding::pick(endpoints, available),
            Self::PeakEwma => p2c_ewma::pick(endpoints, available),
            Self::ConsistentHash(policy) => policy.pick(endpoints, key, available),
        }
    }
}

struct Snapshot {
    endpoints: Box<[Arc<Endpoint>]>,
    policy: PolicyState,
}

/// The endpoints of one upstream and the policy that picks among them.
pub struct Balancer {
    settings: PolicySettings,
    ewma: PeakEwmaSettings,
    snapshot: RwLock<Arc<Snapshot>>,
}

impl std::fmt::Debug for Balancer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Balancer")
            .field("policy", &self.settings)
            .field("endpoints", &self.len())
            .finish()
    }
}

impl Balancer {
    /// A balancer with no endpoints yet.
    pub fn new(settings: PolicySettings) -> Self {
        let ewma = match &settings {
            PolicySettings::PeakEwma(ewma) => ewma.clone(),
            _ => PeakEwmaSettings::default(),
        };
        let policy = PolicyState::new(&settings, &[]);
        Self {
            settings,
            ewma,
            snapshot: RwLock::new(Arc::new(Snapshot {
                endpoints: Box::new([]),
                policy,
            })),
        }
    }

    /// A balancer over `instances`.
    pub fn with_instances(settings: PolicySettings, instances: &[Instance]) -> Self {
        let balancer = Self::new(settings);
        balancer.update(instances);
        balancer
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the endpoint set. Instances that stay (same id and address)
    /// keep their state; instances with an unusable address are skipped.
    pub fn update(&self, instances: &[Instance]) {
        let current = self.snapshot();
        let mut previous: HashMap<(&str, &str), &Arc<Endpoint>> = current
            .endpoints
            .iter()
            .map(|endpoint| {
                (
                    (
                        endpoint.instance.id.as_str(),
                        endpoint.instance.address.as_str(),
                    ),
                    endpoint,
                )
            })
            .collect();
        let mut endpoints = Vec::with_capacity(instances.len());
        for instance in instances {
            if let Some(kept) = previous.remove(&(instance.id.as_str(), instance.address.as_str()))
                && kept.instance == *instance
            {
                endpoints.push(Arc::clone(kept));
                continue;
            }
            match instance.authority() {
                Ok(authority) => endpoints.push(Arc::new(Endpoint::new(
                    instance.clone(),
                    authority,
                    &self.ewma,
                ))),
                Err(err) => {
                    tracing::warn!(error = %err, service = %instance.service, "skipping an instance")
                }
            }
        }
        let policy = PolicyState::new(&self.settings, &endpoints);
        let next = Arc::new(Snapshot {
            endpoints: endpoints.into_boxed_slice(),
            policy,
        });
        *self
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner) = next;
    }

    /// The current endpoints.
    pub fn endpoints(&self) -> Vec<Arc<Endpoint>> {
        self.snapshot().endpoints.to_vec()
    }

    /// How many endpoints there are.
    pub fn len(&self) -> usize {
        self.snapshot().endpoints.len()
    }

    /// Whether there are no endpoints at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Picks an available endpoint and starts a request on it, or `None`
    /// when no endpoint is available.
    pub fn pick(&self, request: &PickRequest<'_>) -> Option<InFlight> {
        let snapshot = self.snapshot();
        let endpoints = &snapshot.endpoints;
        let now = now_nanos();
        let available = |index: usize| {
            let endpoint = &endpoints[index];
            endpoint.is_available_at(now)
                && !request
                    .exclude
                    .iter()
                    .any(|tried| Arc::ptr_eq(tried, endpoint))
        };
        let index = snapshot.policy.pick(endpoints, request.key, &available)?;
        Some(endpoints[index].start())
    }

    /// What the outlier detector weighs before ejecting `candidate`.
    pub(crate) fn census(&self, candidate: &Endpoint) -> Census {
        let snapshot = self.snapshot();
        let now = now_nanos();
        let mut census = Census {
            total: snapshot.endpoints.len(),
            ejected: 0,
            others_available: 0,
        };
        for endpoint in snapshot.endpoints.iter() {
            if endpoint.is_ejected_at(now) {
                census.ejected += 1;
            } else if endpoint.is_healthy() && !std::ptr::eq(Arc::as_ptr(endpoint), candidate) {
                census.others_available += 1;
            }
        }
        census
    }
}

/// The endpoints of a balancer, counted for an ejection decision.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Census {
    /// Every endpoint.
    pub(crate) total: usize,
    /// Those ejected now.
    pub(crate) ejected: usize,
    /// Those a policy may pick now, other than the candidate.
    pub(crate) others_available: usize,
}

/// The index of an available endpoint scanning from `start`, wrapping around.
pub(crate) fn first_available_from(
    start: usize,
    len: usize,
    available: &impl Fn(usize) -> bool,
) -> Option<usize> {
    (0..len)
        .map(|offset| (start + offset) % len)
        .find(|&index| available(index))
}
