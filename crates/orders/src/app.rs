//! Building and running the orders service from [`Settings`]: the one way
//! `main`, the all-in-one `shop` binary and the tests start it.
//!
//! Two listeners: gRPC (the API, `grpc.health.v1` and server reflection)
//! and HTTP admin (`/healthz`, `/readyz`, `/metrics`). The outbox relay and
//! the outbox purge run beside them and stop with them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use shop_common::auth::TokenVerifier;
use shop_common::db::{Db, DbError};
use shop_common::health::{self, Readiness};
use shop_common::server::{self, BindError, Service};
use shop_discovery::{
    BuildError, JwksSource, Registration, Registry, RegistryError, Scheme, UpstreamClient,
};
use shop_proto::orders::v1::order_service_server::OrderServiceServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::Settings;
use crate::cart::CartClient;
use crate::grpc::OrdersGrpc;
use crate::purge::Purger;
use crate::relay::{Acknowledger, Relay};
use crate::store::{MIGRATOR, OrderStore};

/// The service name in discovery, logs and metrics.
pub const SERVICE: &str = "orders";

/// Connections in the pool the admin listener's readiness check uses, on top
/// of `database.max_connections`: `server::run` closes the pool it is given
/// when the admin listener stops, and the main pool must outlive the gRPC
/// drain and the relay, so the check gets a pool of its own. One is enough
/// for a `SELECT 1` per probe. Every orders instance therefore holds up to
/// `database.max_connections + READINESS_POOL_CONNECTIONS` connections; the
/// deployment check (`shop-deploy-check`) counts them against PostgreSQL's
/// limit.
pub const READINESS_POOL_CONNECTIONS: u32 = 1;

/// How long one database check behind `grpc.health.v1` may take.
const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
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
    #[error(transparent)]
    Upstream(#[from] BuildError),
}

/// An orders service that is bound, registered and ready to run.
pub struct Application {
    grpc_listener: TcpListener,
    grpc_addr: SocketAddr,
    admin_listener: TcpListener,
    admin_addr: SocketAddr,
    db: Db,
    probe_db: Db,
    service: OrdersGrpc,
    relay: Option<(Relay, Acknowledger)>,
    purger: Purger,
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
    /// pass their own): opens and migrates the database, binds both
    /// listeners (port 0 picks a free port) and registers the gRPC address
    /// as service `orders` with scheme `grpc`.
    ///
    /// # Errors
    /// [`StartError`] naming what could not be set up.
    pub async fn build_in(settings: Settings, registry: Registry) -> Result<Self, StartError> {
        let db = Db::connect(&settings.database).await?;
        db.migrate(&MIGRATOR).await?;
        // The admin listener's readiness check gets a pool of its own (see
        // READINESS_POOL_CONNECTIONS).
        let mut probe = settings.database.clone();
        probe.max_connections = READINESS_POOL_CONNECTIONS;
        let probe_db = Db::connect(&probe).await?;

        let cart = CartClient::new(UpstreamClient::new("cart", &settings.cart, &registry)?);
        let users = UpstreamClient::new("users", &settings.users, &registry)?;
        let verifier =
            TokenVerifier::from_settings(&settings.auth, Arc::new(JwksSource::new(users)));
        if settings.internal.service_token.is_none() {
            tracing::warn!(
                "internal.service_token is not set: the outbox relay cannot clear carts (cart refuses every delivery)"
            );
        }
        let store = OrderStore::new(db.clone());
        // Every instance purges, relay or not: the rows it deletes are
        // done with.
        let purger = Purger::new(store.clone(), settings.outbox.clone());

        let (grpc_listener, grpc_addr) = server::bind(&settings.grpc.listener()).await?;
        let (admin_listener, admin_addr) = server::bind(&settings.http).await?;
        let registration =
            settings
                .instance
                .register_with_scheme(&registry, SERVICE, grpc_addr, Scheme::Grpc)?;
        let relay = settings.relay.enabled.then(|| {
            Relay::new(
                registration.instance().id.clone(),
                store.clone(),
                cart.clone(),
                settings.internal.service_token.clone(),
                settings.relay.clone(),
            )
        });
        let service = OrdersGrpc::new(
            store,
            cart,
            verifier,
            relay.as_ref().map(|(relay, _)| relay.clone()),
        );
        Ok(Self {
            grpc_listener,
            grpc_addr,
            admin_listener,
            admin_addr,
            db,
            probe_db,
            service,
            relay,
            purger,
            registration,
            settings,
        })
    }

    /// The bound gRPC address.
    pub fn local_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// The bound gRPC port.
    pub fn port(&self) -> u16 {
        self.grpc_addr.port()
    }

    /// The bound HTTP admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The bound HTTP admin port.
    pub fn admin_port(&self) -> u16 {
        self.admin_addr.port()
    }

    /// The instance id (also the relay's name in `outbox.claimed_by`).
    pub fn instance_id(&self) -> &str {
        &self.registration.instance().id
    }

