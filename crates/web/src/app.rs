//! The storefront on the shared lifecycle ([`shop_runtime`]): what it
//! assembles from [`Settings`].

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use shop_discovery::UpstreamClient;
use shop_runtime::{Context, Parts, Service, Spec, StartError};

use crate::Settings;
use crate::api::Api;
use crate::pages::{self, AppState};
use crate::session::FORM_LIMIT;

/// The storefront (see [`shop_runtime`] for its lifecycle).
pub struct Web;

/// Why the router could not be built (a route without a handler).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct RouteError(String);

impl Service for Web {
    type Settings = Settings;
    const SPEC: Spec = Spec::new("web");

    /// Builds the gateway client and the pages. Ready once serving: a page
    /// whose part of the API is down answers its own 503, the others go on.
    async fn assemble(settings: &Settings, context: &Context) -> Result<(Self, Parts), StartError> {
        let gateway = UpstreamClient::new("gateway", &settings.gateway, &context.registry)
            .map_err(StartError::upstream("gateway"))?;
        if settings.internal.service_token.is_none() {
            tracing::warn!(
                "internal.service_token is unset: the gateway will count every browser's requests as this instance's"
            );
        }
        let state = AppState {
            api: Api::new(gateway, &settings.internal),
            settings: Arc::new(settings.clone()),
        };
        let router = pages::router(state)
            .map_err(|err| StartError::component("routes", RouteError(err)))?
            .layer(DefaultBodyLimit::max(FORM_LIMIT));
        Ok((Self, Parts::http(router, context)))
    }
}
