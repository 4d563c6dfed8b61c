//! The command line: where the stack is, how heavy the load is, how long
//! each phase of a scenario lasts, and which scenarios run.

use std::path::PathBuf;

use clap::Parser;

/// Runs fault scenarios against a running compose stack (docker-compose.yml
/// with deploy/compose.faults.yml) and accounts for every order.
#[derive(Debug, Clone, Parser)]
#[command(name = "shop-faults", about)]
pub struct Args {
    /// The gateways the load balances over, as an edge load balancer would.
    #[arg(
        long = "gateway",
        default_values_t = ["http://127.0.0.1:8080".to_owned(), "http://127.0.0.1:8090".to_owned()]
    )]
    pub gateways: Vec<String>,
    /// The compose project (its containers carry this label).
    #[arg(long, env = "COMPOSE_PROJECT_NAME", default_value = "ferroshop")]
    pub project: String,
    /// Concurrent shoppers.
    #[arg(long, default_value_t = 16)]
    pub shoppers: usize,
    /// Seconds of load before each fault (the baseline latencies).
    #[arg(long, default_value_t = 6)]
    pub baseline_secs: u64,
    /// Seconds a killed container stays down before `docker start`.
    #[arg(long, default_value_t = 5)]
    pub down_secs: u64,
    /// Seconds a container stays paused or partitioned, and etcd stopped:
    /// longer than the gateway's deadline (10 s) and the lease (10 s).
    #[arg(long, default_value_t = 15)]
    pub hold_secs: u64,
    /// Seconds of load after the fault healed, before the load stops.
    #[arg(long, default_value_t = 12)]
    pub settle_secs: u64,
    /// After the fault of a pause or partition ends, how long errors on its
    /// routes are still allowed: the gateway's deadline (10 s) of a call
    /// that started in the fault, plus the ejection of the instance.
    #[arg(long, default_value_t = 15)]
    pub ejection_allowance_secs: u64,
    /// How long one order is retried with its key before the shopper gives
    /// up on it (it then counts as lost to the client).
    #[arg(long, default_value_t = 90)]
    pub order_retry_secs: u64,
    /// Per-request timeout of the shoppers' HTTP client (longer than the
    /// gateway's 10 s deadline, so its own answer arrives first).
    #[arg(long, default_value_t = 15)]
    pub request_timeout_secs: u64,
    /// How long to wait for a container to be healthy again.
    #[arg(long, default_value_t = 120)]
    pub healthy_timeout_secs: u64,
    /// How long to wait, after a scenario, for every order to settle.
    #[arg(long, default_value_t = 120)]
    pub settle_orders_timeout_secs: u64,
    /// The scenarios to run, by name (default: all, in the order listed by
    /// --list).
    #[arg(long = "scenario")]
    pub scenarios: Vec<String>,
    /// Prints the scenarios and exits.
    #[arg(long)]
    pub list: bool,
    /// Writes the results as Markdown to this file (docs/resilience.md).
    #[arg(long)]
    pub write_doc: Option<PathBuf>,
}
