//! The catalog service on the shared lifecycle ([`shop_runtime`]): what it
//! assembles from [`Settings`].

use axum::extract::DefaultBodyLimit;
use shop_runtime::{Context, Parts, Service, Spec, StartError};

use crate::Settings;
use crate::routes::{self, AppState};
use crate::store::{CatalogStore, MIGRATOR};

/// Largest request body. The API is read-only, so no request needs one.
pub const BODY_LIMIT: usize = 4 * 1024;

/// The catalog service (see [`shop_runtime`] for its lifecycle).
pub struct Catalog;

impl Service for Catalog {
    type Settings = Settings;
    const SPEC: Spec = Spec::new("catalog").migrated_by(&MIGRATOR);

    /// Opens and migrates the database (seeding the demo catalog on first
    /// start).
    async fn assemble(_: &Settings, context: &Context) -> Result<(Self, Parts), StartError> {
        let db = context.db()?;
        let state = AppState {
            store: CatalogStore::new(db.clone()),
        };
        let router = routes::router(state).layer(DefaultBodyLimit::max(BODY_LIMIT));
        Ok((Self, Parts::http(router, context)))
    }
}
