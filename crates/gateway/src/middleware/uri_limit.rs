//! 414 for a request target (path and query) longer than the limit: such
//! URIs are either mistakes or probes, and every upstream would have to
//! buffer them again.

use axum::extract::Request;
use http::StatusCode;
use shop_common::error::Problem;

use super::{Verdict, guard_layer, reject};

guard_layer!(
    /// Refuses request targets longer than `max` bytes with 414.
    UriLimitLayer,
    UriLimit,
    usize,
    (),
    check
);

impl UriLimitLayer {
    /// A layer refusing targets longer than `max` bytes.
    pub fn new(max: usize) -> Self {
        Self { state: max }
    }
}

fn check(max: &usize, request: &mut Request) -> Verdict<()> {
    let len = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if len > *max {
        return Verdict::Refuse(reject(
            "uri_too_long",
            Problem::with_detail(
                StatusCode::URI_TOO_LONG,
                format!("the request target is longer than {max} bytes"),
            ),
        ));
    }
    Verdict::Pass(())
}
