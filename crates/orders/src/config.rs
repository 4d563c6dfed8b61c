//! Settings of the orders service.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shop_common::auth::VerifierSettings;
use shop_common::config::{
    ConfigError, DatabaseSettings, HttpSettings, InternalSettings, RetentionSettings,
};
use shop_discovery::{RegistrySettings, UpstreamSettings};

/// Everything the orders service reads at start-up.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(remote = "Self", default, deny_unknown_fields)]
pub struct Settings {
    /// The HTTP admin listener: health and metrics (default `0.0.0.0:8084`).
    pub http: HttpSettings,
    /// The gRPC listener (default `0.0.0.0:50051`).
    pub grpc: GrpcSettings,
    /// The orders database (default `sqlite:./data/orders.db`).
    pub database: DatabaseSettings,
    /// Which tokens to accept (keys come from the users service's JWKS).
    /// Not among the defaults a configuration is laid over: the service's
    /// default is the type's.
    #[serde(skip_serializing)]
    pub auth: VerifierSettings,
    /// The credential this service presents on cart's internal routes.
    pub internal: InternalSettings,
    /// Where instances register and are found. Not among the defaults a
    /// configuration is laid over: the service's default is the type's.
    #[serde(skip_serializing)]
    pub registry: RegistrySettings,
    /// How this instance registers itself (the gRPC address is registered).
    pub instance: shop_discovery::InstanceSettings,
    /// Where this service's spans are exported (`[telemetry]`; off by
    /// default). The all-in-one `shop` reads one top-level table instead.
    #[serde(skip_serializing)]
    pub telemetry: shop_common::telemetry::TelemetrySettings,
    /// Calls to the cart service (reading carts, clearing ordered lines).
    pub cart: UpstreamSettings,
    /// Calls to the users service (for its JWKS).
    pub users: UpstreamSettings,
    /// Calls to the catalog service (stock reservations).
    pub catalog: UpstreamSettings,
    /// Calls to the payments service.
    pub payments: UpstreamSettings,
    /// The checkout saga and its recovery worker.
    pub saga: SagaSettings,
    /// The outbox relay.
    pub relay: RelaySettings,
    /// Upkeep of the outbox table: delivered rows are purged after
    /// `outbox.retention_secs` (default seven days, at least
    /// [`MIN_OUTBOX_RETENTION_SECS`]); rows not yet delivered and
    /// dead-lettered rows never are. Each purge round also refreshes the
    /// `outbox_dead_letter_rows` gauge.
    pub outbox: RetentionSettings,
}

/// Where the gRPC server binds and how it stops.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcSettings {
    /// Address to bind (default `0.0.0.0`).
    pub host: IpAddr,
    /// Port to bind (default 50051); `0` picks a free one (tests do).
    pub port: u16,
    /// Seconds in-flight calls get to finish after a stop signal.
    pub drain_timeout_secs: u64,
    /// Milliseconds the listener keeps accepting calls after the stop
    /// signal, once the instance is deregistered and reports not ready
    /// (default 0), so callers that still pick it while their view of the
    /// registry catches up are served rather than refused (see
    /// `HttpSettings::shutdown_delay_ms` in shop-common).
    pub shutdown_delay_ms: u64,
    /// Milliseconds between database checks behind `grpc.health.v1`
    /// (SERVING while the database answers).
    pub health_interval_ms: u64,
    /// Calls one connection may have in flight (default 256): HTTP/2's
    /// concurrent-stream limit, and the calls served at once per connection.
    pub max_concurrent_streams: u32,
    /// Largest request or response message, in bytes (default 1 MiB; an
    /// order's largest message is far smaller): a bigger one is refused
    /// before it is decoded.
    pub max_message_bytes: usize,
    /// Milliseconds between HTTP/2 pings on an idle connection (default
    /// 30,000; `0` for none); a peer that does not answer within
    /// `keepalive_timeout_ms` is disconnected, so dead clients do not hold
    /// connections.
    pub keepalive_interval_ms: u64,
    /// Milliseconds to wait for a ping's answer (default 10,000).
    pub keepalive_timeout_ms: u64,
    /// Serve gRPC server reflection (default true: `grpcurl` and similar
    /// tools can list and call the API without the .proto files). Turn it
    /// off where the API should not describe itself.
    pub reflection: bool,
}

