//! Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam,
//! 2016): keys live on a ring of virtual nodes; a key goes to the first
//! endpoint clockwise from its hash whose in-flight load is below
//! ⌈c × (total load + 1) / n⌉. Without load, a key always maps to the same
//! endpoint and only the keys of an endpoint that leaves move (about 1/n);
//! under a hot key, the overflow spills to the next endpoints on the ring
//! instead of overloading one.

use std::sync::Arc;

use rand::Rng;

use super::least_outstanding;
use super::{ConsistentHashSettings, Endpoint, HashKey, stable_hash};

/// The ring: sorted (hash, endpoint index) points.
pub(crate) struct Ring {
    points: Box<[(u64, u32)]>,
    load_factor: f64,
}

impl Ring {
    pub(crate) fn new(endpoints: &[Arc<Endpoint>], settings: &ConsistentHashSettings) -> Self {
        let virtual_nodes = settings.virtual_nodes.max(1);
        let mut points = Vec::with_capacity(endpoints.len() * virtual_nodes as usize);
        for (index, endpoint) in endpoints.iter().enumerate() {
            let Ok(index) = u32::try_from(index) else {
                break;
            };
            // Points derive from the instance id, not its position, so an
            // endpoint keeps its arcs of the ring when others come and go.
            let mut seed = endpoint.instance().id.clone().into_bytes();
            seed.push(b'#');
            let base = seed.len();
            for node in 0..virtual_nodes {
                seed.truncate(base);
                seed.extend_from_slice(&node.to_le_bytes());
                points.push((stable_hash(&seed), index));
            }
        }
        points.sort_unstable();
        Self {
            points: points.into_boxed_slice(),
            load_factor: settings.load_factor.max(1.0),
        }
    }

    pub(crate) fn pick(
        &self,
        endpoints: &[Arc<Endpoint>],
        key: Option<HashKey>,
        available: &impl Fn(usize) -> bool,
    ) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let (mut count, mut total) = (0usize, 0usize);
        for (index, endpoint) in endpoints.iter().enumerate() {
            if available(index) {
                count += 1;
                total += endpoint.in_flight();
            }
        }
        if count == 0 {
            return None;
        }
        let capacity = (self.load_factor * (total + 1) as f64 / count as f64).ceil() as usize;
        let hash = key.map_or_else(|| rand::rng().random(), |key| key.0);
        let start = self.points.partition_point(|&(point, _)| point < hash);
        let len = self.points.len();
        // With the loads as counted above, some available endpoint is below
        // capacity (they sum to less than count × capacity). But other
        // threads start and finish requests while this walks, so every
        // endpoint may be at capacity by the time it is looked at: then the
        // least loaded available one takes the request, never nobody.
        (0..len)
            .map(|step| self.points[(start + step) % len].1 as usize)
            .find(|&index| available(index) && endpoints[index].in_flight() < capacity)
            .or_else(|| least_outstanding::pick(endpoints, available))
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::Instance;
    use crate::balance::Balancer;

    #[test]
    fn a_pick_finds_an_endpoint_when_loads_rise_during_its_walk() {
        let balancer = Balancer::with_instances(
            crate::PolicySettings::ConsistentHash(ConsistentHashSettings::default()),
            &[
                Instance::new("svc", "a", "127.0.0.1:1"),
                Instance::new("svc", "b", "127.0.0.1:2"),
            ],
        );
        let endpoints = balancer.endpoints();
        let ring = Ring::new(&endpoints, &ConsistentHashSettings::default());
        // The first pass counts both idle (capacity 1); before the walk
        // looks, other requests start on both.
        let held = std::cell::RefCell::new(Vec::new());
        let calls = Cell::new(0);
        let available = |_: usize| {
            calls.set(calls.get() + 1);
            if calls.get() == endpoints.len() + 1 {
                held.borrow_mut()
                    .extend(endpoints.iter().map(|endpoint| endpoint.start()));
            }
            true
        };
        let picked = ring.pick(&endpoints, Some(HashKey::new("user-1")), &available);
        assert!(picked.is_some(), "an available endpoint was there to pick");
        assert_eq!(held.borrow().len(), 2, "the loads did rise mid-pick");
    }
}
