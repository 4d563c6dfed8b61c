//! Layered configuration.
//!
//! Later layers win: the defaults of the settings type (its `#[serde(default)]`
//! values), then an optional TOML file (`--config PATH` or `SHOP_CONFIG`), then
//! environment variables with the `SHOP_` prefix and `__` between nested keys
//! (`SHOP_DATABASE__URL` sets `database.url`). A bad value stops start-up with
//! one line that names the key.
//!
//! Any key can be set alone: a service's settings type lays what is
//! configured over its own `Default` ([`crate::settings_over_defaults!`]), so a
//! table that sets one key (`SHOP_HTTP__SHUTDOWN_DELAY_MS`) keeps the
//! service's values for the others (its port), whichever loader reads it.

use std::cell::Cell;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use figment::value::{Dict, Value};
use secrecy::{ExposeSecret as _, SecretString};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What [`settings_over_defaults!`] names.
#[doc(hidden)]
pub use serde as __serde;

/// Environment variables read by the process itself rather than the settings type.
const RESERVED_ENV: [&str; 2] = ["CONFIG", "LOG_FORMAT"];

/// The environment prefix of every ferroshop setting.
pub const ENV_PREFIX: &str = "SHOP_";

/// A configuration that could not be loaded; its message names the key at fault.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    /// A configuration error about `key`, for checks that serde cannot express.
    pub fn invalid(key: &str, problem: impl fmt::Display) -> Self {
        Self(format!("{key}: {problem}"))
    }
}

impl From<figment::Error> for ConfigError {
    fn from(err: figment::Error) -> Self {
        // figment's Display already names the key and the source of the value;
        // keep it on one line so it reads as one log line.
        Self(err.to_string().replace('\n', " "))
    }
}

/// Loads settings of type `T` from its defaults, an optional TOML file and the
/// `SHOP_` environment.
///
/// The file is `file` when given, otherwise the path in `SHOP_CONFIG` when set;
/// a file that was named but does not exist is an error.
///
/// # Errors
/// A [`ConfigError`] naming the first key that is missing, unknown or malformed.
pub fn load<T: DeserializeOwned>(file: Option<&Path>) -> Result<T, ConfigError> {
    let file = file
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("SHOP_CONFIG").map(PathBuf::from));
    Ok(with_file(Figment::new(), file.as_deref())?
        .merge(env_provider())
        .extract()?)
}

/// `figment` with the TOML `file` merged in, when one is named; a named file
/// that does not exist is an error.
fn with_file(figment: Figment, file: Option<&Path>) -> Result<Figment, ConfigError> {
    match file {
        Some(path) if !path.is_file() => Err(ConfigError::invalid(
            "config",
            format!("file {} does not exist", path.display()),
        )),
        Some(path) => Ok(figment.merge(Toml::file_exact(path))),
        None => Ok(figment),
    }
}

/// Loads the settings of one service embedded in a larger process (the
/// all-in-one `shop` binary): `defaults` first (a JSON object shaped like the
/// settings), then the `[scope]` table of the TOML file, then environment
/// variables `SHOP_<SCOPE>__…` (e.g. `SHOP_CART__CURRENCY`). Unscoped `SHOP_`
/// variables are ignored, so one process can hold several services.
///
/// # Errors
/// As [`load`].
pub fn load_scoped<T: DeserializeOwned>(
    file: Option<&Path>,
    scope: &str,
    defaults: serde_json::Value,
) -> Result<T, ConfigError> {
    let defaults = Figment::new().merge(figment::providers::Serialized::default(scope, defaults));
    Ok(with_file(defaults, file)?
        .merge(env_provider())
        .focus(scope)
        .extract()?)
}

