//! The one lifecycle of every ferroshop service.
//!
//! A service supplies only what differs — its settings, its routes (or gRPC
//! server), its database and its background workers — by implementing
//! [`Service`]. Everything else happens here, the same way for every
//! service and for every caller (`main`, the all-in-one `shop`, the tests):
//!
//! 1. **build** ([`Application::build`] / [`Application::build_in`]): the
//!    settings are validated, the registry is reached, the service assembles
//!    its [`Parts`], the API and admin listeners are bound (port 0 picks a
//!    free one) and the instance is registered under a resolved id;
//! 2. **run** ([`Application::run_until_stopped`], or [`Application::spawn`]
//!    for a [`Running`] handle): the workers start and the listeners serve;
//! 3. **stop**, when the stop token is cancelled: `/readyz` reports not ready
//!    and the instance deregisters at once (callers stop picking it); the
//!    API listener (HTTP or gRPC) keeps accepting for its shutdown delay
//!    (`http.shutdown_delay_ms`), the time callers take to forget the
//!    instance, then stops accepting and drains within its drain time; then
//!    the admin listener stops; the workers stop (those that follow the
//!    signal at once, the others after the drain) and the database closes.
//!
//! [`main`] is the whole `main` of a service binary.

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;

use axum::Router;
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use shop_common::cli::{self, Binary};
use shop_common::config::{
    self, AdminSettings, ConfigError, DatabaseSettings, HttpSettings, ListenerLimits,
};
use shop_common::db::{Db, DbError};
use shop_common::health::{self, Readiness};
use shop_common::server::{self, BindError};
use shop_common::telemetry::{self, TelemetrySettings};
use shop_discovery::{
    BuildError, InstanceSettings, Registration, Registry, RegistryError, RegistrySettings, Scheme,
};
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

mod running;

pub use running::Running;

/// What a service's settings must tell the lifecycle.
pub trait ServiceSettings: DeserializeOwned + Clone + Default + Send + Sync + 'static {
    /// Checks what serde cannot.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key at fault.
    fn validate(&self) -> Result<(), ConfigError>;
    /// The API listener: the one registered in discovery.
    fn api(&self) -> HttpSettings;
    /// The admin listener (`/metrics` and the probes).
    fn admin(&self) -> AdminSettings;
    /// Where instances register and are found.
    fn registry(&self) -> &RegistrySettings;
    /// How this instance registers itself.
    fn instance(&self) -> &InstanceSettings;
    /// `[telemetry]`: where this service's spans are exported.
    fn telemetry(&self) -> &TelemetrySettings;
    /// The service's database, when it has one: the lifecycle opens and
    /// migrates it before the service assembles, and closes it last.
    fn database(&self) -> Option<&DatabaseSettings> {
        None
    }

    /// Where `--healthcheck` asks `/readyz`: the API listener, unless the
    /// API is not HTTP.
    fn probe_addr(&self) -> SocketAddr {
        self.api().addr()
    }

    /// Loads the settings: defaults, then the TOML `file` (or
    /// `SHOP_CONFIG`), then `SHOP_` environment variables; then validates
    /// them. A table configured in part keeps the service's defaults for
    /// the rest when the settings type is laid over its own `Default`
    /// ([`shop_common::settings_over_defaults!`], which
    /// [`http_service_settings!`] implements).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key that is missing, unknown or malformed.
    fn load(file: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        let settings: Self = config::load(file)?;
        settings.validate()?;
        settings.telemetry().validate()?;
        Ok(settings)
    }
}

