//! The users service on the shared lifecycle ([`shop_runtime`]): what it
//! assembles from [`Settings`].

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use shop_common::auth::TokenIssuer;
use shop_runtime::{Context, Parts, Service, Spec, StartError};

use crate::Settings;
use crate::hashing::PasswordHasher;
use crate::login_limit::LoginLimiter;
use crate::routes::{self, AppState};
use crate::store::{MIGRATOR, UserStore};

/// Largest request body; registrations and logins are tiny.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The users service (see [`shop_runtime`] for its lifecycle), with the
/// token issuer it signs with.
#[derive(Debug)]
pub struct Users {
    issuer: Arc<TokenIssuer>,
}

impl Users {
    /// The token issuer, whose verifier other in-process services may share.
    pub fn issuer(&self) -> Arc<TokenIssuer> {
        Arc::clone(&self.issuer)
    }
}

impl Service for Users {
    type Settings = Settings;
    const SPEC: Spec = Spec::new("users").migrated_by(&MIGRATOR);

    /// Opens and migrates the database, loads the signing key and starts
    /// the password hasher.
    async fn assemble(settings: &Settings, context: &Context) -> Result<(Self, Parts), StartError> {
        let issuer = Arc::new(
            TokenIssuer::from_settings(&settings.auth)
                .map_err(|err| StartError::component("signing key", err))?,
        );
        // Which keys this replica signs with and publishes: what an operator
        // checks at each step of a key rotation.
        tracing::info!(
            kid = issuer.kid(),
            published = ?issuer.published_kids(),
            "token signing key loaded"
        );
        let db = context.db()?;
        let state = AppState {
            store: UserStore::new(db.clone()),
            verifier: issuer.verifier(),
            issuer: Arc::clone(&issuer),
            hasher: PasswordHasher::new()
                .await
                .map_err(|err| StartError::component("password hasher", err))?,
            limiter: Arc::new(LoginLimiter::new(&settings.login_limit)),
            trust_forwarded_for: settings.login_limit.trust_forwarded_for,
        };
        let router = routes::router(state).layer(DefaultBodyLimit::max(BODY_LIMIT));
        Ok((Self { issuer }, Parts::http(router, context)))
    }
}
