//! HTTP routes of the users service, one file per resource. Paths are the
//! public API's, so the gateway forwards them unchanged.

mod jwks;
mod sessions;
mod users;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::http::HeaderMap;
use shop_common::auth::{TokenIssuer, TokenVerifier};

use crate::hashing::PasswordHasher;
use crate::login_limit::LoginLimiter;
use crate::store::UserStore;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The users table.
    pub store: UserStore,
    /// Signs access tokens.
    pub issuer: Arc<TokenIssuer>,
    /// Verifies access tokens (for `/api/users/me`).
    pub verifier: TokenVerifier,
    /// Argon2id, off the async workers.
    pub hasher: PasswordHasher,
    /// Login limiter per client and login and per account.
    pub limiter: Arc<LoginLimiter>,
    /// Whether to take the client address from [`CLIENT_IP_HEADER`]
    /// (`login_limit.trust_forwarded_for`) rather than from the peer.
    pub trust_forwarded_for: bool,
}

impl FromRef<AppState> for TokenVerifier {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

impl AppState {
    /// The client's address: the peer, or — behind the gateway, when
    /// `login_limit.trust_forwarded_for` is on — the address the gateway
    /// resolved for the client and put in `x-shop-client-ip` (it overwrites
    /// whatever a client sent there; `X-Forwarded-For` entries, by contrast,
    /// may have been written by the client).
    pub fn client_addr(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        if self.trust_forwarded_for {
            let resolved = headers
                .get(CLIENT_IP_HEADER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse().ok());
            if let Some(addr) = resolved {
                return addr;
            }
        }
        peer.ip()
    }
}

/// The header in which the gateway passes on the client address it resolved.
pub use shop_common::wire::CLIENT_IP as CLIENT_IP_HEADER;

/// The service's API routes (health routes are added by the application).
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(users::router())
        .merge(sessions::router())
        .merge(jwks::router())
        .with_state(state)
}
