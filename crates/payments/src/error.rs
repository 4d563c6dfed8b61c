//! The payments service's errors and how each looks on the wire.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use shop_common::error::{FieldErrors, Problem};

use crate::domain::{Operation, OrderId, PaymentState, state_name};
use crate::provider::ProviderError;
use crate::store::StoreError;

/// `Result` with the service's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Seconds a caller is told to wait before retrying after the provider
/// failed.
const PROVIDER_RETRY_AFTER_SECS: u64 = 1;

/// Everything a payments request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Fields failed to parse; field name to message.
    #[error("invalid fields")]
    Validation(FieldErrors),
    /// The order has no payment.
    #[error("no payment for order {0}")]
    NotFound(OrderId),
    /// The payment's state refuses the operation.
    #[error("the payment of order {order} is {}; it cannot {}", state_name(*state), operation.name())]
    Conflict {
        /// The order.
        order: OrderId,
        /// What was asked.
        operation: Operation,
        /// Where the payment stands.
        state: PaymentState,
    },
    /// The provider failed; nothing was recorded.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Error {
    /// The HTTP status of this error.
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Provider(_) => StatusCode::BAD_GATEWAY,
            Self::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let problem = match self {
            Self::Validation(errors) => Problem::validation(errors),
            Self::NotFound(order) => {
                Problem::with_detail(status, format!("order {order} has no payment"))
                    .kind("/problems/payment-not-found", "Payment not found")
            }
            Self::Conflict {
                operation, state, ..
            } => {
                let hint = match (operation, state) {
                    (Operation::Void, PaymentState::Captured | PaymentState::Refunded) => {
                        "; a captured payment is given back by refund"
                    }
                    _ => "",
                };
                let detail = format!(
                    "the payment is {}: it cannot {}{hint}",
                    state_name(state),
                    operation.name()
                );
                Problem::with_detail(status, detail)
                    .kind("/problems/payment-state-conflict", "Payment state conflict")
            }
            Self::Provider(_) => Problem::with_detail(
                status,
                "the payment provider failed; nothing was recorded, try again",
            )
            .kind("/problems/provider-error", "Payment provider error")
            .retry_after(PROVIDER_RETRY_AFTER_SECS),
            Self::Store(ref err) => Problem::internal(err),
        };
        problem.into_response()
    }
}
