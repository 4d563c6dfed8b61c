//! Settings of the gateway: the listener, discovery, one upstream client per
//! service (the storefront `web` among them), the token checks, the service
//! credential it believes, and the edge limits.

use http::HeaderValue;
use serde::{Deserialize, Serialize};
use shop_common::auth::VerifierSettings;
use shop_common::config::{AdminSettings, ConfigError, HttpSettings, InternalSettings};
use shop_discovery::balance::ConsistentHashSettings;
use shop_discovery::{
    BreakerSettings, InstanceSettings, PolicySettings, RegistrySettings, UpstreamSettings,
};

pub use crate::headers::TrustedProxies;

/// Everything the gateway reads at start-up.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(remote = "Self", default, deny_unknown_fields)]
pub struct Settings {
    /// Listener (default `0.0.0.0:8080`): the public API.
    pub http: HttpSettings,
    /// Admin listener: `/metrics` (default `0.0.0.0:9080`), never public.
    pub admin: AdminSettings,
    /// Where instances register and are found. Not among the defaults a
    /// configuration is laid over: the service's default is the type's.
    #[serde(skip_serializing)]
    pub registry: RegistrySettings,
    /// How the gateway registers itself (as `gateway`).
    pub instance: InstanceSettings,
    /// Where this service's spans are exported (`[telemetry]`; off by
    /// default). The all-in-one `shop` reads one top-level table instead.
    #[serde(skip_serializing)]
    pub telemetry: shop_common::telemetry::TelemetrySettings,
    /// Which tokens to accept (keys come from the users service's JWKS).
    /// Not among the defaults a configuration is laid over: the service's
    /// default is the type's.
    #[serde(skip_serializing)]
    pub auth: VerifierSettings,
    /// One client per upstream service, each with its balancing policy.
    pub upstreams: UpstreamsSettings,
    /// Request size, time and concurrency limits.
    pub limits: LimitSettings,
    /// Per-client rate limits.
    pub rate_limit: RateLimitSettings,
    /// Cross-origin requests from browsers.
    pub cors: CorsSettings,
    /// What the gateway believes of `X-Forwarded-*` headers it receives.
    pub proxy: ProxySettings,
    /// The service credential (`internal.service_token`, the one the
    /// services share). A request carrying it in `x-shop-service-token` —
    /// the storefront calling the API for a browser — has its client taken
    /// from its `x-shop-client-ip`, so rate limits count that browser rather
    /// than the web instance. Unset (the default), no request is believed.
    pub internal: InternalSettings,
}

shop_runtime::http_service_settings!(Settings);