/// Implements [`ServiceSettings`] for the settings of an HTTP service: a
/// struct with the fields `http` (the API listener), `admin`, `registry`,
/// `instance` and `telemetry`, and an inherent `validate`;
/// `(Settings, database)` for one with a `database` field too.
///
/// It also lays the settings over their own `Default` when they load
/// ([`shop_common::settings_over_defaults!`]), so the struct derives
/// `Deserialize` and `Serialize` with `#[serde(remote = "Self")]`: setting
/// one key of a table (`SHOP_HTTP__SHUTDOWN_DELAY_MS`) keeps the service's
/// port and every other default of it.
#[macro_export]
macro_rules! http_service_settings {
    ($settings:ty, database) => {
        $crate::http_service_settings!($settings, {
            fn database(&self) -> Option<&$crate::reexport::DatabaseSettings> {
                Some(&self.database)
            }
        });
    };
    ($settings:ty) => {
        $crate::http_service_settings!($settings, {});
    };
    ($settings:ty, { $($more:tt)* }) => {
        $crate::reexport::settings_over_defaults!($settings);

        impl $crate::ServiceSettings for $settings {
            $($more)*
            fn validate(&self) -> ::std::result::Result<(), $crate::reexport::ConfigError> {
                <$settings>::validate(self)
            }
            fn api(&self) -> $crate::reexport::HttpSettings {
                self.http.clone()
            }
            fn admin(&self) -> $crate::reexport::AdminSettings {
                self.admin.clone()
            }
            fn registry(&self) -> &$crate::reexport::RegistrySettings {
                &self.registry
            }
            fn instance(&self) -> &$crate::reexport::InstanceSettings {
                &self.instance
            }
            fn telemetry(&self) -> &$crate::reexport::TelemetrySettings {
                &self.telemetry
            }
        }
    };
}

/// What [`http_service_settings!`] names.
#[doc(hidden)]
pub mod reexport {
    pub use shop_common::config::{AdminSettings, ConfigError, DatabaseSettings, HttpSettings};
    pub use shop_common::settings_over_defaults;
    pub use shop_common::telemetry::TelemetrySettings;
    pub use shop_discovery::{InstanceSettings, RegistrySettings};
}

/// A service: what differs from one to the next.
pub trait Service: Sized + Send + Sync + 'static {
    /// Its settings.
    type Settings: ServiceSettings;
    /// Its name and the migrations of its database.
    const SPEC: Spec;

    /// Opens what the service needs (database, upstream clients, keys) and
    /// returns it with its [`Parts`]. Nothing is bound or registered yet.
    ///
    /// # Errors
    /// A [`StartError`] naming what could not be set up.
    fn assemble(
        settings: &Self::Settings,
        context: &Context,
    ) -> impl Future<Output = Result<(Self, Parts), StartError>>;
}

/// What a service is, known before it starts: its name in discovery, logs
/// and metrics, and the migrations the lifecycle runs on its database at
/// every start.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// The service name.
    pub name: &'static str,
    /// Its database's migrations, when it has a database.
    pub migrator: Option<&'static Migrator>,
}

impl Spec {
    /// A service named `name`, without migrations.
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            migrator: None,
        }
    }

    /// The same service, its database migrated by `migrator`.
    #[must_use]
    pub const fn migrated_by(self, migrator: &'static Migrator) -> Self {
        Self {
            migrator: Some(migrator),
            ..self
        }
    }
}

/// What a service is given to assemble itself.
#[derive(Debug, Clone)]
pub struct Context {
    /// The registry its upstream clients find instances in.
    pub registry: Registry,
    /// The id this instance registers under.
    pub instance_id: String,
    /// The database, opened and migrated, when the settings name one.
    pub db: Option<Db>,
}

impl Context {
    /// The service's database.
    ///
    /// # Errors
    /// [`StartError::Component`] when the settings name no database (a
    /// service asking for one must have database settings).
    pub fn db(&self) -> Result<Db, StartError> {
        self.db.clone().ok_or(StartError::Component {
            what: "database",
            source: "the service's settings name no database".into(),
        })
    }
}

/// What a service serves and runs.
pub struct Parts {
    /// The API the registered listener serves.
    pub api: Api,
    /// Readiness checks (`/readyz`), the database's included when it should
    /// be one.
    pub readiness: Readiness,
    /// Work beside the listeners (purges, relays).
    pub workers: Vec<Worker>,
}

