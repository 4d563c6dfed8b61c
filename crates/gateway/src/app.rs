//! The gateway on the shared lifecycle ([`shop_runtime`]): what it
//! assembles from [`Settings`].

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use shop_common::auth::TokenVerifier;
use shop_discovery::{JwksSource, UpstreamClient};
use shop_runtime::{Api, Context, Parts, Service, Spec, StartError};
use tower::ServiceBuilder;

use crate::Settings;
use crate::config::LimitSettings;
use crate::grpc::OrdersChannel;
use crate::headers::ClientTrust;
use crate::middleware::body_limit::BodyLimitLayer;
use crate::middleware::cors;
use crate::middleware::deadline::DeadlineLayer;
use crate::middleware::header_limit::{HeaderLimitLayer, HeaderLimits};
use crate::middleware::rate_limit::RateLimitLayer;
use crate::middleware::shed::ShedLayer;
use crate::middleware::trace_context::TraceContextLayer;
use crate::middleware::uri_limit::UriLimitLayer;
use crate::readiness;
use crate::routes::{self, docs};
use crate::state::{AppState, Shared, Upstream, Upstreams};

/// The gateway (see [`shop_runtime`] for its lifecycle).
pub struct Gateway;

impl Service for Gateway {
    type Settings = Settings;
    const SPEC: Spec = Spec::new("gateway");

    /// Builds one upstream client per service and the edge layers around
    /// the routes; ready once serving, whatever the upstreams' state (see
    /// [`readiness`]).
    async fn assemble(settings: &Settings, context: &Context) -> Result<(Self, Parts), StartError> {
        let upstream = |which: Upstream, upstream_settings| {
            UpstreamClient::new(which.service(), upstream_settings, &context.registry)
                .map_err(StartError::upstream(settings_key(which)))
        };
        let upstreams = Upstreams {
            users: upstream(Upstream::Users, &settings.upstreams.users)?,
            catalog: upstream(Upstream::Catalog, &settings.upstreams.catalog)?,
            cart: upstream(Upstream::Cart, &settings.upstreams.cart)?,
            orders: upstream(Upstream::Orders, &settings.upstreams.orders)?,
            web: upstream(Upstream::Web, &settings.upstreams.web)?,
        };
        let verifier = TokenVerifier::from_settings(
            &settings.auth,
            Arc::new(JwksSource::new(upstreams.users.clone())),
        );
        let client_trust =
            ClientTrust::new(settings.proxy.trusted_proxies.clone(), &settings.internal);
        let state = AppState::new(Shared {
            orders: OrdersChannel::new(upstreams.orders.clone()).client(),
            upstreams,
            body_limit: settings.limits.body_bytes,
            client_trust: client_trust.clone(),
        });
        crate::middleware::register_rejections();
        let api = routes::router(state, &verifier).merge(docs::swagger_ui());
        let parts = Parts {
            api: Api::Http(with_edge_layers(api, settings, &client_trust)),
            readiness: readiness::readiness(),
            workers: Vec::new(),
        };
        Ok((Self, parts))
    }
}

/// The settings key of an upstream's client settings, for start errors.
fn settings_key(which: Upstream) -> &'static str {
    match which {
        Upstream::Users => "upstreams.users",
        Upstream::Catalog => "upstreams.catalog",
        Upstream::Cart => "upstreams.cart",
        Upstream::Orders => "upstreams.orders",
        Upstream::Web => "upstreams.web",
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
fn with_edge_layers(api: Router, settings: &Settings, client_trust: &ClientTrust) -> Router {
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
            .option_layer(RateLimitLayer::new(&settings.rate_limit, client_trust))
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
