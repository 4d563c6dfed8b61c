//! HTTP routes of the payments service. Every route is internal: it lives
//! under `/internal`, needs the service credential, and is never forwarded
//! by the gateway.

mod payments;

use axum::Router;
use shop_common::auth::ServiceGuard;

use crate::ledger::Ledger;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The payments and the provider.
    pub ledger: Ledger,
}

/// The service's routes (health routes are added by the application),
/// every one behind `guard`.
pub fn router(state: AppState, guard: &ServiceGuard) -> Router {
    guard.protect(payments::router()).with_state(state)
}
