//! `shop-catalog`: the catalog service as its own process.

use std::process::ExitCode;

use shop_catalog::{Application, Settings};
use shop_common::cli::{Binary, run_service};

const BINARY: Binary = Binary {
    name: "shop-catalog",
    about: "ferroshop catalog service: the read-only product catalog",
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