/// Loads settings from a TOML string and the given environment-style pairs,
/// exactly as [`load`] layers them; for tests and tools that must not touch
/// the process environment.
///
/// # Errors
/// As [`load`].
pub fn load_from<T: DeserializeOwned>(toml: &str, env: &[(&str, &str)]) -> Result<T, ConfigError> {
    let mut figment = Figment::new().merge(Toml::string(toml));
    for (key, value) in env {
        let Some(key) = key.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if RESERVED_ENV.contains(&key) {
            continue;
        }
        let path = key.to_ascii_lowercase().replace("__", ".");
        figment = figment.merge(figment::providers::Serialized::default(
            &path,
            parse_env_value(value),
        ));
    }
    Ok(figment.extract()?)
}

fn parse_env_value(value: &str) -> figment::value::Value {
    value
        .parse::<figment::value::Value>()
        .unwrap_or_else(|_| figment::value::Value::from(value.to_owned()))
}

fn env_provider() -> Env {
    Env::prefixed(ENV_PREFIX).ignore(&RESERVED_ENV).split("__")
}

/// Where a service's HTTP listener binds, what a client may hold open on it,
/// and how it stops: first it keeps serving for `shutdown_delay_ms` while it
/// reports not ready and callers forget it, then it drains for
/// `drain_timeout_secs`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Address to bind (default `0.0.0.0`).
    pub host: IpAddr,
    /// Port to bind; `0` picks a free one (tests do).
    pub port: u16,
    /// Milliseconds the listener keeps accepting and serving after a stop
    /// signal (default 0), while `/readyz` reports not ready and the
    /// instance is already deregistered: the time callers need to drop it
    /// from their balancers (an etcd watch, Kubernetes endpoints), so none
    /// meets a refused connection. 0 stops accepting at once: right where
    /// nothing else routes to the instance (the all-in-one `shop`, tests);
    /// docker-compose.yml and k8s/ set it.
    pub shutdown_delay_ms: u64,
    /// Seconds in-flight requests get to finish once the listener stops
    /// accepting (after `shutdown_delay_ms`).
    pub drain_timeout_secs: u64,
    /// Milliseconds a client has to send a request's whole header block
    /// (default 10,000); on an HTTP/1 keep-alive connection the same bound
    /// applies to the idle wait for the next request, so a slow or silent
    /// client cannot hold a connection. `0` turns it off.
    pub header_read_timeout_ms: u64,
    /// Connections served at once (default 1,024, at least 1); past it the
    /// listener stops accepting until one closes, so open sockets stay
    /// below the process's file-descriptor limit.
    pub max_connections: usize,
}

/// What [`crate::server::serve`] enforces on one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Time the listener keeps accepting after the stop signal (see
    /// [`HttpSettings::shutdown_delay_ms`]).
    pub shutdown_delay: Duration,
    /// Time in-flight requests get once the listener stops accepting.
    pub drain: Duration,
    /// Bound on reading a request's headers and on an idle keep-alive wait;
    /// `None` for none.
    pub header_read_timeout: Option<Duration>,
    /// Connections served at once.
    pub max_connections: usize,
}

impl HttpSettings {
    /// Settings binding every interface on `port`: a service's default.
    pub fn on_port(port: u16) -> Self {
        Self::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)
    }

    /// Settings binding `host:port` with the default drain time.
    pub fn new(host: IpAddr, port: u16) -> Self {
        Self {
            host,
            port,
            ..Self::default()
        }
    }

    /// The socket address to bind.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }

    /// The drain time as a duration.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs(self.drain_timeout_secs)
    }

    /// The time the listener keeps accepting after a stop signal.
    pub fn shutdown_delay(&self) -> Duration {
        Duration::from_millis(self.shutdown_delay_ms)
    }

    /// The limits the listener enforces.
    pub fn limits(&self) -> ListenerLimits {
        ListenerLimits {
            shutdown_delay: self.shutdown_delay(),
            drain: self.drain_timeout(),
            header_read_timeout: (self.header_read_timeout_ms > 0)
                .then(|| Duration::from_millis(self.header_read_timeout_ms)),
            max_connections: self.max_connections.max(1),
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 0,
            shutdown_delay_ms: 0,
            drain_timeout_secs: 10,
            header_read_timeout_ms: 10_000,
            max_connections: 1024,
        }
    }
}

