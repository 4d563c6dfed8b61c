//! `shop-orders`: the orders service as its own process (its HTTP admin listener answers the probe).

use std::process::ExitCode;

use shop_common::cli::{Binary, run_service};
use shop_orders::{Application, Settings};

const BINARY: Binary = Binary {
    name: "shop-orders",
    about: "ferroshop orders service: exactly-once order placement over gRPC",
    version: env!("CARGO_PKG_VERSION"),
};

#[tokio::main]
async fn main() -> ExitCode {
    run_service(
        BINARY,
        Settings::load,
        |settings| settings.http.addr(),
        |settings| async move {
            let app = Application::build(settings).await?;
            app.run_until_stopped(shop_common::shutdown::on_signal())
                .await?;
            Ok(())
        },
    )
    .await
}
