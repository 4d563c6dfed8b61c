//! The orders service's errors and the gRPC status each becomes. Messages
//! are for the caller; causes (database, cart internals) go to the log only.

use shop_common::error::ErrorChain;
use shop_discovery::CallError;
use tonic::{Code, Status};

use crate::cart::CartError;
use crate::domain::OrderStatus;
use crate::placement::PlaceError;
use crate::store::StoreError;

/// `Result` with the service's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything an orders call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field failed to parse; the message names the field.
    #[error("{0}")]
    InvalidArgument(String),
    /// No token, or a token that does not verify.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// No such order of the caller (another user's order included).
    #[error("order not found")]
    NotFound,
    /// Only a confirmed order can be cancelled.
    #[error("the order is {} and cannot be cancelled", .0.as_str())]
    NotCancellable(OrderStatus),
    /// The order could not be placed.
    #[error(transparent)]
    Place(#[from] PlaceError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Error {
    /// The gRPC code of this error.
    pub fn code(&self) -> Code {
        match self {
            Self::InvalidArgument(_) => Code::InvalidArgument,
            Self::Unauthenticated(_) | Self::Place(PlaceError::Cart(CartError::Unauthorized)) => {
                Code::Unauthenticated
            }
            Self::NotFound => Code::NotFound,
            Self::Place(PlaceError::EmptyCart) | Self::NotCancellable(_) => {
                Code::FailedPrecondition
            }
            Self::Place(PlaceError::Cart(CartError::Call(
                CallError::Timeout { .. } | CallError::DeadlineExceeded { .. },
            ))) => Code::DeadlineExceeded,
            Self::Place(PlaceError::Cart(CartError::Call(CallError::InvalidRequest {
                ..
            })))
            | Self::Place(PlaceError::Store(_) | PlaceError::KeyWithoutOrder)
            | Self::Store(_) => Code::Internal,
            Self::Place(PlaceError::Cart(_)) => Code::Unavailable,
        }
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let code = err.code();
        let message = match &err {
            Error::InvalidArgument(_)
            | Error::Unauthenticated(_)
            | Error::NotFound
            | Error::Place(PlaceError::EmptyCart)
            | Error::NotCancellable(_) => err.to_string(),
            Error::Place(PlaceError::Cart(CartError::Unauthorized)) => {
                "invalid or expired token".to_owned()
            }
            Error::Place(PlaceError::Cart(cause)) if code == Code::DeadlineExceeded => {
                tracing::warn!(error = %ErrorChain(cause), "cart did not answer in time");
                "the cart service did not answer in time; no order was placed".to_owned()
            }
            Error::Place(PlaceError::Cart(cause)) if code == Code::Unavailable => {
                tracing::warn!(error = %ErrorChain(cause), "cart unavailable");
                "the cart service is unavailable; no order was placed, try again later".to_owned()
            }
            Error::Place(PlaceError::Cart(cause)) => {
                tracing::error!(error = %ErrorChain(cause), "cart call failed");
                "internal error".to_owned()
            }
            Error::Place(cause) => {
                tracing::error!(error = %ErrorChain(cause), "placing an order failed");
                "internal error".to_owned()
            }
            Error::Store(cause) => {
                tracing::error!(error = %ErrorChain(cause), "orders store failed");
                "internal error".to_owned()
            }
        };
        Status::new(code, message)
    }
}