impl Default for GrpcSettings {
    fn default() -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 50051,
            drain_timeout_secs: 10,
            shutdown_delay_ms: 0,
            health_interval_ms: 5_000,
            max_concurrent_streams: 256,
            max_message_bytes: 1024 * 1024,
            keepalive_interval_ms: 30_000,
            keepalive_timeout_ms: 10_000,
            reflection: true,
        }
    }
}

impl GrpcSettings {
    /// The listener as [`HttpSettings`], for `shop_common::server::bind`.
    pub fn listener(&self) -> HttpSettings {
        HttpSettings {
            host: self.host,
            port: self.port,
            drain_timeout_secs: self.drain_timeout_secs,
            shutdown_delay_ms: self.shutdown_delay_ms,
            ..HttpSettings::default()
        }
    }

    /// The socket address to bind.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }
}

/// How the outbox relay delivers.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelaySettings {
    /// Run the relay in this instance (default true): it delivers the cart
    /// removal of each order this instance places before answering, and
    /// polls for rows to retry. With several replicas every relay may run:
    /// rows are claimed with a lease.
    pub enabled: bool,
    /// Milliseconds between polls for due rows (default 1000): retries, and
    /// rows whose placing instance stopped or runs no relay.
    pub poll_interval_ms: u64,
    /// Most rows claimed per round, all delivered at once; also the most
    /// hand-off deliveries marked in one statement (default 32).
    pub batch_size: u32,
    /// Milliseconds a claim is held before another relay may take the row
    /// over (default 30000); must exceed the cart call's deadline.
    pub lease_ms: u64,
    /// Delay before the first retry, in milliseconds (default 250); doubles
    /// per failed attempt.
    pub initial_backoff_ms: u64,
    /// Longest delay between retries, in milliseconds (default 60000).
    pub max_backoff_ms: u64,
    /// Failed deliveries of one row after which it is dead-lettered (default
    /// 20, at least 1): never claimed again, left for a human. Only
    /// transient failures (no answer, 5xx, 408, 429) are retried up to
    /// here; a delivery cart refuses (another 4xx) is dead-lettered at once.
    pub max_attempts: u32,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            enabled: true,
            poll_interval_ms: 1_000,
            batch_size: 32,
            lease_ms: 30_000,
            initial_backoff_ms: 250,
            max_backoff_ms: 60_000,
            max_attempts: 20,
        }
    }
}

impl RelaySettings {
    /// The poll interval.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    /// The lease duration.
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }

    /// The delay before retry number `attempts` (1 for the first retry),
    /// as [`backoff`] computes it.
    pub fn backoff(&self, attempts: u32) -> Duration {
        backoff(self.initial_backoff_ms, self.max_backoff_ms, attempts)
    }
}

/// How the checkout saga runs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SagaSettings {
    /// Milliseconds `PlaceOrder` and `CancelOrder` wait for the order to
    /// settle before answering it as it stands (`pending`, `cancelling`;
    /// default 2000). The call's own deadline, when shorter, wins. The saga
    /// goes on after the answer.
    pub answer_within_ms: u64,
    /// Milliseconds a driver of an order's saga holds it (renewed at every
    /// step; default 15000) before the recovery worker may take it over.
    /// Must exceed the slowest participant's `deadline_ms`.
    pub lease_ms: u64,
    /// Milliseconds between the recovery worker's looks for orders whose
    /// lease ran out or whose retry is due (default 1000).
    pub poll_interval_ms: u64,
    /// Most orders the recovery worker takes per round (default 32).
    pub batch_size: u32,
    /// Failed attempts at an authorization after which a provider failure
    /// (payments answers 502) gives the payment up and the order is
    /// rejected `payment_failed` (default 3). Other failures (payments down
    /// or unreachable) never give it up: they are retried until it is back.
    pub payment_attempts: u32,
    /// Delay before the first retry of a failed step, in milliseconds
    /// (default 250); doubles per failed attempt.
    pub initial_backoff_ms: u64,
    /// Longest delay between retries, in milliseconds (default 30000).
    pub max_backoff_ms: u64,
}

