//! The cart client: reads the caller's cart with the caller's token, and
//! (for the relay) takes an order's lines out of a cart through cart's
//! internal route. Balancing, deadlines, retries and the breaker are the
//! upstream client's.

use http::{Request, StatusCode, header};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
/// The caller's priced cart as cart serves it (the API's wire type; unknown
/// fields are ignored).
pub use shop_api::cart::Cart;
use shop_common::wire;
use shop_discovery::{CallError, Deadline, Idempotent, RequestBody, UpstreamClient};

use crate::participants::{CallFailed, exchange};
use uuid::Uuid;

/// Why the cart could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum CartError {
    /// The call failed: no instance, timeout, breaker open, connection error.
    #[error(transparent)]
    Call(#[from] CallError),
    /// Cart refused the caller's token (expired between our check and cart's).
    #[error("cart refused the caller's token")]
    Unauthorized,
    /// Cart refused the service credential on its internal route.
    #[error("cart refused the service credential (internal.service_token)")]
    ServiceRefused,
    /// Cart answered with a status the call does not expect.
    #[error("cart answered {0}")]
    Status(StatusCode),
    /// Cart answered with an unexpected body, or the request could not be
    /// formed.
    #[error("unexpected cart response: {0}")]
    Response(String),
}

impl CartError {
    /// The status cart answered with, when the call failed on one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Unauthorized | Self::ServiceRefused => Some(StatusCode::UNAUTHORIZED),
            Self::Status(status) => Some(*status),
            Self::Call(_) | Self::Response(_) => None,
        }
    }

    /// Whether sending the same request again cannot succeed: cart refused
    /// it with a 4xx (a bad credential, a body it rejects, a route it does
    /// not have), or it cannot be formed at all. 408 and 429 are the
    /// exceptions among 4xx: they say "not now", as a 5xx, a timeout or no
    /// instance do, and such failures are worth retrying.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Call(CallError::InvalidRequest { .. }) => true,
            _ => self.status().is_some_and(|status| {
                status.is_client_error()
                    && status != StatusCode::REQUEST_TIMEOUT
                    && status != StatusCode::TOO_MANY_REQUESTS
            }),
        }
    }
}

/// The body of `POST /internal/carts/{user_id}/order-removals`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRemoval {
    /// The order (makes the removal idempotent).
    pub order_id: Uuid,
    /// The version of the cart the order was made from: cart leaves alone
    /// any line changed after it (a line the shopper set again after
    /// ordering keeps its new quantity). Absent in rows written before
    /// orders sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cart_version: Option<i64>,
    /// What was ordered.
    pub lines: Vec<RemovalLine>,
}

/// One ordered line to take out of a cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovalLine {
    /// The product.
    pub product_id: Uuid,
    /// How many were ordered.
    pub quantity: i64,
}

/// Cart's answer to an order removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Removed {
    /// False when the order's lines had been removed before (a repeat).
    pub applied: bool,
    /// The cart's version afterwards.
    pub version: i64,
}

/// Calls the cart service.
#[derive(Clone, Debug)]
pub struct CartClient {
    upstream: UpstreamClient,
}

impl CartClient {
    /// A client over an upstream client for the `cart` service.
    pub fn new(upstream: UpstreamClient) -> Self {
        Self { upstream }
    }

    /// The cart of the user whose access token is `token`, bounded by the
    /// caller's `deadline` when there is one.
    ///
    /// # Errors
    /// [`CartError`] when cart cannot be reached, refuses the token or
    /// answers badly.
    pub async fn cart(&self, token: &str, deadline: Option<Deadline>) -> Result<Cart, CartError> {
        let mut request = Request::get("/api/cart")
            .header(header::ACCEPT, "application/json")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(RequestBody::empty())
            .map_err(|err| CartError::Response(err.to_string()))?;
        if let Some(deadline) = deadline {
            request.extensions_mut().insert(deadline);
        }
        self.exchange(request, CartError::Unauthorized).await
    }

    /// Takes the lines of an order out of `user`'s cart (idempotent by order
    /// id, so it is marked retryable on another instance). `body` is the
    /// JSON of an [`OrderRemoval`].
    ///
    /// # Errors
    /// [`CartError`] when cart cannot be reached or does not answer 200;
    /// [`CartError::is_permanent`] tells a refusal from a failure worth
    /// retrying.
    pub async fn remove_order_lines(
        &self,
        user: &str,
        body: String,
        service_token: Option<&SecretString>,
    ) -> Result<Removed, CartError> {
        let mut builder = Request::post(format!("/internal/carts/{user}/order-removals"))
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json");
        if let Some(token) = service_token {
            builder = builder.header(wire::SERVICE_TOKEN, token.expose_secret());
        }
        let mut request = builder
            .body(RequestBody::full(body))
            .map_err(|err| CartError::Response(err.to_string()))?;
        request.extensions_mut().insert(Idempotent);
        self.exchange(request, CartError::ServiceRefused).await
    }

    /// Sends `request` and reads cart's JSON answer ([`exchange`]): 401 is
    /// `refused`, any other status but 200 a [`CartError::Status`].
    async fn exchange<T: DeserializeOwned>(
        &self,
        request: Request<RequestBody>,
        refused: CartError,
    ) -> Result<T, CartError> {
        exchange(&self.upstream, "cart", request)
            .await
            .map_err(|err| match err {
                CallFailed::Call(err) => CartError::Call(err),
                CallFailed::Status {
                    status: StatusCode::UNAUTHORIZED,
                    ..
                } => refused,
                CallFailed::Status { status, .. } => CartError::Status(status),
                CallFailed::Response { reason, .. } => CartError::Response(reason),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_permanent_and_not_now_is_transient() {
        for status in [400, 401, 403, 404, 409, 413, 422] {
            let status = StatusCode::from_u16(status).expect("status");
            assert!(CartError::Status(status).is_permanent(), "{status}");
        }
        assert!(CartError::ServiceRefused.is_permanent());
        for status in [408, 429, 500, 502, 503, 504] {
            let status = StatusCode::from_u16(status).expect("status");
            assert!(!CartError::Status(status).is_permanent(), "{status}");
        }
        let upstream: std::sync::Arc<str> = "cart".into();
        assert!(
            !CartError::Call(CallError::NoInstance {
                upstream: upstream.clone()
            })
            .is_permanent()
        );
        assert!(!CartError::Response("cart body: eof".to_owned()).is_permanent());
        assert!(
            CartError::Call(CallError::InvalidRequest {
                upstream,
                reason: "bad path".to_owned()
            })
            .is_permanent()
        );
    }
}
