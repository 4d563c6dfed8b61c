//! 413 for request bodies over the limit.
//!
//! A declared `Content-Length` over the limit is refused before anything
//! is read. A body without one (chunked) is wrapped in a length-limited
//! body, and a stream that runs over fails the read; the proxy turns that
//! failure into 413 too. A body with an acceptable `Content-Length` is not
//! wrapped: hyper already stops it at its declared length.

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use http::{StatusCode, header};
use http_body::Body as _;
use http_body_util::Limited;
use shop_common::error::Problem;

use super::{Verdict, guard_layer, reject};

guard_layer!(
    /// Refuses request bodies longer than the limit with 413.
    BodyLimitLayer,
    BodyLimit,
    usize,
    (),
    check
);

impl BodyLimitLayer {
    /// A layer refusing bodies longer than `max` bytes.
    pub fn new(max: usize) -> Self {
        Self { state: max }
    }
}

/// The problem for a body over `max` bytes.
pub fn too_large(max: usize) -> Response {
    reject(
        "body_too_large",
        Problem::with_detail(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {max} bytes"),
        ),
    )
}

fn check(max: &usize, request: &mut Request) -> Verdict<()> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    match declared {
        Some(length) if length > *max as u64 => Verdict::Refuse(too_large(*max)),
        Some(_) => Verdict::Pass(()),
        None if request.body().is_end_stream() => Verdict::Pass(()),
        None => {
            let body = std::mem::take(request.body_mut());
            *request.body_mut() = Body::new(Limited::new(body, *max));
            Verdict::Pass(())
        }
    }
}
