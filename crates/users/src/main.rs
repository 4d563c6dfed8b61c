//! `shop-users`: the users service as its own process.

use std::process::ExitCode;

use shop_common::cli::{Binary, run_service};
use shop_users::{Application, Settings};

const BINARY: Binary = Binary {
    name: "shop-users",
    about: "ferroshop users service: registration, login, token issuing",
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
