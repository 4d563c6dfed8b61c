//! Settings of the storefront.

use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use shop_common::config::{AdminSettings, ConfigError, HttpSettings, InternalSettings};
use shop_discovery::{BreakerSettings, InstanceSettings, RegistrySettings, UpstreamSettings};

/// Everything the storefront reads at start-up. It has no database: every
/// page is read from, and every form written to, the public API.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(remote = "Self", default, deny_unknown_fields)]
pub struct Settings {
    /// Listener (default `0.0.0.0:8087`): the pages, behind the gateway.
    pub http: HttpSettings,
    /// Admin listener: `/metrics` (default `0.0.0.0:9087`).
    pub admin: AdminSettings,
    /// Where instances register and are found. Not among the defaults a
    /// configuration is laid over: the service's default is the type's.
    #[serde(skip_serializing)]
    pub registry: RegistrySettings,
    /// How this instance registers itself (as `web`).
    pub instance: InstanceSettings,
    /// Where this service's spans are exported (`[telemetry]`; off by
    /// default). The all-in-one `shop` reads one top-level table instead.
    #[serde(skip_serializing)]
    pub telemetry: shop_common::telemetry::TelemetrySettings,
    /// The service credential it presents to the gateway with every API
    /// call, so that the gateway takes the browser's address (which the
    /// storefront names in `x-shop-client-ip`) as the client's: rate
    /// limits then count browsers, not storefront instances.
    pub internal: InternalSettings,
    /// How it reaches the gateway (discovery name `gateway`). See
    /// [`GATEWAY_PER_TRY_TIMEOUT_MS`] for the timeouts.
    pub gateway: UpstreamSettings,
    /// The cookies it sets.
    pub cookies: CookieSettings,
    /// How pages are cut.
    pub pages: PageSettings,
}

/// Default per-try timeout of API calls, in milliseconds.
///
/// The longest call a page makes is placing an order: the gateway gives
/// orders up to 6 s (its orders deadline) before it answers, so one try
/// must wait for that and the answer's trip back, or a checkout that is
/// about to succeed would be cut off and shown as unavailable. 7 s.
pub const GATEWAY_PER_TRY_TIMEOUT_MS: u64 = 7_000;

/// Default deadline of an API call with its retries, in milliseconds: 8 s.
///
/// The gateway waits at most 9 s for a page of the storefront (its `web`
/// upstream's deadline; its own request timeout is 10 s), so a call that
/// cannot be answered ends here first, and the browser is shown the
/// storefront's "unavailable, try again" page rather than the gateway's
/// bare 504. A read that failed fast on one gateway instance is retried on
/// another within it.
pub const GATEWAY_DEADLINE_MS: u64 = 8_000;

/// When the cookies get the `Secure` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SecureCookies {
    /// When the page request came over TLS: `X-Forwarded-Proto: https`
    /// from the gateway (or a proxy in front of it). The default, so a
    /// laptop stack over plain HTTP still keeps its session.
    #[default]
    Auto,
    /// Always (a deployment that is only ever reached over TLS).
    Always,
    /// Never.
    Never,
}

/// The cookies the storefront sets, `[cookies]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CookieSettings {
    /// `auto` (default), `always` or `never`.
    pub secure: SecureCookies,
}

/// How pages are cut, `[pages]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PageSettings {
    /// Products per page of the product list (default 12, 1 to
    /// [`shop_api::catalog::MAX_LIMIT`]): a multiple of 2, 3 and 4, so the
    /// grid's rows are full on a phone, a tablet and a desktop.
    pub page_size: u32,
}

impl Default for PageSettings {
    fn default() -> Self {
        Self { page_size: 12 }
    }
}

shop_runtime::http_service_settings!(Settings);

impl Default for Settings {
    fn default() -> Self {
        Self {
            http: HttpSettings::on_port(8087),
            admin: AdminSettings::on_port(9087),
            registry: RegistrySettings::default(),
            instance: InstanceSettings::default(),
            telemetry: shop_common::telemetry::TelemetrySettings::default(),
            internal: InternalSettings::default(),
            gateway: default_gateway(),
            cookies: CookieSettings::default(),
            pages: PageSettings::default(),
        }
    }
}

/// The gateway client's defaults: the timeouts above, and no circuit
/// breaker. A 503 the gateway answers for one route (catalog down) says
/// nothing about the gateway itself; a breaker counting those would soon
/// refuse the login and cart pages too. A dead or hung gateway instance is
/// still taken out by outlier ejection and the health checks.
fn default_gateway() -> UpstreamSettings {
    UpstreamSettings {
        per_try_timeout_ms: GATEWAY_PER_TRY_TIMEOUT_MS,
        deadline_ms: GATEWAY_DEADLINE_MS,
        breaker: BreakerSettings {
            enabled: false,
            ..BreakerSettings::default()
        },
        ..UpstreamSettings::default()
    }
}

