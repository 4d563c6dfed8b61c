//! Errors on the wire: RFC 9457 problem details (`application/problem+json`).
//!
//! Every 4xx and 5xx a ferroshop service sends has this shape. A 5xx body never
//! says anything about internals: [`Problem::internal`] logs the cause chain
//! and answers with a generic text.

use std::collections::BTreeMap;
use std::fmt;

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// The media type of a problem body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Type URI for validation failures; the body then carries per-field `errors`.
pub const VALIDATION_TYPE: &str = "/problems/validation";

/// A problem details object (RFC 9457), the body of every error response;
/// the OpenAPI document's `Problem` schema is derived from this type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI reference naming the kind of problem; `about:blank` when the
    /// status says it all.
    #[serde(rename = "type")]
    #[schema(example = "/problems/validation")]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// What went wrong with this request, for a person to read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Field name to message, on validation failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<BTreeMap<String, String>>,
    /// Extra response headers (`Retry-After`, `WWW-Authenticate`); not part of the body.
    #[serde(skip)]
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Problem {
    /// A problem of type `about:blank` whose title is the status's reason phrase.
    pub fn new(status: StatusCode) -> Self {
        Self {
            kind: "about:blank".to_owned(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: None,
            errors: None,
            headers: Vec::new(),
        }
    }

    /// A problem with a detail text.
    pub fn with_detail(status: StatusCode, detail: impl Into<String>) -> Self {
        Self::new(status).detail(detail)
    }

    /// 422 with a message per invalid field.
    pub fn validation(errors: BTreeMap<String, String>) -> Self {
        Self {
            kind: VALIDATION_TYPE.to_owned(),
            title: "Your request parameters didn't validate".to_owned(),
            detail: Some(format!("{} field(s) are invalid", errors.len())),
            errors: Some(errors),
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY)
        }
    }

    /// 500 with a generic body; logs `err` and its whole cause chain.
    pub fn internal(err: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %ErrorChain(err), "internal error");
        Self::with_detail(
            StatusCode::INTERNAL_SERVER_ERROR,
            "an unexpected error occurred",
        )
    }

    /// Sets the detail text.
    #[must_use]
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Sets a specific problem type and title.
    #[must_use]
    pub fn kind(mut self, kind: impl Into<String>, title: impl Into<String>) -> Self {
        self.kind = kind.into();
        self.title = title.into();
        self
    }

    /// Adds `Retry-After: secs` (at least one second).
    #[must_use]
    pub fn retry_after(self, secs: u64) -> Self {
        self.header(header::RETRY_AFTER, HeaderValue::from(secs.max(1)))
    }

    /// Adds a response header.
    #[must_use]
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The status as a [`StatusCode`].
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.title)?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))],
            body,
        )
            .into_response();
        for (name, value) in self.headers {
            response.headers_mut().append(name, value);
        }
        response
    }
}

/// Per-field messages of a request that did not validate, for
/// [`Problem::validation`]: each value is parsed with [`field`], which
/// records why it was rejected under its name, so that one answer names
/// every invalid field.
pub type FieldErrors = BTreeMap<String, String>;

/// The parsed value, or `None` with the message recorded in `errors` under
/// `name`.
pub fn field<T>(errors: &mut FieldErrors, name: &str, result: Result<T, String>) -> Option<T> {
    result
        .map_err(|message| errors.insert(name.to_owned(), message))
        .ok()
}

/// Displays an error and its sources on one line: `outer: middle: root`.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(err) = source {
            write!(f, ": {err}")?;
            source = err.source();
        }
        Ok(())
    }
}

/// Fallback for unknown routes: 404 problem+json.
pub async fn not_found() -> Problem {
    Problem::with_detail(StatusCode::NOT_FOUND, "no such resource")
}

/// Fallback for a known route called with the wrong method: 405 problem+json.
pub async fn method_not_allowed() -> Problem {
    Problem::with_detail(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this resource",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_problems_carry_field_errors() {
        let problem =
            Problem::validation(BTreeMap::from([("email".to_owned(), "invalid".to_owned())]));
        let body = serde_json::to_value(&problem).expect("serializable");
        assert_eq!(body["status"], 422);
        assert_eq!(body["type"], VALIDATION_TYPE);
        assert_eq!(body["errors"]["email"], "invalid");
    }

    #[test]
    fn fields_record_why_they_were_rejected() {
        let mut errors = FieldErrors::new();
        assert_eq!(field(&mut errors, "limit", Ok::<_, String>(3)), Some(3));
        assert_eq!(
            field::<u32>(&mut errors, "cursor", Err("malformed".to_owned())),
            None
        );
        assert_eq!(
            errors,
            BTreeMap::from([("cursor".to_owned(), "malformed".to_owned())])
        );
    }

    #[test]
    fn internal_problems_hide_the_cause() {
        let cause = std::io::Error::other("password=hunter2 at db.internal");
        let problem = Problem::internal(&cause);
        assert_eq!(problem.status, 500);
        assert!(!problem.to_string().contains("hunter2"));
    }

    #[test]
    fn responses_use_the_problem_media_type_and_extra_headers() {
        let response = Problem::new(StatusCode::TOO_MANY_REQUESTS)
            .retry_after(7)
            .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
    }
}
