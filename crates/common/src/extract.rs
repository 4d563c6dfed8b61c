//! Extractors whose rejections are problem+json, so a malformed request gets
//! the same error format as every other failure.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
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

/// Path parameters. A malformed value (such as an id that is not a UUID) is
/// 400 problem+json naming the parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(path_problem(&rejection)),
        }
    }
}

fn path_problem(rejection: &PathRejection) -> Problem {
    Problem::with_detail(axum::http::StatusCode::BAD_REQUEST, rejection.body_text())
}

/// Query parameters. A malformed query string is 400 problem+json.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(Problem::with_detail(
                axum::http::StatusCode::BAD_REQUEST,
                rejection.body_text(),
            )),
        }
    }
}
