//! The catalog service on the shared lifecycle ([`shop_runtime`]): what it
//! assembles from [`Settings`].

use axum::extract::DefaultBodyLimit;
use shop_common::auth::ServiceGuard;
use shop_runtime::{Context, Parts, Service, Spec, StartError};

use crate::Settings;
use crate::metrics::StockMetrics;
use crate::routes::{self, AppState};
use crate::stock::StockStore;
use crate::store::{CatalogStore, MIGRATOR};

/// Largest request body. The public API only reads; the largest body is a
/// reservation of [`MAX_LINES`](crate::domain::MAX_LINES) lines, about 90
/// bytes of JSON each.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The catalog service (see [`shop_runtime`] for its lifecycle).
pub struct Catalog;

impl Service for Catalog {
    type Settings = Settings;
    const SPEC: Spec = Spec::new("catalog").migrated_by(&MIGRATOR);

    /// Opens and migrates the database (seeding the demo catalog on first
    /// start).
    async fn assemble(settings: &Settings, context: &Context) -> Result<(Self, Parts), StartError> {
        let db = context.db()?;
        let state = AppState {
            store: CatalogStore::new(db.clone()),
            stock: StockStore::new(db.clone()),
            metrics: StockMetrics::new(),
        };
        let guard = ServiceGuard::new(&settings.internal, "catalog");
        let router = routes::router(state, &guard).layer(DefaultBodyLimit::max(BODY_LIMIT));
        Ok((Self, Parts::http(router, context)))
    }
}