impl Parts {
    /// An HTTP service; its database, when it has one, is its readiness
    /// check.
    pub fn http(router: Router, context: &Context) -> Self {
        let readiness = Readiness::new();
        Self {
            api: Api::Http(router),
            readiness: match &context.db {
                Some(db) => readiness.with_check(db.clone()),
                None => readiness,
            },
            workers: Vec::new(),
        }
    }

    /// Adds a worker.
    #[must_use]
    pub fn with_worker(mut self, worker: Worker) -> Self {
        self.workers.push(worker);
        self
    }
}

/// The API a service serves on its registered listener.
pub enum Api {
    /// HTTP routes; the probes and shared layers are added.
    Http(Router),
    /// A gRPC server: called with the bound listener and a future that
    /// resolves once the instance is deregistered and the server should stop
    /// accepting calls; it drains what it has in flight (the lifecycle bounds
    /// the drain). Its probes and `/metrics` are on the admin listener.
    Grpc(GrpcServe),
}

/// A gRPC server's serve function (see [`Api::Grpc`]).
pub type GrpcServe = Box<
    dyn FnOnce(TcpListener, BoxFuture<'static, ()>) -> BoxFuture<'static, std::io::Result<()>>
        + Send,
>;

/// When a worker is told to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopAt {
    /// With the stop signal, while the listeners drain (a relay stops
    /// claiming new work).
    Signal,
    /// After the listeners have drained (work the drained requests may
    /// still need, purges).
    Drained,
}

/// A task running beside the listeners until told to stop.
pub struct Worker {
    name: &'static str,
    stop_at: StopAt,
    run: Box<dyn FnOnce(CancellationToken) -> BoxFuture<'static, ()> + Send>,
}

impl Worker {
    /// A worker named `name` (in logs), running `run` until the token it is
    /// given is cancelled at `stop_at`.
    pub fn new<F>(
        name: &'static str,
        stop_at: StopAt,
        run: impl FnOnce(CancellationToken) -> F + Send + 'static,
    ) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        Self {
            name,
            stop_at,
            run: Box::new(move |stop| Box::pin(run(stop))),
        }
    }
}

/// Why a service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The settings are inconsistent.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listener could not bind.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The registry could not be reached or the instance not registered.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// An upstream client could not be built from its settings.
    #[error("{upstream}: {source}")]
    Upstream {
        /// The settings key of the upstream at fault.
        upstream: &'static str,
        /// The cause.
        #[source]
        source: BuildError,
    },
    /// Something the service itself sets up (a signing key, a hasher).
    #[error("{what}: {source}")]
    Component {
        /// What could not be set up.
        what: &'static str,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StartError {
    /// `what` could not be set up because of `source`.
    pub fn component(
        what: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Component {
            what,
            source: Box::new(source),
        }
    }

    /// The upstream client under settings key `upstream` could not be built.
    pub fn upstream(upstream: &'static str) -> impl FnOnce(BuildError) -> Self {
        move |source| Self::Upstream { upstream, source }
    }
}

/// A service that is assembled, bound and registered, ready to run.
pub struct Application<S> {
    service: S,
    parts: Parts,
    db: Option<Db>,
    listener: TcpListener,
    addr: SocketAddr,
    admin: Option<(TcpListener, SocketAddr)>,
    limits: ListenerLimits,
    registration: Registration,
}

impl<S: Service> Application<S> {
    /// Builds the service with the registry its settings name.
    ///
    /// # Errors
    /// [`StartError`] naming what could not be set up.
    pub async fn build(settings: S::Settings) -> Result<Self, StartError> {
        settings.validate()?;
        let registry = Registry::from_settings(settings.registry()).await?;
        Self::build_in(settings, registry).await
    }

