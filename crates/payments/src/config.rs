//! Settings of the payments service.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use shop_common::config::{
    AdminSettings, ConfigError, DatabaseSettings, HttpSettings, InternalSettings,
};
use shop_discovery::{InstanceSettings, RegistrySettings};

/// Everything the payments service reads at start-up.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(remote = "Self", default, deny_unknown_fields)]
pub struct Settings {
    /// Listener (default `0.0.0.0:8086`).
    pub http: HttpSettings,
    /// Admin listener: `/metrics` (default `0.0.0.0:9086`).
    pub admin: AdminSettings,
    /// The payments database (default `sqlite:./data/payments.db`).
    pub database: DatabaseSettings,
    /// Where instances register and are found. Not among the defaults a
    /// configuration is laid over: the service's default is the type's.
    #[serde(skip_serializing)]
    pub registry: RegistrySettings,
    /// How this instance registers itself.
    pub instance: InstanceSettings,
    /// Where this service's spans are exported (`[telemetry]`; off by
    /// default). The all-in-one `shop` reads one top-level table instead.
    #[serde(skip_serializing)]
    pub telemetry: shop_common::telemetry::TelemetrySettings,
    /// The credential orders presents; every payments route needs it.
    pub internal: InternalSettings,
    /// The built-in fake provider.
    pub provider: ProviderSettings,
}

/// The built-in fake provider.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderSettings {
    /// How long the provider takes to authorize `tok_slow`, in
    /// milliseconds (default 3000, at most [`MAX_SLOW_MS`]): long enough
    /// to exceed a caller's deadline, to test what it does then.
    pub slow_ms: u64,
}

/// Longest accepted `provider.slow_ms`: one minute. The slow token holds a
/// request (and its connection) that long; a longer delay tests nothing a
/// minute does not.
pub const MAX_SLOW_MS: u64 = 60_000;

impl ProviderSettings {
    /// `slow_ms` as a duration.
    pub fn slow(&self) -> Duration {
        Duration::from_millis(self.slow_ms)
    }
}

impl Default for ProviderSettings {
    fn default() -> Self {
        Self { slow_ms: 3000 }
    }
}

shop_runtime::http_service_settings!(Settings, database);

impl Default for Settings {
    fn default() -> Self {
        Self {
            http: HttpSettings::on_port(8086),
            admin: AdminSettings::on_port(9086),
            database: DatabaseSettings::new("sqlite:./data/payments.db"),
            registry: RegistrySettings::default(),
            instance: InstanceSettings::default(),
            telemetry: shop_common::telemetry::TelemetrySettings::default(),
            internal: InternalSettings::default(),
            provider: ProviderSettings::default(),
        }
    }
}

impl Settings {
    /// Checks what serde cannot.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.internal.validate()?;
        if self.provider.slow_ms > MAX_SLOW_MS {
            return Err(ConfigError::invalid(
                "provider.slow_ms",
                "must be at most 60000 (one minute)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use secrecy::{ExposeSecret, SecretString};
    use shop_common::config;

    #[test]
    fn a_key_set_alone_keeps_the_services_defaults_of_its_table() {
        let settings: Settings = config::load_from(
            "",
            &[
                ("SHOP_HTTP__SHUTDOWN_DELAY_MS", "2000"),
                ("SHOP_DATABASE__MAX_CONNECTIONS", "3"),
            ],
        )
        .expect("valid");
        assert_eq!(settings.http.port, 8086);
        assert_eq!(settings.admin.port, 9086);
        assert_eq!(
            settings.database.url.expose_secret(),
            "sqlite:./data/payments.db"
        );
    }

    use super::*;

    #[test]
    fn zero_configuration_means_sqlite_on_8086() {
        let settings: Settings = config::load_from("", &[]).expect("defaults are valid");
        assert!(settings.validate().is_ok());
        assert_eq!(settings.http.port, 8086);
        assert_eq!(settings.admin.port, 9086);
        assert_eq!(
            settings.database.url.expose_secret(),
            "sqlite:./data/payments.db"
        );
        assert_eq!(settings.provider.slow(), Duration::from_secs(3));
        assert!(settings.internal.service_token.is_none());
    }

    #[test]
    fn environment_overrides_the_file() {
        let settings: Settings = config::load_from(
            "[provider]\nslow_ms = 10\n",
            &[
                ("SHOP_PROVIDER__SLOW_MS", "20"),
                ("SHOP_INTERNAL__SERVICE_TOKEN", "s3cret"),
                ("SHOP_DATABASE__URL", "postgres://db/payments"),
            ],
        )
        .expect("valid");
        assert_eq!(settings.provider.slow_ms, 20);
        assert_eq!(
            settings
                .internal
                .service_token
                .as_ref()
                .map(|token| token.expose_secret().to_owned()),
            Some("s3cret".to_owned())
        );
        assert_eq!(
            settings.database.url.expose_secret(),
            "postgres://db/payments"
        );
    }

    #[test]
    fn unknown_keys_are_rejected_by_name() {
        let err = config::load_from::<Settings>("[provider]\ndelay_ms = 5\n", &[])
            .expect_err("no such provider key");
        assert!(err.to_string().contains("delay_ms"), "{err}");
    }

    #[test]
    fn a_blank_token_and_a_long_delay_are_refused() {
        type Case = (fn(&mut Settings), &'static str);
        let cases: [Case; 2] = [
            (
                |s| s.internal.service_token = Some(SecretString::from("  ")),
                "internal.service_token",
            ),
            (|s| s.provider.slow_ms = MAX_SLOW_MS + 1, "provider.slow_ms"),
        ];
        for (change, key) in cases {
            shop_testkit::assert_rejected(Settings::validate, change, key);
        }
        let mut settings = Settings::default();
        settings.provider.slow_ms = MAX_SLOW_MS;
        settings.internal.service_token = Some(SecretString::from("s3cret"));
        assert!(
            settings.validate().is_ok(),
            "the bounds themselves are valid"
        );
    }
}
