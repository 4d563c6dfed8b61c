//! W3C trace context: every request leaves the gateway with a valid
//! `traceparent`. The gateway's server span (`observe`, outside these
//! layers) has joined a valid incoming one, which is kept; a missing or
//! malformed one is replaced by the server span's own, so the request's
//! headers, the gateway's logs and every span downstream share one trace
//! id (the upstream client then passes on its own call span as the
//! parent). Without a tracing layer a random one is made up instead, so
//! the request can still be followed through every service's logs
//! together with its `x-request-id`.

use std::task::{Context, Poll};

use axum::extract::Request;
use http::{HeaderMap, HeaderName, HeaderValue};

/// The W3C trace context header.
pub const TRACEPARENT: HeaderName = shop_common::trace::TRACEPARENT;

/// Sets `traceparent` when the request has no valid one.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceContextLayer;

impl<S> tower::Layer<S> for TraceContextLayer {
    type Service = TraceContext<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TraceContext { inner }
    }
}

/// The service of [`TraceContextLayer`].
#[derive(Debug, Clone)]
pub struct TraceContext<S> {
    inner: S,
}

impl<S> tower::Service<Request> for TraceContext<S>
where
    S: tower::Service<Request>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        ensure(request.headers_mut());
        self.inner.call(request)
    }
}

/// Unless `headers` hold a valid `traceparent`, inserts the current span's
/// (the gateway's server span), or a new one when there is no traced span.
pub fn ensure(headers: &mut HeaderMap) {
    if headers
        .get(&TRACEPARENT)
        .is_some_and(|value| is_valid(value.as_bytes()))
    {
        return;
    }
    let current = shop_common::trace::current_traceparent()
        .and_then(|traceparent| HeaderValue::try_from(traceparent).ok());
    headers.insert(TRACEPARENT, current.unwrap_or_else(new_traceparent));
}

/// A new sampled `traceparent` with random, non-zero ids.
pub fn new_traceparent() -> HeaderValue {
    let trace_id = rand::random::<u128>().max(1);
    let span_id = rand::random::<u64>().max(1);
    let value = format!("00-{trace_id:032x}-{span_id:016x}-01");
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `version-traceid-parentid-flags`: 2, 32, 16 and 2 lowercase hex digits;
/// version `ff` and all-zero ids are invalid.
fn is_valid(value: &[u8]) -> bool {
    if value.len() < 55 {
        return false;
    }
    let hex = |bytes: &[u8]| {
        bytes
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    };
    let zero = |bytes: &[u8]| bytes.iter().all(|b| *b == b'0');
    let (version, trace, span, flags) =
        (&value[0..2], &value[3..35], &value[36..52], &value[53..55]);
    value[2] == b'-'
        && value[35] == b'-'
        && value[52] == b'-'
        && hex(version)
        && version != b"ff"
        // Version 00 has exactly four fields; later versions may add more.
        && (value.len() == 55 || (version != b"00" && value[55] == b'-'))
        && hex(trace)
        && !zero(trace)
        && hex(span)
        && !zero(span)
        && hex(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_traceparents_are_kept_and_others_replaced() {
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, HeaderValue::from_static(valid));
        ensure(&mut headers);
        assert_eq!(headers[TRACEPARENT], valid);

        for invalid in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "garbage",
        ] {
            headers.insert(TRACEPARENT, HeaderValue::from_static(invalid));
            ensure(&mut headers);
            let new = headers[TRACEPARENT].as_bytes().to_vec();
            assert_ne!(new, invalid.as_bytes());
            assert!(is_valid(&new), "{}", String::from_utf8_lossy(&new));
        }
        headers.clear();
        ensure(&mut headers);
        assert!(is_valid(headers[TRACEPARENT].as_bytes()));
    }

    /// Inside the gateway's server span, a request without a trace context
    /// gets the span's own: one trace id from the edge on.
    #[test]
    fn a_missing_traceparent_becomes_the_server_spans() {
        shop_common::telemetry::init();
        let span = tracing::info_span!("request", service = "gateway");
        let expected = span
            .in_scope(shop_common::trace::current_traceparent)
            .expect("a traced span");
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, HeaderValue::from_static("garbage"));
        span.in_scope(|| ensure(&mut headers));
        assert_eq!(headers[TRACEPARENT], expected.as_str());
        assert!(is_valid(expected.as_bytes()), "{expected}");
    }
}