    /// Builds the service with `registry` (tests and the all-in-one binary
    /// pass their own): validates the settings, assembles the service, binds
    /// the API and admin listeners and registers the API address.
    ///
    /// # Errors
    /// [`StartError`] naming what could not be set up.
    pub async fn build_in(settings: S::Settings, registry: Registry) -> Result<Self, StartError> {
        settings.validate()?;
        // Install the shared recorder before any metric is registered.
        shop_common::metrics::handle();
        let mut instance = settings.instance().clone();
        let instance_id = instance
            .id
            .get_or_insert_with(|| format!("{}-{:08x}", S::SPEC.name, rand::random::<u32>()))
            .clone();
        // As this service: the pool's and the upstream clients' metrics
        // are labelled with its name (one process may hold several).
        let (context, (service, parts)) = shop_common::metrics::scope(S::SPEC.name, async {
            let db = match settings.database() {
                Some(database) => Some(open_database(database, S::SPEC.migrator).await?),
                None => None,
            };
            let context = Context {
                registry: registry.clone(),
                instance_id,
                db,
            };
            let assembled = S::assemble(&settings, &context).await?;
            Ok::<_, StartError>((context, assembled))
        })
        .await?;
        let api = settings.api();
        let (listener, addr) = server::bind(&api).await?;
        let admin_settings = settings.admin();
        // A gRPC service's probes live on its admin listener: it is always on.
        let admin = if matches!(parts.api, Api::Grpc(_)) {
            Some(server::bind_addr(admin_settings.addr()).await?)
        } else {
            server::bind_admin(&admin_settings).await?
        };
        let scheme = match parts.api {
            Api::Http(_) => Scheme::Http,
            Api::Grpc(_) => Scheme::Grpc,
        };
        let registration = instance.register_with_scheme(&registry, S::SPEC.name, addr, scheme)?;
        Ok(Self {
            service,
            parts,
            db: context.db,
            listener,
            addr,
            admin,
            limits: api.limits(),
            registration,
        })
    }

    /// The bound API address (the registered one).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound API port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The bound admin address (`/metrics`); `None` when `admin.enabled` is
    /// off.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|(_, addr)| *addr)
    }

    /// The id the instance is registered under.
    pub fn instance_id(&self) -> &str {
        &self.registration.instance().id
    }

    /// The service's own handle (what it exposes beyond the lifecycle).
    pub fn service(&self) -> &S {
        &self.service
    }

    /// Runs the service on its own task; the returned handle stops it.
    pub fn spawn(self) -> Running {
        let name = self.instance_id().to_owned();
        let addr = self.addr;
        let admin = self.admin_addr();
        let stop = CancellationToken::new();
        let task = tokio::spawn(self.run_until_stopped(stop.clone()));
        Running::new(name, addr, admin, stop, task)
    }

    /// Serves until `stop` is cancelled; then stops as the crate
    /// documentation says.
    ///
    /// # Errors
    /// An I/O error from a listener or the gRPC server.
    pub async fn run_until_stopped(self, stop: CancellationToken) -> std::io::Result<()> {
        let Self {
            parts,
            db,
            listener,
            admin,
            limits,
            registration,
            ..
        } = self;
        let Parts {
            api,
            readiness,
            workers,
        } = parts;
        let drained = CancellationToken::new();
        let workers = start_workers(workers, &stop, &drained);
        let deregistered = {
            let stop = stop.clone();
            async move {
                stop.cancelled().await;
                registration.deregister().await;
            }
        };
        let admin = admin.map(|(listener, _)| listener);
        let result = match api {
            Api::Http(router) => {
                let service = server::Service {
                    name: S::SPEC.name,
                    listener,
                    admin,
                    router,
                    readiness,
                    db: None,
                    limits,
                    on_stop: deregistered,
                };
                server::run(service, stop.clone()).await
            }
            Api::Grpc(serve) => {
                // The probes and /metrics answer until the gRPC listener has
                // stopped (delay and drain included); /readyz reports not
                // ready from the stop signal on.
                let admin_stop = CancellationToken::new();
                let grpc = async {
                    let result =
                        serve_grpc(serve, listener, Box::pin(deregistered), &stop, limits).await;
                    admin_stop.cancel();
                    result
                };
                let admin = async {
                    let Some(admin) = admin else { return Ok(()) };
                    let service = server::Service {
                        name: S::SPEC.name,
                        listener: admin,
                        admin: None,
                        router: health::metrics_router(),
                        readiness: readiness.with_stop(stop.clone()),
                        db: None,
                        limits: server::admin_limits(limits),
                        on_stop: async {},
                    };
                    server::run(service, admin_stop.clone()).await
                };
                let (grpc, admin) = tokio::join!(grpc, admin);
                grpc.and(admin)
            }
        };
        drained.cancel();
        for (name, task) in workers {
            if let Err(err) = task.await {
                tracing::error!(service = S::SPEC.name, worker = name, error = %err, "worker failed");
            }
        }
        if let Some(db) = db {
            db.close().await;
        }
        tracing::info!(service = S::SPEC.name, "stopped");
        result
    }
}

