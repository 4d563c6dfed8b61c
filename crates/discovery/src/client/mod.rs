//! The upstream client: how the gateway, cart and orders call another
//! service. One client per upstream service; cheap to clone, one shared
//! keep-alive connection pool.
//!
//! Around each call, outermost first:
//!
//! 1. **deadline** ([`deadline`]) — the call ends by the earlier of the
//!    caller's [`Deadline`] and the client's own `deadline_ms`;
//! 2. **circuit breaker** ([`breaker`]) — while open, the call fails at once;
//! 3. **retry** ([`retry`]) — a failed try of an idempotent request with a
//!    replayable body is sent again to another instance, while the retry
//!    budget and the deadline allow; a try that reached no server (the
//!    connection could not be made, or closed before the request was
//!    written) is sent again to another instance whatever the method, and
//!    without spending budget, since it cost the upstream nothing;
//! 4. **pick** ([`crate::balance`]) — the policy picks among instances that
//!    pass active health checks ([`health`]) and are not ejected
//!    ([`outlier`]);
//! 5. **per-try timeout** — each try waits at most `per_try_timeout_ms` (or
//!    what is left of the deadline) for response headers; the remaining time
//!    travels to the upstream as `x-shop-deadline-ms` / `grpc-timeout`.
//!    This is also what bounds a try on a pooled connection to a peer that
//!    vanished without closing it (a paused container, a partition).
//!
//! Each try's outcome feeds the outlier detector and the latency estimate
//! (a connection that cannot be made ejects its instance at once); each
//! call's outcome feeds the breaker.
//!
//! When an instance dies the client fails over rather than failing: its
//! first refused connection ejects it (until a readiness probe lets it back
//! in, see [`outlier`]) and the try goes to another instance free of the
//! retry budget, so a burst of requests during a replica kill is not
//! starved by it; requests in flight on it (reset mid-answer) are
//! retried when idempotent; a request hyper had queued on a pooled
//! keep-alive connection that the server closed (a draining instance closes
//! its idle connections) is re-sent by hyper itself on another connection
//! (`retry_canceled_requests`, on by default) or, on a fresh connection,
//! counted as reaching no server. HTTP/2 connections (gRPC) are pinged
//! every [`H2_PING_INTERVAL`], so one to a vanished peer is closed instead
//! of holding every call to that instance until its per-try timeout.
//!
//! A call that reached no instance at all answers 503 with `Retry-After`
//! (see [`CallError::status_code`]). These layers share per-endpoint
//! state and the set of instances a request already tried, so they are
//! composed in one future here rather than stacked as separate tower
//! services; [`UpstreamClient`] is itself a `tower::Service` for callers
//! that add layers of their own.

pub mod body;
pub mod breaker;
pub mod deadline;
pub mod health;
pub mod outlier;
pub mod retry;

use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{Request, Response, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::Deserialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::balance::{Balancer, Endpoint, HashKey, InFlight, PickRequest, PolicySettings};
use crate::error::CallError;
use crate::instance::Scheme;
use crate::metrics::UpstreamMetrics;
use crate::registry::Instances;
use crate::registry::Registry;

pub use body::{BodyDeadlineExceeded, RequestBody, ResponseBody};
pub use breaker::BreakerSettings;
pub use deadline::{DEADLINE_HEADER, Deadline, GRPC_TIMEOUT_HEADER};
pub use health::HealthCheckSettings;
pub use outlier::OutlierSettings;
pub use retry::{Idempotent, RetrySettings, is_idempotent};

/// How to call one upstream service, e.g. `[upstreams.catalog]`.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamSettings {
    /// How an instance is picked (default `peak_ewma`).
    pub balance: PolicySettings,
    /// How long one try waits for response headers, in milliseconds
    /// (default 2000). Response bodies stream without this bound.
    pub per_try_timeout_ms: u64,
    /// How long a call may take with all its retries, in milliseconds
    /// (default 5000); a caller's [`Deadline`] shortens it.
    pub deadline_ms: u64,
    /// How long opening a TCP connection may take, in milliseconds (default 1000).
    pub connect_timeout_ms: u64,
    /// How long an idle pooled connection is kept, in milliseconds (default 90000).
    pub pool_idle_timeout_ms: u64,
    /// Most idle connections kept per instance (default 256).
    pub pool_max_idle_per_host: usize,
    /// Retry limits and budget.
    pub retry: RetrySettings,
    /// Passive outlier ejection.
    pub outlier: OutlierSettings,
    /// Active health checks.
    pub health_check: HealthCheckSettings,
    /// The circuit breaker.
    pub breaker: BreakerSettings,
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        Self {
            balance: PolicySettings::default(),
            per_try_timeout_ms: 2_000,
            deadline_ms: 5_000,
            connect_timeout_ms: 1_000,
            pool_idle_timeout_ms: 90_000,
            pool_max_idle_per_host: 256,
            retry: RetrySettings::default(),
            outlier: OutlierSettings::default(),
            health_check: HealthCheckSettings::default(),
            breaker: BreakerSettings::default(),
        }
    }
}

