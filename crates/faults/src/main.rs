//! `shop-faults`: the fault harness over the compose stack (see the
//! library's documentation, and scripts/faults.sh, which brings the stack up).

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let args = shop_faults::cli::Args::parse();
    match shop_faults::run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
