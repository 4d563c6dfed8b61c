//! The cart service on the shared lifecycle ([`shop_runtime`]): what it
//! assembles from [`Settings`]. Beside the listener runs the purge of old
//! applied-order records.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use shop_common::auth::{ServiceGuard, TokenVerifier};
use shop_common::config::RetentionSettings;
use shop_common::db;
use shop_common::error::ErrorChain;
use shop_discovery::{JwksSource, UpstreamClient};
use shop_runtime::{Context, Parts, Service, Spec, StartError, StopAt, Worker};
use tokio_util::sync::CancellationToken;

use crate::Settings;
use crate::catalog::CatalogClient;
use crate::routes::{self, AppState};
use crate::store::{CartStore, MIGRATOR};

/// Largest request body; cart requests are tiny.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Records of applied order removals deleted after
/// `applied_orders.retention_secs`.
pub const APPLIED_ORDERS_PURGED: &str = "cart_applied_orders_purged_total";

/// The cart service (see [`shop_runtime`] for its lifecycle).
pub struct Cart;

impl Service for Cart {
    type Settings = Settings;
    const SPEC: Spec = Spec::new("cart").migrated_by(&MIGRATOR);

    /// Opens and migrates the database, builds the catalog and users
    /// clients; beside the listener runs the purge of old applied-order
    /// records (stopped after the drain).
    async fn assemble(settings: &Settings, context: &Context) -> Result<(Self, Parts), StartError> {
        let catalog = CatalogClient::new(
            UpstreamClient::new("catalog", &settings.catalog, &context.registry)
                .map_err(StartError::upstream("catalog"))?,
            &settings.catalog_cache,
        );
        let users = UpstreamClient::new("users", &settings.users, &context.registry)
            .map_err(StartError::upstream("users"))?;
        let verifier =
            TokenVerifier::from_settings(&settings.auth, Arc::new(JwksSource::new(users)));
        let db = context.db()?;
        let state = AppState {
            store: CartStore::new(db.clone()),
            catalog,
            verifier,
            currency: settings.currency.as_str().into(),
        };
        let guard = ServiceGuard::new(&settings.internal, "cart");
        let router = routes::router(state, &guard).layer(DefaultBodyLimit::max(BODY_LIMIT));
        let purge = {
            let store = CartStore::new(db.clone());
            let retention = settings.applied_orders.clone();
            Worker::new("applied-order purge", StopAt::Drained, move |stop| {
                purge_applied_orders(store, retention, stop)
            })
        };
        Ok((Self, Parts::http(router, context).with_worker(purge)))
    }
}

/// Deletes applied-order records older than the retention (see
/// [`CartStore::purge_applied_orders`] for why that is safe): at once, then
/// every `applied_orders.purge_interval_ms` until `stop`. Every replica may
/// run it; concurrent purges only share the work.
async fn purge_applied_orders(
    store: CartStore,
    settings: RetentionSettings,
    stop: CancellationToken,
) {
    // Handles taken before the recorder exists would record nothing.
    shop_common::metrics::handle();
    let purged_total = &metrics::counter!(APPLIED_ORDERS_PURGED);
    let store = &store;
    loop {
        let before = db::timestamp_text_ago(settings.retention());
        let cutoff = before.as_str();
        let purged = db::delete_in_batches(settings.purge_batch_size, &stop, |limit| async move {
            let deleted = store.purge_applied_orders(cutoff, limit).await?;
            purged_total.increment(deleted);
            Ok::<_, crate::store::StoreError>(deleted)
        })
        .await;
        match purged {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, before = %before, "applied-order records purged"),
            Err(err) => {
                tracing::warn!(error = %ErrorChain(&err), "applied-order purge failed; trying again next round");
            }
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(settings.purge_interval()) => {}
        }
    }
}