impl UpstreamSettings {
    /// Checks what serde cannot.
    ///
    /// # Errors
    /// [`BuildError::InvalidSettings`] naming the first bad key.
    pub fn validate(&self) -> Result<(), BuildError> {
        let invalid = |key: &'static str, problem: &str| {
            Err(BuildError::InvalidSettings {
                key,
                problem: problem.into(),
            })
        };
        if self.per_try_timeout_ms == 0 {
            return invalid("per_try_timeout_ms", "must be positive");
        }
        if self.deadline_ms == 0 {
            return invalid("deadline_ms", "must be positive");
        }
        if let PolicySettings::ConsistentHash(hash) = &self.balance
            && !(hash.load_factor.is_finite() && hash.load_factor >= 1.0)
        {
            return invalid("balance.load_factor", "must be at least 1.0");
        }
        self.retry
            .validate()
            .map_err(|(key, problem)| BuildError::InvalidSettings { key, problem })?;
        if self.outlier.max_ejection_percent > 100 {
            return invalid("outlier.max_ejection_percent", "must be at most 100");
        }
        if self.health_check.interval_ms == 0 || self.health_check.timeout_ms == 0 {
            return invalid(
                "health_check.interval_ms",
                "interval and timeout must be positive",
            );
        }
        if !self.health_check.path.starts_with('/')
            || self.health_check.path.parse::<PathAndQuery>().is_err()
        {
            return invalid("health_check.path", "must be a path starting with '/'");
        }
        Ok(())
    }
}

/// Why an upstream client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A setting is out of range.
    #[error("invalid upstream settings: {key}: {problem}")]
    InvalidSettings {
        /// The key, relative to the upstream's table.
        key: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The service name cannot be used.
    #[error(transparent)]
    InvalidService(#[from] crate::instance::InstanceError),
    /// The client was built outside a tokio runtime.
    #[error("an upstream client must be built within a tokio runtime")]
    NoRuntime,
}

type HttpClient = Client<HttpConnector, RequestBody>;

/// How often an HTTP/2 connection (gRPC) is pinged, idle or not. A
/// connection whose peer stopped answering (paused, partitioned) is closed
/// after this plus [`H2_PING_TIMEOUT`], so new calls open a fresh one —
/// whose connect then fails fast and ejects the instance — rather than
/// queueing on a dead one.
pub const H2_PING_INTERVAL: Duration = Duration::from_secs(5);
/// How long an HTTP/2 ping may go unanswered before the connection is closed.
pub const H2_PING_TIMEOUT: Duration = Duration::from_secs(5);

/// A client of one upstream service: discovery, balancing and resilience
/// around a pooled hyper client. Clones share everything.
#[derive(Clone)]
pub struct UpstreamClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("service", &self.inner.service)
            .field("balancer", &self.inner.balancer)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    service: Arc<str>,
    per_try_timeout: Duration,
    deadline: Duration,
    max_retries: u32,
    balancer: Balancer,
    breaker: breaker::Breaker,
    outlier: outlier::OutlierDetector,
    budget: retry::RetryBudget,
    http1: HttpClient,
    http2: HttpClient,
    metrics: UpstreamMetrics,
    known: watch::Receiver<usize>,
    /// How endpoints are probed, also to let an unreachable one back in.
    health_check: HealthCheckSettings,
    stop: CancellationToken,
    /// Itself, for the re-admission probes it spawns.
    this: Weak<Inner>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Ends the discovery and health-check tasks with the last clone.
        self.stop.cancel();
    }
}

