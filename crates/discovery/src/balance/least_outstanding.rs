//! Least outstanding requests: the available endpoint with the fewest
//! requests in flight, ties broken by scanning from a random position.
//! Exact, so O(n) per pick; `peak_ewma` is the O(1) alternative.

use std::sync::Arc;

use rand::Rng;

use super::Endpoint;

/// The least-outstanding policy.
pub(crate) struct LeastOutstanding;

impl LeastOutstanding {
    pub(crate) fn pick(
        &self,
        endpoints: &[Arc<Endpoint>],
        available: &impl Fn(usize) -> bool,
    ) -> Option<usize> {
        let len = endpoints.len();
        if len == 0 {
            return None;
        }
        let start = rand::rng().random_range(0..len);
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
}
