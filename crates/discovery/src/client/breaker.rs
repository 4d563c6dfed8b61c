//! The circuit breaker of an upstream: after enough consecutive failed
//! calls it opens and every call fails at once, without touching the
//! network, so a dead upstream costs callers nothing and gets room to
//! recover. After `open_ms` it lets a few probe calls through (half-open);
//! a probe that succeeds closes it, one that fails opens it again.
//!
//! The closed path — nearly every call — is two relaxed atomic loads.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;

use crate::balance::now_nanos;

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

/// Circuit breaker settings of an upstream.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerSettings {
    /// Whether the breaker is used (default true).
    pub enabled: bool,
    /// Consecutive failed calls (after retries) that open it (default 5).
    /// A call fails when it gets no response or a 5xx one.
    pub consecutive_failures: u32,
    /// How long it stays open before letting probes through, in
    /// milliseconds (default 5000).
    pub open_ms: u64,
    /// Calls let through at once while half-open (default 1).
    pub half_open_probes: u32,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            consecutive_failures: 5,
            open_ms: 5_000,
            half_open_probes: 1,
        }
    }
}

/// The breaker's state.
pub(crate) struct Breaker {
    settings: BreakerSettings,
    phase: AtomicU8,
    failures: AtomicU32,
    open_until: AtomicU64,
    probes: AtomicU32,
    gauge: metrics::Gauge,
    upstream: std::sync::Arc<str>,
}

/// Leave to make one call; report how it went.
#[must_use]
pub(crate) struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
    settled: bool,
}

impl Breaker {
    pub(crate) fn new(
        settings: BreakerSettings,
        gauge: metrics::Gauge,
        upstream: std::sync::Arc<str>,
    ) -> Self {
        gauge.set(f64::from(CLOSED));
        Self {
            settings,
            phase: AtomicU8::new(CLOSED),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probes: AtomicU32::new(0),
            gauge,
            upstream,
        }
    }

    /// A permit to call, or how long until the breaker lets probes through.
    pub(crate) fn acquire(&self) -> Result<Permit<'_>, Duration> {
        let permit = |probe| Permit {
            breaker: self,
            probe,
            settled: false,
        };
        if !self.settings.enabled {
            return Ok(permit(false));
        }
        let mut phase = self.phase.load(Ordering::Acquire);
        if phase == OPEN {
            let now = now_nanos();
            let until = self.open_until.load(Ordering::Acquire);
            if now < until {
                return Err(Duration::from_nanos(until - now));
            }
            if self
                .phase
                .compare_exchange(OPEN, HALF_OPEN, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                tracing::info!(upstream = %self.upstream, "circuit breaker half-open: letting probes through");
                self.gauge.set(f64::from(HALF_OPEN));
            }
            phase = self.phase.load(Ordering::Acquire);
        }
        match phase {
            CLOSED => Ok(permit(false)),
            HALF_OPEN => {
                if self.probes.fetch_add(1, Ordering::AcqRel)
                    < self.settings.half_open_probes.max(1)
                {
                    Ok(permit(true))
                } else {
                    self.probes.fetch_sub(1, Ordering::AcqRel);
                    // A probe is under way; its answer decides soon.
                    Err(Duration::from_secs(1))
                }
            }
            _ => Err(Duration::from_millis(self.settings.open_ms)),
        }
    }

    fn open(&self) {
        let until = now_nanos()
            .saturating_add(Duration::from_millis(self.settings.open_ms).as_nanos() as u64);
        self.open_until.store(until, Ordering::Release);
        self.probes.store(0, Ordering::Release);
        self.phase.store(OPEN, Ordering::Release);
        self.gauge.set(f64::from(OPEN));
        tracing::warn!(upstream = %self.upstream, open_ms = self.settings.open_ms, "circuit breaker open");
    }

    fn close(&self) {
        self.failures.store(0, Ordering::Relaxed);
        self.phase.store(CLOSED, Ordering::Release);
        self.gauge.set(f64::from(CLOSED));
        tracing::info!(upstream = %self.upstream, "circuit breaker closed");
    }
}

impl Permit<'_> {
    /// The call succeeded.
    pub(crate) fn success(self) {
        self.settle(true);
    }

    /// The call failed.
    pub(crate) fn failure(self) {
        self.settle(false);
    }

    /// A probe's answer closes or reopens the breaker; an ordinary call's
    /// resets or adds to the run of consecutive failures.
    fn settle(mut self, succeeded: bool) {
        self.settled = true;
        let breaker = self.breaker;
        if !breaker.settings.enabled {
            return;
        }
        match (self.probe, succeeded) {
            (true, true) => breaker.close(),
            (true, false) => breaker.open(),
            (false, true) => {
                if breaker.failures.load(Ordering::Relaxed) != 0 {
                    breaker.failures.store(0, Ordering::Relaxed);
                }
            }
            (false, false) => {
                let failures = breaker.failures.fetch_add(1, Ordering::Relaxed) + 1;
                if failures >= breaker.settings.consecutive_failures.max(1)
                    && breaker.phase.load(Ordering::Acquire) == CLOSED
                {
                    breaker.open();
                }
            }
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        // A probe whose caller gave up decides nothing; free its slot.
        if self.probe && !self.settled {
            self.breaker.probes.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(open_ms: u64) -> Breaker {
        let settings = BreakerSettings {
            consecutive_failures: 3,
            open_ms,
            ..BreakerSettings::default()
        };
        Breaker::new(settings, metrics::Gauge::noop(), "test".into())
    }

    #[test]
    fn opens_after_consecutive_failures_and_a_success_resets_the_count() {
        let breaker = breaker(60_000);
        breaker.acquire().unwrap().failure();
        breaker.acquire().unwrap().failure();
        breaker.acquire().unwrap().success();
        breaker.acquire().unwrap().failure();
        breaker.acquire().unwrap().failure();
        assert!(
            breaker.acquire().is_ok(),
            "two in a row is below the threshold"
        );
        breaker.acquire().unwrap().failure();
        let wait = breaker.acquire().err().expect("open");
        assert!(wait > Duration::from_secs(50));
    }

    #[test]
    fn half_open_lets_one_probe_through_and_its_outcome_decides() {
        let breaker = breaker(0);
        for _ in 0..3 {
            breaker.acquire().unwrap().failure();
        }
        let probe = breaker.acquire().expect("open time is over: a probe");
        assert!(breaker.acquire().is_err(), "only one probe at a time");
        probe.failure();
        let probe = breaker.acquire().expect("reopened for 0 ms, probe again");
        drop(probe);
        let probe = breaker
            .acquire()
            .expect("an abandoned probe frees its slot");
        probe.success();
        assert!(
            breaker.acquire().is_ok() && breaker.acquire().is_ok(),
            "closed again"
        );
    }
}
