//! Settings of the gateway: the listener, discovery, one upstream client per
//! service, the token checks, and the edge limits.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use http::HeaderValue;
use serde::Deserialize;
use shop_common::auth::VerifierSettings;
use shop_common::config::{self, ConfigError, HttpSettings};
use shop_discovery::balance::ConsistentHashSettings;
use shop_discovery::{InstanceSettings, PolicySettings, RegistrySettings, UpstreamSettings};

/// The default HTTP port of the gateway.
pub const DEFAULT_PORT: u16 = 8080;

/// Everything the gateway reads at start-up.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Listener (default `0.0.0.0:8080`).
    pub http: HttpSettings,
    /// Where instances register and are found.
    pub registry: RegistrySettings,
    /// How the gateway registers itself (as `gateway`).
    pub instance: InstanceSettings,
    /// Which tokens to accept (keys come from the users service's JWKS).
    pub auth: VerifierSettings,
    /// One client per upstream service, each with its balancing policy.
    pub upstreams: UpstreamsSettings,
    /// Request size, time and concurrency limits.
    pub limits: LimitSettings,
    /// Per-client rate limit.
    pub rate_limit: RateLimitSettings,
    /// Cross-origin requests from browsers.
    pub cors: CorsSettings,
    /// What the gateway believes of `X-Forwarded-*` headers it receives.
    pub proxy: ProxySettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            http: HttpSettings::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), DEFAULT_PORT),
            registry: RegistrySettings::default(),
            instance: InstanceSettings::default(),
            auth: VerifierSettings::default(),
            upstreams: UpstreamsSettings::default(),
            limits: LimitSettings::default(),
            rate_limit: RateLimitSettings::default(),
            cors: CorsSettings::default(),
            proxy: ProxySettings::default(),
        }
    }
}

/// The upstream services, `[upstreams.<service>]`.
///
/// Balancing defaults: `peak_ewma` for users, catalog and orders (adapts
/// to a slow or overloaded instance); `consistent_hash` on the caller's
/// user id for cart, so one user's requests land on one cart instance
/// (warm caches, fewer write conflicts on one cart), with bounded loads so
/// a busy user cannot overload an instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamsSettings {
    /// The users service (registration, login, `/api/users/me`, the JWKS).
    pub users: UpstreamSettings,
    /// The catalog service.
    pub catalog: UpstreamSettings,
    /// The cart service.
    pub cart: UpstreamSettings,
    /// The orders service (gRPC).
    pub orders: UpstreamSettings,
}

impl Default for UpstreamsSettings {
    fn default() -> Self {
        Self {
            users: UpstreamSettings::default(),
            catalog: UpstreamSettings::default(),
            cart: UpstreamSettings {
                balance: PolicySettings::ConsistentHash(ConsistentHashSettings::default()),
                ..UpstreamSettings::default()
            },
            orders: UpstreamSettings::default(),
        }
    }
}

/// Request limits, each answered with problem+json.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Largest request body in bytes (default 1 MiB) → 413.
    pub body_bytes: usize,
    /// Largest total size of the request headers, names and values, in
    /// bytes (default 16 KiB) → 431.
    pub header_bytes: usize,
    /// Most request headers (default 64; hyper refuses more than 100
    /// itself) → 431.
    pub header_count: usize,
    /// Longest request target (path and query) in bytes (default 8 KiB) → 414.
    pub uri_bytes: usize,
    /// Time a request may take until its response headers, in
    /// milliseconds (default 10000) → 504. The rest of it travels to the
    /// upstream as its deadline.
    pub request_timeout_ms: u64,
    /// Most requests in flight at once (default 1024); more are shed at
    /// once with 503 + `Retry-After`. Probes are never shed.
    pub max_concurrent_requests: usize,
    /// `Retry-After` seconds on a shed request (default 1).
    pub shed_retry_after_secs: u64,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            body_bytes: 1024 * 1024,
            header_bytes: 16 * 1024,
            header_count: 64,
            uri_bytes: 8 * 1024,
            request_timeout_ms: 10_000,
            max_concurrent_requests: 1024,
            shed_retry_after_secs: 1,
        }
    }
}

/// A token bucket per client IP address.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Whether requests are rate limited at all (default true).
    pub enabled: bool,
    /// Sustained requests per second per client (default 100).
    pub per_second: u32,
    /// Requests a client may send at once above the sustained rate (default 200).
    pub burst: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            per_second: 100,
            burst: 200,
        }
    }
}

/// Cross-origin resource sharing; off while `allowed_origins` is empty.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsSettings {
    /// Origins allowed to call the API from a browser, such as
    /// `https://shop.example.com`; `*` allows any origin (not together with
    /// `allow_credentials`).
    pub allowed_origins: Vec<String>,
    /// Whether browsers may send cookies and HTTP auth (default false).
    pub allow_credentials: bool,
    /// How long a browser may cache a preflight answer, in seconds (default 600).
    pub max_age_secs: u64,
}

