//! Keeps the container deployments honest: the `SHOP_*` environment that
//! `docker-compose.yml` and the rendered `k8s/` manifests give each service
//! is loaded into that service's own `Settings`, exactly as the process
//! would load it at start-up.
//!
//! | module | owns |
//! | --- | --- |
//! | [`yaml`] | YAML (with anchors and `<<` merges) as JSON values |
//! | [`compose`] | each compose service's environment, secrets and ports |
//! | [`k8s`] | each workload's environment and mounted files, and the Services |
//! | [`budget`] | the database connections every replica may open against PostgreSQL's limit |
//! | [`monitoring`] | the compose monitoring profile: scrape targets, the profile, the alert rules |
//!
//! Which service may call which ([`Service::upstreams`], [`Service::callers`])
//! is written once here; the compose networks and the Kubernetes
//! NetworkPolicies are checked against it.
//!
//! [`check`] is the heart: `deny_unknown_fields` makes a misspelt key an
//! error, `validate()` rejects bad values, and a short list of rules per
//! service and topology names what a deployment must set (a database URL,
//! the registry backend and its names, the signing key, the internal token,
//! an advertised address).

pub mod budget;
pub mod compose;
pub mod k8s;
pub mod monitoring;
pub mod stop;
pub mod yaml;

use secrecy::ExposeSecret;
use std::time::Duration;

use shop_common::config::{self, AdminSettings, ConfigError, DatabaseSettings, ListenerLimits};
use shop_discovery::{InstanceSettings, RegistrySettings, Scheme};

/// Why a deployment file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The text is not YAML.
    #[error("invalid YAML: {0}")]
    Yaml(String),
    /// A file it refers to could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The structure is not what compose or Kubernetes expects.
    #[error("{0}")]
    Shape(String),
}

/// A ferroshop service that runs in its own container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    /// `shop-users`.
    Users,
    /// `shop-catalog`.
    Catalog,
    /// `shop-cart`.
    Cart,
    /// `shop-orders`.
    Orders,
    /// `shop-payments`.
    Payments,
    /// `shop-web`, the storefront.
    Web,
    /// `shop-gateway`.
    Gateway,
}

/// Where the environment comes from; the topologies need different keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// docker compose: etcd discovery, advertised container names.
    Compose,
    /// Kubernetes: DNS discovery through headless Services.
    Kubernetes,
}

impl Service {
    /// Every service, in the order of the design's port table.
    pub const ALL: [Self; 7] = [
        Self::Gateway,
        Self::Users,
        Self::Catalog,
        Self::Cart,
        Self::Orders,
        Self::Payments,
        Self::Web,
    ];

    /// The service name (discovery, images, build argument).
    pub fn name(self) -> &'static str {
        match self {
            Self::Users => "users",
            Self::Catalog => "catalog",
            Self::Cart => "cart",
            Self::Orders => "orders",
            Self::Payments => "payments",
            Self::Web => "web",
            Self::Gateway => "gateway",
        }
    }

    /// The service a name (`users`) or an image (`localhost/ferroshop/users:0.1.0`,
    /// `registry.example/ferroshop/users@sha256:…`) stands for.
    pub fn from_name_or_image(text: &str) -> Option<Self> {
        let text = text.split('@').next().unwrap_or(text);
        let last = text.rsplit('/').next().unwrap_or(text);
        let name = last.split(':').next().unwrap_or(last);
        let name = name.strip_prefix("shop-").unwrap_or(name);
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The services this one calls, by their discovery names. Orders'
    /// checkout saga reserves stock on catalog and takes the payment on
    /// payments; payments is a leaf. The gateway routes the storefront's
    /// pages to web, and web is a client of the public API: it calls the
    /// gateway, and nothing behind it.
    pub fn upstreams(self) -> &'static [&'static str] {
        match self {
            Self::Users | Self::Catalog | Self::Payments => &[],
            Self::Cart => &["catalog", "users"],
            Self::Orders => &["cart", "users", "catalog", "payments"],
            Self::Web => &["gateway"],
            Self::Gateway => &["users", "catalog", "cart", "orders", "web"],
        }
    }

    /// The services that call this one: those naming it among their
    /// [`upstreams`](Self::upstreams). Nothing else should be able to reach it.
    pub fn callers(self) -> Vec<Self> {
        Self::ALL
            .into_iter()
            .filter(|caller| caller.upstreams().contains(&self.name()))
            .collect()
    }

    /// Whether it owns a database. The gateway and the storefront have
    /// none: web keeps a shopper's session in the browser's cookie.
    pub fn owns_database(self) -> bool {
        !matches!(self, Self::Gateway | Self::Web)
    }

    /// Whether it needs the shared internal service token: catalog
    /// (stock reservations), cart (clearing ordered lines) and payments
    /// check it on their internal routes; orders presents it to them. web
    /// presents it to the gateway, which then takes the client's address
    /// from web's `x-shop-client-ip`: without it on both, every browser
    /// would share the web instance's rate-limit buckets.
    pub fn needs_service_token(self) -> bool {
        match self {
            Self::Users => false,
            Self::Catalog
            | Self::Cart
            | Self::Orders
            | Self::Payments
            | Self::Web
            | Self::Gateway => true,
        }
    }
}