/// How one try went, when it did not succeed.
enum TryFailure {
    /// A 5xx response; passed back when no retry follows.
    Status(Response<hyper::body::Incoming>),
    /// No connection (refused, unresolvable, connect timeout): nothing
    /// reached the server, and the instance is likely gone.
    Connect(hyper_util::client::legacy::Error),
    /// A connection was made but closed before the request was written:
    /// nothing reached the server, though the instance may be fine (it was
    /// closing an idle connection).
    Unsent(hyper_util::client::legacy::Error),
    /// The connection broke after the request may have been sent.
    Protocol(hyper_util::client::legacy::Error),
    /// No response headers in time; `deadline` when the overall deadline ran out.
    Timeout { timeout: Duration, deadline: bool },
}

impl UpstreamClient {
    /// A client of `service` that follows the registry's view of it.
    ///
    /// Spawns a task following the registry and, when enabled, one running
    /// health checks; both end when the last clone is dropped.
    ///
    /// # Errors
    /// [`BuildError`] for bad settings, a bad service name, or no runtime.
    pub fn new(
        service: &str,
        settings: &UpstreamSettings,
        registry: &Registry,
    ) -> Result<Self, BuildError> {
        crate::instance::validate_service_name(service)?;
        settings.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        let service: Arc<str> = Arc::from(service);
        let metrics = UpstreamMetrics::new(&service);

        let mut instances = registry.watch(&service);
        let balancer = Balancer::new(settings.balance.clone());
        let initial = instances.borrow_and_update().clone();
        balancer.update(&initial);
        metrics.instances.set(initial.len() as f64);
        let (known_tx, known) = watch::channel(initial.len());

        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_millis(
            settings.connect_timeout_ms.max(1),
        )));
        connector.set_keepalive(Some(Duration::from_secs(60)));
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(Duration::from_millis(settings.pool_idle_timeout_ms))
            .pool_max_idle_per_host(settings.pool_max_idle_per_host)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new());
        let http1 = builder.build(connector.clone());
        let http2 = builder
            .http2_only(true)
            .http2_keep_alive_interval(H2_PING_INTERVAL)
            .http2_keep_alive_timeout(H2_PING_TIMEOUT)
            .http2_keep_alive_while_idle(true)
            .build(connector);

        let stop = CancellationToken::new();
        let inner = Arc::new_cyclic(|this| Inner {
            breaker: breaker::Breaker::new(
                settings.breaker.clone(),
                metrics.breaker_state.clone(),
                Arc::clone(&service),
            ),
            outlier: outlier::OutlierDetector::new(
                settings.outlier.clone(),
                metrics.ejections.clone(),
            ),
            budget: retry::RetryBudget::new(&settings.retry),
            per_try_timeout: Duration::from_millis(settings.per_try_timeout_ms),
            deadline: Duration::from_millis(settings.deadline_ms),
            max_retries: settings.retry.max_retries,
            service,
            balancer,
            http1,
            http2,
            metrics,
            known,
            health_check: settings.health_check.clone(),
            stop: stop.clone(),
            this: this.clone(),
        });
        runtime.spawn(follow_registry(
            Arc::downgrade(&inner),
            instances,
            known_tx,
            stop.clone(),
        ));
        if settings.health_check.enabled {
            runtime.spawn(health::run(
                Arc::downgrade(&inner),
                settings.health_check.clone(),
                stop,
            ));
        }
        Ok(Self { inner })
    }

    /// The upstream service's name.
    pub fn service(&self) -> &str {
        &self.inner.service
    }

    /// The balancer, to inspect endpoints (health, ejection, load).
    pub fn balancer(&self) -> &Balancer {
        &self.inner.balancer
    }

    /// Waits until the registry reported at least `count` instances, at
    /// most `timeout`; returns whether it did. Useful at start-up with a
    /// remote registry, whose first answer takes a round trip.
    pub async fn wait_for_instances(&self, count: usize, timeout: Duration) -> bool {
        let mut known = self.inner.known.clone();
        matches!(
            tokio::time::timeout(timeout, known.wait_for(|known| *known >= count)).await,
            Ok(Ok(_))
        )
    }

    /// Sends a request to an instance of the upstream and returns its
    /// response, whose body streams.
    ///
    /// The request's URI needs only a path and query (`/api/products?page=2`);
    /// scheme and authority come from the picked instance. Its extensions
    /// may carry a [`Deadline`], a [`HashKey`] and the [`Idempotent`] marker.
    /// The caller owns header hygiene (hop-by-hop headers of a forwarded
    /// request). A 5xx response is passed back, after retries when allowed.
    ///
    /// # Errors
    /// A [`CallError`] when no response could be had.
    pub async fn send(
        &self,
        mut request: Request<RequestBody>,
    ) -> Result<Response<ResponseBody>, CallError> {
        let inner = &*self.inner;
        let started = Instant::now();
        let span = call_span(&inner.service, &request);
        // The callee's server span becomes this span's child, whatever
        // `traceparent` the caller put in (a forwarded request's).
        shop_common::trace::inject(&span, request.headers_mut());
        let result = inner.send(request).instrument(span.clone()).await;
        inner
            .metrics
            .duration
            .record(started.elapsed().as_secs_f64());
        match &result {
            Ok(response) if response.status().is_server_error() => {
                inner.metrics.failure.increment(1);
                span.record("http.response.status_code", response.status().as_u16());
                span.record("otel.status_code", "error");
            }
            Ok(response) => {
                inner.metrics.success.increment(1);
                span.record("http.response.status_code", response.status().as_u16());
            }
            Err(err) => {
                inner.metrics.error.increment(1);
                span.record("otel.status_code", "error");
                span.record("error.type", err.kind());
            }
        }
        result
    }
}

