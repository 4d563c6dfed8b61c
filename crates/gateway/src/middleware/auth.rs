//! Bearer tokens on protected routes are verified at the edge, so a bad
//! token gets 401 without costing a service anything. (Services verify
//! again themselves; a service reached directly is just as safe.)
//!
//! A verified request carries the caller's [`HashKey`] (its user id), which
//! a `consistent_hash` upstream routes on. A token signed by a key not
//! seen yet refreshes the keys from the users service's JWKS first (at most
//! every 5 s); only that rare path allocates.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::Response;
use futures::future::BoxFuture;
use pin_project_lite::pin_project;
use shop_common::auth::{Claims, TokenError, TokenVerifier, unauthorized};
use shop_common::wire::bearer_token;
use shop_discovery::HashKey;

use super::reject;

super::layer!(
    /// Verifies the bearer token of every request it sees.
    AuthLayer,
    Auth,
    verifier: TokenVerifier
);

impl AuthLayer {
    /// A layer verifying with `verifier`.
    pub fn new(verifier: TokenVerifier) -> Self {
        Self { verifier }
    }
}

fn refused(detail: &str) -> Response {
    reject("unauthorized", unauthorized(detail))
}

fn admit(request: &mut Request, claims: &Claims) {
    request
        .extensions_mut()
        .insert(HashKey::new(claims.sub.as_bytes()));
}

impl<S> tower::Service<Request> for Auth<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = AuthFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let Some(token) = bearer_token(request.headers()) else {
            return AuthFuture::ready(refused("missing bearer token"));
        };
        match self.verifier.verify(token) {
            Ok(claims) => {
                admit(&mut request, &claims);
                AuthFuture::Inner {
                    inner: self.inner.call(request),
                }
            }
            Err(TokenError::UnknownKey(_)) => {
                // Take the service that was driven to readiness; leave a clone.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let verifier = self.verifier.clone();
                AuthFuture::Refresh {
                    future: Box::pin(async move {
                        let verified = match bearer_token(request.headers()) {
                            Some(token) => verifier.verify_fresh(token).await,
                            None => Err(TokenError::Invalid("no token".to_owned())),
                        };
                        match verified {
                            Ok(claims) => {
                                admit(&mut request, &claims);
                                inner.call(request).await
                            }
                            Err(err) => {
                                tracing::debug!(error = %err, "rejected token");
                                Ok(refused("invalid or expired token"))
                            }
                        }
                    }),
                }
            }
            Err(err) => {
                tracing::debug!(error = %err, "rejected token");
                AuthFuture::ready(refused("invalid or expired token"))
            }
        }
    }
}

// pin-project-lite takes no doc comments on enum fields.
#[allow(missing_docs)]
mod future {
    use super::*;
    pin_project! {
        /// The future of [`Auth`].
        #[project = AuthProj]
        pub enum AuthFuture<F> {
            /// Refused at once.
            Ready { response: Option<Response> },
            /// Verified; the inner service answers.
            Inner { #[pin] inner: F },
            /// The keys are being refreshed first.
            Refresh { future: BoxFuture<'static, Result<Response, Infallible>> },
        }
    }
}
pub use future::AuthFuture;
use future::AuthProj;

impl<F> AuthFuture<F> {
    fn ready(response: Response) -> Self {
        Self::Ready {
            response: Some(response),
        }
    }
}

impl<F> Future for AuthFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            AuthProj::Ready { response } => Poll::Ready(Ok(response.take().unwrap_or_default())),
            AuthProj::Inner { inner } => inner.poll(cx),
            AuthProj::Refresh { future } => future.as_mut().poll(cx),
        }
    }
}
