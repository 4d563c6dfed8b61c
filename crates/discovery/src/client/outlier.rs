//! Passive outlier ejection: an endpoint whose tries fail several times in
//! a row (a broken connection, a timeout, or a 5xx) is taken out of
//! rotation for a while, longer each time it is ejected again soon after.
//!
//! A connection that could not be made at all (refused, an address that no
//! longer resolves, a connect timeout) ejects on the *first* failure: that
//! is what a killed instance looks like until its registration goes away,
//! and waiting for `consecutive_failures` of them would send that many
//! tries to a dead address (each one retried, but each one a delay and a
//! trip to the breaker's count). A slow or erroring instance still gets
//! the benefit of the doubt.
//!
//! Ejection never takes more than `max_ejection_percent` of the endpoints —
//! and never the last available one — out, so a problem that hits every
//! instance (a bad deploy, a down database) is left to the circuit breaker
//! instead of emptying the balancer.
//!
//! An endpoint ejected for a failed connection comes back only once it is
//! ready: when its ejection time is over it is probed (`GET` of the
//! health-check path, `/readyz`, for HTTP; a TCP connect for gRPC) and
//! takes traffic again only when the probe passes; until then it is probed
//! again every health-check interval. That covers an instance restarted
//! under the same id and address whose old registration never lapsed (a
//! lease not yet expired): it keeps its record, and is let back in by its
//! readiness, not by a timer. An endpoint ejected for failed tries comes
//! back when its ejection time is over; if it still fails, it is soon
//! ejected again, for longer. An instance that registered again after its
//! registration went away is a new endpoint with a clean record, picked at
//! once: the runtime registers only once its database is migrated and its
//! listeners are bound, so a registration means ready.

use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Deserialize;

use crate::balance::{Balancer, Endpoint, now_nanos};

/// Outlier-ejection settings of an upstream.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutlierSettings {
    /// Whether failing endpoints are ejected (default true).
    pub enabled: bool,
    /// Consecutive failed tries that eject an endpoint (default 5). A
    /// connection that cannot be made ejects at the first one.
    pub consecutive_failures: u32,
    /// Length of a first ejection in milliseconds (default 10000); the n-th
    /// ejection in a row lasts n times as long.
    pub base_ejection_ms: u64,
    /// Longest ejection in milliseconds (default 120000). An endpoint not
    /// ejected for this long starts over at the base time.
    pub max_ejection_ms: u64,
    /// Most endpoints ejected at once, as a percentage (default 50). At
    /// least one endpoint may be ejected when there are two or more, and
    /// the last available one never is.
    pub max_ejection_percent: u32,
}

impl Default for OutlierSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            consecutive_failures: 5,
            base_ejection_ms: 10_000,
            max_ejection_ms: 120_000,
            max_ejection_percent: 50,
        }
    }
}

/// Records try outcomes per endpoint and ejects outliers.
pub(crate) struct OutlierDetector {
    settings: OutlierSettings,
    ejections: metrics::Counter,
}

impl OutlierDetector {
    pub(crate) fn new(settings: OutlierSettings, ejections: metrics::Counter) -> Self {
        Self {
            settings,
            ejections,
        }
    }

    /// A try got a non-5xx response.
    pub(crate) fn success(&self, endpoint: &Endpoint) {
        // Load first: most endpoints have no failures, and a plain load
        // keeps the cache line shared between cores.
        if endpoint.consecutive_failures.load(Ordering::Relaxed) != 0 {
            endpoint.consecutive_failures.store(0, Ordering::Relaxed);
        }
    }

    /// A try failed; ejects the endpoint when it crossed the threshold (or
    /// at once when `unreachable`: no connection could be made) and the
    /// ejection limits allow it.
    ///
    /// Returns the ejection time when it ejected an unreachable endpoint:
    /// that one stays out until the caller's re-admission probe passes
    /// ([`super::health::readmit`]) after that time.
    pub(crate) fn failure(
        &self,
        endpoint: &Endpoint,
        balancer: &Balancer,
        upstream: &str,
        unreachable: bool,
    ) -> Option<Duration> {
        if !self.settings.enabled {
            return None;
        }
        let failures = endpoint
            .consecutive_failures
            .fetch_add(1, Ordering::Relaxed)
            + 1;
        if !unreachable && failures < self.settings.consecutive_failures.max(1) {
            return None;
        }
        let now = now_nanos();
        let mut history = endpoint
            .ejection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if endpoint.ejected_until.load(Ordering::Relaxed) > now {
            return None;
        }
        let census = balancer.census(endpoint);
        let allowed = (census.total * self.settings.max_ejection_percent.min(100) as usize / 100)
            .max(1)
            .min(census.total.saturating_sub(1));
        if census.ejected >= allowed || census.others_available == 0 {
            return None;
        }
        let max = Duration::from_millis(
            self.settings
                .max_ejection_ms
                .max(self.settings.base_ejection_ms),
        );
        if history.last_at != 0 && now.saturating_sub(history.last_at) > max.as_nanos() as u64 {
            history.times = 0;
        }
        history.times = history.times.saturating_add(1);
        history.last_at = now;
        let duration = Duration::from_millis(self.settings.base_ejection_ms)
            .saturating_mul(history.times)
            .min(max);
        let until = if unreachable {
            UNTIL_READMITTED
        } else {
            now.saturating_add(duration.as_nanos() as u64)
        };
        endpoint.ejected_until.store(until, Ordering::Relaxed);
        endpoint.consecutive_failures.store(0, Ordering::Relaxed);
        self.ejections.increment(1);
        tracing::warn!(
            upstream,
            instance = %endpoint.instance().id,
            failures,
            unreachable,
            ejected_ms = duration.as_millis(),
            "ejecting a failing instance"
        );
        unreachable.then_some(duration)
    }
}

/// `ejected_until` of an endpoint that stays ejected until a probe lets it
/// back in (see [`super::health::readmit`]).
pub(crate) const UNTIL_READMITTED: u64 = u64::MAX;
