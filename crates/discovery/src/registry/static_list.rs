//! The static backend: a fixed list of instances from the configuration,
//! served through the in-process backend so that local registrations still
//! work (a service started next to a static list can see itself).

use serde::Deserialize;

use super::RegistryError;
use super::memory::Memory;
use crate::instance::{Instance, Metadata, Scheme};

/// The `static` backend's settings.
///
/// ```toml
/// [registry]
/// backend = "static"
/// [[registry.instances]]
/// service = "catalog"
/// address = "127.0.0.1:8082"
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StaticSettings {
    /// The instances, of any number of services.
    pub instances: Vec<StaticInstance>,
}

/// One configured instance.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StaticInstance {
    /// The service it belongs to.
    pub service: String,
    /// Its id; defaults to the address.
    pub id: Option<String>,
    /// `host:port`.
    pub address: String,
    /// `http` (default) or `grpc`.
    pub scheme: Scheme,
    /// Weight for the weighted policy (default 1).
    pub weight: Option<u32>,
    /// Zone, if any.
    pub zone: Option<String>,
    /// Version, if any.
    pub version: Option<String>,
}

impl StaticInstance {
    /// The instance this entry describes.
    pub fn to_instance(&self) -> Instance {
        Instance {
            service: self.service.clone(),
            id: self.id.clone().unwrap_or_else(|| self.address.clone()),
            address: self.address.clone(),
            scheme: self.scheme,
            metadata: Metadata {
                weight: self.weight.unwrap_or(1),
                zone: self.zone.clone(),
                version: self.version.clone(),
            },
        }
    }
}

/// An in-process registry pre-filled with the configured instances.
pub(crate) fn build(settings: &StaticSettings) -> Result<Memory, RegistryError> {
    let memory = Memory::named("static");
    for entry in &settings.instances {
        let instance = entry.to_instance();
        instance.validate()?;
        // The configured instances live as long as the registry: no guard.
        memory.insert(instance);
    }
    Ok(memory)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    #[test]
    fn configured_instances_are_served_and_validated() {
        let settings = StaticSettings {
            instances: vec![
                StaticInstance {
                    service: "catalog".into(),
                    address: "127.0.0.1:8082".into(),
                    ..Default::default()
                },
                StaticInstance {
                    service: "catalog".into(),
                    id: Some("c2".into()),
                    address: "127.0.0.1:9082".into(),
                    weight: Some(3),
                    ..Default::default()
                },
            ],
        };
        let registry = Registry::static_list(&settings).unwrap();
        let catalog = registry.watch("catalog").borrow().clone();
        assert_eq!(catalog.len(), 2);
        assert_eq!(catalog.iter().find(|i| i.id == "c2").unwrap().weight(), 3);
        assert_eq!(registry.kind(), "static");

        let bad = StaticSettings {
            instances: vec![StaticInstance {
                service: "x".into(),
                address: "nope".into(),
                ..Default::default()
            }],
        };
        assert!(Registry::static_list(&bad).is_err());
    }
}
