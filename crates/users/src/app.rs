//! Building and running the users service from [`Settings`]: the one way
//! `main`, the all-in-one `shop` binary and the tests start it.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use shop_common::auth::{TokenError, TokenIssuer};
use shop_common::db::{Db, DbError};
use shop_common::health::Readiness;
use shop_common::server::{self, BindError, Service};
use shop_discovery::{Registration, Registry, RegistryError};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::Settings;
use crate::hashing::{HashError, PasswordHasher};
use crate::login_limit::LoginLimiter;
use crate::routes::{self, AppState};
use crate::store::{MIGRATOR, UserStore};

/// The service name in logs and metrics.
pub const SERVICE: &str = "users";

/// Largest request body; registrations and logins are tiny.
pub const BODY_LIMIT: usize = 64 * 1024;

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
    /// The signing key is unusable.
    #[error(transparent)]
    Key(#[from] TokenError),
    /// The password hasher could not start.
    #[error(transparent)]
    Hash(#[from] HashError),
}

/// A users service that is bound and ready to run.
pub struct Application {
    listener: TcpListener,
    admin: Option<(TcpListener, SocketAddr)>,
    router: Router,
    addr: SocketAddr,
    db: Db,
    issuer: Arc<TokenIssuer>,
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
    /// pass their own): opens and migrates the database, loads the signing
    /// key, binds the API and admin listeners (port 0 picks a free port) and
    /// registers the instance (its API address).
    ///
    /// # Errors
    /// [`StartError`] naming what could not be set up.
    pub async fn build_in(settings: Settings, registry: Registry) -> Result<Self, StartError> {
        let db = Db::connect(&settings.database).await?;
        db.migrate(&MIGRATOR).await?;
        let issuer = Arc::new(TokenIssuer::from_settings(&settings.auth)?);
        // Which keys this replica signs with and publishes: what an operator
        // checks at each step of a key rotation.
        tracing::info!(
            kid = issuer.kid(),
            published = ?issuer.published_kids(),
            "token signing key loaded"
        );
        let state = AppState {
            store: UserStore::new(db.clone()),
            verifier: issuer.verifier(),
            issuer: Arc::clone(&issuer),
            hasher: PasswordHasher::new().await?,
            limiter: Arc::new(LoginLimiter::new(&settings.login_limit)),
            trust_forwarded_for: settings.login_limit.trust_forwarded_for,
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
            issuer,
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

    /// The token issuer, whose verifier other in-process services may share.
    pub fn issuer(&self) -> Arc<TokenIssuer> {
        Arc::clone(&self.issuer)
    }

    /// Serves until `stop` is cancelled: then deregisters at once, drains
    /// in-flight requests and closes the database.
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