impl Default for CorsSettings {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            allow_credentials: false,
            max_age_secs: 600,
        }
    }
}

/// How much the gateway trusts forwarding headers it receives.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxySettings {
    /// Set when a trusted proxy (a TLS terminator, a cloud load balancer)
    /// sits in front of the gateway: its `X-Forwarded-For` is appended to,
    /// the client address for rate limiting is the last entry it added, and
    /// its `X-Forwarded-Proto` is kept. Default false: the gateway is the
    /// edge, so whatever a client sends in those headers is replaced.
    pub trust_forwarded_headers: bool,
}

impl Settings {
    /// Loads the settings: defaults, then the TOML `file` (or `SHOP_CONFIG`),
    /// then `SHOP_` environment variables.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key that is missing, unknown or malformed.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let settings: Self = config::load(file)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what serde cannot.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let limits = &self.limits;
        for (key, value) in [
            ("limits.body_bytes", limits.body_bytes),
            ("limits.header_bytes", limits.header_bytes),
            ("limits.header_count", limits.header_count),
            ("limits.uri_bytes", limits.uri_bytes),
            (
                "limits.max_concurrent_requests",
                limits.max_concurrent_requests,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be positive"));
            }
        }
        if limits.request_timeout_ms == 0 {
            return Err(ConfigError::invalid(
                "limits.request_timeout_ms",
                "must be positive",
            ));
        }
        if self.rate_limit.enabled
            && (self.rate_limit.per_second == 0 || self.rate_limit.burst == 0)
        {
            return Err(ConfigError::invalid(
                "rate_limit",
                "per_second and burst must be positive (or set enabled = false)",
            ));
        }
        self.cors.validate()?;
        for (name, upstream) in [
            ("upstreams.users", &self.upstreams.users),
            ("upstreams.catalog", &self.upstreams.catalog),
            ("upstreams.cart", &self.upstreams.cart),
            ("upstreams.orders", &self.upstreams.orders),
        ] {
            upstream
                .validate()
                .map_err(|err| ConfigError::invalid(name, err))?;
        }
        Ok(())
    }
}

impl CorsSettings {
    /// Whether CORS is on.
    pub fn enabled(&self) -> bool {
        !self.allowed_origins.is_empty()
    }

    /// Whether any origin is allowed.
    pub fn any_origin(&self) -> bool {
        self.allowed_origins.iter().any(|origin| origin == "*")
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.any_origin() {
            if self.allow_credentials {
                return Err(ConfigError::invalid(
                    "cors.allowed_origins",
                    "\"*\" cannot be combined with cors.allow_credentials = true \
                     (browsers refuse it); list the origins instead",
                ));
            }
            if self.allowed_origins.len() > 1 {
                return Err(ConfigError::invalid(
                    "cors.allowed_origins",
                    "\"*\" must be the only entry",
                ));
            }
            return Ok(());
        }
        for origin in &self.allowed_origins {
            let well_formed = (origin.starts_with("http://") || origin.starts_with("https://"))
                && !origin.ends_with('/')
                && HeaderValue::from_str(origin).is_ok();
            if !well_formed {
                return Err(ConfigError::invalid(
                    "cors.allowed_origins",
                    format!("{origin:?} is not an origin such as https://shop.example.com"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_cart_hashes_on_the_user() {
        let settings = Settings::default();
        settings.validate().expect("defaults are valid");
        assert_eq!(settings.http.port, DEFAULT_PORT);
        assert!(matches!(
            settings.upstreams.cart.balance,
            PolicySettings::ConsistentHash(_)
        ));
        assert!(matches!(
            settings.upstreams.users.balance,
            PolicySettings::PeakEwma(_)
        ));
    }

    #[test]
    fn wildcard_origins_with_credentials_are_refused() {
        let settings: Settings = config::load_from(
            "[cors]\nallowed_origins = [\"*\"]\nallow_credentials = true\n",
            &[],
        )
        .expect("parses");
        let err = settings.validate().expect_err("refused");
        assert!(err.to_string().contains("cors.allowed_origins"), "{err}");
    }

    #[test]
    fn malformed_origins_and_zero_limits_are_named() {
        let settings: Settings =
            config::load_from("[cors]\nallowed_origins = [\"shop.example.com\"]\n", &[])
                .expect("parses");
        assert!(settings.validate().is_err());
        let settings: Settings =
            config::load_from("", &[("SHOP_LIMITS__BODY_BYTES", "0")]).expect("parses");
        let err = settings.validate().expect_err("zero");
        assert!(err.to_string().contains("limits.body_bytes"), "{err}");
    }

    #[test]
    fn upstream_policies_come_from_config() {
        let settings: Settings = config::load_from(
            "[upstreams.cart.balance]\npolicy = \"least_outstanding\"\n",
            &[],
        )
        .expect("parses");
        assert_eq!(
            settings.upstreams.cart.balance,
            PolicySettings::LeastOutstanding
        );
    }
}
