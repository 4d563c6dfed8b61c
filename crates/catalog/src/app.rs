//! Building and running the catalog service from [`Settings`]: the one way
//! `main`, the all-in-one `shop` binary and the tests start it.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use shop_common::db::{Db, DbError};
use shop_common::health::Readiness;
use shop_common::server::{self, BindError, Service};
use shop_discovery::{Registration, Registry, RegistryError};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::Settings;
use crate::routes::{self, AppState};
use crate::store::{CatalogStore, MIGRATOR};

/// The service name in logs and metrics.
pub const SERVICE: &str = "catalog";

/// Largest request body. The API is read-only, so no request needs one.
pub const BODY_LIMIT: usize = 4 * 1024;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listener could not bind.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The registry could not be reached or the instance not registered.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A catalog service that is bound and ready to run.
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
    /// pass their own): opens and migrates the database (seeding the demo
    /// catalog on first start), binds the API and admin listeners (port 0
    /// picks a free port) and registers the instance (its API address).
    ///
    /// # Errors
    /// [`StartError`] naming what could not be set up.
    pub async fn build_in(settings: Settings, registry: Registry) -> Result<Self, StartError> {
        let db = Db::connect(&settings.database).await?;
        db.migrate(&MIGRATOR).await?;
        let state = AppState {
            store: CatalogStore::new(db.clone()),
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

    /// Serves until `stop` is cancelled: then deregisters at once, drains
    /// in-flight requests (then the admin listener) and closes the database.
    ///
    /// # Errors
    /// An I/O error from the listener.
    pub async fn run_until_stopped(self, stop: CancellationToken) -> std::io::Result<()> {
        let registration = self.registration;
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
        server::run(service, stop).await
    }
}
