//! `shop-gateway`: the gateway as its own process.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use shop_gateway::{Application, Settings};

/// ferroshop API gateway: the single public entry point.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file (also `SHOP_CONFIG`); `SHOP_` env vars override it.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    shop_common::telemetry::init();
    let cli = Cli::parse();
    let result = async {
        let app = Application::build(Settings::load(cli.config.as_deref())?).await?;
        app.run_until_stopped(shop_common::shutdown::on_signal())
            .await?;
        anyhow::Ok(())
    };
    match result.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("shop-gateway: {err:#}");
            ExitCode::FAILURE
        }
    }
}