    /// Serves until `stop` is cancelled. Then: deregisters at once and
    /// reports NOT_SERVING (callers stop picking this instance), stops
    /// accepting gRPC calls and drains in-flight ones (bounded by
    /// `grpc.drain_timeout_secs`), stops the relay (rows it had claimed but
    /// not tried are released) and the outbox purge, marks the deliveries
    /// of the drained calls, and closes the database.
    ///
    /// # Errors
    /// An I/O error from a listener, or the gRPC server's error.
    pub async fn run_until_stopped(self, stop: CancellationToken) -> std::io::Result<()> {
        let Self {
            grpc_listener,
            grpc_addr,
            admin_listener,
            db,
            probe_db,
            service,
            relay,
            purger,
            registration,
            settings,
            ..
        } = self;

        let (reporter, health_service) = tonic_health::server::health_reporter();
        // The first status is known before the first call can arrive.
        set_status(&reporter, database_status(&db).await).await;
        let health_task = tokio::spawn(follow_database(
            reporter.clone(),
            db.clone(),
            Duration::from_millis(settings.grpc.health_interval_ms),
            stop.clone(),
        ));
        let (reflection_v1, reflection_v1alpha) = if settings.grpc.reflection {
            let v1 = tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(shop_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .build_v1()
                .map_err(std::io::Error::other)?;
            let v1alpha = tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(shop_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .build_v1alpha()
                .map_err(std::io::Error::other)?;
            (Some(v1), Some(v1alpha))
        } else {
            (None, None)
        };

        // The acknowledger outlives the gRPC drain: drained calls still
        // deliver and report.
        let acks_stop = CancellationToken::new();
        let (relay_task, acks_task) = match relay {
            Some((relay, acknowledger)) => (
                Some(tokio::spawn(relay.run(stop.clone()))),
                Some(tokio::spawn(acknowledger.run(acks_stop.clone()))),
            ),
            None => (None, None),
        };
        // Its own token: it must also stop if a listener fails without a
        // stop signal, before the database closes.
        let purge_stop = stop.child_token();
        let purge_task = tokio::spawn(purger.run(purge_stop.clone()));

        let shutdown = {
            let stop = stop.clone();
            let reporter = reporter.clone();
            async move {
                stop.cancelled().await;
                registration.deregister().await;
                set_status(&reporter, ServingStatus::NotServing).await;
                tracing::info!(service = SERVICE, "deregistered; draining gRPC calls");
            }
        };
        let limits = &settings.grpc;
        let keepalive = (limits.keepalive_interval_ms > 0)
            .then(|| Duration::from_millis(limits.keepalive_interval_ms));
        let grpc = tonic::transport::Server::builder()
            .max_concurrent_streams(limits.max_concurrent_streams)
            .concurrency_limit_per_connection(limits.max_concurrent_streams as usize)
            .http2_keepalive_interval(keepalive)
            .http2_keepalive_timeout(Some(Duration::from_millis(limits.keepalive_timeout_ms)))
            .add_service(health_service)
            .add_optional_service(reflection_v1)
            .add_optional_service(reflection_v1alpha)
            .add_service(
                OrderServiceServer::new(service)
                    .max_decoding_message_size(limits.max_message_bytes)
                    .max_encoding_message_size(limits.max_message_bytes),
            )
            .serve_with_incoming_shutdown(TcpIncoming::from(grpc_listener), shutdown);
        let drain = settings.grpc.listener().drain_timeout();
        let grpc = async {
            let deadline = async {
                stop.cancelled().await;
                tokio::time::sleep(drain).await;
            };
            tokio::select! {
                result = grpc => result.map_err(std::io::Error::other),
                () = deadline => {
                    tracing::warn!(drain_secs = drain.as_secs_f64(), "gRPC drain time over; dropping open calls");
                    Ok(())
                }
            }
        };
        tracing::info!(service = SERVICE, addr = %grpc_addr, "gRPC listening");

        // The HTTP listener is itself orders' admin listener: it adds the
        // metrics route the shared admin listener serves, and no other.
        let admin = server::run(
            Service {
                name: SERVICE,
                listener: admin_listener,
                admin: None,
                router: health::metrics_router(),
                readiness: Readiness::new(),
                db: Some(probe_db),
                limits: settings.http.limits(),
                on_stop: async {},
            },
            stop.clone(),
        );
        let (grpc_result, admin_result) = tokio::join!(grpc, admin);
        purge_stop.cancel();
        if let Err(err) = purge_task.await {
            tracing::error!(error = %err, "outbox purge task failed");
        }
        if let Some(task) = relay_task
            && let Err(err) = task.await
        {
            tracing::error!(error = %err, "outbox relay task failed");
        }
        acks_stop.cancel();
        if let Some(task) = acks_task
            && let Err(err) = task.await
        {
            tracing::error!(error = %err, "outbox acknowledger task failed");
        }
        health_task.abort();
        db.close().await;
        tracing::info!(service = SERVICE, "gRPC server stopped");
        grpc_result.and(admin_result)
    }
}

/// The gRPC service names whose health is reported: the server as a whole
/// (`""`) and the orders API.
fn health_names() -> [&'static str; 2] {
    ["", <OrderServiceServer<OrdersGrpc> as NamedService>::NAME]
}

async fn set_status(reporter: &HealthReporter, status: ServingStatus) {
    for name in health_names() {
        reporter.set_service_status(name, status).await;
    }
}

/// Keeps `grpc.health.v1` in step with the database: SERVING while it
/// answers, NOT_SERVING otherwise; re-checked every `interval` until `stop`.
async fn follow_database(
    reporter: HealthReporter,
    db: Db,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut last = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let status = database_status(&db).await;
        if stop.is_cancelled() {
            return;
        }
        if last != Some(status) {
            if status == ServingStatus::NotServing {
                tracing::warn!("database does not answer: gRPC health NOT_SERVING");
            }
            set_status(&reporter, status).await;
            last = Some(status);
        }
    }
}

async fn database_status(db: &Db) -> ServingStatus {
    match tokio::time::timeout(HEALTH_CHECK_TIMEOUT, db.ping()).await {
        Ok(Ok(())) => ServingStatus::Serving,
        _ => ServingStatus::NotServing,
    }
}
