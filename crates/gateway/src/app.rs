//! Building and running the gateway from [`Settings`]: the one way `main`,
//! the all-in-one `shop` binary and the tests start it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use shop_common::auth::TokenVerifier;
use shop_common::config::ConfigError;
use shop_common::health::Readiness;
use shop_common::server::{self, BindError, Service};
use shop_discovery::{
    BuildError, JwksSource, Registration, Registry, RegistryError, UpstreamClient,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;

use crate::Settings;
use crate::config::LimitSettings;
use crate::grpc::OrdersChannel;
use crate::middleware::body_limit::BodyLimitLayer;
use crate::middleware::cors;
use crate::middleware::deadline::DeadlineLayer;
use crate::middleware::header_limit::{HeaderLimitLayer, HeaderLimits};
use crate::middleware::rate_limit::RateLimitLayer;
use crate::middleware::shed::ShedLayer;
use crate::middleware::trace_context::TraceContextLayer;
use crate::middleware::uri_limit::UriLimitLayer;
use crate::readiness::UpstreamReady;
use crate::routes::{self, docs};
use crate::state::{AppState, Shared, Upstream, Upstreams};

/// The service name in discovery, logs and metrics.
pub const SERVICE: &str = "gateway";

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The settings are inconsistent.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The listener could not bind.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The registry could not be reached or the instance not registered.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// An upstream client could not be built from its settings.
    #[error("upstreams.{upstream}: {source}")]
    Upstream {
        /// The upstream whose settings are at fault.
        upstream: &'static str,
        /// The cause.
        #[source]
        source: BuildError,
    },
}

/// A gateway that is bound, registered and ready to run.
pub struct Application {
    listener: TcpListener,
    admin: Option<(TcpListener, SocketAddr)>,
    api: Router,
    upstreams: Upstreams,
    addr: SocketAddr,
    registration: Registration,
    settings: Settings,
}

impl Application {
    /// Builds the gateway with the registry its settings name.
    ///
    /// # Errors
    /// [`StartError`] naming what could not be set up.
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        settings.validate()?;
        let registry = Registry::from_settings(&settings.registry).await?;
        Self::build_in(settings, registry).await
    }

    /// Builds the gateway with `registry` (tests and the all-in-one binary
    /// pass their own): validates the settings, builds one upstream client
    /// per service, binds the API and admin listeners (port 0 picks a free
    /// port) and registers the instance (its API address) as `gateway`.
    ///
    /// # Errors
    /// [`StartError`] naming what could not be set up.
    pub async fn build_in(settings: Settings, registry: Registry) -> Result<Self, StartError> {
        settings.validate()?;
        // Install the shared recorder before any metric is registered.
        shop_common::metrics::handle();
        let upstream = |which: Upstream, upstream_settings| {
            UpstreamClient::new(which.service(), upstream_settings, &registry).map_err(|source| {
                StartError::Upstream {
                    upstream: which.service(),
                    source,
                }
            })
        };
        let upstreams = Upstreams {
            users: upstream(Upstream::Users, &settings.upstreams.users)?,
            catalog: upstream(Upstream::Catalog, &settings.upstreams.catalog)?,
            cart: upstream(Upstream::Cart, &settings.upstreams.cart)?,
            orders: upstream(Upstream::Orders, &settings.upstreams.orders)?,
        };
        let verifier = TokenVerifier::from_settings(
            &settings.auth,
            Arc::new(JwksSource::new(upstreams.users.clone())),
        );
        let state = AppState::new(Shared {
            orders: OrdersChannel::new(upstreams.orders.clone()).client(),
            upstreams: upstreams.clone(),
            body_limit: settings.limits.body_bytes,
            trusted_proxies: settings.proxy.trusted_proxies.clone(),
        });
        let api = routes::router(state, &verifier).merge(docs::swagger_ui());
        let api = with_edge_layers(api, &settings);
        let (listener, addr) = server::bind(&settings.http).await?;
        let admin = server::bind_admin(&settings.admin).await?;
        let registration = settings.instance.register(&registry, SERVICE, addr)?;
        Ok(Self {
            listener,
            admin,
            api,
            upstreams,
            addr,
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

    /// Serves until `stop` is cancelled: then deregisters at once, reports
    /// not ready, and drains in-flight requests (then the admin listener).
    ///
    /// # Errors
    /// An I/O error from a listener.
    pub async fn run_until_stopped(self, stop: CancellationToken) -> std::io::Result<()> {
        let Self {
            listener,
            admin,
            api,
            upstreams,
            registration,
            settings,
            ..
        } = self;
        let readiness = Upstream::ALL
            .into_iter()
            .fold(Readiness::new(), |readiness, which| {
                readiness.with_check(UpstreamReady::new(upstreams.get(which).clone()))
            });
        let service = Service {
            name: SERVICE,
            listener,
            admin: admin.map(|(listener, _)| listener),
            router: api,
            readiness,
            db: None,
            limits: settings.http.limits(),
            on_stop: async move { registration.deregister().await },
        };
        server::run(service, stop).await
    }
}

/// The edge layers around the API routes; the probes are merged in later
/// (by `server::run`), outside them, so they are never shed, rate limited
/// or timed out.
///
/// Outermost first: trace context (so even a refusal can be traced),
/// CORS (so browsers can read refusals too, and preflights cost nothing
/// more), the rate limit (cheapest refusal of an abusive client), load
/// shedding, the URI and header limits, the deadline, and the body limit
/// nearest the handler, whose body it wraps.
///
/// The layers are composed into one `ServiceBuilder` stack and applied to
/// the router once: each separate `Router::layer` call boxes every route
/// again, and a boxed route is cloned for every request, so a stack of
/// single layers cost an allocation and an indirect call per layer per
/// request (see `docs/benchmarks.md`).
fn with_edge_layers(api: Router, settings: &Settings) -> Router {
    let LimitSettings {
        body_bytes,
        header_bytes,
        header_count,
        uri_bytes,
        request_timeout_ms,
        max_concurrent_requests,
        shed_retry_after_secs,
    } = settings.limits;
    api.layer(
        ServiceBuilder::new()
            .layer(TraceContextLayer)
            .option_layer(cors::layer(&settings.cors))
            .option_layer(RateLimitLayer::new(
                &settings.rate_limit,
                &settings.proxy.trusted_proxies,
            ))
            .layer(ShedLayer::new(
                max_concurrent_requests,
                shed_retry_after_secs,
            ))
            .layer(UriLimitLayer::new(uri_bytes))
            .layer(HeaderLimitLayer::new(HeaderLimits {
                count: header_count,
                bytes: header_bytes,
            }))
            .layer(DeadlineLayer::new(Duration::from_millis(
                request_timeout_ms,
            )))
            .layer(BodyLimitLayer::new(body_bytes)),
    )
}
