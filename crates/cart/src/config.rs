//! Settings of the cart service.

use serde::{Deserialize, Serialize};
use shop_common::auth::VerifierSettings;
use shop_common::config::{
    AdminSettings, ConfigError, DatabaseSettings, HttpSettings, InternalSettings, RetentionSettings,
};
use shop_discovery::{RegistrySettings, UpstreamSettings};

/// Everything the cart service reads at start-up.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(remote = "Self", default, deny_unknown_fields)]
pub struct Settings {
    /// Listener (default `0.0.0.0:8083`).
    pub http: HttpSettings,
    /// Admin listener: `/metrics` (default `0.0.0.0:9083`).
    pub admin: AdminSettings,
    /// The cart database (default `sqlite:./data/cart.db`).
    pub database: DatabaseSettings,
    /// Which tokens to accept (keys come from the users service's JWKS).
    /// Not among the defaults a configuration is laid over: the service's
    /// default is the type's.
    #[serde(skip_serializing)]
    pub auth: VerifierSettings,
    /// The credential other services present on internal routes.
    pub internal: InternalSettings,
    /// Where instances register and are found. Not among the defaults a
    /// configuration is laid over: the service's default is the type's.
    #[serde(skip_serializing)]
    pub registry: RegistrySettings,
    /// How this instance registers itself.
    pub instance: shop_discovery::InstanceSettings,
    /// Where this service's spans are exported (`[telemetry]`; off by
    /// default). The all-in-one `shop` reads one top-level table instead.
    #[serde(skip_serializing)]
    pub telemetry: shop_common::telemetry::TelemetrySettings,
    /// Calls to the catalog service.
    pub catalog: UpstreamSettings,
    /// How long products read from the catalog are reused.
    pub catalog_cache: CatalogCacheSettings,
    /// Calls to the users service (for its JWKS).
    pub users: UpstreamSettings,
    /// Currency reported for an empty cart (ISO 4217).
    pub currency: String,
    /// How long the records of applied order removals (`applied_orders`)
    /// are kept (default seven days; at least
    /// [`MIN_APPLIED_ORDER_RETENTION_SECS`]) and how they are purged.
    pub applied_orders: RetentionSettings,
}

/// The cart's copy of products it read from the catalog (names, prices).
///
/// The catalog is read-only over its API (products change by migration or
/// by an operator), so a product read a moment ago is as good as a fresh
/// one: under load this spares most catalog calls of pricing a cart. A
/// change in the catalog shows in carts (and so in new orders) at most
/// `ttl_ms` later. Products the catalog does not know are never kept.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CatalogCacheSettings {
    /// How long a product is reused, in milliseconds; 0 asks the catalog
    /// on every read (default 1000, at most one hour).
    pub ttl_ms: u64,
    /// Most products kept (default 10000).
    pub capacity: u64,
}

/// Longest accepted `catalog_cache.ttl_ms`: one hour.
const MAX_CATALOG_CACHE_TTL_MS: u64 = 3_600_000;

impl Default for CatalogCacheSettings {
    fn default() -> Self {
        Self {
            ttl_ms: 1000,
            capacity: 10_000,
        }
    }
}

/// Shortest accepted `applied_orders.retention_secs`: two days. A record
/// is what makes a repeated order removal change nothing, so it must
/// outlive every delivery of its order: the orders relay delivers no
/// outbox row more than a day after its order was placed (it dead-letters
/// it instead: `shop_orders::relay::MAX_DELIVERY_AGE`), and a record is
/// written after its order was placed. The second day covers the call's
/// deadline and clock skew between hosts.
pub const MIN_APPLIED_ORDER_RETENTION_SECS: u64 = 2 * 24 * 3_600;

shop_runtime::http_service_settings!(Settings, database);

