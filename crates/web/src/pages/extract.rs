//! What handlers read from a request: form bodies, path ids and queries,
//! each refused as a page of ours (403, 404) rather than axum's plain-text
//! rejections.

use axum::Form;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// A form body; a body that is no form is refused like a forged one.
pub struct Fields<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequest<S> for Fields<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self, Error> {
        Form::<T>::from_request(request, state)
            .await
            .map(|Form(fields)| Self(fields))
            .map_err(|_| Error::Forbidden)
    }
}

/// A path parameter (an id): one that does not parse is no page here
/// (404), never axum's plain-text rejection.
pub struct Param<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Param<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| Self(value))
            .map_err(|_| Error::NotFound)
    }
}

/// A page's query: one that does not parse (a field twice) is no page
/// here (404), never axum's plain-text rejection.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Self(value))
            .map_err(|_| Error::NotFound)
    }
}

/// Whether `cursor` can be a page cursor of the API (base64url, or the
/// orders' `o1.` and hex): anything else is no page of this site.
pub(super) fn is_cursor_shaped(cursor: &str) -> bool {
    !cursor.is_empty()
        && cursor.len() <= 64
        && cursor
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
}

/// The query of a paged list.
#[derive(Debug, Deserialize)]
pub(super) struct PageQuery {
    cursor: Option<String>,
}

impl PageQuery {
    pub(super) fn cursor(&self) -> Result<Option<&str>> {
        match self.cursor.as_deref() {
            None => Ok(None),
            Some(cursor) if is_cursor_shaped(cursor) => Ok(Some(cursor)),
            Some(_) => Err(Error::NotFound),
        }
    }
}
