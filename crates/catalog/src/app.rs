//! The catalog service on the shared lifecycle ([`shop_runtime`]): what it
//! assembles from [`Settings`].

use axum::extract::DefaultBodyLimit;
use shop_common::db::Db;
use shop_runtime::{Context, Parts, Service, StartError};

use crate::Settings;
use crate::routes::{self, AppState};
use crate::store::{CatalogStore, MIGRATOR};

/// The service name in discovery, logs and metrics.
pub const SERVICE: &str = "catalog";

/// Largest request body. The API is read-only, so no request needs one.
pub const BODY_LIMIT: usize = 4 * 1024;

/// The catalog service (see [`shop_runtime`] for its lifecycle).
#[derive(Debug)]
pub struct Catalog;

/// A catalog service that is bound, registered and ready to run.
pub type Application = shop_runtime::Application<Catalog>;

shop_runtime::http_service_settings!(Settings);

impl Service for Catalog {
    type Settings = Settings;
    const NAME: &'static str = SERVICE;
    const ABOUT: &'static str = "ferroshop catalog service: the read-only product catalog";

    /// Opens and migrates the database (seeding the demo catalog on first
    /// start).
    async fn assemble(settings: &Settings, _: &Context) -> Result<(Self, Parts), StartError> {
        let db = Db::connect(&settings.database).await?;
        db.migrate(&MIGRATOR).await?;
        let state = AppState {
            store: CatalogStore::new(db.clone()),
        };
        let router = routes::router(state).layer(DefaultBodyLimit::max(BODY_LIMIT));
        Ok((Self, Parts::http(router, db)))
    }
}
