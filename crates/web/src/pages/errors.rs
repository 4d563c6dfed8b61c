//! The pages of failures: not found, a wrong method, unavailable, a stale form.

use axum::response::Response;
use http::{HeaderValue, header};

use crate::error::Error;
use crate::views::{ErrorPage, Layout, render};

/// The page of `error`: "Page not found", "unavailable", "This form has
/// expired…", with the session's header.
pub fn error_page(error: &Error, signed_in: bool, csrf: &str) -> Response {
    let (title, message) = match error {
        Error::NotFound => (
            "Page not found",
            "There is no page at this address. It may have moved, or the link may be mistyped."
                .to_owned(),
        ),
        Error::MethodNotAllowed { .. } => (
            "Not allowed here",
            "This address cannot be used that way.".to_owned(),
        ),
        Error::Forbidden => (
            "This form has expired",
            "This form has expired or did not come from this shop. Go back, reload the page and try again."
                .to_owned(),
        ),
        Error::PayloadTooLarge => ("Form too large", "That form was too large to send.".to_owned()),
        Error::Unavailable { retry_after } => (
            "Temporarily unavailable",
            match retry_after {
                Some(secs) => format!(
                    "This part of the shop is unavailable right now. Please try again in {secs} seconds."
                ),
                None => "This part of the shop is unavailable right now. Please try again in a moment."
                    .to_owned(),
            },
        ),
        Error::Internal(_) | Error::LoginRequired => (
            "Something went wrong",
            "Something went wrong on our side. Please try again.".to_owned(),
        ),
    };
    let page = ErrorPage {
        layout: Layout::new(title, signed_in, csrf, None),
        message,
    };
    let mut response = render(&page);
    *response.status_mut() = error.status_code();
    match error {
        Error::Unavailable {
            retry_after: Some(secs),
        } => {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*secs));
        }
        Error::MethodNotAllowed { allow } => {
            if let Ok(value) = HeaderValue::from_str(allow) {
                response.headers_mut().insert(header::ALLOW, value);
            }
        }
        _ => {}
    }
    response
}

pub(super) async fn not_found() -> Error {
    Error::NotFound
}