impl Default for Settings {
    fn default() -> Self {
        Self {
            http: HttpSettings::on_port(8080),
            admin: AdminSettings::on_port(9080),
            registry: RegistrySettings::default(),
            instance: InstanceSettings::default(),
            telemetry: shop_common::telemetry::TelemetrySettings::default(),
            auth: VerifierSettings::default(),
            upstreams: UpstreamsSettings::default(),
            limits: LimitSettings::default(),
            rate_limit: RateLimitSettings::default(),
            cors: CorsSettings::default(),
            proxy: ProxySettings::default(),
            internal: InternalSettings::default(),
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
///
/// Timeouts: every upstream waits 2 s per try and 5 s in all, except
/// orders, whose `PlaceOrder` and `CancelOrder` may legitimately take the
/// saga's `answer_within_ms` (2 s by default) before answering: its tries
/// get [`ORDERS_PER_TRY_TIMEOUT_MS`], so a healthy answer is never cut off
/// and retried, and its calls [`ORDERS_DEADLINE_MS`], room for one try on
/// a hung instance and a whole retry elsewhere. Both stay under
/// `limits.request_timeout_ms`, so the client hears the gateway's answer.
///
/// The storefront, `web`, is a client of this very gateway: a page waits
/// for the API calls it makes through it, and its checkout `POST` for the
/// gateway's orders call, which may take [`ORDERS_DEADLINE_MS`] (6 s). Its
/// tries get [`WEB_PER_TRY_TIMEOUT_MS`] and its calls [`WEB_DEADLINE_MS`]
/// (9 s both: one try, no retry after a hung one), room for that checkout
/// to settle and still under `limits.request_timeout_ms` (10 s), so the
/// browser is shown web's page, or the gateway's 504, never a dropped
/// connection. A page that cannot reach the API is web's own `503`, which
/// says nothing about web itself, so web's circuit breaker is off by
/// default: an outage of catalog must not make the gateway refuse the
/// login page too. A dead or hung web instance is still taken out by
/// outlier ejection and the health checks.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
    /// The storefront (server-rendered HTML pages).
    pub web: UpstreamSettings,
}

/// Default per-try timeout of orders calls, in milliseconds: the saga's
/// default `answer_within_ms` (2000) plus a second for the answer to
/// travel.
pub const ORDERS_PER_TRY_TIMEOUT_MS: u64 = 3_000;
/// Default deadline of orders calls, in milliseconds: two whole tries.
pub const ORDERS_DEADLINE_MS: u64 = 2 * ORDERS_PER_TRY_TIMEOUT_MS;

/// Default per-try timeout of storefront calls, in milliseconds: a
/// checkout waits for the gateway's orders call ([`ORDERS_DEADLINE_MS`])
/// and then renders, well inside it; still under the default
/// `limits.request_timeout_ms` (10 s).
pub const WEB_PER_TRY_TIMEOUT_MS: u64 = 9_000;
/// Default deadline of storefront calls, in milliseconds: one whole try.
pub const WEB_DEADLINE_MS: u64 = WEB_PER_TRY_TIMEOUT_MS;

impl Default for UpstreamsSettings {
    fn default() -> Self {
        Self {
            users: UpstreamSettings::default(),
            catalog: UpstreamSettings::default(),
            cart: UpstreamSettings {
                balance: PolicySettings::ConsistentHash(ConsistentHashSettings::default()),
                ..UpstreamSettings::default()
            },
            orders: UpstreamSettings {
                per_try_timeout_ms: ORDERS_PER_TRY_TIMEOUT_MS,
                deadline_ms: ORDERS_DEADLINE_MS,
                ..UpstreamSettings::default()
            },
            web: UpstreamSettings {
                per_try_timeout_ms: WEB_PER_TRY_TIMEOUT_MS,
                deadline_ms: WEB_DEADLINE_MS,
                breaker: BreakerSettings {
                    enabled: false,
                    ..BreakerSettings::default()
                },
                ..UpstreamSettings::default()
            },
        }
    }
}

/// Request limits, each answered with problem+json.
#[derive(Debug, Clone, Deserialize, Serialize)]
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

/// Token buckets per client: one general, and a stricter one for login
/// and registration. A client is an IPv4 address, or an IPv6 prefix of
/// `ipv6_prefix_len` bits.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Whether requests are rate limited at all (default true).
    pub enabled: bool,
    /// Sustained requests per second per client (default 100).
    pub per_second: u32,
    /// Requests a client may send at once above the sustained rate (default 200).
    pub burst: u32,
    /// How many leading bits of an IPv6 address name one client (default
    /// 64, 32 to 128): a subscriber is given a whole /64 (or /56, /48) and
    /// can send each request from another address in it.
    pub ipv6_prefix_len: u8,
    /// Most clients whose buckets are kept at once, per bucket kind
    /// (default 100000); past it the least active are forgotten, so a
    /// flood of addresses cannot exhaust memory. A bucket is also
    /// forgotten once its client has been quiet long enough for it to fill
    /// up again.
    pub max_clients: u64,
    /// The stricter bucket of `POST /api/sessions` and `POST /api/users`,
    /// drawn on in addition to the general one.
    pub login: LoginRateLimitSettings,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            per_second: 100,
            burst: 200,
            ipv6_prefix_len: 64,
            max_clients: 100_000,
            login: LoginRateLimitSettings::default(),
        }
    }
}

/// The login and registration bucket, `[rate_limit.login]`: each of those
/// requests costs the users service a deliberately slow password hash, so
/// a client gets far fewer of them than of anything else.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginRateLimitSettings {
    /// Sustained logins and registrations per minute per client (default
    /// 60: a person needs a handful, an office behind one NAT address a
    /// few dozen, a password-guessing script thousands).
    pub per_minute: u32,
    /// Logins and registrations a client may send at once above the
    /// sustained rate (default 20).
    pub burst: u32,
}

impl Default for LoginRateLimitSettings {
    fn default() -> Self {
        Self {
            per_minute: 60,
            burst: 20,
        }
    }
}

/// Cross-origin resource sharing; off while `allowed_origins` is empty.
#[derive(Debug, Clone, Deserialize, Serialize)]
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