/// Where a service's admin listener binds: `/metrics` (beside `/healthz` and
/// `/readyz`) for scrapers inside the deployment, on a port of its own so
/// that the API port, the one clients and the gateway's Ingress reach,
/// does not serve them. Its limits follow the API listener's
/// ([`crate::server::admin_limits`]).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSettings {
    /// Whether to open the listener (default `true`). The all-in-one `shop`
    /// turns it off for all but one service: its services share one
    /// process-wide metrics registry, so one address serves all of it.
    pub enabled: bool,
    /// Address to bind (default `0.0.0.0`: scrapers reach pods by address;
    /// the deployment keeps the port unpublished and behind policy).
    pub host: IpAddr,
    /// Port to bind; `0` picks a free one (tests do). Each service has its
    /// own default.
    pub port: u16,
}

impl AdminSettings {
    /// An enabled admin listener on every interface on `port`: a service's
    /// default.
    pub fn on_port(port: u16) -> Self {
        Self::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)
    }

    /// An enabled admin listener on `host:port`.
    pub fn new(host: IpAddr, port: u16) -> Self {
        Self {
            enabled: true,
            host,
            port,
        }
    }

    /// The socket address to bind.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
    }
}

/// Most rows a purge deletes in one statement: a backlog is purged in several
/// short statements, so writers (and, on SQLite, the one write turn) are
/// never held long.
pub const MAX_PURGE_BATCH_SIZE: u32 = 10_000;

/// How long rows of a bookkeeping table are kept, and how a background task
/// purges older ones: every `purge_interval_ms`, at most `purge_batch_size`
/// per statement (orders' delivered outbox rows, cart's applied-order
/// records). The owner documents what is kept and why its minimum holds.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// Seconds a row is kept (default 604800, seven days).
    pub retention_secs: u64,
    /// Milliseconds between purges (default 60000).
    pub purge_interval_ms: u64,
    /// Most rows deleted per statement (default 1000, at most
    /// [`MAX_PURGE_BATCH_SIZE`]).
    pub purge_batch_size: u32,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            retention_secs: 7 * 24 * 3_600,
            purge_interval_ms: 60_000,
            purge_batch_size: 1_000,
        }
    }
}

impl RetentionSettings {
    /// How long a row is kept.
    pub fn retention(&self) -> Duration {
        Duration::from_secs(self.retention_secs)
    }

    /// The pause between purges.
    pub fn purge_interval(&self) -> Duration {
        Duration::from_millis(self.purge_interval_ms)
    }

    /// Checks the settings found under `key` (`outbox`, `applied_orders`):
    /// a retention of at least `min_retention_secs` (`why` says why that
    /// minimum), a positive interval, a batch within bounds.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first key out of bounds.
    pub fn validate(
        &self,
        key: &str,
        min_retention_secs: u64,
        why: &str,
    ) -> Result<(), ConfigError> {
        if self.retention_secs < min_retention_secs {
            return Err(ConfigError::invalid(
                &format!("{key}.retention_secs"),
                format_args!("must be at least {min_retention_secs}: {why}"),
            ));
        }
        if self.purge_interval_ms == 0 {
            return Err(ConfigError::invalid(
                &format!("{key}.purge_interval_ms"),
                "must be positive",
            ));
        }
        if self.purge_batch_size == 0 || self.purge_batch_size > MAX_PURGE_BATCH_SIZE {
            return Err(ConfigError::invalid(
                &format!("{key}.purge_batch_size"),
                format_args!("must be between 1 and {MAX_PURGE_BATCH_SIZE}"),
            ));
        }
        Ok(())
    }
}

/// The credential of internal (service-to-service) routes: cart, catalog
/// and payments check it in `x-shop-service-token`
/// ([`crate::auth::ServiceGuard`]), orders presents it there.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct InternalSettings {
    /// The shared token. Unset, a service refuses every internal call and
    /// orders cannot clear carts, reserve stock or take payments (a warning
    /// is logged at start-up).
    #[serde(serialize_with = "serialize_optional_secret")]
    pub service_token: Option<SecretString>,
}

