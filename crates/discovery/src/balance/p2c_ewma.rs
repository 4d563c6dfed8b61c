//! Power of two choices over peak-EWMA latency (finagle, linkerd): draw two
//! distinct random endpoints and send to the cheaper, where cost is the
//! latency estimate × (requests in flight + 1). O(1) per pick, and a slow
//! or overloaded endpoint quickly loses traffic without being starved: its
//! estimate decays while it is idle, so it is probed again.

use std::sync::Arc;

use rand::Rng;

use super::{Endpoint, first_available_from, now_nanos};

/// The peak-EWMA pick: stateless, the estimates live on the endpoints.
pub(crate) fn pick(
    endpoints: &[Arc<Endpoint>],
    available: &impl Fn(usize) -> bool,
) -> Option<usize> {
    let len = endpoints.len();
    match len {
        0 => return None,
        1 => return available(0).then_some(0),
        _ => {}
    }
    let mut rng = rand::rng();
    let a = rng.random_range(0..len);
    let mut b = rng.random_range(0..len - 1);
    if b >= a {
        b += 1;
    }
    let a = if available(a) {
        a
    } else {
        first_available_from(a, len, available)?
    };
    let Some(b) = (if available(b) && b != a {
        Some(b)
    } else {
        first_available_from(b, len, &|index| index != a && available(index))
    }) else {
        return Some(a);
    };
    let now = now_nanos();
    let cost = |index: usize| {
        let endpoint = &endpoints[index];
        endpoint.latency_nanos_at(now) * (endpoint.in_flight() as f64 + 1.0)
    };
    Some(if cost(b) < cost(a) { b } else { a })
}
