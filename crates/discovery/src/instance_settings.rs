//! How a service instance registers itself: its id and the address others
//! should connect to, from config, with defaults that work on one machine.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::Deserialize;

use crate::{Instance, Registration, Registry, RegistryError, Scheme};

/// How this instance registers itself.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct InstanceSettings {
    /// Instance id, unique among the service's instances; default
    /// `<service>-<random>`.
    pub id: Option<String>,
    /// `host:port` other services connect to; default the bound address
    /// with an unspecified host (`0.0.0.0`, `::`) replaced by loopback. Set
    /// it where the bound address is not reachable by others (containers:
    /// the container's name and port).
    pub advertise_addr: Option<String>,
    /// Weight for the weighted round robin policy (default 1).
    pub weight: Option<u32>,
    /// Zone label.
    pub zone: Option<String>,
}

impl InstanceSettings {
    /// The address others should use to reach a listener bound at `bound`.
    pub fn advertised(&self, bound: SocketAddr) -> String {
        if let Some(addr) = &self.advertise_addr {
            return addr.clone();
        }
        let ip = match bound.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        SocketAddr::new(ip, bound.port()).to_string()
    }

    /// Registers `service` listening at `bound` in `registry`. Dropping (or
    /// [`Registration::deregister`]ing) the returned guard removes it.
    ///
    /// # Errors
    /// [`RegistryError`] when the instance is invalid or the backend refuses it.
    pub fn register(
        &self,
        registry: &Registry,
        service: &str,
        bound: SocketAddr,
    ) -> Result<Registration, RegistryError> {
        self.register_with_scheme(registry, service, bound, Scheme::Http)
    }

    /// Like [`InstanceSettings::register`], for a listener speaking `scheme`
    /// (gRPC services register their gRPC listener).
    ///
    /// # Errors
    /// [`RegistryError`] when the instance is invalid or the backend refuses it.
    pub fn register_with_scheme(
        &self,
        registry: &Registry,
        service: &str,
        bound: SocketAddr,
        scheme: Scheme,
    ) -> Result<Registration, RegistryError> {
        let id = self
            .id
            .clone()
            .unwrap_or_else(|| format!("{service}-{:08x}", rand::random::<u32>()));
        let mut instance = Instance::new(service, id, self.advertised(bound))
            .with_scheme(scheme)
            .with_version(env!("CARGO_PKG_VERSION"));
        if let Some(weight) = self.weight {
            instance = instance.with_weight(weight);
        }
        if let Some(zone) = &self.zone {
            instance = instance.with_zone(zone.clone());
        }
        registry.register(instance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_hosts_advertise_loopback() {
        let settings = InstanceSettings::default();
        assert_eq!(
            settings.advertised("0.0.0.0:8083".parse().expect("addr")),
            "127.0.0.1:8083"
        );
        assert_eq!(
            settings.advertised("[::]:8083".parse().expect("addr")),
            "[::1]:8083"
        );
        assert_eq!(
            settings.advertised("10.1.2.3:8083".parse().expect("addr")),
            "10.1.2.3:8083"
        );
        let explicit = InstanceSettings {
            advertise_addr: Some("cart-1:8083".to_owned()),
            ..InstanceSettings::default()
        };
        assert_eq!(
            explicit.advertised("0.0.0.0:8083".parse().expect("addr")),
            "cart-1:8083"
        );
    }

    #[tokio::test]
    async fn registration_is_visible_and_removed_on_drop() {
        let registry = Registry::in_process();
        let watch = registry.watch("cart");
        let guard = InstanceSettings::default()
            .register(&registry, "cart", "0.0.0.0:8083".parse().expect("addr"))
            .expect("registered");
        assert_eq!(watch.borrow().len(), 1);
        assert_eq!(watch.borrow()[0].address, "127.0.0.1:8083");
        drop(guard);
        assert_eq!(watch.borrow().len(), 0);
    }
}
