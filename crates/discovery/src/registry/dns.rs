//! The DNS backend: each configured service name is re-resolved on an
//! interval with tokio's resolver, and every address becomes an instance.
//! This is the Kubernetes headless-Service case: the platform adds a pod's
//! address once it is ready and removes it when it stops, so registering
//! from inside the process is a no-op.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;

use super::{Backend, Instances, Registration, RegistryError, Watches, canonical, publish};
use crate::instance::{Instance, Scheme};

/// The `dns` backend's settings.
///
/// ```toml
/// [registry]
/// backend = "dns"
/// refresh_ms = 5000
/// [registry.services.cart]
/// host = "cart-headless.ferroshop.svc.cluster.local"
/// port = 8083
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsSettings {
    /// How often each name is re-resolved, in milliseconds (default 5000).
    pub refresh_ms: u64,
    /// The name to resolve for each service.
    pub services: BTreeMap<String, DnsService>,
}

impl Default for DnsSettings {
    fn default() -> Self {
        Self {
            refresh_ms: 5_000,
            services: BTreeMap::new(),
        }
    }
}

/// How to find one service in DNS.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsService {
    /// The name to resolve; every A/AAAA record is one instance.
    pub host: String,
    /// The port every instance listens on (DNS A records carry none).
    pub port: u16,
    /// `http` (default) or `grpc`.
    pub scheme: Scheme,
}

/// The DNS registry: one resolver task per watched service, shared by all
/// watchers of it and stopped when the last watcher goes away.
pub(crate) struct Dns {
    settings: DnsSettings,
    watches: Watches,
}

impl Dns {
    pub(crate) fn new(settings: DnsSettings) -> Self {
        Self {
            settings,
            watches: Watches::new("dns"),
        }
    }
}

impl Backend for Dns {
    fn register(&self, instance: Instance) -> Result<Registration, RegistryError> {
        // The platform publishes this instance once its readiness probe passes.
        Ok(Registration::local(instance, || {}))
    }

    fn watch(&self, service: &str) -> watch::Receiver<Instances> {
        self.watches.subscribe(service, |tx| {
            let Some(target) = self.settings.services.get(service).cloned() else {
                tracing::warn!(
                    service,
                    "no DNS name configured for this service; it has no instances"
                );
                return None;
            };
            let interval = Duration::from_millis(self.settings.refresh_ms.max(100));
            Some(resolve_loop(service.to_owned(), target, interval, tx))
        })
    }

    fn kind(&self) -> &'static str {
        "dns"
    }
}

async fn resolve_loop(
    service: String,
    target: DnsService,
    interval: Duration,
    tx: watch::Sender<Instances>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = tx.closed() => return,
            _ = ticker.tick() => {}
        }
        match tokio::net::lookup_host((target.host.as_str(), target.port)).await {
            Ok(addrs) => {
                let instances = addrs
                    .map(|addr| {
                        let address = addr.to_string();
                        Instance::new(service.clone(), address.clone(), address)
                            .with_scheme(target.scheme)
                    })
                    .collect();
                publish(&tx, canonical(instances));
            }
            // Keep the last known set: a resolver hiccup must not empty the
            // balancer. (A headless Service with no ready pods also fails to
            // resolve; the health checks and ejection keep traffic off stale
            // addresses meanwhile.)
            Err(err) => {
                tracing::warn!(service, host = %target.host, error = %err, "DNS resolution failed")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    #[tokio::test]
    async fn names_resolve_to_instances_and_unknown_services_are_empty() {
        let settings = DnsSettings {
            refresh_ms: 100,
            services: BTreeMap::from([(
                "cart".to_owned(),
                DnsService {
                    host: "localhost".into(),
                    port: 8083,
                    scheme: Scheme::Http,
                },
            )]),
        };
        let registry = Registry::dns(settings);
        let mut watch = registry.watch("cart");
        let instances = tokio::time::timeout(
            Duration::from_secs(5),
            watch.wait_for(|set| !set.is_empty()),
        )
        .await
        .expect("resolved in time")
        .expect("resolver alive")
        .clone();
        assert!(
            instances
                .iter()
                .all(|i| i.address.ends_with(":8083") && i.id == i.address)
        );
        assert!(registry.watch("orders").borrow().is_empty());
        // A second watcher shares the resolver and sees the same set at once.
        assert_eq!(*registry.watch("cart").borrow(), instances);
    }
}
