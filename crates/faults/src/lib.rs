//! The fault harness over the compose stack (issue #20): a checkout load
//! runs through two gateways while containers are killed, paused,
//! partitioned from their network and restarted, and after each fault heals
//! the books are audited in the services' own databases.
//!
//! - [`cli`]: the command line;
//! - [`docker`]: the engine through the `docker` CLI (faults, health, psql
//!   and /metrics inside the stack's networks);
//! - [`edge`]: the edge load balancer in front of the gateways;
//! - [`load`]: the shoppers and what they saw;
//! - [`accounting`]: orders, payments, stock and reservations, audited;
//! - [`metrics`]: what each resilience layer did, as deltas of /metrics;
//! - [`scenario`]: the faults and the figures of each;
//! - [`report`]: stdout and docs/resilience.md.
//!
//! It brings nothing up itself: scripts/faults.sh starts the stack
//! (docker-compose.yml with deploy/compose.faults.yml) and runs it.

pub mod accounting;
pub mod cli;
pub mod docker;
pub mod edge;
pub mod load;
pub mod metrics;
pub mod report;
pub mod scenario;

use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use crate::cli::Args;
use crate::scenario::Scenario;

/// Runs the scenarios `args` selects; answers whether every one passed.
///
/// # Errors
/// The stack could not be prepared or read (not a failed scenario).
pub async fn run(args: Args) -> Result<bool> {
    let all = Scenario::all();
    if args.list {
        for s in &all {
            println!(
                "{:20} {} (errors allowed: {})",
                s.name,
                s.describe(&args),
                s.describe_target()
            );
        }
        return Ok(true);
    }
    let chosen: Vec<Scenario> = if args.scenarios.is_empty() {
        all
    } else {
        let mut chosen = Vec::new();
        for name in &args.scenarios {
            match all.iter().find(|s| s.name == name) {
                Some(s) => chosen.push(s.clone()),
                None => bail!("no scenario named {name} (see --list)"),
            }
        }
        chosen
    };
    if args.shoppers == 0 {
        bail!("--shoppers must be at least 1");
    }

    let docker = docker::Docker::new(args.project.clone());
    let edge = edge::Edge::new(
        args.gateways.clone(),
        Duration::from_secs(args.request_timeout_secs),
    )?;
    let probes = edge.spawn_probes();
    // The commit of this run, taken before the tree can move on under it.
    let commit = git_commit().await;
    let run_id = format!("f{}", chrono::Utc::now().format("%Y%m%d%H%M%S"));

    let products = accounting::prepare_products(&docker)
        .await
        .context("setting the stock of the load's products")?;
    eprintln!("==> registering {} shoppers", args.shoppers);
    let mut shoppers = load::register_all(&edge, &format!("{run_id}s"), args.shoppers).await?;

    let mut outcomes = Vec::new();
    for scenario in &chosen {
        eprintln!(
            "==> scenario {}: {}",
            scenario.name,
            scenario.describe(&args)
        );
        let started = std::time::Instant::now();
        let outcome = scenario::run(
            &args,
            &docker,
            &edge,
            &mut shoppers,
            &products,
            &run_id,
            scenario,
        )
        .await?;
        report::print(&outcome);
        eprintln!(
            "==> scenario {}: {} s",
            scenario.name,
            started.elapsed().as_secs()
        );
        outcomes.push(outcome);
    }
    probes.abort();

    if let Some(path) = &args.write_doc {
        let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
        std::fs::write(path, report::markdown(&args, &outcomes, &commit, &date))
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("==> wrote {}", path.display());
    }
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| !o.passed())
        .map(|o| o.scenario.name)
        .collect();
    if failed.is_empty() {
        println!("every scenario passed ({})", outcomes.len());
        Ok(true)
    } else {
        println!("failed scenarios: {}", failed.join(", "));
        Ok(false)
    }
}

/// The checked-out commit (with `+dirty` when the tree has changes), or
/// `unknown` outside a git checkout.
async fn git_commit() -> String {
    let run = |args: &'static [&'static str]| async move {
        tokio::process::Command::new("git")
            .args(args)
            .output()
            .await
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(commit) = run(&["rev-parse", "--short", "HEAD"]).await else {
        return "unknown".to_owned();
    };
    let dirty = run(&["status", "--porcelain", "--untracked-files=no"])
        .await
        .is_some_and(|s| !s.is_empty());
    if dirty {
        format!("{commit}+dirty")
    } else {
        commit
    }
}