impl Default for SagaSettings {
    fn default() -> Self {
        Self {
            answer_within_ms: 2_000,
            lease_ms: 15_000,
            poll_interval_ms: 1_000,
            batch_size: 32,
            payment_attempts: 3,
            initial_backoff_ms: 250,
            max_backoff_ms: 30_000,
        }
    }
}

impl SagaSettings {
    /// How long a call waits for its order to settle.
    pub fn answer_within(&self) -> Duration {
        Duration::from_millis(self.answer_within_ms)
    }

    /// The lease of a driver.
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }

    /// The recovery worker's poll interval.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    /// The delay before retry number `attempts` of a failed step.
    pub fn backoff(&self, attempts: u32) -> Duration {
        backoff(self.initial_backoff_ms, self.max_backoff_ms, attempts)
    }
}

/// The delay before retry number `attempts` (1 for the first retry):
/// `initial * 2^(attempts-1)` milliseconds, capped at `max`, with up to a
/// quarter taken off at random so workers that failed together do not retry
/// together.
pub fn backoff(initial_ms: u64, max_ms: u64, attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(32);
    let full = initial_ms.saturating_mul(1u64 << exp).min(max_ms);
    let jitter = if full >= 4 {
        rand::random_range(0..=full / 4)
    } else {
        0
    };
    Duration::from_millis(full - jitter)
}

/// Shortest accepted `outbox.retention_secs`: one hour. Purging a delivered
/// row is always safe (nothing delivers it again), so this only guards
/// against a unit slip (`7` meant as days) wiping what an operator may want
/// to look at.
pub const MIN_OUTBOX_RETENTION_SECS: u64 = 3_600;

shop_common::settings_over_defaults!(Settings);