impl Default for Settings {
    fn default() -> Self {
        Self {
            http: HttpSettings::on_port(8083),
            admin: AdminSettings::on_port(9083),
            database: DatabaseSettings::new("sqlite:./data/cart.db"),
            auth: VerifierSettings::default(),
            internal: InternalSettings::default(),
            registry: RegistrySettings::default(),
            instance: shop_discovery::InstanceSettings::default(),
            telemetry: shop_common::telemetry::TelemetrySettings::default(),
            catalog: UpstreamSettings::default(),
            catalog_cache: CatalogCacheSettings::default(),
            users: UpstreamSettings::default(),
            currency: "EUR".to_owned(),
            applied_orders: RetentionSettings::default(),
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
        self.internal.validate()?;
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ConfigError::invalid(
                "currency",
                "must be a three-letter ISO 4217 code such as EUR",
            ));
        }
        if self.catalog_cache.ttl_ms > MAX_CATALOG_CACHE_TTL_MS {
            return Err(ConfigError::invalid(
                "catalog_cache.ttl_ms",
                "must be at most 3600000 (one hour)",
            ));
        }
        if self.catalog_cache.ttl_ms > 0 && self.catalog_cache.capacity == 0 {
            return Err(ConfigError::invalid(
                "catalog_cache.capacity",
                "must be at least 1 (set catalog_cache.ttl_ms = 0 to turn the cache off)",
            ));
        }
        self.applied_orders.validate(
            "applied_orders",
            MIN_APPLIED_ORDER_RETENTION_SECS,
            "two days; a shorter one could let a late repeat of an order removal apply twice",
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// A change to the default settings and the key its refusal names.
    type Case = (fn(&mut Settings), &'static str);

    use secrecy::SecretString;
    use shop_common::config;
    use shop_common::config::MAX_PURGE_BATCH_SIZE;

    #[test]
    fn a_key_set_alone_keeps_the_services_defaults_of_its_table() {
        use secrecy::ExposeSecret as _;
        let settings: Settings = config::load_from(
            "",
            &[
                ("SHOP_HTTP__SHUTDOWN_DELAY_MS", "2000"),
                ("SHOP_DATABASE__MAX_CONNECTIONS", "3"),
            ],
        )
        .expect("valid");
        assert_eq!(settings.http.port, 8083);
        assert_eq!(settings.admin.port, 9083);
        assert_eq!(
            settings.database.url.expose_secret(),
            "sqlite:./data/cart.db"
        );
    }

    use super::*;

    #[test]
    fn the_catalog_cache_is_bounded_or_off() {
        let mut settings = Settings::default();
        assert!(settings.validate().is_ok(), "the defaults are valid");
        settings.catalog_cache.ttl_ms = MAX_CATALOG_CACHE_TTL_MS + 1;
        let err = settings.validate().expect_err("over an hour");
        assert!(err.to_string().contains("catalog_cache.ttl_ms"), "{err}");
        settings.catalog_cache = CatalogCacheSettings {
            ttl_ms: 1000,
            capacity: 0,
        };
        let err = settings.validate().expect_err("no room");
        assert!(err.to_string().contains("catalog_cache.capacity"), "{err}");
        settings.catalog_cache.ttl_ms = 0;
        assert!(
            settings.validate().is_ok(),
            "a cache that is off needs no room"
        );
    }

    #[test]
    fn an_empty_service_token_is_refused() {
        let mut settings = Settings::default();
        settings.internal.service_token = Some(SecretString::from("  "));
        let err = settings.validate().expect_err("an empty token");
        assert!(err.to_string().contains("internal.service_token"), "{err}");
        settings.internal.service_token = Some(SecretString::from("s3cret"));
        assert!(settings.validate().is_ok());
    }

    #[test]
    fn applied_orders_are_kept_long_enough() {
        let cases: [Case; 4] = [
            (
                |s| s.applied_orders.retention_secs = MIN_APPLIED_ORDER_RETENTION_SECS - 1,
                "applied_orders.retention_secs",
            ),
            (
                |s| s.applied_orders.purge_interval_ms = 0,
                "applied_orders.purge_interval_ms",
            ),
            (
                |s| s.applied_orders.purge_batch_size = 0,
                "applied_orders.purge_batch_size",
            ),
            (
                |s| s.applied_orders.purge_batch_size = MAX_PURGE_BATCH_SIZE + 1,
                "applied_orders.purge_batch_size",
            ),
        ];
        for (change, key) in cases {
            shop_testkit::assert_rejected(Settings::validate, change, key);
        }
        let mut settings = Settings::default();
        settings.applied_orders.retention_secs = MIN_APPLIED_ORDER_RETENTION_SECS;
        assert!(settings.validate().is_ok(), "the minimum itself is valid");
        let settings: Settings = config::load_from(
            "[applied_orders]\npurge_batch_size = 50\n",
            &[("SHOP_APPLIED_ORDERS__RETENTION_SECS", "864000")],
        )
        .expect("settings load");
        assert_eq!(settings.applied_orders.retention_secs, 864_000);
        assert_eq!(settings.applied_orders.purge_batch_size, 50);
    }
}