impl Settings {
    /// Checks what serde cannot.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.internal.validate()?;
        // Sent as a header with every API call: a token that cannot be one
        // would be dropped, and the gateway would count every browser's
        // calls as this instance's.
        if self
            .internal
            .service_token
            .as_ref()
            .is_some_and(|token| http::HeaderValue::from_str(token.expose_secret()).is_err())
        {
            return Err(ConfigError::invalid(
                "internal.service_token",
                "must hold no control character: it is sent in a header",
            ));
        }
        self.gateway
            .validate()
            .map_err(|err| ConfigError::invalid("gateway", err))?;
        let page_size = self.pages.page_size;
        if page_size == 0 || page_size > shop_api::catalog::MAX_LIMIT {
            return Err(ConfigError::invalid(
                "pages.page_size",
                format!("must be 1 to {}", shop_api::catalog::MAX_LIMIT),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use secrecy::SecretString;
    use shop_common::config;

    use super::*;

    #[test]
    fn zero_configuration_means_8087_and_room_for_a_checkout() {
        let settings: Settings = config::load_from("", &[]).expect("defaults are valid");
        assert!(settings.validate().is_ok());
        assert_eq!(settings.http.port, 8087);
        assert_eq!(settings.admin.port, 9087);
        assert_eq!(settings.cookies.secure, SecureCookies::Auto);
        assert_eq!(settings.pages.page_size, 12);
        assert!(settings.internal.service_token.is_none());
        assert_eq!(settings.gateway.per_try_timeout_ms, 7_000);
        assert_eq!(settings.gateway.deadline_ms, 8_000);
        assert!(!settings.gateway.breaker.enabled);
    }

    #[test]
    fn a_key_set_alone_keeps_the_services_defaults_of_its_table() {
        let settings: Settings = config::load_from(
            "",
            &[
                ("SHOP_HTTP__SHUTDOWN_DELAY_MS", "2000"),
                ("SHOP_GATEWAY__CONNECT_TIMEOUT_MS", "500"),
            ],
        )
        .expect("valid");
        assert_eq!(settings.http.port, 8087);
        assert_eq!(settings.gateway.connect_timeout_ms, 500);
        assert_eq!(settings.gateway.per_try_timeout_ms, 7_000);
        assert!(!settings.gateway.breaker.enabled);
    }

    #[test]
    fn environment_overrides_the_file() {
        let settings: Settings = config::load_from(
            "[cookies]\nsecure = \"never\"\n[pages]\npage_size = 6\n",
            &[
                ("SHOP_COOKIES__SECURE", "always"),
                ("SHOP_INTERNAL__SERVICE_TOKEN", "s3cret"),
            ],
        )
        .expect("valid");
        assert_eq!(settings.cookies.secure, SecureCookies::Always);
        assert_eq!(settings.pages.page_size, 6);
        assert_eq!(
            settings
                .internal
                .service_token
                .as_ref()
                .map(|token| token.expose_secret().to_owned()),
            Some("s3cret".to_owned())
        );
    }

    #[test]
    fn unknown_keys_and_values_are_rejected_by_name() {
        let err = config::load_from::<Settings>("[pages]\nper_page = 5\n", &[])
            .expect_err("no such pages key");
        assert!(err.to_string().contains("per_page"), "{err}");
        let err = config::load_from::<Settings>("[cookies]\nsecure = \"sometimes\"\n", &[])
            .expect_err("no such choice");
        assert!(err.to_string().contains("sometimes"), "{err}");
    }

    #[test]
    fn a_blank_token_and_a_page_size_out_of_bounds_are_refused() {
        type Case = (fn(&mut Settings), &'static str);
        let cases: [Case; 5] = [
            (
                |s| s.internal.service_token = Some(SecretString::from("  ")),
                "internal.service_token",
            ),
            (
                |s| s.internal.service_token = Some(SecretString::from("s3cret\n")),
                "internal.service_token",
            ),
            (|s| s.pages.page_size = 0, "pages.page_size"),
            (|s| s.pages.page_size = 101, "pages.page_size"),
            (|s| s.gateway.per_try_timeout_ms = 0, "gateway"),
        ];
        for (change, key) in cases {
            shop_testkit::assert_rejected(Settings::validate, change, key);
        }
        let mut settings = Settings::default();
        settings.pages.page_size = 100;
        assert!(settings.validate().is_ok(), "the bound itself is valid");
    }
}
