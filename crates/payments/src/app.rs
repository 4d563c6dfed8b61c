//! The payments service on the shared lifecycle ([`shop_runtime`]): what it
//! assembles from [`Settings`].

use axum::extract::DefaultBodyLimit;
use shop_common::auth::ServiceGuard;
use shop_runtime::{Context, Parts, Service, Spec, StartError};

use crate::Settings;
use crate::ledger::Ledger;
use crate::provider::FakeProvider;
use crate::routes::{self, AppState};
use crate::store::{MIGRATOR, PaymentStore};

/// Largest request body; an authorization is a few dozen bytes.
pub const BODY_LIMIT: usize = 4 * 1024;

/// The payments service (see [`shop_runtime`] for its lifecycle).
pub struct Payments;

impl Service for Payments {
    type Settings = Settings;
    const SPEC: Spec = Spec::new("payments").migrated_by(&MIGRATOR);

    /// Opens and migrates the database; every route sits behind the
    /// service credential. Ready when the database answers.
    async fn assemble(settings: &Settings, context: &Context) -> Result<(Self, Parts), StartError> {
        let state = AppState {
            ledger: Ledger::new(
                PaymentStore::new(context.db()?),
                FakeProvider::new(&settings.provider),
            ),
        };
        let guard = ServiceGuard::new(&settings.internal, "payments");
        let router = routes::router(state, &guard).layer(DefaultBodyLimit::max(BODY_LIMIT));
        Ok((Self, Parts::http(router, context)))
    }
}
