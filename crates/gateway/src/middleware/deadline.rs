//! The per-request deadline: a request must have its response headers
//! within `timeout`, or the gateway answers 504 itself. The same instant
//! goes into the request's extensions as a discovery [`Deadline`], so the
//! upstream call (and, through `x-shop-deadline-ms` / `grpc-timeout`, the
//! upstream service) gives up when nobody waits any more.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::response::Response;
use http::StatusCode;
use pin_project_lite::pin_project;
use shop_common::error::Problem;
use shop_discovery::Deadline;
use tokio::time::Timeout;

use super::reject;

super::layer!(
    /// Bounds each request by `timeout` and hands the deadline on.
    DeadlineLayer,
    DeadlineService,
    timeout: Duration
);

impl DeadlineLayer {
    /// A layer giving each request `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self { timeout }
    }
}

impl<S> tower::Service<Request> for DeadlineService<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = DeadlineFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        request
            .extensions_mut()
            .insert(Deadline::after(self.timeout));
        DeadlineFuture {
            inner: tokio::time::timeout(self.timeout, self.inner.call(request)),
        }
    }
}

pin_project! {
    /// The inner future, or 504 once the deadline passes.
    pub struct DeadlineFuture<F> {
        #[pin]
        inner: Timeout<F>,
    }
}

impl<F> Future for DeadlineFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().inner.poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(result)) => Poll::Ready(result),
            Poll::Ready(Err(_elapsed)) => Poll::Ready(Ok(reject(
                "deadline",
                Problem::with_detail(
                    StatusCode::GATEWAY_TIMEOUT,
                    "the request took longer than the gateway allows",
                )
                .kind(
                    shop_discovery::error::UPSTREAM_PROBLEM_TYPE,
                    "Upstream timeout",
                ),
            ))),
        }
    }
}
