//! Why a call through an upstream client failed, and how that looks to the
//! caller's caller: 502, 503 or 504 as problem+json that names no internals.
//!
//! The line between 503 and 502 is whether a request may have reached a
//! server: when none could be tried (no instance, breaker open) or none
//! could be reached (every connection refused, unresolvable or timed out
//! while connecting), the upstream is *unavailable* — 503 with
//! `Retry-After`, so clients and the degradation of one route read the
//! same; when a server took the request and broke while answering, the
//! upstream *failed* — 502.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use shop_common::error::{ErrorChain, Problem};

/// A boxed error from the HTTP stack.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Problem type of upstream failures.
pub const UPSTREAM_PROBLEM_TYPE: &str = "/problems/upstream";

/// A call that produced no response. (An upstream's own 5xx response is not
/// an error: it is passed back, after retries when allowed.)
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The registry knows no instance, or every instance is ejected or
    /// failing its health checks.
    #[error("no available instance of {upstream}")]
    NoInstance {
        /// The upstream service.
        upstream: Arc<str>,
    },
    /// The upstream's circuit breaker is open; nothing was sent.
    #[error("the circuit breaker of {upstream} is open")]
    BreakerOpen {
        /// The upstream service.
        upstream: Arc<str>,
        /// When the breaker lets a probe through.
        retry_after: Duration,
    },
    /// The last try got no response headers within the per-try timeout.
    #[error("{upstream} did not answer within {timeout:?}")]
    Timeout {
        /// The upstream service.
        upstream: Arc<str>,
        /// The per-try timeout that ran out.
        timeout: Duration,
    },
    /// The overall deadline (the caller's, or the client's own) ran out.
    #[error("the deadline for calling {upstream} ran out")]
    DeadlineExceeded {
        /// The upstream service.
        upstream: Arc<str>,
    },
    /// No connection could be made to the last instance tried (refused,
    /// unresolvable, connect timeout), or one was made but closed before
    /// the request was sent: nothing reached a server.
    #[error("cannot connect to {upstream} at {address}")]
    Connect {
        /// The upstream service.
        upstream: Arc<str>,
        /// The instance's address.
        address: String,
        /// What the connector said.
        #[source]
        source: BoxError,
    },
    /// The connection failed after the request may have been sent.
    #[error("{upstream} at {address} failed while answering")]
    Protocol {
        /// The upstream service.
        upstream: Arc<str>,
        /// The instance's address.
        address: String,
        /// What hyper said.
        #[source]
        source: BoxError,
    },
    /// The request cannot be sent (e.g. its path does not form a URI).
    #[error("invalid request for {upstream}: {reason}")]
    InvalidRequest {
        /// The upstream service.
        upstream: Arc<str>,
        /// What is wrong.
        reason: String,
    },
}

impl CallError {
    /// The status a gateway or service answers with when this call failed:
    /// 503 when nothing could be tried or nothing reached a server, 504
    /// when time ran out, 502 when the upstream broke while answering, 500
    /// for a request we could not form.
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::NoInstance { .. } | Self::BreakerOpen { .. } | Self::Connect { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Timeout { .. } | Self::DeadlineExceeded { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::Protocol { .. } => StatusCode::BAD_GATEWAY,
            Self::InvalidRequest { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// How long a client should wait before trying again, for the errors
    /// that answer 503: until an open breaker lets probes through, else
    /// one second (a replacement instance registers, an ejected one comes
    /// back, or the retry lands on another instance).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::BreakerOpen { retry_after, .. } => Some(*retry_after),
            Self::NoInstance { .. } | Self::Connect { .. } => Some(Duration::from_secs(1)),
            _ => None,
        }
    }

    /// A short name of what went wrong (`no_instance`, `breaker_open`,
    /// `timeout`, `deadline_exceeded`, `connect`, `protocol`,
    /// `invalid_request`): a span's `error.type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NoInstance { .. } => "no_instance",
            Self::BreakerOpen { .. } => "breaker_open",
            Self::Timeout { .. } => "timeout",
            Self::DeadlineExceeded { .. } => "deadline_exceeded",
            Self::Connect { .. } => "connect",
            Self::Protocol { .. } => "protocol",
            Self::InvalidRequest { .. } => "invalid_request",
        }
    }

    /// The upstream service the call was for.
    pub fn upstream(&self) -> &str {
        match self {
            Self::NoInstance { upstream }
            | Self::BreakerOpen { upstream, .. }
            | Self::Timeout { upstream, .. }
            | Self::DeadlineExceeded { upstream }
            | Self::Connect { upstream, .. }
            | Self::Protocol { upstream, .. }
            | Self::InvalidRequest { upstream, .. } => upstream,
        }
    }
}

