//! Readiness of the gateway: ready when every upstream has at least one
//! instance that passes its health checks and is not ejected. The
//! `/readyz` body names each upstream with `ok` or why it is not.

use futures::future::BoxFuture;
use shop_common::health::ReadinessCheck;
use shop_discovery::UpstreamClient;

/// One upstream's readiness check.
pub struct UpstreamReady {
    client: UpstreamClient,
}

impl UpstreamReady {
    /// A check of `client`'s instances.
    pub fn new(client: UpstreamClient) -> Self {
        Self { client }
    }
}

impl ReadinessCheck for UpstreamReady {
    fn name(&self) -> &str {
        self.client.service()
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        let endpoints = self.client.balancer().endpoints();
        let result = if endpoints.is_empty() {
            Err("no instance registered".to_owned())
        } else if endpoints
            .iter()
            .any(|endpoint| endpoint.is_healthy() && !endpoint.is_ejected())
        {
            Ok(())
        } else {
            Err(format!(
                "none of {} instance(s) is healthy",
                endpoints.len()
            ))
        };
        Box::pin(std::future::ready(result))
    }
}
