//! Building and running the catalog service from [`Settings`]: the one way
//! `main`, the all-in-one `shop` binary and the tests start it.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use shop_common::db::{Db, DbError};
use shop_common::health::{self, Readiness};
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
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A catalog service that is bound and ready to run.
pub struct Application {
    listener: TcpListener,
    router: Router,
    addr: SocketAddr,
    db: Db,
    settings: Settings,
}

impl Application {
    /// Opens and migrates the database (seeding the demo catalog on first
    /// start) and binds the listener (port 0 picks a free port).
    ///
    /// # Errors
    /// [`StartError`] naming what could not be set up.
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        let db = Db::connect(&settings.database).await?;
        db.migrate(&MIGRATOR).await?;
        let state = AppState {
            store: CatalogStore::new(db.clone()),
        };
        let router = routes::router(state).layer(DefaultBodyLimit::max(BODY_LIMIT));
        let requested = settings.http.addr();
        let listener = TcpListener::bind(requested)
            .await
            .map_err(|source| StartError::Bind {
                addr: requested,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: requested,
            source,
        })?;
        Ok(Self {
            listener,
            router,
            addr,
            db,
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

    /// Serves until `stop` is cancelled, drains in-flight requests, then
    /// closes the database.
    ///
    /// # Errors
    /// An I/O error from the listener.
    pub async fn run_until_stopped(self, stop: CancellationToken) -> std::io::Result<()> {
        let readiness = Readiness::new()
            .with_check(self.db.clone())
            .with_stop(stop.clone());
        let router = shop_common::server::with_common_layers(
            self.router.merge(health::router(readiness)),
            SERVICE,
        );
        tracing::info!(addr = %self.addr, "catalog service listening");
        let result = shop_common::server::serve(
            self.listener,
            router,
            stop,
            self.settings.http.drain_timeout(),
        )
        .await;
        self.db.close().await;
        tracing::info!("catalog service stopped");
        result
    }
}
