//! Extractors whose rejections are problem+json, so a malformed request gets
//! the same error format as every other failure.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::Problem;

/// A JSON request body. Rejections: 400 malformed JSON, 415 wrong or missing
/// content type, 413 body over the router's limit, 422 well-formed JSON of the
/// wrong shape (the detail names the field).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_problem(&rejection)),
        }
    }
}

fn json_problem(rejection: &JsonRejection) -> Problem {
    let detail = match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            "expected a request with `Content-Type: application/json`".to_owned()
        }
        _ => rejection.body_text(),
    };
    Problem::with_detail(rejection.status(), detail)
}

/// An extractor over the request's parts: axum's `$inner` with its
/// rejection turned into a 400 problem naming what was malformed.
macro_rules! parts_extractor {
    ($(#[$doc:meta])* $name:ident wraps $inner:ident where T: $($bound:tt)+) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $name<T>(pub T);

        impl<T, S> FromRequestParts<S> for $name<T>
        where
            T: $($bound)+,
            S: Send + Sync,
        {
            type Rejection = Problem;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &S,
            ) -> Result<Self, Self::Rejection> {
                axum::extract::$inner::<T>::from_request_parts(parts, state)
                    .await
                    .map(|axum::extract::$inner(value)| Self(value))
                    .map_err(|rejection| {
                        Problem::with_detail(StatusCode::BAD_REQUEST, rejection.body_text())
                    })
            }
        }
    };
}

parts_extractor!(
    /// Path parameters. A malformed value (such as an id that is not a
    /// UUID) is 400 problem+json naming the parameter.
    Path wraps Path where T: DeserializeOwned + Send
);
parts_extractor!(
    /// Query parameters. A malformed query string is 400 problem+json.
    Query wraps Query where T: DeserializeOwned
);