/// What the checks learnt from one service's loaded settings.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The service.
    pub service: Service,
    /// `database.url`, when it owns a database.
    pub database_url: Option<String>,
    /// The registry backend and its settings.
    pub registry: RegistrySettings,
    /// How the instance registers itself.
    pub instance: InstanceSettings,
    /// The HTTP port (the one `--healthcheck` and the probes use).
    pub http_port: u16,
    /// The admin port, where `/metrics` is served: `admin.port`, or orders'
    /// HTTP admin port (`http.port`); `None` when `admin.enabled` is off.
    pub admin_port: Option<u16>,
    /// The port it registers: gRPC for orders, HTTP otherwise.
    pub registered_port: u16,
    /// The signing key file (users).
    pub signing_key_file: Option<String>,
    /// Whether a PEM signing key is set inline (users).
    pub signing_key_pem: bool,
    /// `internal.service_token` (all but users).
    pub service_token: Option<String>,
    /// The most database connections one instance may hold open: its pool
    /// of `database.max_connections`, plus its readiness check's own
    /// connection ([`shop_common::db::READINESS_CONNECTIONS`]); 0 without a
    /// database.
    pub database_connections: u32,
    /// The longest a stop takes once the process has the signal: the API
    /// listener's shutdown delay and drain, then the admin listener's
    /// drain ([`shop_common::server::ADMIN_DRAIN`]). See [`stop`].
    pub stop_time: Duration,
    /// The API listener's shutdown delay (`http.shutdown_delay_ms`): how
    /// long it serves on, not ready and deregistered, after the signal.
    pub shutdown_delay: Duration,
}

/// [`Loaded::stop_time`] of an API listener with `limits`.
fn stop_time(limits: ListenerLimits) -> Duration {
    limits.shutdown_delay + limits.drain + shop_common::server::ADMIN_DRAIN
}

/// The most connections a pool of `database` opens: `Db::connect` never
/// builds a pool smaller than one connection.
fn pool_size(database: &DatabaseSettings) -> u32 {
    database.max_connections.max(1)
}

/// The [`Parts`] of a service's settings `$s`: every service's `Settings`
/// names these fields alike, though each is a type of its own.
macro_rules! parts {
    ($service:expr, $s:expr) => {
        Parts::new(
            $service,
            $s.registry,
            $s.instance,
            $s.http.port,
            admin_port(&$s.admin),
        )
        .stopping($s.http.limits())
    };
}

/// What every service's settings have: where it listens and registers.
struct Parts {
    service: Service,
    registry: RegistrySettings,
    instance: InstanceSettings,
    http_port: u16,
    admin_port: Option<u16>,
    stop_time: Duration,
    shutdown_delay: Duration,
}

