//! One running instance of a service: what a registry stores and a balancer
//! picks from.

use std::fmt;

use http::uri::Authority;
use serde::{Deserialize, Serialize};

/// How to talk to an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Plain HTTP/1.1 (keep-alive) on the instance's address.
    #[default]
    Http,
    /// gRPC: HTTP/2 with prior knowledge; deadlines travel as `grpc-timeout`.
    Grpc,
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Http => "http",
            Self::Grpc => "grpc",
        })
    }
}

/// What a balancer may use besides the address.
///
/// Unknown fields are accepted on purpose: a newer service may publish more
/// metadata to etcd than an older gateway knows about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Metadata {
    /// Relative share of traffic under the weighted policy (default 1; 0 is
    /// treated as 1 so a misconfigured instance still gets a trickle).
    pub weight: u32,
    /// The zone or rack the instance runs in, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// The version of the service the instance runs, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl Default for Metadata {
    fn default() -> Self {
        Self {
            weight: 1,
            zone: None,
            version: None,
        }
    }
}

/// One instance of a service, as registered and as discovered.
///
/// In etcd this is the JSON value of `/ferroshop/services/<service>/<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// The logical service name (`catalog`, `cart`, ...).
    pub service: String,
    /// Unique among the instances of the service; stable for the life of the process.
    pub id: String,
    /// `host:port` to connect to.
    pub address: String,
    /// The protocol the instance speaks.
    #[serde(default)]
    pub scheme: Scheme,
    /// Weight, zone and version.
    #[serde(default)]
    pub metadata: Metadata,
}

/// An instance that cannot be registered or called.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstanceError {
    /// The service name is empty or has characters other than
    /// `A-Z a-z 0-9 . _ -` (it becomes part of an etcd key).
    #[error("invalid service name {0:?}: use letters, digits, '.', '_' or '-'")]
    ServiceName(String),
    /// The instance id is empty or contains `/`.
    #[error("invalid instance id {0:?}: must be non-empty and contain no '/'")]
    Id(String),
    /// The address is not `host:port`.
    #[error("invalid address {0:?}: expected host:port")]
    Address(String),
}

impl Instance {
    /// An HTTP instance of `service` with weight 1 and no zone or version.
    pub fn new(
        service: impl Into<String>,
        id: impl Into<String>,
        address: impl Into<String>,
    ) -> Self {
        Self {
            service: service.into(),
            id: id.into(),
            address: address.into(),
            scheme: Scheme::Http,
            metadata: Metadata::default(),
        }
    }

    /// Sets the scheme.
    #[must_use]
    pub fn with_scheme(mut self, scheme: Scheme) -> Self {
        self.scheme = scheme;
        self
    }

    /// Sets the weight used by the weighted policy.
    #[must_use]
    pub fn with_weight(mut self, weight: u32) -> Self {
        self.metadata.weight = weight;
        self
    }

    /// Sets the zone.
    #[must_use]
    pub fn with_zone(mut self, zone: impl Into<String>) -> Self {
        self.metadata.zone = Some(zone.into());
        self
    }

    /// Sets the version.
    #[must_use]
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.metadata.version = Some(version.into());
        self
    }

    /// The weight a balancer uses: never 0.
    pub fn weight(&self) -> u32 {
        self.metadata.weight.max(1)
    }

    /// Checks the service name, id and address.
    ///
    /// # Errors
    /// An [`InstanceError`] naming the first invalid part.
    pub fn validate(&self) -> Result<(), InstanceError> {
        validate_service_name(&self.service)?;
        if self.id.is_empty() || self.id.contains('/') {
            return Err(InstanceError::Id(self.id.clone()));
        }
        self.authority().map(drop)
    }

    /// The address as a URI authority (parsed once per instance by a balancer).
    ///
    /// # Errors
    /// [`InstanceError::Address`] when the address is not `host:port`.
    pub fn authority(&self) -> Result<Authority, InstanceError> {
        let authority: Authority = self
            .address
            .parse()
            .map_err(|_| InstanceError::Address(self.address.clone()))?;
        if authority.port_u16().is_none() || authority.as_str().contains('@') {
            return Err(InstanceError::Address(self.address.clone()));
        }
        Ok(authority)
    }
}

/// Checks that a service name is usable as an etcd key segment and a label.
///
/// # Errors
/// [`InstanceError::ServiceName`] when it is empty or has other characters.
pub fn validate_service_name(service: &str) -> Result<(), InstanceError> {
    let valid = !service.is_empty()
        && service
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(InstanceError::ServiceName(service.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_round_trip_through_json_with_defaults() {
        let json = r#"{"service":"cart","id":"c1","address":"10.0.0.1:8083","future_field":1}"#;
        let instance: Instance = serde_json::from_str(json).unwrap();
        assert_eq!(instance.scheme, Scheme::Http);
        assert_eq!(instance.weight(), 1);
        let back: Instance =
            serde_json::from_str(&serde_json::to_string(&instance).unwrap()).unwrap();
        assert_eq!(back, instance);
    }

    #[test]
    fn validation_rejects_bad_names_ids_and_addresses() {
        let cases = [
            ("cart", "c1", "127.0.0.1:80", "ok"),
            ("cart", "c1", "cart:8083", "ok"),
            ("ca/rt", "c1", "h:1", "service name"),
            ("cart", "", "h:1", "id"),
            ("cart", "a/b", "h:1", "id"),
            ("cart", "c1", "nohost", "address"),
            ("cart", "c1", "u@h:1", "address"),
        ];
        for (service, id, address, expected) in cases {
            let got = match Instance::new(service, id, address).validate() {
                Ok(()) => "ok",
                Err(InstanceError::ServiceName(_)) => "service name",
                Err(InstanceError::Id(_)) => "id",
                Err(InstanceError::Address(_)) => "address",
            };
            assert_eq!(got, expected, "{service}/{id}@{address}");
        }
    }
}
