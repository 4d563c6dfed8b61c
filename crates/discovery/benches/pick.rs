//! The cost of one pick (and of ending the request it starts) for each
//! policy, with 3 and with 100 instances.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use shop_discovery::balance::{ConsistentHashSettings, PeakEwmaSettings};
use shop_discovery::{Balancer, HashKey, Instance, PickRequest, PolicySettings};

fn instances(count: usize) -> Vec<Instance> {
    (0..count)
        .map(|i| {
            let weight = if i % 3 == 0 { 5 } else { 1 };
            Instance::new(
                "bench",
                format!("i{i}"),
                format!("10.0.{}.{}:8080", i / 250, i % 250),
            )
            .with_weight(weight)
        })
        .collect()
}

fn policies() -> Vec<(&'static str, PolicySettings)> {
    vec![
        ("round_robin", PolicySettings::RoundRobin),
        ("weighted_round_robin", PolicySettings::WeightedRoundRobin),
        ("random", PolicySettings::Random),
        ("least_outstanding", PolicySettings::LeastOutstanding),
        (
            "peak_ewma",
            PolicySettings::PeakEwma(PeakEwmaSettings::default()),
        ),
        (
            "consistent_hash",
            PolicySettings::ConsistentHash(ConsistentHashSettings::default()),
        ),
    ]
}

fn pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick");
    for (name, policy) in policies() {
        for count in [3, 100] {
            let balancer = Balancer::with_instances(policy.clone(), &instances(count));
            let mut key = 0u64;
            group.bench_function(BenchmarkId::new(name, count), |b| {
                b.iter(|| {
                    key = key.wrapping_add(0x9e37_79b9_7f4a_7c15);
                    let request = PickRequest {
                        key: Some(HashKey(key)),
                        exclude: &[],
                    };
                    black_box(balancer.pick(black_box(&request)))
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, pick);
criterion_main!(benches);
