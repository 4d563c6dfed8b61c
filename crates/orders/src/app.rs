//! The orders service on the shared lifecycle ([`shop_runtime`]): what it
//! assembles from [`Settings`].
//!
//! Two listeners: gRPC (the API, `grpc.health.v1` and server reflection)
//! and HTTP admin (`/healthz`, `/readyz`, `/metrics`). The outbox relay and
//! the outbox purge run beside them and stop with them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use shop_common::auth::TokenVerifier;
use shop_common::config::{AdminSettings, ConfigError, DatabaseSettings, HttpSettings};
use shop_common::db::Db;
use shop_common::health::{Readiness, ReadinessCheck};
use shop_discovery::{InstanceSettings, JwksSource, RegistrySettings, UpstreamClient};
use shop_proto::orders::v1::order_service_server::OrderServiceServer;
use shop_runtime::{
    Api, Context, GrpcServe, Parts, Service, ServiceSettings, Spec, StartError, StopAt, Worker,
};
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::Settings;
use crate::cart::CartClient;
use crate::grpc::OrdersGrpc;
use crate::participants::{CatalogClient, PaymentsClient};
use crate::purge::Purger;
use crate::relay::Relay;
use crate::saga::{Recovery, Saga};
use crate::store::{MIGRATOR, OrderStore};

/// The service name in discovery, logs and metrics.
pub const SERVICE: &str = "orders";

/// How long one database check behind `grpc.health.v1` may take.
const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The orders service (see [`shop_runtime`] for its lifecycle).
pub struct Orders;

impl ServiceSettings for Settings {
    fn validate(&self) -> Result<(), ConfigError> {
        Settings::validate(self)
    }
    fn api(&self) -> HttpSettings {
        self.grpc.listener()
    }
    /// The HTTP listener is orders' admin listener: always on.
    fn admin(&self) -> AdminSettings {
        AdminSettings::new(self.http.host, self.http.port)
    }
    fn registry(&self) -> &RegistrySettings {
        &self.registry
    }
    fn instance(&self) -> &InstanceSettings {
        &self.instance
    }
    fn telemetry(&self) -> &shop_common::telemetry::TelemetrySettings {
        &self.telemetry
    }
    fn database(&self) -> Option<&DatabaseSettings> {
        Some(&self.database)
    }
    /// gRPC has no `/readyz`: the admin listener answers it.
    fn probe_addr(&self) -> SocketAddr {
        self.http.addr()
    }
}

impl Service for Orders {
    type Settings = Settings;
    const SPEC: Spec = Spec::new(SERVICE).migrated_by(&MIGRATOR);

