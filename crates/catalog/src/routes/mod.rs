//! HTTP routes of the catalog service, one file per resource. Paths are the
//! public API's, so the gateway forwards them unchanged. The API is
//! read-only: the catalog changes only through migrations.

mod products;

use axum::Router;

use crate::store::CatalogStore;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The products table.
    pub store: CatalogStore,
}

/// The service's API routes (health routes are added by the application).
pub fn router(state: AppState) -> Router {
    Router::new().merge(products::router()).with_state(state)
}
