//! The distribution each balancing policy produces, measured on the
//! balancer itself (no network: a pick is what is under test).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed setup should fail the test

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use shop_discovery::balance::{ConsistentHashSettings, PeakEwmaSettings};
use shop_discovery::{Balancer, HashKey, InFlight, Instance, PickRequest, PolicySettings};

fn instance(id: &str, port: u16) -> Instance {
    Instance::new("svc", id, format!("127.0.0.1:{port}"))
}

fn instances(count: usize) -> Vec<Instance> {
    (0..count)
        .map(|i| instance(&format!("i{i}"), 10_000 + i as u16))
        .collect()
}

fn pick_id(balancer: &Balancer, key: Option<HashKey>) -> String {
    let picked = balancer
        .pick(&PickRequest { key, exclude: &[] })
        .expect("an endpoint");
    picked.endpoint().instance().id.clone()
}

fn counts(balancer: &Balancer, picks: usize) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..picks {
        *counts.entry(pick_id(balancer, None)).or_default() += 1;
    }
    counts
}

#[test]
fn smooth_weighted_round_robin_keeps_exact_proportions_and_interleaves() {
    let balancer = Balancer::with_instances(
        PolicySettings::WeightedRoundRobin,
        &[
            instance("a", 1).with_weight(5),
            instance("b", 2).with_weight(1),
            instance("c", 3).with_weight(1),
        ],
    );
    let picks: Vec<String> = (0..70).map(|_| pick_id(&balancer, None)).collect();
    assert_eq!(picks[..7], ["a", "a", "b", "a", "c", "a", "a"]);
    for window in picks.windows(7) {
        let count = |id: &str| window.iter().filter(|pick| *pick == id).count();
        assert_eq!(
            (count("a"), count("b"), count("c")),
            (5, 1, 1),
            "window {window:?}"
        );
    }
    let longest_run = picks
        .chunk_by(|x, y| x == y)
        .filter(|run| run[0] == "a")
        .map(<[String]>::len)
        .max()
        .unwrap();
    assert!(
        longest_run < 5,
        "the heavy instance came {longest_run} times in a row"
    );
}

#[test]
fn round_robin_and_random_spread_evenly() {
    let round_robin = Balancer::with_instances(PolicySettings::RoundRobin, &instances(3));
    assert!(counts(&round_robin, 300).values().all(|&n| n == 100));

    let random = Balancer::with_instances(PolicySettings::Random, &instances(3));
    let counts = counts(&random, 3000);
    assert_eq!(counts.len(), 3);
    assert!(
        counts.values().all(|&n| (700..1300).contains(&n)),
        "{counts:?}"
    );
}

#[test]
fn picks_skip_excluded_endpoints() {
    for policy in [
        PolicySettings::RoundRobin,
        PolicySettings::WeightedRoundRobin,
        PolicySettings::Random,
        PolicySettings::LeastOutstanding,
        PolicySettings::PeakEwma(PeakEwmaSettings::default()),
        PolicySettings::ConsistentHash(ConsistentHashSettings::default()),
    ] {
        let balancer = Balancer::with_instances(policy.clone(), &instances(3));
        let endpoints = balancer.endpoints();
        let exclude = [endpoints[0].clone(), endpoints[2].clone()];
        for key in 0..50 {
            let picked = balancer
                .pick(&PickRequest {
                    key: Some(HashKey(key)),
                    exclude: &exclude,
                })
                .unwrap();
            assert_eq!(picked.endpoint().instance().id, "i1", "{policy:?}");
        }
        assert!(
            balancer
                .pick(&PickRequest {
                    key: None,
                    exclude: &endpoints
                })
                .is_none(),
            "{policy:?}"
        );
    }
}

#[test]
fn least_outstanding_avoids_an_endpoint_with_many_requests_in_flight() {
    let balancer = Balancer::with_instances(PolicySettings::LeastOutstanding, &instances(3));
    let busy = balancer.endpoints()[0].clone();
    let _held: Vec<InFlight> = (0..10).map(|_| busy.start()).collect();
    let counts = counts(&balancer, 300);
    assert_eq!(counts.get("i0"), None, "{counts:?}");

    // Held picks spread so that loads never differ by more than one.
    let fresh = Balancer::with_instances(PolicySettings::LeastOutstanding, &instances(3));
    let held: Vec<InFlight> = (0..31)
        .map(|_| fresh.pick(&PickRequest::default()).unwrap())
        .collect();
    let loads: Vec<usize> = fresh.endpoints().iter().map(|e| e.in_flight()).collect();
    assert_eq!(loads.iter().sum::<usize>(), 31);
    assert!(
        loads.iter().max().unwrap() - loads.iter().min().unwrap() <= 1,
        "{loads:?}"
    );
    drop(held);
    assert!(fresh.endpoints().iter().all(|e| e.in_flight() == 0));
}

