//! Round robin: each available endpoint in turn.
//!
//! One atomic counter shared by all callers; an unavailable endpoint's turn
//! goes to the next available one.

use std::sync::atomic::{AtomicUsize, Ordering};

use rand::Rng;

use super::first_available_from;

/// The round-robin cursor.
pub(crate) struct RoundRobin {
    next: AtomicUsize,
}

impl RoundRobin {
    /// Starts at a random position so that many clients (gateway replicas,
    /// freshly rebuilt balancers) do not all hit the first endpoint first.
    pub(crate) fn new() -> Self {
        Self {
            next: AtomicUsize::new(rand::rng().random_range(0..1024)),
        }
    }

    pub(crate) fn pick(&self, len: usize, available: &impl Fn(usize) -> bool) -> Option<usize> {
        if len == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % len;
        first_available_from(start, len, available)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visits_every_endpoint_in_turn_and_skips_unavailable_ones() {
        let policy = RoundRobin::new();
        let picks: Vec<_> = (0..6).map(|_| policy.pick(3, &|_| true).unwrap()).collect();
        let first = picks[0];
        let expected: Vec<_> = (0..6).map(|i| (first + i) % 3).collect();
        assert_eq!(picks, expected);
        assert!((0..10).all(|_| policy.pick(3, &|i| i != 1) != Some(1)));
        assert_eq!(policy.pick(3, &|_| false), None);
        assert_eq!(policy.pick(0, &|_| true), None);
    }
}
