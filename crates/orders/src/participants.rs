//! The saga's participants: catalog (stock reservations) and payments,
//! both called on their internal routes with the service credential. Every
//! call is idempotent by order id, so each is marked retryable on another
//! instance; balancing, deadlines, retries and the breaker are the upstream
//! client's.

use http::{Method, Request, StatusCode, header};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use shop_api::payments::{Authorize, Payment};
use shop_api::stock::{Reservation, ReservationLine, ReservationOutcome};
use shop_common::wire;
use shop_discovery::{CallError, Idempotent, RequestBody, UpstreamClient};

use crate::domain::{Order, OrderId};

/// Largest answer read; a cart of a few hundred lines, a payment or a
/// reservation outcome is far smaller.
const MAX_RESPONSE: usize = 1024 * 1024;

/// Why a participant's call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallFailed {
    /// No answer: no instance, timeout, breaker open, connection error.
    #[error(transparent)]
    Call(#[from] CallError),
    /// An answer with a status the call does not expect.
    #[error("{upstream} answered {status}: {detail}")]
    Status {
        /// The participant.
        upstream: &'static str,
        /// The status.
        status: StatusCode,
        /// The problem's `type` and `detail`, for the log.
        detail: String,
    },
    /// An unexpected body, or a request that could not be formed.
    #[error("unexpected {upstream} answer: {reason}")]
    Response {
        /// The participant.
        upstream: &'static str,
        /// What was wrong.
        reason: String,
    },
}

impl CallFailed {
    /// The status the participant answered, if it answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Status { status, .. } => Some(*status),
            Self::Call(_) | Self::Response { .. } => None,
        }
    }
}

/// Calls one participant's internal routes.
#[derive(Clone, Debug)]
struct Internal {
    name: &'static str,
    upstream: UpstreamClient,
    service_token: Option<SecretString>,
}

impl Internal {
    /// Sends `body` (if any) as JSON to `path` and reads a JSON answer: 200
    /// is the value, anything else a [`CallFailed::Status`].
    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: String,
        body: Option<&B>,
    ) -> Result<T, CallFailed> {
        let response_error = |reason: String| CallFailed::Response {
            upstream: self.name,
            reason,
        };
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(header::ACCEPT, "application/json");
        if let Some(token) = &self.service_token {
            builder = builder.header(wire::SERVICE_TOKEN, token.expose_secret());
        }
        let body = match body {
            Some(body) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                let json = serde_json::to_vec(body)
                    .map_err(|err| response_error(format!("encoding the request: {err}")))?;
                RequestBody::full(json)
            }
            None => RequestBody::empty(),
        };
        let mut request = builder
            .body(body)
            .map_err(|err| response_error(err.to_string()))?;
        request.extensions_mut().insert(Idempotent);
        exchange(&self.upstream, self.name, request).await
    }
}

/// Sends `request` to `upstream` (named `name` in errors) and reads its JSON
/// answer, bounded in size (and by the call's deadline): 200 is the value,
/// anything else a [`CallFailed::Status`] carrying the problem's type and
/// detail for the log. Every JSON call orders makes goes through here.
pub(crate) async fn exchange<T: DeserializeOwned>(
    upstream: &UpstreamClient,
    name: &'static str,
    request: Request<RequestBody>,
) -> Result<T, CallFailed> {
    let response_error = |reason: String| CallFailed::Response {
        upstream: name,
        reason,
    };
    let response = upstream.send(request).await?;
    let status = response.status();
    let body = response
        .into_body()
        .bytes(MAX_RESPONSE)
        .await
        .map_err(|err| response_error(format!("reading the body: {err}")))?;
    if status == StatusCode::OK {
        return serde_json::from_slice(&body)
            .map_err(|err| response_error(format!("the body: {err}")));
    }
    let problem: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    Err(CallFailed::Status {
        upstream: name,
        status,
        detail: format!(
            "{} {}",
            problem["type"].as_str().unwrap_or(""),
            problem["detail"].as_str().unwrap_or("")
        ),
    })
}

/// Catalog's stock reservations.
#[derive(Clone, Debug)]
pub struct CatalogClient(Internal);

impl CatalogClient {
    /// A client over an upstream client for the `catalog` service.
    pub fn new(upstream: UpstreamClient, service_token: Option<SecretString>) -> Self {
        Self(Internal {
            name: "catalog",
            upstream,
            service_token,
        })
    }

    /// Reserves `order`'s lines (all or none).
    ///
    /// # Errors
    /// [`CallFailed`] when catalog cannot be reached or does not answer 200.
    pub async fn reserve(&self, order: &Order) -> Result<ReservationOutcome, CallFailed> {
        let reservation = Reservation {
            lines: order
                .lines
                .iter()
                .map(|line| ReservationLine {
                    product_id: line.product_id.into(),
                    quantity: line.quantity,
                })
                .collect(),
        };
        self.0
            .call(
                Method::PUT,
                format!("/internal/reservations/{}", order.id),
                Some(&reservation),
            )
            .await
    }

    /// Releases what order `id` holds (or records that it holds nothing).
    ///
    /// # Errors
    /// [`CallFailed`] when catalog cannot be reached or does not answer 200.
    pub async fn release(&self, id: OrderId) -> Result<ReservationOutcome, CallFailed> {
        self.0
            .call::<(), _>(
                Method::POST,
                format!("/internal/reservations/{id}/release"),
                None,
            )
            .await
    }
}

/// What payments does with an order's payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentAction {
    /// Authorized → captured.
    Capture,
    /// Authorized → voided (or a voided record when there is none).
    Void,
    /// Captured → refunded.
    Refund,
}

impl PaymentAction {
    fn path(self) -> &'static str {
        match self {
            Self::Capture => "capture",
            Self::Void => "void",
            Self::Refund => "refund",
        }
    }
}

/// The payments service.
#[derive(Clone, Debug)]
pub struct PaymentsClient(Internal);

impl PaymentsClient {
    /// A client over an upstream client for the `payments` service.
    pub fn new(upstream: UpstreamClient, service_token: Option<SecretString>) -> Self {
        Self(Internal {
            name: "payments",
            upstream,
            service_token,
        })
    }

    /// Authorizes `order`'s total with `token`.
    ///
    /// # Errors
    /// [`CallFailed`] when payments cannot be reached or does not answer 200
    /// (a 502 is the provider failing; a 422 a token it does not know).
    pub async fn authorize(&self, order: &Order, token: &str) -> Result<Payment, CallFailed> {
        let body = Authorize {
            amount_cents: order.total_cents,
            currency: order.currency.clone(),
            payment_token: token.to_owned(),
        };
        self.0
            .call(
                Method::PUT,
                format!("/internal/payments/{}", order.id),
                Some(&body),
            )
            .await
    }

    /// Captures, voids or refunds order `id`'s payment.
    ///
    /// # Errors
    /// [`CallFailed`] when payments cannot be reached or does not answer 200
    /// (409: the payment is not in a state the action applies to).
    pub async fn act(&self, id: OrderId, action: PaymentAction) -> Result<Payment, CallFailed> {
        self.0
            .call::<(), _>(
                Method::POST,
                format!("/internal/payments/{id}/{}", action.path()),
                None,
            )
            .await
    }
}