impl From<CallError> for Problem {
    fn from(err: CallError) -> Self {
        Self::from(&err)
    }
}

/// For an error several callers share (one failed lookup that concurrent
/// requests waited on).
impl From<&CallError> for Problem {
    fn from(err: &CallError) -> Self {
        if matches!(err, CallError::InvalidRequest { .. }) {
            return Problem::internal(err);
        }
        // The cause names instances and addresses: log it, never send it.
        tracing::warn!(upstream = err.upstream(), error = %ErrorChain(err), "upstream call failed");
        let status = err.status_code();
        let (title, detail) = match status {
            StatusCode::GATEWAY_TIMEOUT => (
                "Upstream timeout",
                "a service needed for this request did not answer in time",
            ),
            StatusCode::BAD_GATEWAY => ("Bad gateway", "a service needed for this request failed"),
            _ => (
                "Service unavailable",
                "a service needed for this request is unavailable; try again later",
            ),
        };
        let problem = Problem::with_detail(status, detail).kind(UPSTREAM_PROBLEM_TYPE, title);
        match err.retry_after() {
            // Whole seconds, rounded up (`Problem` never says 0).
            Some(wait) => problem.retry_after(wait.as_secs_f64().ceil() as u64),
            None => problem,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_gateway_statuses_without_leaking_addresses() {
        let upstream: Arc<str> = Arc::from("catalog");
        let connect = CallError::Connect {
            upstream: upstream.clone(),
            address: "10.1.2.3:8082".into(),
            source: "connection refused".into(),
        };
        assert_eq!(
            connect.status_code(),
            StatusCode::SERVICE_UNAVAILABLE,
            "nothing reached a server: unavailable, not bad gateway"
        );
        let problem = Problem::from(connect);
        let body = serde_json::to_string(&problem).unwrap();
        assert_eq!(problem.status, 503);
        assert_eq!(retry_after(&problem), Some("1"));
        assert!(
            !body.contains("10.1.2.3") && !body.contains("refused"),
            "{body}"
        );

        let broken = CallError::Protocol {
            upstream: upstream.clone(),
            address: "10.1.2.3:8082".into(),
            source: "connection reset".into(),
        };
        let problem = Problem::from(broken);
        assert_eq!(problem.status, 502, "the request may have reached a server");
        assert_eq!(retry_after(&problem), None);

        let open = CallError::BreakerOpen {
            upstream: upstream.clone(),
            retry_after: Duration::from_millis(1500),
        };
        let problem = Problem::from(open);
        assert_eq!(problem.status, 503);
        assert_eq!(retry_after(&problem), Some("2"), "1.5 s rounds up");
        let closing = CallError::BreakerOpen {
            upstream: upstream.clone(),
            retry_after: Duration::from_millis(10),
        };
        assert_eq!(retry_after(&Problem::from(closing)), Some("1"), "never 0");

        assert_eq!(
            CallError::DeadlineExceeded {
                upstream: upstream.clone()
            }
            .status_code(),
            StatusCode::GATEWAY_TIMEOUT
        );
        let none = CallError::NoInstance { upstream };
        assert_eq!(none.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after(&Problem::from(none)), Some("1"));
    }

    fn retry_after(problem: &Problem) -> Option<&str> {
        problem
            .headers
            .iter()
            .find(|(name, _)| name == http::header::RETRY_AFTER)
            .and_then(|(_, value)| value.to_str().ok())
    }
}
