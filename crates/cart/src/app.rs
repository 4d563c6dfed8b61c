//! Building and running the cart service from [`Settings`]: the one way
//! `main`, the all-in-one `shop` binary and the tests start it. Beside the
//! listener runs the purge of old applied-order records.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use shop_common::auth::TokenVerifier;
use shop_common::db::{self, Db, DbError};
use shop_common::error::ErrorChain;
use shop_common::health::Readiness;
use shop_common::server::{self, BindError, Service};
use shop_discovery::{
    BuildError, JwksSource, Registration, Registry, RegistryError, UpstreamClient,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::Settings;
use crate::catalog::CatalogClient;
use crate::routes::{self, AppState};
use crate::store::{CartStore, MIGRATOR};
use shop_common::config::RetentionSettings;

/// The service name in discovery, logs and metrics.
pub const SERVICE: &str = "cart";

/// Largest request body; cart requests are tiny.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Records of applied order removals deleted after
/// `applied_orders.retention_secs`.
pub const APPLIED_ORDERS_PURGED: &str = "cart_applied_orders_purged_total";

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listener could not bind.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The registry could not be reached or the instance not registered.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// An upstream client could not be built from its settings.
    #[error(transparent)]
    Upstream(#[from] BuildError),
}

/// A cart service that is bound, registered and ready to run.
pub struct Application {
    listener: TcpListener,
    admin: Option<(TcpListener, SocketAddr)>,
    router: Router,
    addr: SocketAddr,
    db: Db,
    registration: Registration,
    settings: Settings,
}

impl Application {
    /// Builds the service with the registry its settings name.
    ///
    /// # Errors
    /// [`StartError`] naming what could not be set up.
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        let registry = Registry::from_settings(&settings.registry).await?;
        Self::build_in(settings, registry).await
    }

    /// Builds the service with `registry` (tests and the all-in-one binary
    /// pass their own): opens and migrates the database, binds the API and
    /// admin listeners (port 0 picks a free port) and registers the instance
    /// (its API address).
    ///
    /// # Errors
    /// [`StartError`] naming what could not be set up.
    pub async fn build_in(settings: Settings, registry: Registry) -> Result<Self, StartError> {
        let db = Db::connect(&settings.database).await?;
        db.migrate(&MIGRATOR).await?;
        let catalog = CatalogClient::new(
            UpstreamClient::new("catalog", &settings.catalog, &registry)?,
            &settings.catalog_cache,
        );
        let users = UpstreamClient::new("users", &settings.users, &registry)?;
        let verifier =
            TokenVerifier::from_settings(&settings.auth, Arc::new(JwksSource::new(users)));
        let service_token_digest = settings
            .internal
            .service_token
            .as_ref()
            .map(|token| Arc::new(Sha256::digest(token.expose_secret().as_bytes()).into()));
        if service_token_digest.is_none() {
            tracing::warn!(
                "internal.service_token is not set: orders cannot clear carts (internal routes refuse every call)"
            );
        }
        let state = AppState {
            store: CartStore::new(db.clone()),
            catalog,
            verifier,
            service_token_digest,
            currency: settings.currency.as_str().into(),
        };
        let router = routes::router(state).layer(DefaultBodyLimit::max(BODY_LIMIT));
        let (listener, addr) = server::bind(&settings.http).await?;
        let admin = server::bind_admin(&settings.admin).await?;
        let registration = settings.instance.register(&registry, SERVICE, addr)?;
        Ok(Self {
            listener,
            admin,
            router,
            addr,
            db,
            registration,
            settings,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The bound admin address (`/metrics`); `None` when `admin.enabled` is off.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|(_, addr)| *addr)
    }

    /// Serves until `stop` is cancelled: then deregisters at once (callers
    /// stop picking this instance), stops the purge of applied-order
    /// records, drains in-flight requests and closes the database.
    ///
    /// # Errors
    /// An I/O error from the listener.
    pub async fn run_until_stopped(self, stop: CancellationToken) -> std::io::Result<()> {
        let registration = self.registration;
        // Its own token: it must also stop if the listener fails without a
        // stop signal.
        let purge_stop = stop.child_token();
        let purge = tokio::spawn(purge_applied_orders(
            CartStore::new(self.db.clone()),
            self.settings.applied_orders.clone(),
            purge_stop.clone(),
        ));
        let service = Service {
            name: SERVICE,
            listener: self.listener,
            admin: self.admin.map(|(listener, _)| listener),
            router: self.router,
            readiness: Readiness::new(),
            db: Some(self.db),
            limits: self.settings.http.limits(),
            on_stop: async move { registration.deregister().await },
        };
        let result = server::run(service, stop).await;
        purge_stop.cancel();
        if let Err(err) = purge.await {
            tracing::error!(error = %err, "applied-order purge task failed");
        }
        result
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
