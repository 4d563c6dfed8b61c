//! Smooth weighted round robin, nginx's algorithm: on each pick every
//! available endpoint's current weight grows by its weight, the largest
//! wins and gives back the total. With weights 5:1:1 this yields
//! `a a b a c a a`: exact proportions over every cycle, and the light
//! endpoints are interleaved instead of following a burst of the heavy one.

use std::sync::{Arc, Mutex, PoisonError};

use super::Endpoint;

/// The current weights, one per endpoint (same order as the snapshot).
pub(crate) struct SmoothWeighted {
    weights: Box<[i64]>,
    current: Mutex<Box<[i64]>>,
}

impl SmoothWeighted {
    pub(crate) fn new(endpoints: &[Arc<Endpoint>]) -> Self {
        let weights: Box<[i64]> = endpoints
            .iter()
            .map(|e| i64::from(e.instance().weight()))
            .collect();
        let current = Mutex::new(vec![0; weights.len()].into_boxed_slice());
        Self { weights, current }
    }

    pub(crate) fn pick(
        &self,
        endpoints: &[Arc<Endpoint>],
        available: &impl Fn(usize) -> bool,
    ) -> Option<usize> {
        debug_assert_eq!(endpoints.len(), self.weights.len());
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let mut total = 0;
        let mut best: Option<usize> = None;
        for (index, weight) in self.weights.iter().enumerate() {
            if !available(index) {
                continue;
            }
            current[index] += weight;
            total += weight;
            if best.is_none_or(|best| current[index] > current[best]) {
                best = Some(index);
            }
        }
        if let Some(best) = best {
            current[best] -= total;
        }
        best
    }
}