#[test]
fn peak_ewma_sends_clearly_less_to_a_slowed_endpoint() {
    let balancer = Balancer::with_instances(
        PolicySettings::PeakEwma(PeakEwmaSettings::default()),
        &instances(3),
    );
    let endpoints = balancer.endpoints();
    for endpoint in &endpoints[1..] {
        endpoint.observe_latency(Duration::from_millis(2));
    }
    endpoints[0].observe_latency(Duration::from_millis(200));
    let counts = counts(&balancer, 3000);
    let slow = counts.get("i0").copied().unwrap_or(0);
    assert!(
        slow < 3000 / 10,
        "the slowed endpoint got {slow} of 3000 picks: {counts:?}"
    );

    // Load counts too: a fast endpoint with many requests in flight costs more.
    let fresh = Balancer::with_instances(
        PolicySettings::PeakEwma(PeakEwmaSettings::default()),
        &instances(2),
    );
    let busy = fresh.endpoints()[0].clone();
    let _held: Vec<InFlight> = (0..20).map(|_| busy.start()).collect();
    assert!(counts_of(&fresh, 200, "i0") == 0);
}

fn counts_of(balancer: &Balancer, picks: usize, id: &str) -> usize {
    counts(balancer, picks).get(id).copied().unwrap_or(0)
}

fn mapping(balancer: &Balancer, keys: u64) -> HashMap<u64, String> {
    (0..keys)
        .map(|key| {
            (
                key,
                pick_id(balancer, Some(HashKey::new(key.to_le_bytes()))),
            )
        })
        .collect()
}

#[test]
fn consistent_hashing_moves_only_the_keys_of_an_instance_that_leaves_or_joins() {
    let n = 10;
    let keys = 20_000;
    let policy = PolicySettings::ConsistentHash(ConsistentHashSettings::default());
    let all = instances(n);
    let balancer = Balancer::with_instances(policy.clone(), &all);
    let before = mapping(&balancer, keys);
    assert_eq!(
        mapping(&balancer, keys),
        before,
        "a key maps to the same instance every time"
    );

    let leaving = "i3";
    let remaining: Vec<Instance> = all.iter().filter(|i| i.id != leaving).cloned().collect();
    balancer.update(&remaining);
    let after = mapping(&balancer, keys);
    let moved: Vec<u64> = (0..keys).filter(|key| before[key] != after[key]).collect();
    assert!(
        moved.iter().all(|key| before[key] == leaving),
        "only the leaving instance's keys move"
    );
    assert_eq!(
        moved.len(),
        before.values().filter(|id| *id == leaving).count()
    );
    let fraction = moved.len() as f64 / keys as f64;
    assert!(
        fraction < 1.5 / n as f64,
        "{fraction} of keys moved when 1 of {n} instances left"
    );

    // A new instance takes keys only for itself, about 1/n of them.
    let mut grown = all.clone();
    grown.push(instance("i10", 10_010));
    let bigger = Balancer::with_instances(policy, &grown);
    let joined = mapping(&bigger, keys);
    let taken: Vec<u64> = (0..keys).filter(|key| before[key] != joined[key]).collect();
    assert!(taken.iter().all(|key| joined[key] == "i10"));
    assert!((taken.len() as f64 / keys as f64) < 1.5 / (n + 1) as f64);
}

#[test]
fn consistent_hashing_bounds_every_load_by_c_times_the_average() {
    let n = 5;
    let balancer = Balancer::with_instances(
        PolicySettings::ConsistentHash(ConsistentHashSettings::default()),
        &instances(n),
    );
    let bound = |total: usize| (1.25 * total as f64 / n as f64).ceil() as usize;

    // Distinct keys, all held in flight at once.
    let held: Vec<InFlight> = (0..1000u64)
        .map(|key| {
            balancer
                .pick(&PickRequest {
                    key: Some(HashKey::new(key.to_be_bytes())),
                    exclude: &[],
                })
                .unwrap()
        })
        .collect();
    let max = balancer
        .endpoints()
        .iter()
        .map(|e| e.in_flight())
        .max()
        .unwrap();
    assert!(max <= bound(1000), "max load {max} > {}", bound(1000));
    drop(held);

    // One hot key: its owner takes its bounded share and the rest spills over.
    let hot = Some(HashKey::new("user-42"));
    let owner = pick_id(&balancer, hot);
    let held: Vec<InFlight> = (0..100)
        .map(|_| {
            balancer
                .pick(&PickRequest {
                    key: hot,
                    exclude: &[],
                })
                .unwrap()
        })
        .collect();
    let loads: BTreeMap<String, usize> = balancer
        .endpoints()
        .iter()
        .map(|e| (e.instance().id.clone(), e.in_flight()))
        .collect();
    assert!(loads.values().all(|&load| load <= bound(100)), "{loads:?}");
    assert_eq!(
        loads[&owner],
        bound(100),
        "the owner is filled first: {loads:?}"
    );
    drop(held);
}
