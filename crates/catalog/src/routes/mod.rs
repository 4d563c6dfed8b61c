//! HTTP routes of the catalog service, one file per resource. The public
//! paths are the API's, so the gateway forwards them unchanged; they only
//! read. Stock changes through the internal routes, which live under
//! `/internal`, need the service credential, and are never forwarded by the
//! gateway.

mod internal;
mod products;

use axum::Router;
use shop_common::auth::ServiceGuard;

use crate::metrics::StockMetrics;
use crate::stock::StockStore;
use crate::store::CatalogStore;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The products table.
    pub store: CatalogStore,
    /// Stock and its reservations.
    pub stock: StockStore,
    /// How reservations and releases end.
    pub metrics: StockMetrics,
}

/// The service's routes (health routes are added by the application); the
/// internal ones behind `guard`.
pub fn router(state: AppState, guard: &ServiceGuard) -> Router {
    Router::new()
        .merge(products::router())
        .merge(guard.protect(internal::router()))
        .with_state(state)
}
