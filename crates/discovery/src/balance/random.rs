//! Random: an endpoint chosen uniformly at random. Stateless, so it needs
//! no coordination between callers; a good default when there are many
//! clients and instances are alike.

use rand::Rng;

use super::first_available_from;

/// The random pick among `len` endpoints: stateless.
pub(crate) fn pick(len: usize, available: &impl Fn(usize) -> bool) -> Option<usize> {
    if len == 0 {
        return None;
    }
    // An unavailable endpoint's share goes to its successor; rare and
    // short-lived (ejections and failed health checks), so accepted.
    first_available_from(rand::rng().random_range(0..len), len, available)
}
