//! Service discovery and client-side load balancing for ferroshop.
//!
//! | module | owns |
//! | --- | --- |
//! | [`instance`] | [`Instance`]: service, id, address, scheme, metadata (weight, zone, version) |
//! | [`registry`] | [`Registry`] and its backends (in-process, static, etcd, DNS); [`Registration`] guards |
//! | [`balance`] | [`Balancer`], [`Endpoint`] state, and one file per policy |
//! | [`client`] | [`UpstreamClient`]: deadline, breaker, retries, ejection, health checks around a pooled hyper client |
//! | [`error`] | [`CallError`] and its mapping to 502/503/504 problem+json |
//! | [`instance_settings`] | [`InstanceSettings`]: how a service registers itself (id, advertised address) |
//! | [`jwks`] | [`JwksSource`]: the users service's token keys, fetched through discovery |
//! | [`metrics`] | metric names (`upstream_*`) |
//!
//! A service registers itself and calls others like this:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use shop_discovery::{Instance, Registry, RegistrySettings, RequestBody, UpstreamClient, UpstreamSettings};
//!
//! let registry = Registry::from_settings(&RegistrySettings::default()).await?;
//! let _registration = registry.register(Instance::new("cart", "cart-1", "127.0.0.1:8083"))?;
//!
//! let catalog = UpstreamClient::new("catalog", &UpstreamSettings::default(), &registry)?;
//! let request = http::Request::get("/api/products/42").body(RequestBody::empty())?;
//! let response = catalog.send(request).await?;
//! # drop(response);
//! # Ok(())
//! # }
//! ```
//!
//! See `docs/discovery.md` for the backends, policies, the order of the
//! resilience layers, and their defaults.

pub mod balance;
pub mod client;
pub mod error;
pub mod instance;
pub mod instance_settings;
pub mod jwks;
pub mod metrics;
pub mod registry;

pub use balance::{Balancer, Endpoint, HashKey, InFlight, PickRequest, PolicySettings};
pub use client::{
    BodyDeadlineExceeded, BreakerSettings, BuildError, Deadline, HealthCheckSettings, Idempotent,
    OutlierSettings, RequestBody, ResponseBody, RetrySettings, UpstreamClient, UpstreamSettings,
};
pub use error::CallError;
pub use instance::{Instance, Metadata, Scheme};
pub use instance_settings::InstanceSettings;
pub use jwks::JwksSource;
pub use registry::{Instances, Registration, Registry, RegistryError, RegistrySettings};