/// Whose forwarding headers the gateway believes.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxySettings {
    /// Address ranges of the proxies in front of the gateway (a TLS
    /// terminator, an Ingress controller, a cloud load balancer), as CIDR
    /// ranges or single addresses: `["10.244.0.0/16", "192.0.2.10"]`.
    ///
    /// A request whose TCP peer is in one has its `X-Forwarded-For`
    /// appended to and its `X-Forwarded-Proto` kept, and its client is the
    /// right-most `X-Forwarded-For` address that is not itself in one. Any
    /// other peer is the client, and whatever it sends in those headers is
    /// replaced. Default empty: the gateway is the edge and believes no one.
    /// Not among the defaults a configuration is laid over: the default is
    /// the type's.
    #[serde(skip_serializing)]
    pub trusted_proxies: TrustedProxies,
}

impl Settings {
    /// Checks what serde cannot.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.auth.validate()?;
        self.internal.validate()?;
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
        self.rate_limit.validate()?;
        self.cors.validate()?;
        for (name, upstream) in [
            ("upstreams.users", &self.upstreams.users),
            ("upstreams.catalog", &self.upstreams.catalog),
            ("upstreams.cart", &self.upstreams.cart),
            ("upstreams.orders", &self.upstreams.orders),
            ("upstreams.web", &self.upstreams.web),
        ] {
            upstream
                .validate()
                .map_err(|err| ConfigError::invalid(name, err))?;
        }
        Ok(())
    }
}

