//! Retries: which requests may be sent again, and the budget that bounds
//! how many retries an upstream gets.
//!
//! A request is retried only when sending it twice cannot do harm: its
//! method is idempotent (GET, HEAD, OPTIONS, PUT, DELETE) or it is marked
//! [`Idempotent`], and its body is replayable. A request that was not
//! idempotent is retried only when nothing reached a server (the connection
//! could not be made, or closed before the request was written). A retry
//! always goes to another instance.
//!
//! The budget (tower's `TpsBudget`, after finagle) allows retries as a
//! ratio of recent requests plus a small floor per second, instead of a
//! fixed number per call: when an upstream is failing as a whole, a fixed
//! count would multiply the load on it exactly when it can least take it.
//!
//! A retry after a try that reached no server is *free*: it spends no
//! budget and does not count towards `max_retries`. It added no load to any
//! server, so the budget's reason does not apply, and a replica kill makes
//! exactly a burst of those, which a budget sized for overload would starve
//! (clients then saw errors a retry would have avoided). They stay bounded:
//! each goes to an instance the request has not tried, within the deadline,
//! and the first one ejects the dead instance for everyone.

use std::time::Duration;

use http::{Extensions, Method, StatusCode};
use serde::Deserialize;
use tower::retry::budget::{Budget, TpsBudget};

/// Statuses that mean "this instance could not handle it now", so another
/// instance may. A 500 is an answer (the same request would likely fail
/// again anywhere); it counts against the instance but is not retried.
pub(crate) const RETRYABLE_STATUSES: [StatusCode; 3] = [
    StatusCode::BAD_GATEWAY,
    StatusCode::SERVICE_UNAVAILABLE,
    StatusCode::GATEWAY_TIMEOUT,
];

/// Marks a request as safe to send more than once although its method is
/// not idempotent (a POST carrying an `Idempotency-Key`, for instance).
/// Insert it into the request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Idempotent;

/// Whether the request may be sent more than once.
pub fn is_idempotent(method: &Method, extensions: &Extensions) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    ) || extensions.get::<Idempotent>().is_some()
}

/// Retry limits of an upstream.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrySettings {
    /// Most retries of one request after its first try (default 2); each
    /// goes to an instance the request has not tried. Retries after a try
    /// that reached no server are not counted.
    pub max_retries: u32,
    /// Retries allowed as a fraction of recent requests (default 0.2, i.e.
    /// at most one retry per five requests; 0 to 1000). Retries after a try
    /// that reached no server need none.
    pub budget_ratio: f32,
    /// Retries allowed per second on top of the ratio, so a quiet upstream
    /// can still retry (default 10).
    pub budget_min_per_sec: u32,
    /// The window, in seconds, over which requests are counted (default 10, 1 to 60).
    pub budget_window_secs: u64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_retries: 2,
            budget_ratio: 0.2,
            budget_min_per_sec: 10,
            budget_window_secs: 10,
        }
    }
}

impl RetrySettings {
    /// Checks the ranges the budget needs.
    pub(crate) fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(1..=60).contains(&self.budget_window_secs) {
            return Err((
                "retry.budget_window_secs",
                "must be between 1 and 60".into(),
            ));
        }
        if !self.budget_ratio.is_finite() || !(0.0..=1000.0).contains(&self.budget_ratio) {
            return Err(("retry.budget_ratio", "must be between 0 and 1000".into()));
        }
        if self.budget_min_per_sec >= i32::MAX as u32 {
            return Err(("retry.budget_min_per_sec", "is too large".into()));
        }
        Ok(())
    }
}

/// The retry budget of one upstream.
pub(crate) struct RetryBudget {
    budget: TpsBudget,
}

impl RetryBudget {
    /// A budget from validated settings (values are clamped again because
    /// `TpsBudget::new` panics outside its ranges).
    pub(crate) fn new(settings: &RetrySettings) -> Self {
        let window = Duration::from_secs(settings.budget_window_secs.clamp(1, 60));
        let ratio = if settings.budget_ratio.is_finite() {
            settings.budget_ratio.clamp(0.0, 1000.0)
        } else {
            0.0
        };
        let floor = settings.budget_min_per_sec.min(i32::MAX as u32 - 1);
        Self {
            budget: TpsBudget::new(window, floor, ratio),
        }
    }

    /// Counts a request (each first try earns a fraction of a retry).
    pub(crate) fn deposit(&self) {
        self.budget.deposit();
    }

    /// Takes one retry from the budget; false when it is spent.
    pub(crate) fn withdraw(&self) -> bool {
        self.budget.withdraw()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_follows_the_method_or_the_marker() {
        let none = Extensions::new();
        assert!(is_idempotent(&Method::GET, &none));
        assert!(is_idempotent(&Method::PUT, &none));
        assert!(is_idempotent(&Method::DELETE, &none));
        assert!(!is_idempotent(&Method::POST, &none));
        assert!(!is_idempotent(&Method::PATCH, &none));
        let mut marked = Extensions::new();
        marked.insert(Idempotent);
        assert!(is_idempotent(&Method::POST, &marked));
    }

    #[test]
    fn the_budget_allows_the_floor_then_a_ratio_of_requests() {
        let budget = RetryBudget::new(&RetrySettings {
            budget_ratio: 0.5,
            budget_min_per_sec: 0,
            budget_window_secs: 10,
            ..RetrySettings::default()
        });
        assert!(!budget.withdraw(), "no requests yet, no floor: no retries");
        for _ in 0..4 {
            budget.deposit();
        }
        assert!(budget.withdraw());
        assert!(budget.withdraw());
        assert!(!budget.withdraw(), "four requests at 0.5 earn two retries");
        assert!(
            RetrySettings {
                budget_window_secs: 0,
                ..RetrySettings::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            RetrySettings {
                budget_ratio: f32::NAN,
                ..RetrySettings::default()
            }
            .validate()
            .is_err()
        );
    }
}