impl Default for Settings {
    fn default() -> Self {
        Self {
            http: HttpSettings::on_port(8084),
            grpc: GrpcSettings::default(),
            database: DatabaseSettings::new("sqlite:./data/orders.db"),
            auth: VerifierSettings::default(),
            internal: InternalSettings::default(),
            registry: RegistrySettings::default(),
            instance: shop_discovery::InstanceSettings::default(),
            telemetry: shop_common::telemetry::TelemetrySettings::default(),
            cart: UpstreamSettings::default(),
            users: UpstreamSettings::default(),
            catalog: UpstreamSettings::default(),
            // A provider may take seconds to authorize (the test provider's
            // `tok_slow` takes 3): give each try the whole deadline rather
            // than cut it off and start the wait again on another instance.
            payments: UpstreamSettings {
                per_try_timeout_ms: UpstreamSettings::default().deadline_ms,
                ..UpstreamSettings::default()
            },
            saga: SagaSettings::default(),
            relay: RelaySettings::default(),
            outbox: RetentionSettings::default(),
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
        if self.grpc.max_concurrent_streams == 0 {
            return Err(ConfigError::invalid(
                "grpc.max_concurrent_streams",
                "must be positive",
            ));
        }
        if self.grpc.max_message_bytes < 1024 {
            return Err(ConfigError::invalid(
                "grpc.max_message_bytes",
                "must be at least 1024",
            ));
        }
        if self.grpc.keepalive_interval_ms > 0 && self.grpc.keepalive_timeout_ms == 0 {
            return Err(ConfigError::invalid(
                "grpc.keepalive_timeout_ms",
                "must be positive while keepalive_interval_ms is",
            ));
        }
        self.internal.validate()?;
        let relay = &self.relay;
        if relay.poll_interval_ms == 0 {
            return Err(ConfigError::invalid(
                "relay.poll_interval_ms",
                "must be positive",
            ));
        }
        if relay.batch_size == 0 || relay.batch_size > 1000 {
            return Err(ConfigError::invalid(
                "relay.batch_size",
                "must be between 1 and 1000",
            ));
        }
        if relay.lease_ms <= self.cart.deadline_ms {
            return Err(ConfigError::invalid(
                "relay.lease_ms",
                "must exceed cart.deadline_ms, or a slow delivery could be claimed twice",
            ));
        }
        if relay.initial_backoff_ms == 0 || relay.max_backoff_ms < relay.initial_backoff_ms {
            return Err(ConfigError::invalid(
                "relay.max_backoff_ms",
                "initial_backoff_ms must be positive and at most max_backoff_ms",
            ));
        }
        let saga = &self.saga;
        let slowest = self.catalog.deadline_ms.max(self.payments.deadline_ms);
        if saga.lease_ms <= slowest {
            return Err(ConfigError::invalid(
                "saga.lease_ms",
                "must exceed catalog.deadline_ms and payments.deadline_ms, or a slow step could be run by two drivers at once",
            ));
        }
        if saga.poll_interval_ms == 0 {
            return Err(ConfigError::invalid(
                "saga.poll_interval_ms",
                "must be positive",
            ));
        }
        if saga.batch_size == 0 || saga.batch_size > 1000 {
            return Err(ConfigError::invalid(
                "saga.batch_size",
                "must be between 1 and 1000",
            ));
        }
        if saga.payment_attempts == 0 {
            return Err(ConfigError::invalid(
                "saga.payment_attempts",
                "must be at least 1",
            ));
        }
        if saga.initial_backoff_ms == 0 || saga.max_backoff_ms < saga.initial_backoff_ms {
            return Err(ConfigError::invalid(
                "saga.max_backoff_ms",
                "initial_backoff_ms must be positive and at most max_backoff_ms",
            ));
        }
        if relay.max_attempts == 0 {
            return Err(ConfigError::invalid(
                "relay.max_attempts",
                "must be at least 1",
            ));
        }
        self.outbox.validate(
            "outbox",
            MIN_OUTBOX_RETENTION_SECS,
            "one hour; a shorter one is more likely a unit slip than a wish",
        )?;
        if self.grpc.health_interval_ms == 0 {
            return Err(ConfigError::invalid(
                "grpc.health_interval_ms",
                "must be positive",
            ));
        }
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
    use shop_runtime::ServiceSettings as _;

    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_design() {
        let settings = Settings::default();
        assert!(settings.validate().is_ok());
        assert_eq!(settings.grpc.port, 50051);
        assert_eq!(settings.http.port, 8084);
    }

    #[test]
    fn limits_the_service_token_the_attempt_cap_and_the_outbox_purge_are_checked() {
        let cases: [Case; 15] = [
            (
                |s| s.grpc.max_concurrent_streams = 0,
                "grpc.max_concurrent_streams",
            ),
            (|s| s.grpc.max_message_bytes = 10, "grpc.max_message_bytes"),
            (
                |s| s.grpc.keepalive_timeout_ms = 0,
                "grpc.keepalive_timeout_ms",
            ),
            (
                |s| s.internal.service_token = Some(SecretString::from("")),
                "internal.service_token",
            ),
            (|s| s.relay.max_attempts = 0, "relay.max_attempts"),
            (
                |s| s.saga.lease_ms = s.payments.deadline_ms,
                "saga.lease_ms",
            ),
            (|s| s.saga.lease_ms = s.catalog.deadline_ms, "saga.lease_ms"),
            (|s| s.saga.poll_interval_ms = 0, "saga.poll_interval_ms"),
            (|s| s.saga.batch_size = 0, "saga.batch_size"),
            (|s| s.saga.payment_attempts = 0, "saga.payment_attempts"),
            (|s| s.saga.initial_backoff_ms = 0, "saga.max_backoff_ms"),
            (
                |s| s.outbox.retention_secs = MIN_OUTBOX_RETENTION_SECS - 1,
                "outbox.retention_secs",
            ),
            (
                |s| s.outbox.purge_interval_ms = 0,
                "outbox.purge_interval_ms",
            ),
            (|s| s.outbox.purge_batch_size = 0, "outbox.purge_batch_size"),
            (
                |s| s.outbox.purge_batch_size = MAX_PURGE_BATCH_SIZE + 1,
                "outbox.purge_batch_size",
            ),
        ];
        for (change, key) in cases {
            shop_testkit::assert_rejected(Settings::validate, change, key);
        }
        let mut settings = Settings::default();
        settings.relay.max_attempts = 1;
        settings.outbox.retention_secs = MIN_OUTBOX_RETENTION_SECS;
        assert!(
            settings.validate().is_ok(),
            "the bounds themselves are valid"
        );
    }

    #[test]
    fn a_key_set_alone_keeps_the_services_defaults_of_its_table() {
        use secrecy::ExposeSecret as _;

        let settings: Settings = config::load_from(
            "",
            &[
                ("SHOP_HTTP__SHUTDOWN_DELAY_MS", "2000"),
                ("SHOP_GRPC__SHUTDOWN_DELAY_MS", "2000"),
                ("SHOP_DATABASE__MAX_CONNECTIONS", "3"),
                ("SHOP_PAYMENTS__DEADLINE_MS", "9000"),
            ],
        )
        .expect("valid");
        assert_eq!(settings.http.port, 8084, "orders' admin port, not 0");
        assert_eq!(settings.grpc.port, 50051);
        assert_eq!(settings.grpc.shutdown_delay_ms, 2000);
        assert_eq!(settings.database.max_connections, 3);
        assert_eq!(
            settings.database.url.expose_secret(),
            "sqlite:./data/orders.db"
        );
        // payments' own default: a try may take the whole deadline.
        assert_eq!(settings.payments.deadline_ms, 9000);
        assert_eq!(
            settings.payments.per_try_timeout_ms,
            Settings::default().payments.per_try_timeout_ms
        );
        assert_eq!(settings.admin().port, 8084);
        assert_eq!(settings.api().port, 50051);
        settings.validate().expect("valid");
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let relay = RelaySettings {
            initial_backoff_ms: 100,
            max_backoff_ms: 1_000,
            ..RelaySettings::default()
        };
        let ms = |n| relay.backoff(n).as_millis();
        assert!((75..=100).contains(&ms(1)));
        assert!((150..=200).contains(&ms(2)));
        assert!((750..=1_000).contains(&ms(10)));
        assert!((750..=1_000).contains(&ms(u32::MAX)));
    }

    #[test]
    fn files_and_env_are_layered() {
        let settings: Settings = config::load_from(
            "[relay]\nbatch_size = 5\n[grpc]\nport = 6000\n[outbox]\nretention_secs = 86400\n",
            &[
                ("SHOP_RELAY__ENABLED", "false"),
                ("SHOP_RELAY__MAX_ATTEMPTS", "5"),
                ("SHOP_OUTBOX__PURGE_BATCH_SIZE", "50"),
            ],
        )
        .expect("settings load");
        assert_eq!(settings.relay.batch_size, 5);
        assert_eq!(settings.relay.max_attempts, 5);
        assert_eq!(settings.outbox.retention_secs, 86_400);
        assert_eq!(settings.outbox.purge_batch_size, 50);
        assert!(!settings.relay.enabled);
        assert_eq!(settings.grpc.port, 6000);
    }
}
