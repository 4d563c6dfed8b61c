//! `shop-catalog`: the catalog service as its own process.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use shop_catalog::{Application, Settings};

/// ferroshop catalog service: the read-only product catalog.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file (also `SHOP_CONFIG`); `SHOP_` env vars override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Probe this service's `/readyz` on its configured port and exit 0 when
    /// ready (container health checks; images have no curl).
    #[arg(long)]
    healthcheck: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.healthcheck {
        let bound = Settings::load(cli.config.as_deref()).map(|s| s.http.addr());
        return shop_common::healthcheck::exit_code(bound).await;
    }
    shop_common::telemetry::init();
    let result = async {
        let app = Application::build(Settings::load(cli.config.as_deref())?).await?;
        app.run_until_stopped(shop_common::shutdown::on_signal())
            .await?;
        anyhow::Ok(())
    };
    match result.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("shop-catalog: {err:#}");
            ExitCode::FAILURE
        }
    }
}