impl Parts {
    fn new(
        service: Service,
        registry: RegistrySettings,
        instance: InstanceSettings,
        http_port: u16,
        admin_port: Option<u16>,
    ) -> Self {
        Self {
            service,
            registry,
            instance,
            http_port,
            admin_port,
            stop_time: Duration::ZERO,
            shutdown_delay: Duration::ZERO,
        }
    }

    /// The same, its API listener stopping with `limits`.
    fn stopping(self, limits: ListenerLimits) -> Self {
        Self {
            stop_time: stop_time(limits),
            shutdown_delay: limits.shutdown_delay,
            ..self
        }
    }

    /// A service on `database`, registering its HTTP port, with no signing
    /// key or service token (set those over this).
    fn with_database(self, database: &DatabaseSettings) -> Loaded {
        Loaded {
            database_url: Some(database.url.expose_secret().to_owned()),
            database_connections: pool_size(database)
                .saturating_add(shop_common::db::READINESS_CONNECTIONS),
            ..self.without_database()
        }
    }

    /// A service without a database, registering its HTTP port.
    fn without_database(self) -> Loaded {
        Loaded {
            service: self.service,
            database_url: None,
            registry: self.registry,
            instance: self.instance,
            http_port: self.http_port,
            admin_port: self.admin_port,
            registered_port: self.http_port,
            signing_key_file: None,
            signing_key_pem: false,
            service_token: None,
            database_connections: 0,
            stop_time: self.stop_time,
            shutdown_delay: self.shutdown_delay,
        }
    }
}

/// The admin port, when the admin listener is on.
fn admin_port(admin: &AdminSettings) -> Option<u16> {
    admin.enabled.then_some(admin.port)
}

/// A secret's text, for checks that compare or test it for emptiness.
fn exposed(secret: Option<secrecy::SecretString>) -> Option<String> {
    secret.map(|secret| secret.expose_secret().to_owned())
}

fn load_as<T: serde::de::DeserializeOwned>(
    env: &[(&str, &str)],
    validate: impl FnOnce(&T) -> Result<(), ConfigError>,
) -> Result<T, String> {
    let settings: T = config::load_from("", env).map_err(|err| err.to_string())?;
    validate(&settings).map_err(|err| err.to_string())?;
    Ok(settings)
}

/// Loads `service`'s settings from `env` as the process would (defaults,
/// then the `SHOP_*` pairs; other variables are ignored) and runs its
/// `validate()`.
///
/// # Errors
/// The configuration error the service would stop with at start-up: an
/// unknown (misspelt) key, a malformed value, a failed validation.
pub fn load(service: Service, env: &[(String, String)]) -> Result<Loaded, String> {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let loaded = match service {
        Service::Users => {
            let s: shop_users::Settings = load_as(&env, shop_users::Settings::validate)?;
            let parts = parts!(service, s);
            Loaded {
                signing_key_file: (s.auth.signing_key_file)
                    .map(|path| path.to_string_lossy().into_owned()),
                signing_key_pem: s.auth.signing_key_pem.is_some(),
                ..parts.with_database(&s.database)
            }
        }
        Service::Catalog => {
            let s: shop_catalog::Settings = load_as(&env, shop_catalog::Settings::validate)?;
            let parts = parts!(service, s);
            Loaded {
                service_token: exposed(s.internal.service_token),
                ..parts.with_database(&s.database)
            }
        }
        Service::Cart => {
            let s: shop_cart::Settings = load_as(&env, shop_cart::Settings::validate)?;
            let parts = parts!(service, s);
            Loaded {
                service_token: exposed(s.internal.service_token),
                ..parts.with_database(&s.database)
            }
        }
        Service::Orders => {
            let s: shop_orders::Settings = load_as(&env, shop_orders::Settings::validate)?;
            // Orders serves /metrics on its HTTP port and registers its gRPC one.
            let admin_port = Some(s.http.port);
            // Its API listener is the gRPC one.
            let parts = Parts::new(service, s.registry, s.instance, s.http.port, admin_port)
                .stopping(s.grpc.listener().limits());
            Loaded {
                registered_port: s.grpc.port,
                service_token: exposed(s.internal.service_token),
                ..parts.with_database(&s.database)
            }
        }
        Service::Payments => {
            let s: shop_payments::Settings = load_as(&env, shop_payments::Settings::validate)?;
            let parts = parts!(service, s);
            Loaded {
                service_token: exposed(s.internal.service_token),
                ..parts.with_database(&s.database)
            }
        }
        Service::Web => {
            let s: shop_web::Settings = load_as(&env, shop_web::Settings::validate)?;
            let parts = parts!(service, s);
            Loaded {
                service_token: exposed(s.internal.service_token),
                ..parts.without_database()
            }
        }
        Service::Gateway => {
            let s: shop_gateway::Settings = load_as(&env, shop_gateway::Settings::validate)?;
            let parts = parts!(service, s);
            Loaded {
                service_token: exposed(s.internal.service_token),
                ..parts.without_database()
            }
        }
    };
    Ok(loaded)
}

