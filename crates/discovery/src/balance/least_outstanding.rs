//! Least outstanding requests: the available endpoint with the fewest
//! requests in flight, ties broken by scanning from a random position.
//! Exact, so O(n) per pick; `peak_ewma` is the O(1) alternative.

use std::sync::Arc;

use rand::Rng;

use super::Endpoint;

/// The least-outstanding pick: stateless, the counts live on the endpoints.
pub(crate) fn pick(
    endpoints: &[Arc<Endpoint>],
    available: &impl Fn(usize) -> bool,
) -> Option<usize> {
    let len = endpoints.len();
    let start = rand::rng().random_range(0..len.max(1));
    let mut best: Option<(usize, usize)> = None;
    for index in (0..len).map(|offset| (start + offset) % len) {
        if !available(index) {
            continue;
        }
        let load = endpoints[index].in_flight();
        if best.is_none_or(|(_, best_load)| load < best_load) {
            best = Some((index, load));
            if load == 0 {
                // Nothing beats an idle endpoint.
                break;
            }
        }
    }
    best.map(|(index, _)| index)
}
