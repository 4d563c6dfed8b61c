//! 431 for requests with too many headers or too many header bytes.
//!
//! hyper itself refuses more than 100 headers (and header blocks beyond its
//! read buffer) with a bare 431; below those hard limits this layer
//! applies the configured, tighter ones and answers with problem+json.

use axum::extract::Request;
use http::StatusCode;
use shop_common::error::Problem;

use super::{Verdict, guard_layer, reject};

/// The limits of [`HeaderLimitLayer`].
#[derive(Debug, Clone, Copy)]
pub struct HeaderLimits {
    /// Most headers.
    pub count: usize,
    /// Most bytes of names and values together.
    pub bytes: usize,
}

guard_layer!(
    /// Refuses requests over the header limits with 431.
    HeaderLimitLayer,
    HeaderLimit,
    HeaderLimits,
    (),
    check
);

impl HeaderLimitLayer {
    /// A layer enforcing `limits`.
    pub fn new(limits: HeaderLimits) -> Self {
        Self { state: limits }
    }
}

fn check(limits: &HeaderLimits, request: &mut Request) -> Verdict<()> {
    let headers = request.headers();
    let too_large = |detail: String| {
        Verdict::Refuse(reject(
            "headers_too_large",
            Problem::with_detail(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, detail),
        ))
    };
    if headers.len() > limits.count {
        return too_large(format!("more than {} request headers", limits.count));
    }
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if bytes > limits.bytes {
        return too_large(format!(
            "request headers larger than {} bytes",
            limits.bytes
        ));
    }
    Verdict::Pass(())
}