/// Loads `service`'s settings from `env` and checks that everything a
/// `topology` deployment needs is set. Returns every problem found, each a
/// line naming the key.
///
/// # Errors
/// The list of problems (never empty).
pub fn check(
    service: Service,
    topology: Topology,
    env: &[(String, String)],
) -> Result<Loaded, Vec<String>> {
    let loaded = load(service, env).map_err(|err| vec![err])?;
    let mut problems = Vec::new();
    if service.owns_database() {
        match &loaded.database_url {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {}
            _ => problems.push(
                "SHOP_DATABASE__URL: must be set to the service's postgres:// database".to_owned(),
            ),
        }
    }
    if service == Service::Users && loaded.signing_key_file.is_none() && !loaded.signing_key_pem {
        problems.push(
            "SHOP_AUTH__SIGNING_KEY_FILE: must be set (without it every replica signs with a key of its own)"
                .to_owned(),
        );
    }
    if service.needs_service_token() && loaded.service_token.as_deref().is_none_or(str::is_empty) {
        problems.push(
            "SHOP_INTERNAL__SERVICE_TOKEN: must be set (orders presents it to catalog, cart and payments, web to the gateway)"
                .to_owned(),
        );
    }
    match (topology, &loaded.registry) {
        (Topology::Compose, RegistrySettings::Etcd(etcd)) => {
            check_etcd(etcd, &mut problems);
            if loaded.instance.advertise_addr.is_none() {
                problems.push(
                    "SHOP_INSTANCE__ADVERTISE_ADDR: must be set to the container's host:port (the bound 0.0.0.0 is not reachable)"
                        .to_owned(),
                );
            }
        }
        (Topology::Kubernetes, RegistrySettings::Dns(dns)) => {
            for upstream in service.upstreams() {
                match dns.services.get(*upstream) {
                    None => problems.push(format!(
                        "SHOP_REGISTRY__SERVICES__{}__HOST: must name {upstream}'s headless Service",
                        upstream.to_ascii_uppercase()
                    )),
                    Some(target) => {
                        if target.host.is_empty() || target.port == 0 {
                            problems.push(format!(
                                "SHOP_REGISTRY__SERVICES__{}: host and port must be set",
                                upstream.to_ascii_uppercase()
                            ));
                        }
                        let grpc = *upstream == "orders";
                        if grpc != matches!(target.scheme, Scheme::Grpc) {
                            problems.push(format!(
                                "SHOP_REGISTRY__SERVICES__{}__SCHEME: must be {}",
                                upstream.to_ascii_uppercase(),
                                if grpc { "grpc" } else { "http" }
                            ));
                        }
                    }
                }
            }
        }
        (Topology::Compose, _) => {
            problems.push("SHOP_REGISTRY__BACKEND: must be etcd under docker compose".to_owned());
        }
        (Topology::Kubernetes, _) => {
            problems.push("SHOP_REGISTRY__BACKEND: must be dns on Kubernetes".to_owned());
        }
    }
    if problems.is_empty() {
        Ok(loaded)
    } else {
        Err(problems)
    }
}

