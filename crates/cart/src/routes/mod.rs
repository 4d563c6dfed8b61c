//! HTTP routes of the cart service: the public `/api/cart` routes and the
//! internal route orders uses. Internal routes live under `/internal`, need
//! the service credential, and are never forwarded by the gateway.

mod cart;
mod internal;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use shop_common::auth::{ServiceGuard, TokenVerifier};

use crate::catalog::CatalogClient;
use crate::store::CartStore;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The cart tables.
    pub store: CartStore,
    /// Names and prices.
    pub catalog: CatalogClient,
    /// Verifies user tokens.
    pub verifier: TokenVerifier,
    /// Currency of an empty cart.
    pub currency: Arc<str>,
}

impl FromRef<AppState> for TokenVerifier {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

/// The service's routes (health routes are added by the application); the
/// internal ones behind `guard`.
pub fn router(state: AppState, guard: &ServiceGuard) -> Router {
    Router::new()
        .merge(cart::router())
        .merge(guard.protect(internal::router()))
        .with_state(state)
}