/// Opens the database of `settings` and runs `migrator` on it.
async fn open_database(
    settings: &DatabaseSettings,
    migrator: Option<&'static Migrator>,
) -> Result<Db, DbError> {
    let db = Db::connect(settings).await?;
    if let Some(migrator) = migrator {
        db.migrate(migrator).await?;
    }
    Ok(db)
}

/// Serves a gRPC API until it has drained after the stop signal, or until
/// the shutdown delay and the drain time are over. The server is told to
/// stop accepting (its future resolves) once the instance is deregistered
/// and the shutdown delay has passed since the stop signal.
async fn serve_grpc(
    serve: GrpcServe,
    listener: TcpListener,
    deregistered: BoxFuture<'static, ()>,
    stop: &CancellationToken,
    limits: ListenerLimits,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "gRPC listening");
    }
    let stop_accepting = {
        let stop = stop.clone();
        Box::pin(async move {
            stop.cancelled().await;
            let delay = tokio::time::sleep(limits.shutdown_delay);
            // Deregistered and past the delay: both, whichever ends last.
            tokio::join!(deregistered, delay);
        })
    };
    let deadline = async {
        stop.cancelled().await;
        tokio::time::sleep(limits.shutdown_delay + limits.drain).await;
    };
    tokio::select! {
        result = serve(listener, stop_accepting) => result,
        () = deadline => {
            tracing::warn!(drain_secs = limits.drain.as_secs_f64(), "gRPC drain time over; dropping open calls");
            Ok(())
        }
    }
}

fn start_workers(
    workers: Vec<Worker>,
    stop: &CancellationToken,
    drained: &CancellationToken,
) -> Vec<(&'static str, JoinHandle<()>)> {
    workers
        .into_iter()
        .map(|worker| {
            // A child token: a worker also stops if a listener fails
            // without a stop signal.
            let token = match worker.stop_at {
                StopAt::Signal => stop.child_token(),
                StopAt::Drained => drained.child_token(),
            };
            (worker.name, tokio::spawn((worker.run)(token)))
        })
        .collect()
}

/// The whole `main` of a service binary `shop-<NAME>`: `--config`,
/// `--healthcheck`, telemetry (logs, and span export when `[telemetry]`
/// names a collector: flushed after the service stopped), then build and
/// serve until SIGINT/SIGTERM; one line and exit status 1 on failure. `about` is what `--help` says the
/// binary is (its package's description).
pub async fn main<S: Service>(about: &'static str) -> ExitCode {
    let binary = Binary {
        // Once per process: the name lives as long as the program.
        name: Box::leak(format!("shop-{}", S::SPEC.name).into_boxed_str()),
        about,
        version: env!("CARGO_PKG_VERSION"),
    };
    cli::run_service(
        binary,
        S::Settings::load,
        ServiceSettings::probe_addr,
        |settings| async move {
            let export = telemetry::start_export(S::SPEC.name, settings.telemetry())?;
            let served = async {
                let app = Application::<S>::build(settings).await?;
                app.run_until_stopped(shop_common::shutdown::on_signal())
                    .await?;
                anyhow::Ok(())
            }
            .await;
            telemetry::shutdown(export).await;
            served
        },
    )
    .await
}
