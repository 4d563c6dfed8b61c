//! The catalog service's errors and how each looks on the wire.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use shop_common::error::{FieldErrors, Problem};

use crate::store::StoreError;

/// `Result` with the service's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a catalog request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Query parameters failed to parse; parameter name to message.
    #[error("invalid parameters")]
    Validation(FieldErrors),
    /// No product has the requested id.
    #[error("product not found")]
    ProductNotFound,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Error {
    /// The HTTP status of this error.
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::ProductNotFound => StatusCode::NOT_FOUND,
            Self::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let problem = match self {
            Self::Validation(errors) => Problem::validation(errors),
            Self::ProductNotFound => Problem::with_detail(status, "no product has this id")
                .kind("/problems/product-not-found", "Product not found"),
            Self::Store(ref err) => Problem::internal(err),
        };
        problem.into_response()
    }
}
