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
        let shop = Shop::start(&options).await?;
        println!("{}", shop.banner());
        shop.run_until_stopped(shop_common::shutdown::on_signal())
            .await
    };
    match result.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("shop: {err:#}");
            ExitCode::FAILURE
        }
    }
}