impl InternalSettings {
    /// An empty token would be a credential anyone can send.
    ///
    /// # Errors
    /// [`ConfigError`] naming `internal.service_token` when it is set but blank.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self
            .service_token
            .as_ref()
            .is_some_and(|token| token.expose_secret().trim().is_empty())
        {
            return Err(ConfigError::invalid(
                "internal.service_token",
                "must not be empty (leave it unset to run without one)",
            ));
        }
        Ok(())
    }
}

/// A database to connect to: `sqlite:` or `postgres:` URL and pool limits.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite:PATH` (the file and its directory are created) or
    /// `postgres://user:password@host/db`. Kept secret: it may hold a password.
    #[serde(serialize_with = "serialize_secret")]
    pub url: SecretString,
    /// Largest number of pooled connections.
    #[serde(default = "DatabaseSettings::default_max_connections")]
    pub max_connections: u32,
    /// Seconds to wait for a pooled connection before failing the request.
    #[serde(default = "DatabaseSettings::default_acquire_timeout_secs")]
    pub acquire_timeout_secs: u64,
    /// PostgreSQL: milliseconds one statement may run (lock waits included)
    /// before the server cancels it (default 30,000; `0` for no bound), so a
    /// stuck query cannot hold a pooled connection forever. Migrations run
    /// without it. SQLite ignores it (its writers queue in process and wait
    /// at most its busy timeout).
    #[serde(default = "DatabaseSettings::default_statement_timeout_ms")]
    pub statement_timeout_ms: u64,
}

impl DatabaseSettings {
    /// Settings for `url` with default pool limits.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: SecretString::from(url.into()),
            max_connections: Self::default_max_connections(),
            acquire_timeout_secs: Self::default_acquire_timeout_secs(),
            statement_timeout_ms: Self::default_statement_timeout_ms(),
        }
    }

    fn default_statement_timeout_ms() -> u64 {
        30_000
    }

    fn default_max_connections() -> u32 {
        10
    }

    fn default_acquire_timeout_secs() -> u64 {
        5
    }
}

/// Keys that pick the variant of an internally tagged setting
/// (`registry.backend`, `upstreams.<name>.balance.policy`). A table that
/// names another variant than the default's is taken as given: the
/// default variant's own keys would be unknown to the one named.
const VARIANT_TAGS: [&str; 2] = ["backend", "policy"];

thread_local! {
    /// Whether secrets serialize as their text: only while
    /// [`deserialize_over_defaults`] turns a type's defaults into the layer
    /// its configuration is laid over.
    static EXPOSE_SECRETS: Cell<bool> = const { Cell::new(false) };
}

/// Secrets serialize as their text while this lives (on this thread).
struct ExposingSecrets;

impl ExposingSecrets {
    fn start() -> Self {
        EXPOSE_SECRETS.with(|expose| expose.set(true));
        Self
    }
}

impl Drop for ExposingSecrets {
    fn drop(&mut self) {
        EXPOSE_SECRETS.with(|expose| expose.set(false));
    }
}

/// What a serialized secret reads anywhere but under a configuration.
const REDACTED: &str = "[REDACTED]";

/// Serializes a secret setting (`serialize_with`): its text only into the
/// defaults a configuration is laid over, `[REDACTED]` anywhere else (a
/// log line, a dump of the settings).
///
/// # Errors
/// Those of the serializer.
pub fn serialize_secret<S: Serializer>(
    secret: &SecretString,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    if EXPOSE_SECRETS.with(Cell::get) {
        serializer.serialize_str(secret.expose_secret())
    } else {
        serializer.serialize_str(REDACTED)
    }
}

/// [`serialize_secret`] for a secret that may be unset.
///
/// # Errors
/// Those of the serializer.
pub fn serialize_optional_secret<S: Serializer>(
    secret: &Option<SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => serialize_secret(secret, serializer),
        None => serializer.serialize_none(),
    }
}

