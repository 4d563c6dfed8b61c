//! `bench-growth`: cost as data grows (see `shop_bench::growth`).
//!
//! `seed` brings the users, catalog and orders databases (SQLite files of
//! `shop`'s data directory, or PostgreSQL) up to a size, adding only what
//! is missing, and prints one `table<TAB>before<TAB>added<TAB>seconds`
//! line per table. `measure` drives a running gateway (loopback only) and
//! prints one `path<TAB>samples<TAB>p50_ms<TAB>p99_ms<TAB>errors` line per
//! path. Neither is a test: no timing is asserted anywhere.

use anyhow::ensure;
use clap::{Parser, Subcommand};
use shop_bench::growth::{measure, seed};

#[derive(Debug, Parser)]
#[command(about = "Latency of the index-backed paths as the data grows")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Seeds the databases up to a size (the schemas must exist).
    Seed {
        /// The users database (`sqlite:…` or `postgres:…`).
        #[arg(long)]
        users_db: String,
        /// The catalog database.
        #[arg(long)]
        catalog_db: String,
        /// The orders database.
        #[arg(long)]
        orders_db: String,
        /// Seeded products wanted (the demo catalog aside).
        #[arg(long)]
        products: u64,
        /// Seeded orders wanted, spread over the 10,000 users.
        #[arg(long)]
        orders: u64,
    },
    /// Measures each path through a running gateway.
    Measure {
        /// The gateway's base URL (loopback only).
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        base: reqwest::Url,
        /// Seeded products in the catalog (what `seed --products` was given).
        #[arg(long)]
        products: u64,
        /// Seeded users to log in as.
        #[arg(long, default_value_t = 4)]
        users: usize,
        /// Samples per path.
        #[arg(long, default_value_t = 2_000)]
        samples: usize,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Requests per path before its samples.
        #[arg(long, default_value_t = 200)]
        warmup: usize,
    },
}

/// Most samples per path: a bounded benchmark, not a load tool.
const MAX_SAMPLES: usize = 100_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::Seed {
            users_db,
            catalog_db,
            orders_db,
            products,
            orders,
        } => {
            for seeded in [
                seed::users(&users_db).await?,
                seed::products(&catalog_db, products).await?,
                seed::orders(&orders_db, orders).await?,
            ] {
                println!(
                    "{}\t{}\t{}\t{:.2}",
                    seeded.table, seeded.before, seeded.added, seeded.seconds
                );
            }
        }
        Command::Measure {
            base,
            products,
            users,
            samples,
            concurrency,
            warmup,
        } => {
            ensure!(
                shop_bench::is_loopback(&base),
                "--base must be a loopback address"
            );
            ensure!(
                (1..=MAX_SAMPLES).contains(&samples) && warmup <= MAX_SAMPLES,
                "--samples must be 1..={MAX_SAMPLES}"
            );
            let plan = measure::Plan {
                base: base.as_str().trim_end_matches('/').to_owned(),
                products,
                users,
                samples,
                concurrency,
                warmup,
            };
            for mut measured in measure::run(&plan).await? {
                if let Some(error) = &measured.first_error {
                    eprintln!(
                        "bench-growth: {}: first error: {error}",
                        measured.path.name()
                    );
                }
                println!(
                    "{}\t{}\t{:.3}\t{:.3}\t{}",
                    measured.path.name(),
                    measured.samples.len(),
                    measured.samples.quantile_ms(0.5),
                    measured.samples.quantile_ms(0.99),
                    measured.errors
                );
            }
        }
    }
    Ok(())
}
