//! Settings of the catalog service.

use std::net::{IpAddr, Ipv4Addr};

use serde::Deserialize;
use shop_common::config::{AdminSettings, ConfigError, DatabaseSettings, HttpSettings};
use shop_discovery::{InstanceSettings, RegistrySettings};

/// The default HTTP port of the catalog service.
pub const DEFAULT_PORT: u16 = 8082;
/// The default admin port (`/metrics`): the API port plus 1000.
pub const DEFAULT_ADMIN_PORT: u16 = 9082;
/// The default database: a SQLite file under `./data`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite:./data/catalog.db";

/// Everything the catalog service reads at start-up.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Listener (default `0.0.0.0:8082`).
    pub http: HttpSettings,
    /// Admin listener: `/metrics` (default `0.0.0.0:9082`).
    pub admin: AdminSettings,
    /// The catalog database (default `sqlite:./data/catalog.db`).
    pub database: DatabaseSettings,
    /// Where instances register and are found.
    pub registry: RegistrySettings,
    /// How this instance registers itself.
    pub instance: InstanceSettings,
}

shop_runtime::http_service_settings!(Settings, database);

impl Default for Settings {
    fn default() -> Self {
        Self {
            http: HttpSettings::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), DEFAULT_PORT),
            admin: AdminSettings::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), DEFAULT_ADMIN_PORT),
            database: DatabaseSettings::new(DEFAULT_DATABASE_URL),
            registry: RegistrySettings::default(),
            instance: InstanceSettings::default(),
        }
    }
}

impl Settings {
    /// Checks what serde cannot: every catalog setting is checked by its
    /// type, so there is nothing more (the lifecycle asks every service).
    ///
    /// # Errors
    /// None today.
    pub fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use shop_common::config;

    #[test]
    fn zero_configuration_means_sqlite_on_8082() {
        let settings: Settings = config::load_from("", &[]).expect("defaults are valid");
        assert_eq!(settings.http.port, DEFAULT_PORT);
        assert_eq!(settings.admin.port, DEFAULT_ADMIN_PORT);
        assert!(settings.admin.enabled);
        assert_eq!(settings.database.url.expose_secret(), DEFAULT_DATABASE_URL);
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