/// Deserializes settings `T` from what `deserializer` holds laid over
/// `T::default()`: a key that is given wins, any other keeps the default's
/// value, at every depth. So a table that sets one key keeps the service's
/// own values for the rest, rather than its type's (`SHOP_HTTP__SHUTDOWN_DELAY_MS`
/// alone leaves the service on its port). A table naming another variant
/// of a tagged setting than the default's (`policy = "round_robin"`) is
/// taken as given. `derived` is the struct's derived deserializer; see
/// [`crate::settings_over_defaults!`].
///
/// # Errors
/// The first key that is unknown or malformed, named by its path.
pub fn deserialize_over_defaults<'de, D, T>(
    deserializer: D,
    derived: impl FnOnce(&Value) -> Result<T, Box<figment::Error>>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Serialize + Default,
{
    let given = <Value as Deserialize>::deserialize(deserializer)?;
    let defaults = {
        let _exposing = ExposingSecrets::start();
        Value::serialize(T::default())
    }
    .map_err(|err| D::Error::custom(format_args!("the defaults do not serialize: {err}")))?;
    derived(&overlay(defaults, given)).map_err(|err| {
        if err.path.is_empty() {
            D::Error::custom(&err.kind)
        } else {
            D::Error::custom(format_args!("{}: {}", err.path.join("."), err.kind))
        }
    })
}

/// `given` laid over `defaults`, dictionaries merged key by key.
fn overlay(defaults: Value, given: Value) -> Value {
    match (defaults, given) {
        (Value::Dict(_, mut merged), Value::Dict(tag, given))
            if !names_another_variant(&merged, &given) =>
        {
            for (key, value) in given {
                let value = match merged.remove(&key) {
                    Some(default) => overlay(default, value),
                    None => value,
                };
                merged.insert(key, value);
            }
            Value::Dict(tag, merged)
        }
        (_, given) => given,
    }
}

/// Whether `given` picks another variant than `defaults` by one of the
/// [`VARIANT_TAGS`].
fn names_another_variant(defaults: &Dict, given: &Dict) -> bool {
    VARIANT_TAGS.iter().any(|tag| {
        matches!(
            (defaults.get(*tag), given.get(*tag)),
            (Some(default), Some(given)) if default != given
        )
    })
}

