//! Forwarding a request to an upstream service, unchanged but for header
//! hygiene, through that service's [`UpstreamClient`](shop_discovery::UpstreamClient).
//!
//! Bodies stream both ways. One exception: the body of an idempotent
//! method (PUT, DELETE, …) is read into memory first, bounded by the body
//! limit, because a replayable body is what lets the upstream client retry
//! the request on another instance when one fails or goes away mid-run; a
//! streamed body is sent once and never retried. Those bodies are small
//! (a cart quantity), so the copy is cheap next to a failed request. POST
//! bodies stream and are not retried (unless nothing reached a server).

use std::error::Error as StdError;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode};
use http_body::Body as _;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use shop_common::error::Problem;
use shop_discovery::RequestBody;

use crate::headers::{self, ClientAddr};
use crate::middleware::body_limit;
use crate::state::{AppState, Upstream};

/// Forwards `request` to `upstream` and returns its response, or a
/// problem+json answer when no response could be had.
pub async fn forward(state: &AppState, upstream: Upstream, mut request: Request) -> Response {
    let addr = ClientAddr::of(&mut request, &state.client_trust);
    let (mut parts, body) = request.into_parts();
    headers::prepare_request(&mut parts.headers, &addr);
    let body = if replay_worthwhile(&parts.method) && !body.is_end_stream() {
        match Limited::new(body, state.body_limit).collect().await {
            Ok(collected) => RequestBody::full(collected.to_bytes()),
            Err(err) if caused_by::<LengthLimitError>(&*err) => {
                return body_limit::too_large(state.body_limit);
            }
            Err(err) => {
                tracing::debug!(error = %err, "reading the request body failed");
                return Problem::with_detail(
                    StatusCode::BAD_REQUEST,
                    "the request body could not be read",
                )
                .into_response();
            }
        }
    } else {
        RequestBody::streaming(body)
    };
    // The extensions go along: the upstream client reads the Deadline and
    // HashKey the edge layers put there.
    let request = Request::from_parts(parts, body);
    match state.upstreams.get(upstream).send(request).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            headers::strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, Body::new(body))
        }
        Err(err) if caused_by::<LengthLimitError>(&err) => body_limit::too_large(state.body_limit),
        Err(err) => Problem::from(err).into_response(),
    }
}

/// Methods whose requests the upstream client may retry, so that a
/// replayable body is worth buffering.
fn replay_worthwhile(method: &Method) -> bool {
    matches!(*method, Method::PUT | Method::DELETE | Method::OPTIONS)
}

/// Whether `E` is somewhere in the cause chain of `err`.
pub(crate) fn caused_by<E: StdError + 'static>(err: &(dyn StdError + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(err) = current {
        if err.is::<E>() {
            return true;
        }
        current = err.source();
    }
    false
}
