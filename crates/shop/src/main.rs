//! `shop`: the whole ferroshop stack in one process.

use std::process::ExitCode;

use clap::Parser;
use shop::{Options, Shop};

// The allocator every ferroshop binary uses (see the services' `main.rs`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    shop_common::telemetry::init();
    let options = Options::parse();
    let result = async {
        let export = shop_common::telemetry::start_export("shop", &options.telemetry()?)?;
        let served = async {
            let shop = Shop::start(&options).await?;
            println!("{}", shop.banner());
            shop.run_until_stopped(shop_common::shutdown::on_signal())
                .await
        }
        .await;
        // Last, so the spans of the shutdown are sent too.
        shop_common::telemetry::shutdown(export).await;
        served
    };
    match result.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("shop: {err:#}");
            ExitCode::FAILURE
        }
    }
}
