//! The gateway's edge layers, one per file. Each is a plain tower layer
//! whose future is a named type, so passing a request through the stack
//! allocates nothing per layer.
//!
//! | layer | answers |
//! | --- | --- |
//! | [`trace_context`] | — (sets `traceparent` when missing) |
//! | [`rate_limit`] | 429 + `Retry-After`, per client (IPv4 address, IPv6 /64); stricter for login and registration |
//! | [`shed`] | 503 + `Retry-After` above the concurrency limit |
//! | [`uri_limit`] | 414 for an overlong request target |
//! | [`header_limit`] | 431 for too many or too large headers |
//! | [`deadline`] | 504 when the response headers take too long |
//! | [`body_limit`] | 413 for an overlong body (declared or streamed) |
//! | [`auth`] | 401 for a missing or bad bearer token (protected routes) |
//! | [`cors`] | preflights, and CORS headers on answers |

pub mod auth;
pub mod body_limit;
pub mod cors;
pub mod deadline;
pub mod header_limit;
pub mod rate_limit;
pub mod shed;
pub mod trace_context;
pub mod uri_limit;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use shop_common::error::Problem;

/// Counter of requests the gateway answered itself, by `reason`.
pub const REJECTIONS: &str = "gateway_rejections_total";

/// Every `reason` of [`REJECTIONS`]: one per edge layer that answers itself.
pub const REJECTION_REASONS: [&str; 8] = [
    "unauthorized",
    "overloaded",
    "body_too_large",
    "headers_too_large",
    "uri_too_long",
    "deadline",
    "rate_limited",
    "login_rate_limited",
];

/// Creates every [`REJECTIONS`] series at zero, so that a dashboard or an
/// alert finds each reason on a fresh gateway (a series born at 1 shows no
/// increase to `rate()`).
pub fn register_rejections() {
    for reason in REJECTION_REASONS {
        metrics::counter!(REJECTIONS, "reason" => reason).increment(0);
    }
}

/// A problem response for a request refused at the edge, counted by reason.
pub(crate) fn reject(reason: &'static str, problem: Problem) -> Response {
    debug_assert!(
        REJECTION_REASONS.contains(&reason),
        "{reason} is not in REJECTION_REASONS"
    );
    metrics::counter!(REJECTIONS, "reason" => reason).increment(1);
    problem.into_response()
}

// pin-project-lite takes no doc comments on enum fields.
#[allow(missing_docs)]
mod guarded {
    use super::*;
    pin_project! {
        /// The future of a layer that either answers at once or passes the
        /// request on, keeping `guard` (a concurrency permit, say) until the
        /// inner service has answered.
        #[project = GuardedProj]
        pub enum Guarded<F, G> {
            /// Answered by the layer itself.
            Rejected { response: Option<Response> },
            /// Passed on to the inner service, with a guard held until it answers.
            Passed { #[pin] inner: F, guard: G },
        }
    }
}
pub use guarded::Guarded;
use guarded::GuardedProj;

impl<F, G> Guarded<F, G> {
    /// A request answered by the layer.
    pub fn rejected(response: Response) -> Self {
        Self::Rejected {
            response: Some(response),
        }
    }

    /// A request passed on.
    pub fn passed(inner: F, guard: G) -> Self {
        Self::Passed { inner, guard }
    }
}

impl<F, G> Future for Guarded<F, G>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            GuardedProj::Rejected { response } => {
                Poll::Ready(Ok(response.take().unwrap_or_default()))
            }
            GuardedProj::Passed { inner, .. } => inner.poll(cx),
        }
    }
}

/// What a check decides about a request.
pub enum Verdict<G> {
    /// Pass it on, holding `G` until the inner service answers.
    Pass(G),
    /// Answer it with this response.
    Refuse(Response),
}

/// Defines a layer `$layer` holding one `$field` and its service
/// `$service`, which holds the inner service and a clone of the field;
/// the caller writes the service's `tower::Service` impl.
macro_rules! layer {
    ($(#[$doc:meta])* $layer:ident, $service:ident, $field:ident: $ty:ty) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $layer {
            $field: $ty,
        }

        impl<S> tower::Layer<S> for $layer {
            type Service = $service<S>;

            fn layer(&self, inner: S) -> Self::Service {
                $service {
                    inner,
                    $field: self.$field.clone(),
                }
            }
        }

        /// The service of the layer of the same name.
        #[derive(Clone)]
        pub struct $service<S> {
            inner: S,
            $field: $ty,
        }
    };
}
pub(crate) use layer;

/// Defines a layer `$layer` holding `$state` and its service `$service`
/// whose `call` runs `$check(&state, &mut request) -> Verdict<G>`.
macro_rules! guard_layer {
    ($(#[$doc:meta])* $layer:ident, $service:ident, $state:ty, $guard:ty, $check:path) => {
        $crate::middleware::layer!($(#[$doc])* $layer, $service, state: $state);

        impl<S> tower::Service<axum::extract::Request> for $service<S>
        where
            S: tower::Service<
                    axum::extract::Request,
                    Response = axum::response::Response,
                    Error = std::convert::Infallible,
                >,
        {
            type Response = axum::response::Response;
            type Error = std::convert::Infallible;
            type Future = $crate::middleware::Guarded<S::Future, $guard>;

            fn poll_ready(
                &mut self,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Result<(), Self::Error>> {
                self.inner.poll_ready(cx)
            }

            fn call(&mut self, mut request: axum::extract::Request) -> Self::Future {
                match $check(&self.state, &mut request) {
                    $crate::middleware::Verdict::Pass(guard) => {
                        $crate::middleware::Guarded::passed(self.inner.call(request), guard)
                    }
                    $crate::middleware::Verdict::Refuse(response) => {
                        $crate::middleware::Guarded::rejected(response)
                    }
                }
            }
        }
    };
}
pub(crate) use guard_layer;
