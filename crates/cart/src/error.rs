//! The cart service's errors and how each looks on the wire.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use shop_common::error::{FieldErrors, Problem};

use crate::catalog::CatalogError;
use crate::domain::{PricingError, ProductId};
use crate::store::StoreError;

/// `Result` with the service's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a cart request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Fields failed to parse; field name to message.
    #[error("invalid fields")]
    Validation(FieldErrors),
    /// The catalog does not know this product.
    #[error("unknown product {0}")]
    UnknownProduct(ProductId),
    /// The catalog could not be asked; prices are never guessed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The cart could not be priced.
    #[error(transparent)]
    Pricing(#[from] PricingError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Error {
    /// The HTTP status of this error.
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UnknownProduct(_) => StatusCode::NOT_FOUND,
            Self::Catalog(CatalogError::Call(err)) => err.status_code(),
            Self::Catalog(CatalogError::Response(_)) => StatusCode::BAD_GATEWAY,
            Self::Pricing(_) | Self::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let problem = match self {
            Self::Validation(errors) => Problem::validation(errors),
            Self::UnknownProduct(id) => {
                Problem::with_detail(status, format!("the catalog has no product {id}"))
                    .kind("/problems/unknown-product", "Unknown product")
            }
            Self::Catalog(CatalogError::Call(err)) => Problem::from(&*err),
            Self::Catalog(ref err @ CatalogError::Response(_)) => {
                tracing::warn!(error = %err, "catalog answered badly");
                Problem::with_detail(status, "the catalog answered badly; try again later")
            }
            Self::Pricing(ref err) => Problem::internal(err),
            Self::Store(ref err) => Problem::internal(err),
        };
        problem.into_response()
    }
}