impl RateLimitSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if !self.enabled {
            return Ok(());
        }
        for (key, value) in [
            ("rate_limit.per_second", u64::from(self.per_second)),
            ("rate_limit.burst", u64::from(self.burst)),
            ("rate_limit.max_clients", self.max_clients),
            (
                "rate_limit.login.per_minute",
                u64::from(self.login.per_minute),
            ),
            ("rate_limit.login.burst", u64::from(self.login.burst)),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(
                    key,
                    "must be positive (or set rate_limit.enabled = false)",
                ));
            }
        }
        if !(32..=128).contains(&self.ipv6_prefix_len) {
            return Err(ConfigError::invalid(
                "rate_limit.ipv6_prefix_len",
                "must be between 32 and 128 (a shorter prefix lumps whole providers together)",
            ));
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
    use shop_common::config;

    #[test]
    fn a_key_set_alone_keeps_the_gateways_defaults_of_its_table() {
        let settings: Settings = config::load_from(
            "[upstreams.orders]\nconnect_timeout_ms = 500\n[upstreams.cart.balance]\nload_factor = 2.0\n",
            &[("SHOP_HTTP__SHUTDOWN_DELAY_MS", "2000")],
        )
        .expect("valid");
        assert_eq!(settings.http.port, 8080);
        assert_eq!(settings.admin.port, 9080);
        let orders = &settings.upstreams.orders;
        assert_eq!(orders.connect_timeout_ms, 500);
        assert_eq!(orders.per_try_timeout_ms, ORDERS_PER_TRY_TIMEOUT_MS);
        assert_eq!(orders.deadline_ms, ORDERS_DEADLINE_MS);
        let PolicySettings::ConsistentHash(hash) = &settings.upstreams.cart.balance else {
            panic!("cart keeps hashing: {:?}", settings.upstreams.cart.balance);
        };
        assert_eq!(hash.load_factor, 2.0);
        assert_eq!(
            hash.virtual_nodes,
            ConsistentHashSettings::default().virtual_nodes
        );
        settings.validate().expect("valid");
    }

    #[test]
    fn defaults_are_valid_and_cart_hashes_on_the_user() {
        let settings = Settings::default();
        settings.validate().expect("defaults are valid");
        assert_eq!(settings.http.port, 8080);
        assert!(matches!(
            settings.upstreams.cart.balance,
            PolicySettings::ConsistentHash(_)
        ));
        assert!(matches!(
            settings.upstreams.users.balance,
            PolicySettings::PeakEwma(_)
        ));
        // A PlaceOrder answering after the saga's answer time (2 s) is not
        // cut off, and a hung try leaves room for a whole retry.
        let orders = &settings.upstreams.orders;
        assert!(orders.per_try_timeout_ms > 2_000);
        assert!(orders.deadline_ms >= 2 * orders.per_try_timeout_ms);
        assert!(orders.deadline_ms < settings.limits.request_timeout_ms);
    }

    #[test]
    fn the_storefront_waits_for_a_checkout_within_the_request_timeout() {
        let settings = Settings::default();
        let web = &settings.upstreams.web;
        assert!(matches!(web.balance, PolicySettings::PeakEwma(_)));
        assert_eq!(web.per_try_timeout_ms, WEB_PER_TRY_TIMEOUT_MS);
        assert_eq!(web.deadline_ms, WEB_DEADLINE_MS);
        // A checkout waits for the gateway's orders call; the browser still
        // hears the gateway before its own request times out.
        assert!(web.per_try_timeout_ms > settings.upstreams.orders.deadline_ms);
        assert!(web.deadline_ms >= web.per_try_timeout_ms);
        assert!(web.deadline_ms < settings.limits.request_timeout_ms);
        assert!(
            !web.breaker.enabled,
            "web's 503s are its upstreams' outages"
        );
        assert!(web.outlier.enabled);

        // A key set alone keeps the rest of web's defaults.
        let settings: Settings = config::load_from(
            "[upstreams.web]
connect_timeout_ms = 250
",
            &[],
        )
        .expect("parses");
        settings.validate().expect("valid");
        let web = &settings.upstreams.web;
        assert_eq!(web.connect_timeout_ms, 250);
        assert_eq!(web.per_try_timeout_ms, WEB_PER_TRY_TIMEOUT_MS);
        assert!(!web.breaker.enabled);
        let settings: Settings =
            config::load_from("", &[("SHOP_UPSTREAMS__WEB__DEADLINE_MS", "0")]).expect("parses");
        let err = settings.validate().expect_err("zero deadline").to_string();
        assert!(err.contains("upstreams.web"), "{err}");
    }

    #[test]
    fn the_service_credential_is_optional_but_never_blank() {
        let settings = Settings::default();
        assert!(settings.internal.service_token.is_none());
        let settings: Settings =
            config::load_from("", &[("SHOP_INTERNAL__SERVICE_TOKEN", "s3cret")]).expect("parses");
        settings.validate().expect("valid");
        assert!(settings.internal.service_token.is_some());
        let settings: Settings =
            config::load_from("[internal]\nservice_token = \"  \"\n", &[]).expect("parses");
        let err = settings.validate().expect_err("blank").to_string();
        assert!(err.contains("internal.service_token"), "{err}");
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
    fn trusted_proxies_come_from_a_list_and_a_bad_range_is_named() {
        let settings: Settings = config::load_from(
            "",
            &[(
                "SHOP_PROXY__TRUSTED_PROXIES",
                "[10.244.0.0/16, 10.42.0.0/16]",
            )],
        )
        .expect("parses");
        let trusted = &settings.proxy.trusted_proxies;
        assert!(trusted.contains("10.244.3.4".parse().expect("ip")));
        assert!(trusted.contains("10.42.0.9".parse().expect("ip")));
        assert!(!trusted.contains("10.43.0.9".parse().expect("ip")));
        assert!(Settings::default().proxy.trusted_proxies.is_empty());

        let err = config::load_from::<Settings>(
            "[proxy]\ntrusted_proxies = [\"10.0.0.0/8\", \"10.0.0.0/40\"]\n",
            &[],
        )
        .expect_err("malformed");
        let err = err.to_string();
        assert!(err.contains("proxy.trusted_proxies"), "{err}");
        assert!(err.contains("10.0.0.0/40"), "{err}");

        let err = config::load_from::<Settings>("[proxy]\ntrust_forwarded_headers = true\n", &[])
            .expect_err("the old key is gone");
        assert!(err.to_string().contains("trust_forwarded_headers"), "{err}");
    }

    #[test]
    fn rate_limit_settings_are_checked_by_key() {
        for (key, value, named) in [
            (
                "SHOP_RATE_LIMIT__IPV6_PREFIX_LEN",
                "16",
                "rate_limit.ipv6_prefix_len",
            ),
            (
                "SHOP_RATE_LIMIT__MAX_CLIENTS",
                "0",
                "rate_limit.max_clients",
            ),
            (
                "SHOP_RATE_LIMIT__LOGIN__BURST",
                "0",
                "rate_limit.login.burst",
            ),
            (
                "SHOP_RATE_LIMIT__LOGIN__PER_MINUTE",
                "0",
                "rate_limit.login.per_minute",
            ),
        ] {
            let settings: Settings = config::load_from("", &[(key, value)]).expect("parses");
            let err = settings.validate().expect_err(key).to_string();
            assert!(err.contains(named), "{key}: {err}");
        }
        let settings: Settings = config::load_from(
            "[rate_limit]\nipv6_prefix_len = 56\n[rate_limit.login]\nper_minute = 5\n",
            &[],
        )
        .expect("parses");
        settings.validate().expect("valid");
        assert_eq!(settings.rate_limit.ipv6_prefix_len, 56);
        assert_eq!(settings.rate_limit.login.per_minute, 5);
        assert_eq!(settings.rate_limit.login.burst, 20);
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