    /// Opens and migrates the database, builds the cart and users clients and the gRPC server. Beside
    /// it run the outbox relay (stops claiming at the stop signal), its
    /// acknowledger and the outbox purge (both stop after the drain, so
    /// drained calls still deliver and report), and the gRPC health
    /// follower.
    async fn assemble(settings: &Settings, context: &Context) -> Result<(Self, Parts), StartError> {
        let db = context.db()?;
        let cart = CartClient::new(
            UpstreamClient::new("cart", &settings.cart, &context.registry)
                .map_err(StartError::upstream("cart"))?,
        );
        let users = UpstreamClient::new("users", &settings.users, &context.registry)
            .map_err(StartError::upstream("users"))?;
        let verifier =
            TokenVerifier::from_settings(&settings.auth, Arc::new(JwksSource::new(users)));
        if settings.internal.service_token.is_none() {
            tracing::warn!(
                "internal.service_token is not set: checkout cannot reserve stock or take payments, and the outbox relay cannot clear carts (catalog, payments and cart refuse every internal call)"
            );
        }
        let catalog = CatalogClient::new(
            UpstreamClient::new("catalog", &settings.catalog, &context.registry)
                .map_err(StartError::upstream("catalog"))?,
            settings.internal.service_token.clone(),
        );
        let payments = PaymentsClient::new(
            UpstreamClient::new("payments", &settings.payments, &context.registry)
                .map_err(StartError::upstream("payments"))?,
            settings.internal.service_token.clone(),
        );
        let store = OrderStore::new(db.clone());
        let mut workers = Vec::new();
        // Every instance purges, relay or not: the rows it deletes are
        // done with.
        let purger = Purger::new(store.clone(), settings.outbox.clone());
        workers.push(Worker::new("outbox purge", StopAt::Drained, move |stop| {
            purger.run(stop)
        }));
        let relay = settings.relay.enabled.then(|| {
            let (relay, acknowledger) = Relay::new(
                context.instance_id.clone(),
                store.clone(),
                cart.clone(),
                settings.internal.service_token.clone(),
                settings.relay.clone(),
            );
            let handle = relay.clone();
            workers.push(Worker::new("outbox relay", StopAt::Signal, move |stop| {
                relay.run(stop)
            }));
            workers.push(Worker::new(
                "outbox acknowledger",
                StopAt::Drained,
                move |stop| acknowledger.run(stop),
            ));
            handle
        });
        let saga = Saga::new(
            store.clone(),
            catalog,
            payments,
            relay,
            settings.saga.clone(),
        );
        // Every instance recovers: an order whose driver died is taken over
        // by whichever instance finds its lease over first.
        let recovery = Recovery::new(saga.clone());
        workers.push(Worker::new("saga recovery", StopAt::Signal, move |stop| {
            recovery.run(stop)
        }));
        let backlog = crate::backlog::Backlog::new(db.clone());
        workers.push(Worker::new(
            "backlog sampler",
            StopAt::Signal,
            move |stop| backlog.run(stop),
        ));
        let service = OrdersGrpc::new(store, cart, verifier, saga);

        let (reporter, health_service) = tonic_health::server::health_reporter();
        // The first status is known before the first call can arrive.
        set_status(&reporter, database_status(&db).await).await;
        let interval = Duration::from_millis(settings.grpc.health_interval_ms);
        let follower = {
            let (reporter, db) = (reporter.clone(), db.clone());
            Worker::new("gRPC health", StopAt::Signal, move |stop| {
                follow_database(reporter, db, interval, stop)
            })
        };
        workers.push(follower);
        let limits = settings.grpc.clone();
        let serve: GrpcServe = Box::new(move |listener, deregistered| {
            let shutdown = async move {
                deregistered.await;
                set_status(&reporter, ServingStatus::NotServing).await;
                tracing::info!(service = SERVICE, "deregistered; draining gRPC calls");
            };
            let keepalive = (limits.keepalive_interval_ms > 0)
                .then(|| Duration::from_millis(limits.keepalive_interval_ms));
            Box::pin(async move {
                let (reflection_v1, reflection_v1alpha) = if limits.reflection {
                    let v1 = reflection_builder()
                        .build_v1()
                        .map_err(std::io::Error::other)?;
                    let v1alpha = reflection_builder()
                        .build_v1alpha()
                        .map_err(std::io::Error::other)?;
                    (Some(v1), Some(v1alpha))
                } else {
                    (None, None)
                };
                tonic::transport::Server::builder()
                    // Outermost: every call's server span, from the
                    // caller's traceparent.
                    .layer(shop_common::trace::GrpcServerLayer::new(SERVICE))
                    .layer(crate::grpc_metrics::layer())
                    .max_concurrent_streams(limits.max_concurrent_streams)
                    .concurrency_limit_per_connection(limits.max_concurrent_streams as usize)
                    .http2_keepalive_interval(keepalive)
                    .http2_keepalive_timeout(Some(Duration::from_millis(
                        limits.keepalive_timeout_ms,
                    )))
                    .add_service(health_service)
                    .add_optional_service(reflection_v1)
                    .add_optional_service(reflection_v1alpha)
                    .add_service(
                        OrderServiceServer::new(service)
                            .max_decoding_message_size(limits.max_message_bytes)
                            .max_encoding_message_size(limits.max_message_bytes),
                    )
                    .serve_with_incoming_shutdown(
                        // HTTP/2 writes a reply as several frames: without
                        // TCP_NODELAY the later ones wait for the caller's
                        // delayed ACK (40 ms on Linux) once a reply outgrows
                        // a packet.
                        TcpIncoming::from(listener).with_nodelay(Some(true)),
                        shutdown,
                    )
                    .await
                    .map_err(std::io::Error::other)
            })
        });
        let parts = Parts {
            api: Api::Grpc(serve),
            // The database's check keeps a connection of its own, outside
            // the pool (shop_common::db::READINESS_CONNECTIONS).
            readiness: Readiness::new().with_check(db.clone()),
            workers,
        };
        Ok((Self, parts))
    }
}

/// Server reflection for the orders API and `grpc.health.v1`.
fn reflection_builder() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(shop_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
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
    // The readiness check's own connection: never waits behind requests
    // for a pooled one.
    match tokio::time::timeout(HEALTH_CHECK_TIMEOUT, db.check()).await {
        Ok(Ok(())) => ServingStatus::Serving,
        _ => ServingStatus::NotServing,
    }
}