impl tower::Service<Request<RequestBody>> for UpstreamClient {
    type Response = Response<ResponseBody>;
    type Error = CallError;
    type Future = BoxFuture<'static, Result<Response<ResponseBody>, CallError>>;

    /// Always ready: an open breaker answers in `call` rather than applying
    /// backpressure, so a caller gets a fast, typed error.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        Poll::Ready(Ok(()))
    }

    /// Boxes the future of [`UpstreamClient::send`]; call `send` directly
    /// to avoid the allocation.
    fn call(&mut self, request: Request<RequestBody>) -> Self::Future {
        let client = self.clone();
        Box::pin(async move { client.send(request).await })
    }
}

/// The client span of one call to `upstream`, retries included: the
/// parent of the callee's server span.
fn call_span(upstream: &str, request: &Request<RequestBody>) -> tracing::Span {
    let span = tracing::info_span!(
        "upstream call",
        otel.kind = "client",
        otel.name = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        upstream,
        http.request.method = %request.method(),
        url.path = request.uri().path(),
        http.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
    );
    if shop_common::telemetry::exporting() {
        span.record("otel.name", format!("{} {upstream}", request.method()));
    }
    span
}

/// Feeds registry changes into the balancer until the client is dropped.
async fn follow_registry(
    client: Weak<Inner>,
    mut instances: watch::Receiver<Instances>,
    known: watch::Sender<usize>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            changed = instances.changed() => if changed.is_err() { return },
        }
        let Some(inner) = client.upgrade() else {
            return;
        };
        let current = instances.borrow_and_update().clone();
        inner.balancer.update(&current);
        inner.metrics.instances.set(current.len() as f64);
        known.send_replace(current.len());
        tracing::debug!(upstream = %inner.service, instances = current.len(), "instances changed");
    }
}

