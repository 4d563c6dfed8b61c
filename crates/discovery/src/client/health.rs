//! Active health checks: every `interval_ms` each HTTP endpoint gets
//! `GET /readyz`; after `unhealthy_threshold` failed checks in a row it gets
//! no traffic, and after `healthy_threshold` passed checks it gets traffic
//! again. This catches an instance that is up but not ready (its database
//! is gone, it is draining) before a user request finds out.
//!
//! gRPC endpoints are not checked here (their port serves no `/readyz`);
//! ejection and the breaker cover them.
//!
//! `readmit` is the probe that lets an endpoint ejected for a failed
//! connection back in (see [`super::outlier`]); it runs whether or not
//! periodic checks are enabled, and for gRPC endpoints it settles for a TCP
//! connect.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use http::{Method, Request, Uri};
use http_body_util::BodyExt;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::{Inner, RequestBody};
use crate::balance::{Endpoint, now_nanos};
use crate::instance::Scheme;

/// Active health-check settings of an upstream.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthCheckSettings {
    /// Whether endpoints are checked (default true).
    pub enabled: bool,
    /// The path to GET (default `/readyz`); any 2xx passes.
    pub path: String,
    /// Time between rounds of checks, in milliseconds (default 5000).
    pub interval_ms: u64,
    /// How long one check may take, in milliseconds (default 1000).
    pub timeout_ms: u64,
    /// Failed checks in a row that take an endpoint out (default 2).
    pub unhealthy_threshold: u32,
    /// Passed checks in a row that bring it back (default 1).
    pub healthy_threshold: u32,
}

impl Default for HealthCheckSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            path: "/readyz".to_owned(),
            interval_ms: 5_000,
            timeout_ms: 1_000,
            unhealthy_threshold: 2,
            healthy_threshold: 1,
        }
    }
}

/// Checks every endpoint on an interval until the client is dropped.
pub(super) async fn run(
    client: Weak<Inner>,
    settings: HealthCheckSettings,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(Duration::from_millis(settings.interval_ms.max(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let Some(inner) = client.upgrade() else {
            return;
        };
        let endpoints = inner.balancer.endpoints();
        let checks = endpoints
            .iter()
            .filter(|endpoint| endpoint.scheme() == Scheme::Http)
            .map(|endpoint| check(&inner, &settings, endpoint));
        futures::future::join_all(checks).await;
    }
}

async fn check(inner: &Inner, settings: &HealthCheckSettings, endpoint: &Arc<Endpoint>) {
    let passed = probe(inner, settings, endpoint).await;
    let (counter, other, threshold) = if passed {
        (
            &endpoint.health_passes,
            &endpoint.health_failures,
            settings.healthy_threshold,
        )
    } else {
        (
            &endpoint.health_failures,
            &endpoint.health_passes,
            settings.unhealthy_threshold,
        )
    };
    other.store(0, Ordering::Relaxed);
    let streak = counter.fetch_add(1, Ordering::Relaxed).saturating_add(1);
    if streak >= threshold.max(1) && endpoint.set_healthy(passed) {
        let instance = &endpoint.instance().id;
        if passed {
            inner.metrics.became_healthy.increment(1);
            tracing::info!(upstream = %inner.service, instance, "instance passes health checks again");
        } else {
            inner.metrics.became_unhealthy.increment(1);
            tracing::warn!(upstream = %inner.service, instance, "instance fails health checks; no traffic until it passes");
        }
    }
}

/// Lets `endpoint`, ejected until re-admitted, back in once a probe passes:
/// the first after `ejected_for`, then one every health-check interval.
/// Ends when it passed, when the endpoint left the balancer (deregistered)
/// or when the client is dropped.
pub(super) async fn readmit(
    client: Weak<Inner>,
    endpoint: Weak<Endpoint>,
    ejected_for: Duration,
    stop: CancellationToken,
) {
    let mut wait = ejected_for;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        let (Some(inner), Some(endpoint)) = (client.upgrade(), endpoint.upgrade()) else {
            return;
        };
        let listed = inner
            .balancer
            .endpoints()
            .iter()
            .any(|listed| Arc::ptr_eq(listed, &endpoint));
        if !listed {
            return;
        }
        let settings = &inner.health_check;
        let passed = match endpoint.scheme() {
            Scheme::Http => probe(&inner, settings, &endpoint).await,
            Scheme::Grpc => connects(settings, &endpoint).await,
        };
        if passed {
            // A fresh start: no failures carried over, and the ejection
            // history still lengthens the next ejection if it flaps.
            endpoint.consecutive_failures.store(0, Ordering::Relaxed);
            endpoint.ejected_until.store(now_nanos(), Ordering::Relaxed);
            tracing::info!(upstream = %inner.service, instance = %endpoint.instance().id, "ejected instance is ready again");
            return;
        }
        wait = Duration::from_millis(settings.interval_ms.max(1));
    }
}

/// Whether a TCP connection to the endpoint can be made within the
/// health-check timeout.
async fn connects(settings: &HealthCheckSettings, endpoint: &Endpoint) -> bool {
    let connect = tokio::net::TcpStream::connect(endpoint.authority().as_str());
    matches!(
        tokio::time::timeout(Duration::from_millis(settings.timeout_ms.max(1)), connect).await,
        Ok(Ok(_))
    )
}

/// One `GET path`; true on a 2xx within the timeout.
async fn probe(inner: &Inner, settings: &HealthCheckSettings, endpoint: &Endpoint) -> bool {
    let Ok(uri) = Uri::builder()
        .scheme(http::uri::Scheme::HTTP)
        .authority(endpoint.authority().clone())
        .path_and_query(settings.path.as_str())
        .build()
    else {
        return false;
    };
    let Ok(request) = Request::builder()
        .method(Method::GET)
        .uri(uri)
        .body(RequestBody::empty())
    else {
        return false;
    };
    let attempt = async {
        let response = inner.http1.request(request).await.ok()?;
        let ok = response.status().is_success();
        // Read the (small) body so the connection goes back to the pool.
        response.into_body().collect().await.ok()?;
        Some(ok)
    };
    matches!(
        tokio::time::timeout(Duration::from_millis(settings.timeout_ms.max(1)), attempt).await,
        Ok(Some(true))
    )
}
