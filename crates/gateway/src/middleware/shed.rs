//! Load shedding: at most `max` requests in flight; one more is answered at
//! once with 503 + `Retry-After` instead of queueing, so latency stays
//! bounded under overload and clients (and balancers in front) back off.
//!
//! The permit is held until the response headers are ready; a response
//! body that streams afterwards no longer counts. Probes (`/healthz`,
//! `/readyz`) are routed outside this layer and are never shed.

use std::sync::Arc;

use axum::extract::Request;
use http::StatusCode;
use shop_common::error::Problem;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{Verdict, guard_layer, reject};

/// The shared state of [`ShedLayer`].
#[derive(Clone)]
pub struct ShedState {
    permits: Arc<Semaphore>,
    retry_after_secs: u64,
}

guard_layer!(
    /// Sheds requests above the concurrency limit with 503.
    ShedLayer,
    Shed,
    ShedState,
    OwnedSemaphorePermit,
    check
);

impl ShedLayer {
    /// A layer admitting `max` requests at once; others get
    /// `Retry-After: retry_after_secs`.
    pub fn new(max: usize, retry_after_secs: u64) -> Self {
        Self {
            state: ShedState {
                permits: Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS))),
                retry_after_secs,
            },
        }
    }
}

fn check(state: &ShedState, _request: &mut Request) -> Verdict<OwnedSemaphorePermit> {
    match Arc::clone(&state.permits).try_acquire_owned() {
        Ok(permit) => Verdict::Pass(permit),
        Err(_) => Verdict::Refuse(reject(
            "overloaded",
            Problem::with_detail(
                StatusCode::SERVICE_UNAVAILABLE,
                "the gateway is at capacity; try again shortly",
            )
            .retry_after(state.retry_after_secs),
        )),
    }
}