#[cfg(feature = "etcd")]
fn check_etcd(etcd: &shop_discovery::registry::EtcdSettings, problems: &mut Vec<String>) {
    if etcd.endpoints.is_empty() || etcd.endpoints.iter().any(|e| !e.starts_with("http")) {
        problems.push(format!(
            "SHOP_REGISTRY__ENDPOINTS: must list etcd URLs, got {:?}",
            etcd.endpoints
        ));
    }
}

/// Without the `etcd` feature the etcd table is parsed loosely; only its
/// presence is checked.
#[cfg(not(feature = "etcd"))]
fn check_etcd(etcd: &shop_discovery::registry::EtcdSettingsOrDisabled, problems: &mut Vec<String>) {
    if !etcd.contains_key("endpoints") {
        problems.push("SHOP_REGISTRY__ENDPOINTS: must list etcd URLs".to_owned());
    }
}

/// The host and port of an advertised `host:port`.
pub fn split_host_port(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    Some((host, port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn compose_cart() -> Vec<(String, String)> {
        env(&[
            ("RUST_LOG", "info"),
            ("SHOP_LOG_FORMAT", "json"),
            ("SHOP_REGISTRY__BACKEND", "etcd"),
            ("SHOP_REGISTRY__ENDPOINTS", "[http://etcd:2379]"),
            ("SHOP_REGISTRY__LEASE_TTL_SECS", "10"),
            ("SHOP_INSTANCE__ADVERTISE_ADDR", "cart-1:8083"),
            (
                "SHOP_DATABASE__URL",
                "postgres://cart:pw@postgres:5432/cart",
            ),
            ("SHOP_INTERNAL__SERVICE_TOKEN", "t0ken"),
        ])
    }

    #[test]
    fn a_complete_compose_environment_passes() {
        let loaded = check(Service::Cart, Topology::Compose, &compose_cart()).expect("valid");
        assert_eq!(loaded.registered_port, 8083);
        assert_eq!(loaded.service_token.as_deref(), Some("t0ken"));
        #[cfg(feature = "etcd")]
        match loaded.registry {
            RegistrySettings::Etcd(etcd) => {
                assert_eq!(etcd.endpoints, ["http://etcd:2379"]);
                assert_eq!(etcd.lease_ttl_secs, 10);
            }
            other => panic!("expected etcd, got {other:?}"),
        }
    }

    #[test]
    fn a_misspelt_key_fails_with_its_name() {
        let mut env = compose_cart();
        env.push(("SHOP_DATABSE__URL".to_owned(), "postgres://x".to_owned()));
        let problems = check(Service::Cart, Topology::Compose, &env).expect_err("typo");
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("databse"), "{problems:?}");
    }

    #[test]
    fn a_misspelt_nested_key_fails_too() {
        let mut env = compose_cart();
        env.push(("SHOP_INSTANCE__ADVERTISE_ADR".to_owned(), "x:1".to_owned()));
        let problems = check(Service::Cart, Topology::Compose, &env).expect_err("typo");
        assert!(problems[0].contains("advertise_adr"), "{problems:?}");
    }

    #[test]
    fn a_key_of_another_service_is_unknown() {
        // The catalog has no auth settings: copying users' block would fail.
        let env = env(&[
            ("SHOP_DATABASE__URL", "postgres://c@postgres/catalog"),
            ("SHOP_AUTH__SIGNING_KEY_FILE", "/k.pem"),
        ]);
        let problems = check(Service::Catalog, Topology::Compose, &env).expect_err("unknown");
        assert!(problems[0].contains("auth"), "{problems:?}");
    }

    #[test]
    fn missing_deployment_keys_are_each_named() {
        let problems =
            check(Service::Users, Topology::Compose, &env(&[])).expect_err("nothing set");
        let all = problems.join("\n");
        for key in [
            "SHOP_DATABASE__URL",
            "SHOP_AUTH__SIGNING_KEY_FILE",
            "SHOP_REGISTRY__BACKEND",
        ] {
            assert!(all.contains(key), "{key} not named in {all}");
        }
        let mut cart = compose_cart();
        cart.retain(|(k, _)| {
            k != "SHOP_INSTANCE__ADVERTISE_ADDR" && k != "SHOP_INTERNAL__SERVICE_TOKEN"
        });
        let all = check(Service::Cart, Topology::Compose, &cart)
            .expect_err("missing")
            .join("\n");
        assert!(all.contains("SHOP_INSTANCE__ADVERTISE_ADDR"), "{all}");
        assert!(all.contains("SHOP_INTERNAL__SERVICE_TOKEN"), "{all}");
    }

    #[test]
    fn only_orders_calls_payments_and_every_internal_route_needs_the_token() {
        assert_eq!(Service::Payments.callers(), [Service::Orders]);
        assert!(
            Service::Payments.upstreams().is_empty(),
            "payments is a leaf"
        );
        assert_eq!(
            Service::Catalog.callers(),
            [Service::Gateway, Service::Cart, Service::Orders]
        );
        let token: Vec<Service> = Service::ALL
            .into_iter()
            .filter(|s| s.needs_service_token())
            .collect();
        assert_eq!(
            token,
            [
                Service::Gateway,
                Service::Catalog,
                Service::Cart,
                Service::Orders,
                Service::Payments,
                Service::Web,
            ]
        );
        // Payments (and catalog) without the token are refused by name.
        for service in [Service::Payments, Service::Catalog] {
            let env = env(&[
                ("SHOP_DATABASE__URL", "postgres://p@postgres:5432/db"),
                ("SHOP_REGISTRY__BACKEND", "etcd"),
                ("SHOP_REGISTRY__ENDPOINTS", "[http://etcd:2379]"),
                ("SHOP_INSTANCE__ADVERTISE_ADDR", "x:1"),
            ]);
            let all = check(service, Topology::Compose, &env)
                .expect_err("no token")
                .join("\n");
            assert!(
                all.contains("SHOP_INTERNAL__SERVICE_TOKEN"),
                "{}: {all}",
                service.name()
            );
        }
        // A blank one is refused by the service's own validation.
        let blank = env(&[
            ("SHOP_DATABASE__URL", "postgres://p@postgres:5432/payments"),
            ("SHOP_INTERNAL__SERVICE_TOKEN", " "),
        ]);
        let err = load(Service::Payments, &blank).expect_err("blank token");
        assert!(err.contains("internal.service_token"), "{err}");
    }

    #[test]
    fn web_and_the_gateway_call_each_other_and_web_nothing_else() {
        // The gateway routes the pages to web; web calls the API through
        // the gateway. The gateway's only caller inside the stack is web.
        assert_eq!(Service::Web.upstreams(), ["gateway"]);
        assert_eq!(Service::Web.callers(), [Service::Gateway]);
        assert_eq!(Service::Gateway.callers(), [Service::Web]);
        assert!(!Service::Web.owns_database());
        for service in Service::ALL {
            assert_eq!(
                service.upstreams().contains(&"web"),
                service == Service::Gateway,
                "{} calls web",
                service.name()
            );
        }

        // web and the gateway without the token are refused by name.
        let compose = |service: Service, address: &str| {
            env(&[
                ("SHOP_REGISTRY__BACKEND", "etcd"),
                ("SHOP_REGISTRY__ENDPOINTS", "[http://etcd:2379]"),
                ("SHOP_INSTANCE__ADVERTISE_ADDR", address),
            ])
            .into_iter()
            .chain(
                (service == Service::Web)
                    .then(|| ("SHOP_COOKIES__SECURE".to_owned(), "always".to_owned())),
            )
            .collect::<Vec<_>>()
        };
        for (service, address) in [
            (Service::Web, "web:8087"),
            (Service::Gateway, "gateway:8080"),
        ] {
            let all = check(service, Topology::Compose, &compose(service, address))
                .expect_err("no token")
                .join("\n");
            assert!(
                all.contains("SHOP_INTERNAL__SERVICE_TOKEN"),
                "{}: {all}",
                service.name()
            );
            let mut with_token = compose(service, address);
            with_token.push(("SHOP_INTERNAL__SERVICE_TOKEN".into(), "t0ken".into()));
            let loaded = check(service, Topology::Compose, &with_token).expect("complete");
            assert_eq!(loaded.service_token.as_deref(), Some("t0ken"));
            assert_eq!(loaded.database_connections, 0);
        }

        // web has no database key, and its cookie setting is checked.
        let err = load(
            Service::Web,
            &env(&[("SHOP_DATABASE__URL", "postgres://w@postgres:5432/web")]),
        )
        .expect_err("web has no database");
        assert!(err.contains("database"), "{err}");
        let err = load(Service::Web, &env(&[("SHOP_COOKIES__SECURE", "sometimes")]))
            .expect_err("auto, always or never");
        assert!(err.contains("sometimes") || err.contains("secure"), "{err}");

        // On Kubernetes web resolves the gateway's headless Service.
        let dns = |pairs: &[(&str, &str)]| {
            let mut all = env(&[
                ("SHOP_REGISTRY__BACKEND", "dns"),
                ("SHOP_INTERNAL__SERVICE_TOKEN", "t"),
            ]);
            all.extend(env(pairs));
            check(Service::Web, Topology::Kubernetes, &all)
        };
        let all = dns(&[]).expect_err("no gateway").join("\n");
        assert!(
            all.contains("SHOP_REGISTRY__SERVICES__GATEWAY__HOST"),
            "{all}"
        );
        dns(&[
            ("SHOP_REGISTRY__SERVICES__GATEWAY__HOST", "gateway-headless"),
            ("SHOP_REGISTRY__SERVICES__GATEWAY__PORT", "8080"),
        ])
        .expect("complete");
    }

    #[test]
    fn kubernetes_needs_every_upstream_in_dns_with_grpc_for_orders() {
        let base = [
            ("SHOP_REGISTRY__BACKEND", "dns"),
            ("SHOP_REGISTRY__SERVICES__USERS__HOST", "users-headless"),
            ("SHOP_REGISTRY__SERVICES__USERS__PORT", "8081"),
            ("SHOP_REGISTRY__SERVICES__CATALOG__HOST", "catalog-headless"),
            ("SHOP_REGISTRY__SERVICES__CATALOG__PORT", "8082"),
            ("SHOP_REGISTRY__SERVICES__CART__HOST", "cart-headless"),
            ("SHOP_REGISTRY__SERVICES__CART__PORT", "8083"),
            ("SHOP_REGISTRY__SERVICES__ORDERS__HOST", "orders-headless"),
            ("SHOP_REGISTRY__SERVICES__ORDERS__PORT", "50051"),
            ("SHOP_REGISTRY__SERVICES__WEB__HOST", "web-headless"),
            ("SHOP_REGISTRY__SERVICES__WEB__PORT", "8087"),
            ("SHOP_INTERNAL__SERVICE_TOKEN", "t0ken"),
        ];
        let problems =
            check(Service::Gateway, Topology::Kubernetes, &env(&base)).expect_err("orders is gRPC");
        assert!(problems[0].contains("ORDERS__SCHEME"), "{problems:?}");
        let mut fixed = env(&base);
        fixed.push((
            "SHOP_REGISTRY__SERVICES__ORDERS__SCHEME".into(),
            "grpc".into(),
        ));
        check(Service::Gateway, Topology::Kubernetes, &fixed).expect("complete");
        let partial = env(&base[..3]);
        let all = check(Service::Gateway, Topology::Kubernetes, &partial)
            .expect_err("missing upstreams")
            .join("\n");
        assert!(all.contains("SHOP_REGISTRY__SERVICES__CART__HOST"), "{all}");
    }

    #[test]
    fn database_connections_count_every_pool_of_an_instance() {
        let pool = |service: Service, max: Option<&str>| {
            let mut pairs = vec![("SHOP_DATABASE__URL", "postgres://x@postgres:5432/db")];
            if let Some(max) = max {
                pairs.push(("SHOP_DATABASE__MAX_CONNECTIONS", max));
            }
            if !service.owns_database() {
                pairs.clear();
            }
            load(service, &env(&pairs))
                .expect("loads")
                .database_connections
        };
        // The pool, plus the readiness check's own connection.
        let probe = shop_common::db::READINESS_CONNECTIONS;
        assert_eq!(probe, 1);
        assert_eq!(pool(Service::Users, None), 10 + probe, "the default pool");
        assert_eq!(pool(Service::Cart, Some("8")), 8 + probe);
        assert_eq!(pool(Service::Orders, Some("10")), 10 + probe);
        assert_eq!(
            pool(Service::Catalog, Some("0")),
            1 + probe,
            "a pool never has 0"
        );
        assert_eq!(
            pool(Service::Payments, Some("5")),
            5 + probe,
            "payments' pool counts"
        );
        assert_eq!(pool(Service::Gateway, None), 0);
        assert_eq!(pool(Service::Web, None), 0, "web has no database");
    }

    #[test]
    fn admin_ports_are_each_services_own_and_follow_the_environment() {
        let admin = |service: Service, pairs: &[(&str, &str)]| {
            let mut pairs = pairs.to_vec();
            if service.owns_database() {
                pairs.push(("SHOP_DATABASE__URL", "postgres://x@postgres:5432/db"));
            }
            load(service, &env(&pairs)).expect("loads").admin_port
        };
        assert_eq!(admin(Service::Gateway, &[]), Some(9080));
        assert_eq!(admin(Service::Users, &[]), Some(9081));
        assert_eq!(admin(Service::Catalog, &[]), Some(9082));
        assert_eq!(admin(Service::Cart, &[]), Some(9083));
        assert_eq!(admin(Service::Payments, &[]), Some(9086));
        assert_eq!(admin(Service::Web, &[]), Some(9087));
        assert_eq!(
            admin(Service::Orders, &[]),
            Some(8084),
            "its HTTP admin port"
        );
        assert_eq!(
            admin(Service::Cart, &[("SHOP_ADMIN__PORT", "9100")]),
            Some(9100)
        );
        assert_eq!(
            admin(Service::Users, &[("SHOP_ADMIN__ENABLED", "false")]),
            None
        );
        let problems = load(
            Service::Orders,
            &env(&[
                ("SHOP_DATABASE__URL", "postgres://x@postgres:5432/db"),
                ("SHOP_ADMIN__PORT", "9084"),
            ]),
        )
        .expect_err("orders' admin listener is http.*");
        assert!(problems.contains("admin"), "{problems}");
    }

    #[test]
    fn images_and_names_map_to_services() {
        for (name, service) in [
            ("ferroshop/users:0.1.0", Some(Service::Users)),
            ("localhost/ferroshop/catalog:0.1.0", Some(Service::Catalog)),
            (
                "reg.example:5000/ferroshop/cart@sha256:ab",
                Some(Service::Cart),
            ),
            ("shop-orders", Some(Service::Orders)),
            (
                "localhost/ferroshop/payments:0.1.0",
                Some(Service::Payments),
            ),
            ("localhost/ferroshop/web:0.1.0", Some(Service::Web)),
            ("shop-web", Some(Service::Web)),
            ("postgres:17-bookworm", None),
        ] {
            assert_eq!(Service::from_name_or_image(name), service, "{name}");
        }
    }
}
