//! The storefront's [`Error`]: what a page can fail with, and the status
//! of each. Its `IntoResponse` only marks the response; the session
//! middleware ([`crate::session::guard`]) renders the page, because the
//! page's header depends on the session (signed in or not, the CSRF token
//! of the "Log out" form), which a bare error does not know.

use axum::response::{IntoResponse, Response};
use http::StatusCode;

use crate::api::ApiError;

/// `Result` with the storefront's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a page could not be shown as asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// No such page, product or order (404 "Page not found").
    #[error("not found")]
    NotFound,
    /// A route exists for the path, not for the method (405).
    #[error("method not allowed")]
    MethodNotAllowed {
        /// The methods the path has, for the `Allow` header.
        allow: String,
    },
    /// The page needs a session and there is none, or the API refused its
    /// token: a redirect to the login page, back here afterwards.
    #[error("login required")]
    LoginRequired,
    /// A post without the page's CSRF token, or from another site (403
    /// "This form has expired…").
    #[error("forbidden")]
    Forbidden,
    /// A form body above [`crate::session::FORM_LIMIT`] (413).
    #[error("form too large")]
    PayloadTooLarge,
    /// The API (or the part of it this page needs) is unavailable (503,
    /// "try again").
    #[error("the API is unavailable")]
    Unavailable {
        /// Seconds to wait, when the API said.
        retry_after: Option<u64>,
    },
    /// Anything else: logged; the page says something went wrong (500).
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// The status the page is answered with.
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::LoginRequired => StatusCode::SEE_OTHER,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// What an API failure means for a page that has no better use for it:
/// a 404 is this page's 404; a refused token means logging in again.
impl From<ApiError> for Error {
    fn from(err: ApiError) -> Self {
        match err {
            ApiError::Unavailable { retry_after } => Self::Unavailable { retry_after },
            ApiError::Unauthorized => Self::LoginRequired,
            ApiError::Problem(problem) if problem.status == StatusCode::NOT_FOUND => Self::NotFound,
            ApiError::Problem(problem) => Self::Internal(format!(
                "the API answered {}: {}",
                problem.status,
                problem.detail.unwrap_or_default()
            )),
            ApiError::Unexpected(what) => Self::Internal(what),
        }
    }
}

impl IntoResponse for Error {
    /// Marks the response with the error; [`crate::session::guard`] logs
    /// it and renders its page.
    fn into_response(self) -> Response {
        let mut response = (self.status_code(), self.to_string()).into_response();
        response.extensions_mut().insert(self);
        response
    }
}
