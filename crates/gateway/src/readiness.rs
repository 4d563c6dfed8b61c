//! Readiness of the gateway: ready when it can serve — its configuration
//! loaded and its listener bound, which is all it takes to be running at
//! all — and not ready only while it drains (the shared lifecycle adds
//! that). The state of its upstreams does not count.
//!
//! Why: readiness takes an instance out of its load balancer's rotation
//! (and holds back node drains behind a disruption budget). If it required
//! a healthy instance of every upstream, one service down would take every
//! gateway out, and the whole API — catalog browsing included — would
//! answer 503 from the load balancer in front. Instead each route degrades
//! on its own: a route whose upstream has no healthy instance answers 503
//! problem+json with `Retry-After` (see `shop_discovery::CallError`), and
//! every other route keeps working.
//!
//! Operators see the upstreams' state in the gateway's metrics
//! (`upstream_instances`, `upstream_breaker_state`,
//! `upstream_ejections_total`, `upstream_health_transitions_total`).

use shop_common::health::Readiness;

/// The gateway's readiness: no checks of its own.
pub fn readiness() -> Readiness {
    Readiness::new()
}