/// Implements `Deserialize` and `Serialize` for a settings struct whose
/// tables must keep its own defaults when configured in part (see
/// [`config::deserialize_over_defaults`](crate::config::deserialize_over_defaults)).
///
/// The struct derives both with `#[serde(remote = "Self")]`, which turns
/// the derived code into inherent functions that these impls call; its
/// fields serialize (a secret through
/// [`config::serialize_secret`](crate::config::serialize_secret)), or are
/// `#[serde(skip_serializing)]` where the field type's `Default` is the
/// service's.
///
/// ```ignore
/// #[derive(Debug, Clone, Deserialize, Serialize)]
/// #[serde(remote = "Self", default, deny_unknown_fields)]
/// pub struct Settings { pub http: HttpSettings }
/// shop_common::settings_over_defaults!(Settings);
/// ```
#[macro_export]
macro_rules! settings_over_defaults {
    ($settings:ty) => {
        impl<'de> $crate::config::__serde::Deserialize<'de> for $settings {
            fn deserialize<D>(deserializer: D) -> ::std::result::Result<Self, D::Error>
            where
                D: $crate::config::__serde::Deserializer<'de>,
            {
                $crate::config::deserialize_over_defaults(deserializer, |value| {
                    <$settings>::deserialize(value).map_err(::std::boxed::Box::new)
                })
            }
        }

        impl $crate::config::__serde::Serialize for $settings {
            fn serialize<S>(&self, serializer: S) -> ::std::result::Result<S::Ok, S::Error>
            where
                S: $crate::config::__serde::Serializer,
            {
                <$settings>::serialize(self, serializer)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        #[serde(default)]
        http: HttpSettings,
        database: DatabaseSettings,
    }

    #[test]
    fn later_layers_win_and_nesting_uses_double_underscore() {
        let sample: Sample = load_from(
            "[http]\nport = 1000\n[database]\nurl = \"sqlite:a.db\"\n",
            &[
                ("SHOP_HTTP__PORT", "2000"),
                ("SHOP_HTTP__SHUTDOWN_DELAY_MS", "2500"),
                ("SHOP_CONFIG", "ignored.toml"),
                ("OTHER", "x"),
            ],
        )
        .expect("valid config");
        assert_eq!(sample.http.port, 2000);
        assert_eq!(sample.http.drain_timeout_secs, 10);
        assert_eq!(
            sample.http.limits().shutdown_delay,
            Duration::from_millis(2500)
        );
        assert_eq!(HttpSettings::default().shutdown_delay(), Duration::ZERO);
        assert_eq!(sample.database.url.expose_secret(), "sqlite:a.db");
        assert_eq!(sample.database.max_connections, 10);
    }

    #[test]
    fn a_missing_required_key_is_named() {
        let err = load_from::<Sample>("", &[]).expect_err("database.url is required");
        let message = err.to_string();
        assert!(message.contains("database"), "{message}");
        assert!(!message.contains('\n'));
    }

    #[test]
    fn a_malformed_value_or_an_unknown_key_is_named() {
        for (env, named) in [
            (("SHOP_HTTP__PORT", "eighty"), "port"),
            (("SHOP_HTTP__PROT", "80"), "prot"),
        ] {
            let err = load_from::<Sample>("[database]\nurl = \"sqlite:a.db\"\n", &[env])
                .expect_err("must fail");
            assert!(err.to_string().contains(named), "{err}");
        }
    }

    #[test]
    fn a_named_file_that_is_missing_is_an_error() {
        let err = load::<Sample>(Some(Path::new("/nonexistent/shop.toml"))).expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/shop.toml"));
    }

    #[test]
    fn scoped_loading_takes_defaults_and_ignores_other_scopes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("shop.toml");
        std::fs::write(
            &file,
            "[http]\nport = 1\n[cart.http]\ndrain_timeout_secs = 3\n",
        )
        .expect("write");
        let sample: Sample = load_scoped(
            Some(&file),
            "cart",
            serde_json::json!({"http": {"port": 8083}, "database": {"url": "sqlite:cart.db"}}),
        )
        .expect("valid");
        assert_eq!(
            sample.http.port, 8083,
            "the unscoped [http] table is not this service's"
        );
        assert_eq!(sample.http.drain_timeout_secs, 3);
        assert_eq!(sample.database.url.expose_secret(), "sqlite:cart.db");
    }

    /// A service's settings: defaults of its own in every table.
    #[derive(Debug, Clone, Deserialize, Serialize)]
    #[serde(remote = "Self", default, deny_unknown_fields)]
    struct Service {
        http: HttpSettings,
        admin: AdminSettings,
        database: DatabaseSettings,
        internal: InternalSettings,
        balance: Balance,
        outbox: RetentionSettings,
    }

    #[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
    #[serde(tag = "policy", rename_all = "snake_case")]
    enum Balance {
        RoundRobin,
        Hash(HashSettings),
    }

    #[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
    #[serde(default, deny_unknown_fields)]
    struct HashSettings {
        load_factor: f64,
        nodes: u32,
    }

    impl Default for HashSettings {
        fn default() -> Self {
            Self {
                load_factor: 1.25,
                nodes: 100,
            }
        }
    }

    impl Default for Service {
        fn default() -> Self {
            Self {
                http: HttpSettings::on_port(8081),
                admin: AdminSettings::on_port(9081),
                database: DatabaseSettings::new("postgres://u:hunter2@h/db"),
                internal: InternalSettings {
                    service_token: Some(SecretString::from("s3cret")),
                },
                balance: Balance::Hash(HashSettings {
                    nodes: 7,
                    ..HashSettings::default()
                }),
                outbox: RetentionSettings {
                    retention_secs: 3_600,
                    ..RetentionSettings::default()
                },
            }
        }
    }

    crate::settings_over_defaults!(Service);

    #[test]
    fn a_key_set_alone_keeps_its_tables_service_defaults() {
        let service: Service = load_from(
            "[outbox]\npurge_batch_size = 5\n",
            &[
                ("SHOP_HTTP__SHUTDOWN_DELAY_MS", "2000"),
                ("SHOP_ADMIN__ENABLED", "false"),
                ("SHOP_DATABASE__MAX_CONNECTIONS", "3"),
            ],
        )
        .expect("valid");
        assert_eq!(service.http.port, 8081, "the service's port, not 0");
        assert_eq!(service.http.shutdown_delay_ms, 2000);
        assert_eq!(service.http.drain_timeout_secs, 10);
        assert_eq!(service.admin.port, 9081);
        assert!(!service.admin.enabled);
        assert_eq!(
            service.database.url.expose_secret(),
            "postgres://u:hunter2@h/db"
        );
        assert_eq!(service.database.max_connections, 3);
        assert_eq!(service.outbox.retention_secs, 3_600);
        assert_eq!(service.outbox.purge_batch_size, 5);
        let token = service.internal.service_token.as_ref().expect("default");
        assert_eq!(token.expose_secret(), "s3cret");

        let service: Service = load_from("", &[]).expect("valid");
        assert_eq!(service.http.port, 8081);
        assert_eq!(service.database.max_connections, 10);
    }

    #[test]
    fn the_scoped_loader_keeps_the_service_defaults_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("shop.toml");
        std::fs::write(&file, "[users.http]\ndrain_timeout_secs = 3\n").expect("write");
        let service: Service = load_scoped(
            Some(&file),
            "users",
            serde_json::json!({"admin": {"host": "127.0.0.1"}}),
        )
        .expect("valid");
        assert_eq!(service.http.port, 8081);
        assert_eq!(service.http.drain_timeout_secs, 3);
        assert_eq!(service.admin.port, 9081);
        assert_eq!(service.admin.host, IpAddr::V4(Ipv4Addr::LOCALHOST));
    }

    #[test]
    fn a_tagged_setting_merges_within_its_variant_and_is_replaced_by_another() {
        let service: Service =
            load_from("[balance]\nload_factor = 2.0\n", &[]).expect("same variant");
        assert_eq!(
            service.balance,
            Balance::Hash(HashSettings {
                load_factor: 2.0,
                nodes: 7
            })
        );
        let service: Service =
            load_from("[balance]\npolicy = \"round_robin\"\n", &[]).expect("another variant");
        assert_eq!(service.balance, Balance::RoundRobin);
        let service: Service = load_from("", &[("SHOP_BALANCE__POLICY", "hash")]).expect("named");
        assert_eq!(
            service.balance,
            Balance::Hash(HashSettings {
                load_factor: 1.25,
                nodes: 7
            }),
            "naming the default's variant keeps its values"
        );
    }

    #[test]
    fn over_defaults_a_bad_key_is_still_named() {
        for (env, named) in [
            (("SHOP_HTTP__PORT", "eighty"), "http.port"),
            (("SHOP_HTTP__PROT", "80"), "prot"),
            // serde buffers a tagged enum, so its inner key is not known.
            (("SHOP_BALANCE__NODES", "many"), "balance"),
        ] {
            let err = load_from::<Service>("", &[env]).expect_err("must fail");
            let message = err.to_string();
            assert!(message.contains(named), "{message}");
            assert!(!message.contains('\n'), "{message}");
            assert!(!message.contains("hunter2"), "{message}");
        }
    }

    #[test]
    fn serialized_settings_redact_their_secrets() {
        let dumped = serde_json::to_string(&Service::default()).expect("serializes");
        assert!(!dumped.contains("hunter2"), "{dumped}");
        assert!(!dumped.contains("s3cret"), "{dumped}");
        assert!(dumped.contains(REDACTED), "{dumped}");
    }

    #[test]
    fn secrets_never_print() {
        let settings = DatabaseSettings::new("postgres://u:hunter2@h/db");
        assert!(!format!("{settings:?}").contains("hunter2"));
    }
}
