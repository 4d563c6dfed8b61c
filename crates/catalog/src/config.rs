//! Settings of the catalog service.

use serde::{Deserialize, Serialize};
use shop_common::config::{
    AdminSettings, ConfigError, DatabaseSettings, HttpSettings, InternalSettings,
};
use shop_discovery::{InstanceSettings, RegistrySettings};

/// Everything the catalog service reads at start-up.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(remote = "Self", default, deny_unknown_fields)]
pub struct Settings {
    /// Listener (default `0.0.0.0:8082`).
    pub http: HttpSettings,
    /// Admin listener: `/metrics` (default `0.0.0.0:9082`).
    pub admin: AdminSettings,
    /// The catalog database (default `sqlite:./data/catalog.db`).
    pub database: DatabaseSettings,
    /// The credential orders presents on the internal stock routes
    /// (default none: every internal call is refused).
    pub internal: InternalSettings,
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
}

shop_runtime::http_service_settings!(Settings, database);

impl Default for Settings {
    fn default() -> Self {
        Self {
            http: HttpSettings::on_port(8082),
            admin: AdminSettings::on_port(9082),
            database: DatabaseSettings::new("sqlite:./data/catalog.db"),
            internal: InternalSettings::default(),
            registry: RegistrySettings::default(),
            instance: InstanceSettings::default(),
            telemetry: shop_common::telemetry::TelemetrySettings::default(),
        }
    }
}

impl Settings {
    /// Checks what serde cannot (the lifecycle asks every service).
    ///
    /// # Errors
    /// A [`ConfigError`] naming `internal.service_token` when it is set but
    /// blank.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.internal.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::{ExposeSecret, SecretString};
    use shop_common::config;

    #[test]
    fn a_key_set_alone_keeps_the_services_defaults_of_its_table() {
        let settings: Settings = config::load_from(
            "",
            &[
                ("SHOP_HTTP__SHUTDOWN_DELAY_MS", "2000"),
                ("SHOP_ADMIN__HOST", "127.0.0.1"),
                ("SHOP_DATABASE__MAX_CONNECTIONS", "3"),
            ],
        )
        .expect("valid");
        assert_eq!(settings.http.port, 8082);
        assert_eq!(settings.admin.port, 9082);
        assert_eq!(
            settings.database.url.expose_secret(),
            "sqlite:./data/catalog.db"
        );
    }

    #[test]
    fn zero_configuration_means_sqlite_on_8082() {
        let settings: Settings = config::load_from("", &[]).expect("defaults are valid");
        assert_eq!(settings.http.port, 8082);
        assert_eq!(settings.admin.port, 9082);
        assert!(settings.admin.enabled);
        assert_eq!(
            settings.database.url.expose_secret(),
            "sqlite:./data/catalog.db"
        );
        assert!(
            settings.internal.service_token.is_none(),
            "no credential unless configured"
        );
        assert!(settings.validate().is_ok());
    }

    #[test]
    fn the_service_token_is_read_and_must_not_be_blank() {
        let settings: Settings =
            config::load_from("", &[("SHOP_INTERNAL__SERVICE_TOKEN", "s3cret")]).expect("valid");
        let token = settings.internal.service_token.as_ref().expect("set");
        assert_eq!(token.expose_secret(), "s3cret");
        assert!(settings.validate().is_ok());
        shop_testkit::assert_rejected(
            Settings::validate,
            |s| s.internal.service_token = Some(SecretString::from(" ")),
            "internal.service_token",
        );
    }

    #[test]
    fn environment_overrides_the_file() {
        let settings: Settings = config::load_from(
            "[http]\nport = 9000\n",
            &[
                ("SHOP_HTTP__PORT", "9100"),
                ("SHOP_ADMIN__PORT", "9200"),
                ("SHOP_DATABASE__URL", "postgres://db/catalog"),
            ],
        )
        .expect("valid");
        assert_eq!(settings.http.port, 9100);
        assert_eq!(settings.admin.port, 9200);
        assert!(settings.admin.enabled);
        assert_eq!(
            settings.database.url.expose_secret(),
            "postgres://db/catalog"
        );
    }

    #[test]
    fn unknown_keys_are_rejected_by_name() {
        let err = config::load_from::<Settings>("[auth]\ntoken_ttl_secs = 5\n", &[])
            .expect_err("the catalog has no auth settings");
        assert!(err.to_string().contains("auth"), "{err}");
    }
}
