//! The users service's errors and how each looks on the wire.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use shop_common::auth::{TokenError, unauthorized};
use shop_common::error::{FieldErrors, Problem};

use crate::hashing::HashError;
use crate::store::StoreError;

/// `Result` with the service's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a users request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Fields failed to parse; field name to message.
    #[error("invalid fields")]
    Validation(FieldErrors),
    /// The username is registered already.
    #[error("username taken")]
    UsernameTaken,
    /// The email is registered already.
    #[error("email taken")]
    EmailTaken,
    /// Unknown login or wrong password: one answer for both.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Too many failed logins; retry after the given time.
    #[error("too many failed logins")]
    TooManyAttempts(Duration),
    /// The token's user no longer exists.
    #[error("user not found")]
    UserGone,
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
    /// Hashing failed.
    #[error(transparent)]
    Hash(#[from] HashError),
    /// Signing a token failed.
    #[error(transparent)]
    Token(#[from] TokenError),
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::UsernameTaken => Self::UsernameTaken,
            StoreError::EmailTaken => Self::EmailTaken,
            other => Self::Store(other),
        }
    }
}

impl Error {
    /// The HTTP status of this error.
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UsernameTaken | Self::EmailTaken => StatusCode::CONFLICT,
            Self::InvalidCredentials | Self::UserGone => StatusCode::UNAUTHORIZED,
            Self::TooManyAttempts(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Store(_) | Self::Hash(_) | Self::Token(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let problem = match self {
            Self::Validation(errors) => Problem::validation(errors),
            Self::UsernameTaken => {
                Problem::with_detail(status, "this username is already registered")
                    .kind("/problems/username-taken", "Username taken")
            }
            Self::EmailTaken => Problem::with_detail(status, "this email is already registered")
                .kind("/problems/email-taken", "Email taken"),
            Self::InvalidCredentials => unauthorized("invalid login or password"),
            Self::UserGone => unauthorized("the user of this token no longer exists"),
            Self::TooManyAttempts(wait) => {
                Problem::with_detail(status, "too many failed logins; try again later")
                    .retry_after(wait.as_secs_f64().ceil() as u64)
            }
            Self::Store(ref err) => Problem::internal(err),
            Self::Hash(ref err) => Problem::internal(err),
            Self::Token(ref err) => Problem::internal(err),
        };
        problem.into_response()
    }
}