impl Inner {
    async fn send(
        &self,
        request: Request<RequestBody>,
    ) -> Result<Response<ResponseBody>, CallError> {
        let (mut parts, body) = request.into_parts();
        let mut deadline = Instant::now() + self.deadline;
        if let Some(caller) = parts.extensions.get::<Deadline>() {
            deadline = deadline.min(caller.0);
        }
        let idempotent = retry::is_idempotent(&parts.method, &parts.extensions);
        let key = parts.extensions.get::<HashKey>().copied();
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));

        let permit = self
            .breaker
            .acquire()
            .map_err(|retry_after| CallError::BreakerOpen {
                upstream: Arc::clone(&self.service),
                retry_after,
            })?;
        self.budget.deposit();

        let replayable = body.is_replayable();
        let mut body = Some(body);
        // Allocated only when a retry happens.
        let mut tried: Vec<Arc<Endpoint>> = Vec::new();
        let mut retries = 0;
        let mut in_flight = self.pick(key, &tried)?;
        loop {
            let endpoint = Arc::clone(in_flight.endpoint());
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                permit.failure();
                return Err(CallError::DeadlineExceeded {
                    upstream: Arc::clone(&self.service),
                });
            }
            let timeout = self.per_try_timeout.min(remaining);
            let try_body = match body.as_ref().and_then(RequestBody::try_clone) {
                Some(copy) => copy,
                None => body.take().unwrap_or_default(),
            };
            let request =
                self.build(&mut parts, replayable, &path, &endpoint, try_body, timeout)?;
            let sent = Instant::now();
            let client = match endpoint.scheme() {
                Scheme::Http => &self.http1,
                Scheme::Grpc => &self.http2,
            };
            let failure = match tokio::time::timeout(timeout, client.request(request)).await {
                Ok(Ok(response)) => {
                    endpoint.observe_latency(sent.elapsed());
                    if !response.status().is_server_error() {
                        self.outlier.success(&endpoint);
                        permit.success();
                        return Ok(
                            response.map(|body| ResponseBody::new(body, in_flight, deadline))
                        );
                    }
                    TryFailure::Status(response)
                }
                // A refused connection is fast: do not let it look like a
                // fast endpoint to peak-EWMA. Ejection takes it out instead.
                Ok(Err(err)) if err.is_connect() => TryFailure::Connect(err),
                Ok(Err(err)) if was_not_sent(&err) => TryFailure::Unsent(err),
                Ok(Err(err)) => TryFailure::Protocol(err),
                Err(_) => {
                    endpoint.observe_latency(sent.elapsed());
                    TryFailure::Timeout {
                        timeout,
                        deadline: timeout >= remaining,
                    }
                }
            };
            let unreachable = matches!(failure, TryFailure::Connect(_));
            if let Some(ejected_for) =
                self.outlier
                    .failure(&endpoint, &self.balancer, &self.service, unreachable)
            {
                tokio::spawn(health::readmit(
                    self.this.clone(),
                    Arc::downgrade(&endpoint),
                    ejected_for,
                    self.stop.clone(),
                ));
            }

            // A try that reached no server is sent elsewhere whatever the
            // method, outside max_retries and the budget: it cost the
            // upstream nothing, and the budget must not starve fail-over
            // while a replica is being killed. Each goes to an instance not
            // tried yet, so these end when the instances do.
            let free = matches!(failure, TryFailure::Connect(_) | TryFailure::Unsent(_));
            let may_retry = replayable
                && (free || retries < self.max_retries)
                && match &failure {
                    TryFailure::Status(response) => {
                        idempotent && retry::RETRYABLE_STATUSES.contains(&response.status())
                    }
                    TryFailure::Connect(_) | TryFailure::Unsent(_) => true,
                    TryFailure::Protocol(_) => idempotent,
                    TryFailure::Timeout { deadline, .. } => idempotent && !deadline,
                };
            let next = if may_retry && Instant::now() < deadline {
                tried.push(endpoint);
                // Pick before spending budget: with no other instance there
                // is nothing to spend it on.
                self.balancer
                    .pick(&PickRequest {
                        key,
                        exclude: &tried,
                    })
                    .filter(|_| free || self.budget.withdraw())
            } else {
                None
            };
            match next {
                Some(next) => {
                    if !free {
                        retries += 1;
                    }
                    self.metrics.retries.increment(1);
                    tracing::debug!(
                        upstream = %self.service,
                        from = %in_flight.endpoint().instance().id,
                        to = %next.endpoint().instance().id,
                        free,
                        "retrying on another instance"
                    );
                    in_flight = next;
                }
                None => {
                    permit.failure();
                    return self.give_up(failure, in_flight, deadline);
                }
            }
        }
    }

    fn pick(&self, key: Option<HashKey>, tried: &[Arc<Endpoint>]) -> Result<InFlight, CallError> {
        self.balancer
            .pick(&PickRequest {
                key,
                exclude: tried,
            })
            .ok_or_else(|| CallError::NoInstance {
                upstream: Arc::clone(&self.service),
            })
    }

    /// The request for one try: the caller's method and headers, the
    /// instance's address, and this try's time budget in a header.
    fn build(
        &self,
        parts: &mut Parts,
        replayable: bool,
        path: &PathAndQuery,
        endpoint: &Endpoint,
        body: RequestBody,
        budget: Duration,
    ) -> Result<Request<RequestBody>, CallError> {
        let uri = Uri::builder()
            .scheme(http::uri::Scheme::HTTP)
            .authority(endpoint.authority().clone())
            .path_and_query(path.clone())
            .build()
            .map_err(|err| CallError::InvalidRequest {
                upstream: Arc::clone(&self.service),
                reason: err.to_string(),
            })?;
        let mut request = Request::new(body);
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = uri;
        *request.version_mut() = match endpoint.scheme() {
            Scheme::Http => Version::HTTP_11,
            Scheme::Grpc => Version::HTTP_2,
        };
        // A request sent once can have its headers moved instead of copied.
        *request.headers_mut() = if replayable {
            parts.headers.clone()
        } else {
            std::mem::take(&mut parts.headers)
        };
        deadline::set_header(request.headers_mut(), endpoint.scheme(), budget);
        Ok(request)
    }

    /// The result of a call whose last try failed and will not be retried.
    fn give_up(
        &self,
        failure: TryFailure,
        in_flight: InFlight,
        deadline: Instant,
    ) -> Result<Response<ResponseBody>, CallError> {
        let upstream = Arc::clone(&self.service);
        let address = || in_flight.endpoint().instance().address.clone();
        match failure {
            TryFailure::Status(response) => {
                Ok(response.map(|body| ResponseBody::new(body, in_flight, deadline)))
            }
            TryFailure::Connect(err) | TryFailure::Unsent(err) => Err(CallError::Connect {
                upstream,
                address: address(),
                source: err.into(),
            }),
            TryFailure::Protocol(err) => Err(CallError::Protocol {
                upstream,
                address: address(),
                source: err.into(),
            }),
            TryFailure::Timeout { deadline: true, .. } => {
                Err(CallError::DeadlineExceeded { upstream })
            }
            TryFailure::Timeout { timeout, .. } => Err(CallError::Timeout { upstream, timeout }),
        }
    }
}

/// Whether hyper gave up on a request before writing any of it: it was
/// queued on a connection that closed first. (hyper re-sends such a
/// request itself when the connection was a reused one; on a fresh one it
/// reports it.)
fn was_not_sent(err: &hyper_util::client::legacy::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(hyper) = cause.downcast_ref::<hyper::Error>() {
            return hyper.is_canceled();
        }
        source = cause.source();
    }
    false
}
