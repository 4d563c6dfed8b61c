//! The scenarios: one fault each, under its own load window — baseline,
//! fault, heal, settle — followed by the accounting of its orders and the
//! figures of what the shoppers saw.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use tokio::sync::watch;
use tokio::time::{Instant, sleep};

use crate::accounting::{self, Books};
use crate::cli::Args;
use crate::docker::Docker;
use crate::edge::Edge;
use crate::load::{self, Attempt, Log, Plan, Route, Shopper};
use crate::metrics::{self, Delta};

/// A latency counts as recovered when under this multiple of the route's
/// baseline p99 …
const RECOVERED_P99_FACTOR: f64 = 2.0;
/// … or under this many seconds, whichever is larger (so that a baseline
/// of a few milliseconds does not make scheduling noise a failure).
const RECOVERED_FLOOR_SECS: f64 = 0.1;

/// The definition of the time to recover, as printed with the figures.
pub const RECOVERY_DEFINITION: &str = "time to recover: from the end of the fault (its start for a kill) to the end of the \
last request that failed or took longer than max(2 × its route's baseline p99, 100 ms); 0 when none did after that moment";

/// What is done to the stack.
#[derive(Debug, Clone)]
pub enum Fault {
    /// `docker kill`, then `docker start` after `--down-secs`.
    Kill(&'static str),
    /// `docker pause` for `--hold-secs`, then `docker unpause`.
    Pause(&'static str),
    /// `docker network disconnect` from the project's `default` network for
    /// `--hold-secs`, then connect again with its aliases.
    Partition(&'static str),
    /// `docker stop` of etcd for `--hold-secs`, then `docker start`.
    StopEtcd,
    /// Every service replica in turn: `docker stop` (SIGTERM, then the
    /// stop_grace_period), `docker start`, healthy before the next.
    RollingRestart,
}

/// Which client-visible errors a scenario may have.
#[derive(Debug, Clone)]
pub enum Target {
    /// None at all.
    Zero,
    /// Only on these routes, and only from the fault's start to its end plus
    /// `--ejection-allowance-secs`.
    OnlyOn(Vec<Route>),
}

/// One scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Its name (also in its idempotency keys).
    pub name: &'static str,
    /// The fault.
    pub fault: Fault,
    /// The errors allowed.
    pub target: Target,
}

impl Scenario {
    /// Every scenario, in the order they run.
    pub fn all() -> Vec<Scenario> {
        use Fault::*;
        let orders_routes = vec![Route::PlaceOrder, Route::GetOrder];
        vec![
            Scenario {
                name: "kill-cart-1",
                fault: Kill("cart-1"),
                target: Target::Zero,
            },
            Scenario {
                name: "kill-orders-1",
                fault: Kill("orders-1"),
                target: Target::Zero,
            },
            Scenario {
                name: "kill-catalog",
                fault: Kill("catalog"),
                target: Target::Zero,
            },
            Scenario {
                name: "kill-payments",
                fault: Kill("payments"),
                target: Target::Zero,
            },
            Scenario {
                name: "pause-orders-1",
                fault: Pause("orders-1"),
                target: Target::OnlyOn(orders_routes.clone()),
            },
            Scenario {
                name: "pause-cart-2",
                fault: Pause("cart-2"),
                target: Target::OnlyOn(vec![Route::PutCartItem, Route::PlaceOrder]),
            },
            Scenario {
                name: "partition-orders-1",
                fault: Partition("orders-1"),
                target: Target::OnlyOn(orders_routes),
            },
            Scenario {
                name: "stop-etcd",
                fault: StopEtcd,
                target: Target::Zero,
            },
            Scenario {
                name: "rolling-restart",
                fault: RollingRestart,
                target: Target::Zero,
            },
        ]
    }

    /// The fault in words.
    pub fn describe(&self, args: &Args) -> String {
        match &self.fault {
            Fault::Kill(s) => format!("`docker kill {s}`, `docker start` {} s later", args.down_secs),
            Fault::Pause(s) => format!("`docker pause {s}` for {} s", args.hold_secs),
            Fault::Partition(s) => format!("`docker network disconnect` {s} from the default network for {} s", args.hold_secs),
            Fault::StopEtcd => format!("`docker stop etcd` for {} s (lease 10 s)", args.hold_secs),
            Fault::RollingRestart => "`docker stop` + `docker start` of every replica in turn, each healthy before the next".to_owned(),
        }
    }

    /// The errors allowed, in words.
    pub fn describe_target(&self) -> String {
        match &self.target {
            Target::Zero => "zero".to_owned(),
            Target::OnlyOn(routes) => format!(
                "only on {} within the fault + allowance",
                routes
                    .iter()
                    .map(|r| format!("`{}`", r.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// Latency quantiles in seconds.
#[derive(Debug, Default, Clone, Copy)]
pub struct Quantiles {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Requests measured.
    pub count: usize,
}

/// Nearest-rank quantiles of `latencies` (seconds).
pub fn quantiles(mut latencies: Vec<f64>) -> Quantiles {
    if latencies.is_empty() {
        return Quantiles::default();
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let rank = ((q * latencies.len() as f64).ceil() as usize).saturating_sub(1);
        latencies
            .get(rank.min(latencies.len() - 1))
            .copied()
            .unwrap_or_default()
    };
    Quantiles {
        p50: at(0.5),
        p99: at(0.99),
        count: latencies.len(),
    }
}

/// What a scenario came to.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The scenario.
    pub scenario: Scenario,
    /// The fault in words.
    pub description: String,
    /// Requests sent.
    pub requests: usize,
    /// Client-visible errors by (route, status or kind).
    pub errors: BTreeMap<(Route, String), usize>,
    /// Their sum.
    pub error_count: usize,
    /// Seconds from the recovery reference point to recovery.
    pub recovery_secs: f64,
    /// Latencies of requests sent during the fault.
    pub during_fault: Quantiles,
    /// Latencies of the baseline.
    pub baseline: Quantiles,
    /// Seconds the fault lasted (for a rolling restart, the whole roll).
    pub fault_secs: f64,
    /// Connections refused by a gateway and sent to the other.
    pub edge_failovers: u64,
    /// Requests each gateway answered, as `url n`.
    pub per_gateway: Vec<String>,
    /// The books.
    pub books: Books,
    /// How long orders took to settle after the load stopped.
    pub settle_secs: f64,
    /// What each layer did.
    pub deltas: Vec<Delta>,
    /// Replicas whose metrics could not be read.
    pub unread_metrics: Vec<String>,
    /// Why the scenario failed; empty when it passed.
    pub problems: Vec<String>,
}

impl Outcome {
    /// Whether its accounting is clean and its target met.
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The marks of a fault on the load's clock (seconds).
struct Window {
    start: f64,
    end: f64,
    reference: f64,
}

/// Runs `scenario` with `shoppers` (whose tokens it renews when old).
///
/// # Errors
/// The stack could not be read at all (a database or the engine); a
/// failed fault or a discrepancy is a problem of the outcome instead.
pub async fn run(
    args: &Args,
    docker: &Docker,
    edge: &Arc<Edge>,
    shoppers: &mut [Shopper],
    products: &[String],
    run_id: &str,
    scenario: &Scenario,
) -> Result<Outcome> {
    for shopper in shoppers.iter_mut() {
        if shopper.token_is_old() {
            shopper.login(edge).await?;
        }
    }
    let key_prefix = format!("{run_id}-{}", scenario.name);
    let stock_before = accounting::stock(docker, products).await?;
    let metrics_before = metrics::snapshot(docker).await;
    let failovers_before = edge.failovers();
    let answered_before = edge.answered();

    let zero = Instant::now();
    let plan = Arc::new(Plan {
        edge: Arc::clone(edge),
        products: products.to_vec(),
        key_prefix: key_prefix.clone(),
        order_retry: Duration::from_secs(args.order_retry_secs),
        zero,
    });
    let (stop, stopped) = watch::channel(false);
    let tasks: Vec<_> = shoppers
        .iter()
        .enumerate()
        .map(|(i, shopper)| {
            tokio::spawn(load::shop(
                Arc::clone(&plan),
                shopper.clone(),
                i,
                stopped.clone(),
            ))
        })
        .collect();

    sleep(Duration::from_secs(args.baseline_secs)).await;
    let mut problems = Vec::new();
    let since = |t: Instant| t.duration_since(zero).as_secs_f64();
    let start = Instant::now();
    let window = match inflict(args, docker, &scenario.fault).await {
        Ok(reference_is_start) => {
            let end = Instant::now();
            Window {
                start: since(start),
                end: since(end),
                reference: if reference_is_start {
                    since(start)
                } else {
                    since(end)
                },
            }
        }
        Err(err) => {
            problems.push(format!(
                "the fault could not be inflicted or healed: {err:#}"
            ));
            let end = since(Instant::now());
            Window {
                start: since(start),
                end,
                reference: end,
            }
        }
    };
    sleep(Duration::from_secs(args.settle_secs)).await;
    let _ = stop.send(true);
    let mut log = Log::default();
    for task in tasks {
        match task.await {
            Ok(part) => {
                log.attempts.extend(part.attempts);
                log.keys.extend(part.keys);
            }
            Err(err) => problems.push(format!("a shopper task failed: {err}")),
        }
    }

    let settle = match accounting::wait_settled(
        docker,
        &key_prefix,
        Duration::from_secs(args.settle_orders_timeout_secs),
    )
    .await
    {
        Ok(waited) => waited.as_secs_f64(),
        Err(err) => {
            problems.push(format!("{err:#}"));
            args.settle_orders_timeout_secs as f64
        }
    };
    let books = accounting::audit(docker, &key_prefix, &log.keys, products, &stock_before).await?;
    problems.extend(books.problems.iter().cloned());
    let metrics_after = metrics::snapshot(docker).await;
    let deltas = metrics::deltas(&metrics_before, &metrics_after);
    let mut unread_metrics = metrics_before.unread.clone();
    unread_metrics.extend(metrics_after.unread.iter().cloned());

    let errors_list: Vec<&Attempt> = log.attempts.iter().filter(|a| a.is_error()).collect();
    let mut errors: BTreeMap<(Route, String), usize> = BTreeMap::new();
    for attempt in &errors_list {
        *errors
            .entry((attempt.route, attempt.outcome.label()))
            .or_insert(0) += 1;
    }
    match &scenario.target {
        Target::Zero => {
            if !errors_list.is_empty() {
                problems.push(format!(
                    "target missed: {} client-visible errors, the target is zero",
                    errors_list.len()
                ));
            }
        }
        Target::OnlyOn(routes) => {
            let until = window.end + args.ejection_allowance_secs as f64;
            let outside: Vec<&&Attempt> = errors_list
                .iter()
                .filter(|a| !routes.contains(&a.route) || a.start < window.start || a.start > until)
                .collect();
            if !outside.is_empty() {
                let mut by_route: BTreeMap<&str, usize> = BTreeMap::new();
                for a in &outside {
                    *by_route.entry(a.route.as_str()).or_insert(0) += 1;
                }
                problems.push(format!(
                    "target missed: {} errors outside the affected routes or after the fault + {} s allowance ({by_route:?})",
                    outside.len(),
                    args.ejection_allowance_secs
                ));
            }
        }
    }
    if books.lost_to_client > 0 {
        problems.push(format!(
            "{} orders were never answered within {} s of retries",
            books.lost_to_client, args.order_retry_secs
        ));
    }

    // Baseline latencies per route, for the recovery test.
    let mut baseline_by_route: BTreeMap<Route, Vec<f64>> = BTreeMap::new();
    for a in log
        .attempts
        .iter()
        .filter(|a| a.start < window.start && !a.is_error())
    {
        baseline_by_route
            .entry(a.route)
            .or_default()
            .push(a.latency());
    }
    let limits: BTreeMap<Route, f64> = Route::ALL
        .iter()
        .map(|r| {
            let p99 = quantiles(baseline_by_route.get(r).cloned().unwrap_or_default()).p99;
            (*r, (RECOVERED_P99_FACTOR * p99).max(RECOVERED_FLOOR_SECS))
        })
        .collect();
    let last_bad = log
        .attempts
        .iter()
        .filter(|a| a.end > window.reference)
        .filter(|a| {
            a.is_error()
                || a.latency()
                    > limits
                        .get(&a.route)
                        .copied()
                        .unwrap_or(RECOVERED_FLOOR_SECS)
        })
        .map(|a| a.end)
        .fold(window.reference, f64::max);

    Ok(Outcome {
        scenario: scenario.clone(),
        description: scenario.describe(args),
        requests: log.attempts.len(),
        error_count: errors_list.len(),
        errors,
        recovery_secs: last_bad - window.reference,
        during_fault: quantiles(
            log.attempts
                .iter()
                .filter(|a| a.start >= window.start && a.start <= window.end)
                .map(Attempt::latency)
                .collect(),
        ),
        baseline: quantiles(
            log.attempts
                .iter()
                .filter(|a| a.start < window.start)
                .map(Attempt::latency)
                .collect(),
        ),
        fault_secs: window.end - window.start,
        edge_failovers: edge.failovers() - failovers_before,
        per_gateway: edge
            .gateways()
            .iter()
            .zip(edge.answered())
            .zip(answered_before)
            .map(|((url, after), before)| format!("{url} {}", after - before))
            .collect(),
        books,
        settle_secs: settle,
        deltas,
        unread_metrics,
        problems,
    })
}

/// Inflicts `fault` and heals it; answers whether recovery is measured
/// from the fault's start (a kill) rather than its end.
async fn inflict(args: &Args, docker: &Docker, fault: &Fault) -> Result<bool> {
    let hold = Duration::from_secs(args.hold_secs);
    let healthy = Duration::from_secs(args.healthy_timeout_secs);
    match fault {
        Fault::Kill(service) => {
            docker.act("kill", service).await?;
            sleep(Duration::from_secs(args.down_secs)).await;
            docker.act("start", service).await?;
            docker.wait_healthy(service, healthy).await?;
            Ok(true)
        }
        Fault::Pause(service) => {
            docker.act("pause", service).await?;
            sleep(hold).await;
            docker.act("unpause", service).await?;
            Ok(false)
        }
        Fault::Partition(service) => {
            let network = docker.network("default");
            let aliases = docker.aliases(service, &network).await?;
            docker.disconnect(service, &network).await?;
            sleep(hold).await;
            docker.connect(service, &network, &aliases).await?;
            Ok(false)
        }
        Fault::StopEtcd => {
            docker.act("stop", "etcd").await?;
            sleep(hold).await;
            docker.act("start", "etcd").await?;
            docker.wait_healthy("etcd", healthy).await?;
            Ok(false)
        }
        Fault::RollingRestart => {
            let services = rolling_order(docker.services().await?);
            if services.is_empty() {
                bail!("no service replica to restart");
            }
            for service in services {
                eprintln!("    rolling: {service}");
                docker.act("stop", &service).await?;
                docker.act("start", &service).await?;
                docker.wait_healthy(&service, healthy).await?;
            }
            Ok(false)
        }
    }
}

/// The service replicas of a rolling restart, dependencies first (the
/// order a deploy would roll them): users, catalog, payments, cart, orders,
/// gateway; PostgreSQL and etcd are infrastructure, not rolled.
fn rolling_order(services: Vec<String>) -> Vec<String> {
    let rank = |s: &String| match metrics::family(s) {
        "users" => 0,
        "catalog" => 1,
        "payments" => 2,
        "cart" => 3,
        "orders" => 4,
        "gateway" => 5,
        _ => 9,
    };
    let mut services: Vec<String> = services.into_iter().filter(|s| rank(s) < 9).collect();
    services.sort_by_key(|s| (rank(s), s.clone()));
    services
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let q = quantiles((1..=100).map(f64::from).collect());
        assert!((q.p50 - 50.0).abs() < f64::EPSILON);
        assert!((q.p99 - 99.0).abs() < f64::EPSILON);
        assert_eq!(quantiles(Vec::new()).count, 0);
    }

    #[test]
    fn rolling_restart_goes_dependencies_first_and_skips_infrastructure() {
        let order = rolling_order(
            [
                "gateway", "postgres", "cart-2", "users-2", "etcd", "orders-1", "users", "cart-1",
                "payments",
            ]
            .map(String::from)
            .to_vec(),
        );
        assert_eq!(
            order,
            [
                "users", "users-2", "payments", "cart-1", "cart-2", "orders-1", "gateway"
            ]
        );
    }
}
