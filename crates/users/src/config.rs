//! Settings of the users service.

use serde::{Deserialize, Serialize};
use shop_common::auth::IssuerSettings;
use shop_common::config::{AdminSettings, ConfigError, DatabaseSettings, HttpSettings};
use shop_discovery::{InstanceSettings, RegistrySettings};

use crate::login_limit::{LoginLimitSettings, MAX_WINDOW_SECS};

/// Everything the users service reads at start-up.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(remote = "Self", default, deny_unknown_fields)]
pub struct Settings {
    /// Listener (default `0.0.0.0:8081`).
    pub http: HttpSettings,
    /// Admin listener: `/metrics` (default `0.0.0.0:9081`).
    pub admin: AdminSettings,
    /// The users database (default `sqlite:./data/users.db`).
    pub database: DatabaseSettings,
    /// Token signing: key, the keys published beside it, issuer, audience,
    /// lifetime. Not among the defaults a configuration is laid over: the
    /// service's default is the type's.
    #[serde(skip_serializing)]
    pub auth: IssuerSettings,
    /// Login limiting per client and login and per account. Not among the
    /// defaults a configuration is laid over: the service's default is the
    /// type's.
    #[serde(skip_serializing)]
    pub login_limit: LoginLimitSettings,
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
            http: HttpSettings::on_port(8081),
            admin: AdminSettings::on_port(9081),
            database: DatabaseSettings::new("sqlite:./data/users.db"),
            auth: IssuerSettings::default(),
            login_limit: LoginLimitSettings::default(),
            registry: RegistrySettings::default(),
            instance: InstanceSettings::default(),
            telemetry: shop_common::telemetry::TelemetrySettings::default(),
        }
    }
}

impl Settings {
    /// Checks what serde cannot.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.auth.validate()?;
        let limits = &self.login_limit;
        for (key, value) in [
            ("login_limit.max_failures", u64::from(limits.max_failures)),
            (
                "login_limit.account_max_failures",
                u64::from(limits.account_max_failures),
            ),
            ("login_limit.max_entries", limits.max_entries),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be at least 1"));
            }
        }
        for (key, secs) in [
            ("login_limit.window_secs", limits.window_secs),
            (
                "login_limit.account_window_secs",
                limits.account_window_secs,
            ),
        ] {
            if !(1..=MAX_WINDOW_SECS).contains(&secs) {
                return Err(ConfigError::invalid(
                    key,
                    format!("must be 1 to {MAX_WINDOW_SECS} seconds"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use shop_common::config;

    #[test]
    fn a_key_set_alone_keeps_the_services_defaults_of_its_table() {
        let settings: Settings =
            config::load_from("", &[("SHOP_HTTP__SHUTDOWN_DELAY_MS", "2000")]).expect("valid");
        assert_eq!(settings.http.port, 8081, "users' port, not the generic 0");
        assert_eq!(settings.http.shutdown_delay_ms, 2000);
        assert_eq!(settings.admin.port, 9081);

        let settings: Settings = config::load_from(
            "[admin]\nenabled = false\n",
            &[("SHOP_DATABASE__MAX_CONNECTIONS", "3")],
        )
        .expect("valid");
        assert_eq!(settings.database.max_connections, 3);
        assert_eq!(
            settings.database.url.expose_secret(),
            "sqlite:./data/users.db",
            "a pool size alone keeps the default database"
        );
        assert_eq!(settings.admin.port, 9081);
        assert!(!settings.admin.enabled);
    }

    #[test]
    fn zero_configuration_means_sqlite_on_8081() {
        let settings: Settings = config::load_from("", &[]).expect("defaults are valid");
        assert_eq!(settings.http.port, 8081);
        assert_eq!(settings.admin.port, 9081);
        assert_eq!(
            settings.database.url.expose_secret(),
            "sqlite:./data/users.db"
        );
        settings.validate().expect("defaults validate");
    }

    #[test]
    fn environment_overrides_nested_keys() {
        let settings: Settings = config::load_from(
            "",
            &[
                ("SHOP_DATABASE__URL", "postgres://db/users"),
                ("SHOP_LOGIN_LIMIT__MAX_FAILURES", "3"),
            ],
        )
        .expect("valid");
        assert_eq!(settings.database.url.expose_secret(), "postgres://db/users");
        assert_eq!(settings.login_limit.max_failures, 3);
    }

    #[test]
    fn login_limits_load_from_env_and_bad_ones_are_rejected_with_their_key() {
        let settings: Settings = config::load_from(
            "",
            &[
                ("SHOP_LOGIN_LIMIT__ACCOUNT_MAX_FAILURES", "30"),
                ("SHOP_LOGIN_LIMIT__ACCOUNT_WINDOW_SECS", "600"),
                ("SHOP_LOGIN_LIMIT__MAX_ENTRIES", "5000"),
            ],
        )
        .expect("valid");
        assert_eq!(settings.login_limit.account_max_failures, 30);
        assert_eq!(settings.login_limit.account_window_secs, 600);
        assert_eq!(settings.login_limit.max_entries, 5000);
        settings.validate().expect("valid");

        for (toml, key) in [
            (
                "account_max_failures = 0",
                "login_limit.account_max_failures",
            ),
            ("max_entries = 0", "login_limit.max_entries"),
            ("window_secs = 0", "login_limit.window_secs"),
            (
                "account_window_secs = 86401",
                "login_limit.account_window_secs",
            ),
        ] {
            let settings: Settings =
                config::load_from(&format!("[login_limit]\n{toml}\n"), &[]).expect("parses");
            let err = settings.validate().expect_err(toml);
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn published_keys_load_from_env_and_too_many_are_rejected() {
        let settings: Settings = config::load_from(
            "",
            &[(
                "SHOP_AUTH__PUBLISHED_KEY_FILES",
                "[/run/secrets/signing-key-next.pem]",
            )],
        )
        .expect("valid");
        assert_eq!(
            settings.auth.published_key_files,
            vec![std::path::PathBuf::from(
                "/run/secrets/signing-key-next.pem"
            )]
        );
        settings.validate().expect("valid");

        let files: Vec<String> = (0..=shop_common::auth::MAX_PUBLISHED_KEYS)
            .map(|i| format!("\"/k{i}.pem\""))
            .collect();
        let settings: Settings = config::load_from(
            &format!("[auth]\npublished_key_files = [{}]\n", files.join(", ")),
            &[],
        )
        .expect("parses");
        let err = settings.validate().expect_err("too many");
        assert!(
            err.to_string().contains("auth.published_key_files"),
            "{err}"
        );
    }

    #[test]
    fn zero_ttl_is_rejected_with_its_key() {
        let settings: Settings =
            config::load_from("[auth]\ntoken_ttl_secs = 0\n", &[]).expect("parses");
        let err = settings.validate().expect_err("invalid");
        assert!(err.to_string().contains("auth.token_ttl_secs"));
    }
}
