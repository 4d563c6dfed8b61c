//! The one way to start ferroshop services in-process: any subset of them,
//! any number of cart and orders replicas, on one registry.
//!
//! `shop` starts the whole stack with it, and the services' integration
//! tests start the part they need. Every service is built and run by the
//! shared lifecycle ([`shop_runtime::Application`]); the builder only
//! decides its settings, in layers, later wins:
//!
//! 1. the service's own defaults;
//! 2. the stack's: the host, the ports ([`Ports`]), the admin listener, the
//!    database URL given for the service, the service token that cart,
//!    catalog and payments accept, orders and the storefront present and
//!    the gateway believes, and any
//!    [`StackBuilder::defaults`];
//! 3. the service's table of the `--config` file and `SHOP_<SERVICE>__…`
//!    variables (the builder's [`StackBuilder::config`]);
//! 4. the [`StackBuilder::configure`] closures over the typed settings.
//!
//! [`Stack::stop`] stops the services from the edge inward, so no request
//! in flight at the edge finds a service behind it already gone.

use std::any::Any;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use serde_json::{Value, json};
use shop_common::config::load_scoped;
use shop_discovery::Registry;
use shop_runtime::{Application, Running, Service, ServiceSettings, StartError};

pub use shop_cart::Cart;
pub use shop_catalog::Catalog;
pub use shop_gateway::Gateway;
pub use shop_orders::Orders;
pub use shop_payments::Payments;
pub use shop_users::Users;
pub use shop_web::Web;

/// A service the stack can start. Its settings scope (`[cart]` in a file,
/// `SHOP_CART__…`), the name of its database and the label of its first
/// replica are its name ([`shop_runtime::Spec`]).
pub trait Member: Service {
    /// Its place in start order (the builder's tables are indexed by it).
    const INDEX: usize;
    /// When it stops: higher tiers (the edge) first.
    const TIER: u8;
    /// Whether every replica's label is numbered (`cart-1`, `cart-2`), not
    /// only the second one on (`orders`, `orders-2`).
    const NUMBERED: bool = false;

    /// The stack's defaults for `replica` (from 1), as the service's table
    /// of a config file would hold them: an HTTP service's listeners and
    /// database.
    fn defaults(plan: &Plan, replica: usize) -> Value {
        plan.http_service::<Self>(replica)
    }
}

/// How many kinds of service the stack knows.
const KINDS: usize = 7;

/// A settings override for services of one kind.
type Configure<S> = Box<dyn Fn(&mut S) + Send + Sync>;

/// Where the services listen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ports {
    /// Every listener on a free port (tests; several stacks on one machine).
    Ephemeral,
    /// The first replica of each service on its well-known ports, the
    /// gateway on `gateway`; further replicas on free ones.
    Defaults {
        /// The gateway's port.
        gateway: u16,
    },
}

/// Why a stack could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// A service could not start (its settings, a listener, its database…).
    #[error("{service}: {source}")]
    Start {
        /// The label of the service at fault (`cart-2`).
        service: String,
        /// The cause.
        #[source]
        source: StartError,
    },
    /// A service failed while running or stopping.
    #[error("{service} failed: {source}")]
    Stopped {
        /// The label of the service at fault.
        service: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// What every service of a stack shares: where it listens, its databases,
/// its configuration file and credentials.
#[derive(Debug, Clone)]
pub struct Plan {
    host: IpAddr,
    ports: Ports,
    admin: bool,
    config: Option<PathBuf>,
    databases: BTreeMap<String, String>,
    service_token: String,
}

impl Plan {
    /// `default` for the first replica with the well-known ports, else 0.
    fn port(&self, default: u16, replica: usize) -> u16 {
        match self.ports {
            Ports::Defaults { .. } if replica == 1 => default,
            _ => 0,
        }
    }

    /// The `http`, `admin` and `database` tables of HTTP service `S`: its
    /// own default ports for the first replica when the stack keeps them.
    fn http_service<S: Member>(&self, replica: usize) -> Value {
        let defaults = S::Settings::default();
        let mut table = json!({
            "http": {"host": self.host, "port": self.port(defaults.api().port, replica)},
            "admin": {"enabled": self.admin, "host": self.host, "port": self.port(defaults.admin().port, replica)},
        });
        self.add_database::<S>(&mut table);
        table
    }

    /// Adds the `database` table of `S`, when the stack was given its URL.
    fn add_database<S: Member>(&self, table: &mut Value) {
        if let Some(url) = self.databases.get(S::SPEC.name) {
            table["database"] = json!({"url": url});
        }
    }

    /// The database URL the stack gives `service`, when it was given one.
    pub fn database_url(&self, service: &str) -> Option<&str> {
        self.databases.get(service).map(String::as_str)
    }

    /// The credential cart, catalog and payments accept and orders
    /// presents on their internal routes.
    pub fn service_token(&self) -> &str {
        &self.service_token
    }
}

impl Member for Users {
    const INDEX: usize = 0;
    const TIER: u8 = 0;
}

/// Its stock reservations are internal routes: it gets the stack's
/// service token.
impl Member for Catalog {
    const INDEX: usize = 1;
    const TIER: u8 = 0;

    fn defaults(plan: &Plan, replica: usize) -> Value {
        let mut table = plan.http_service::<Self>(replica);
        table["internal"] = json!({"service_token": plan.service_token});
        table
    }
}

/// A leaf, like catalog: orders calls it, it calls no one. Every route is
/// internal, so it gets the stack's service token.
impl Member for Payments {
    const INDEX: usize = 2;
    const TIER: u8 = 0;

    fn defaults(plan: &Plan, replica: usize) -> Value {
        let mut table = plan.http_service::<Self>(replica);
        table["internal"] = json!({"service_token": plan.service_token});
        table
    }
}

impl Member for Cart {
    const INDEX: usize = 3;
    const TIER: u8 = 1;
    const NUMBERED: bool = true;

    fn defaults(plan: &Plan, replica: usize) -> Value {
        let mut table = plan.http_service::<Self>(replica);
        table["internal"] = json!({"service_token": plan.service_token});
        table["instance"] = json!({"id": label::<Self>(replica)});
        table
    }
}

impl Member for Orders {
    const INDEX: usize = 4;
    const TIER: u8 = 2;

    fn defaults(plan: &Plan, replica: usize) -> Value {
        let defaults = shop_orders::Settings::default();
        // orders' `http` listener is its admin one; it is always on.
        let mut table = json!({
            "http": {"host": plan.host, "port": plan.port(defaults.http.port, replica)},
            "grpc": {"host": plan.host, "port": plan.port(defaults.grpc.port, replica)},
            "internal": {"service_token": plan.service_token},
        });
        plan.add_database::<Self>(&mut table);
        table
    }
}

impl Member for Gateway {
    const INDEX: usize = 5;
    const TIER: u8 = 3;

    /// An HTTP service whose port, when the stack keeps the well-known
    /// ones, is the one the stack was told. It gets the stack's service
    /// token, the one the storefront presents, so it believes the browser
    /// address the storefront names.
    fn defaults(plan: &Plan, replica: usize) -> Value {
        let mut table = plan.http_service::<Self>(replica);
        if let Ports::Defaults { gateway } = plan.ports {
            table["http"]["port"] = json!(plan.port(gateway, replica));
        }
        table["internal"] = json!({"service_token": plan.service_token});
        table
    }
}

/// The storefront: a client of the gateway, so it is started after it and
/// stopped before it (the outermost tier). It presents the stack's service
/// token with its API calls, so the gateway believes the browser address
/// it names.
impl Member for Web {
    const INDEX: usize = 6;
    const TIER: u8 = 4;

    fn defaults(plan: &Plan, replica: usize) -> Value {
        let mut table = plan.http_service::<Self>(replica);
        table["internal"] = json!({"service_token": plan.service_token});
        table
    }
}

/// The label of replica `replica` of `S` (`users`, `cart-1`, `orders-2`).
fn label<S: Member>(replica: usize) -> String {
    if S::NUMBERED || replica > 1 {
        format!("{}-{replica}", S::SPEC.name)
    } else {
        S::SPEC.name.to_owned()
    }
}

/// Chooses the services of a stack and their settings; [`StackBuilder::start`]
/// starts them.
pub struct StackBuilder {
    plan: Plan,
    registry: Option<Registry>,
    replicas: [usize; KINDS],
    defaults: [Value; KINDS],
    overrides: [Vec<Box<dyn Any + Send + Sync>>; KINDS],
    /// Kept alive as long as the stack runs, never read.
    _keep: Vec<Box<dyn Any + Send + Sync>>,
}

impl Default for StackBuilder {
    fn default() -> Self {
        Self {
            plan: Plan {
                host: IpAddr::V4(Ipv4Addr::LOCALHOST),
                ports: Ports::Ephemeral,
                admin: true,
                config: None,
                databases: BTreeMap::new(),
                service_token: uuid::Uuid::new_v4().simple().to_string(),
            },
            registry: None,
            replicas: [0; KINDS],
            defaults: Default::default(),
            overrides: Default::default(),
            _keep: Vec::new(),
        }
    }
}

impl StackBuilder {
    /// No service yet, every listener on a free loopback port, admin
    /// listeners on, each service on its default database, an in-process
    /// registry, a fresh service token.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs one instance of `S`.
    #[must_use]
    pub fn with<S: Member>(self) -> Self {
        self.replicas::<S>(1)
    }

    /// Runs `count` instances of `S` (0: none).
    #[must_use]
    pub fn replicas<S: Member>(mut self, count: usize) -> Self {
        self.replicas[S::INDEX] = count;
        self
    }

    /// users, catalog, payments, `carts` carts, orders, the gateway and
    /// the storefront.
    #[must_use]
    pub fn everything(self, carts: usize) -> Self {
        self.with::<Users>()
            .with::<Catalog>()
            .with::<Payments>()
            .replicas::<Cart>(carts)
            .with::<Orders>()
            .with::<Gateway>()
            .with::<Web>()
    }

    /// The registry the services register in and find each other through
    /// (default: a new in-process one).
    #[must_use]
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// The address every service binds.
    #[must_use]
    pub fn host(mut self, host: IpAddr) -> Self {
        self.plan.host = host;
        self
    }

    /// Which ports the services bind.
    #[must_use]
    pub fn ports(mut self, ports: Ports) -> Self {
        self.plan.ports = ports;
        self
    }

    /// Whether the HTTP services' admin listeners are on (orders' always is).
    #[must_use]
    pub fn admin(mut self, enabled: bool) -> Self {
        self.plan.admin = enabled;
        self
    }

    /// A TOML file with one table per service, read after the stack's
    /// defaults (and `SHOP_<SERVICE>__…` variables after it).
    #[must_use]
    pub fn config(mut self, file: Option<PathBuf>) -> Self {
        self.plan.config = file;
        self
    }

    /// The database of `service` (`users`, `catalog`, `payments`, `cart`
    /// — shared by the cart replicas —, `orders`).
    #[must_use]
    pub fn database(mut self, service: &str, url: impl Into<String>) -> Self {
        self.plan.databases.insert(service.to_owned(), url.into());
        self
    }

    /// The credential cart and payments accept and orders presents.
    #[must_use]
    pub fn service_token(mut self, token: impl Into<String>) -> Self {
        self.plan.service_token = token.into();
        self
    }

    /// More defaults for `S`, as its table of a config file would hold them
    /// (a file and the environment still override them).
    #[must_use]
    pub fn defaults<S: Member>(mut self, table: Value) -> Self {
        merge(&mut self.defaults[S::INDEX], table);
        self
    }

    /// Adjusts the settings of every instance of `S` (after the file and
    /// the environment), in the order given.
    #[must_use]
    pub fn configure<S: Member>(
        mut self,
        configure: impl Fn(&mut S::Settings) + Send + Sync + 'static,
    ) -> Self {
        let configure: Configure<S::Settings> = Box::new(configure);
        self.overrides[S::INDEX].push(Box::new(configure));
        self
    }

    /// Keeps `value` alive as long as the stack (a test's databases).
    #[must_use]
    pub fn keep(mut self, value: impl Any + Send + Sync) -> Self {
        self._keep.push(Box::new(value));
        self
    }

    /// The settings of replica `replica` (from 1) of `S`, every layer
    /// applied.
    ///
    /// # Errors
    /// The configuration file or environment does not fit the settings.
    pub fn settings<S: Member>(&self, replica: usize) -> Result<S::Settings, StackError> {
        let mut defaults = S::defaults(&self.plan, replica);
        merge(&mut defaults, self.defaults[S::INDEX].clone());
        let mut settings: S::Settings =
            load_scoped(self.plan.config.as_deref(), S::SPEC.name, defaults).map_err(|err| {
                StackError::Start {
                    service: label::<S>(replica),
                    source: StartError::Config(err),
                }
            })?;
        for configure in &self.overrides[S::INDEX] {
            if let Some(configure) = configure.downcast_ref::<Configure<S::Settings>>() {
                configure(&mut settings);
            }
        }
        Ok(settings)
    }

    /// Starts the chosen services: users, catalog, payments, the carts,
    /// orders, the gateway, then the storefront; each is listening and registered when
    /// this returns.
    /// What started before a failure is stopped again.
    ///
    /// # Errors
    /// The first service that cannot start, with the reason.
    pub async fn start(self) -> Result<Stack, StackError> {
        let registry = self.registry.clone().unwrap_or_else(Registry::in_process);
        let mut members = Vec::new();
        start_all::<Users>(&self, &registry, &mut members).await?;
        start_all::<Catalog>(&self, &registry, &mut members).await?;
        start_all::<Payments>(&self, &registry, &mut members).await?;
        start_all::<Cart>(&self, &registry, &mut members).await?;
        start_all::<Orders>(&self, &registry, &mut members).await?;
        start_all::<Gateway>(&self, &registry, &mut members).await?;
        start_all::<Web>(&self, &registry, &mut members).await?;
        Ok(Stack {
            registry,
            members,
            builder: self,
        })
    }
}

/// Starts the replicas of `S` the builder asks for, adding them to
/// `members`.
async fn start_all<S: Member>(
    builder: &StackBuilder,
    registry: &Registry,
    members: &mut Vec<Started>,
) -> Result<(), StackError> {
    for replica in 1..=builder.replicas[S::INDEX] {
        let settings = builder.settings::<S>(replica)?;
        let running = spawn::<S>(settings, registry, replica).await?;
        members.push(Started {
            label: label::<S>(replica),
            tier: S::TIER,
            running,
        });
    }
    Ok(())
}

/// Merges `from` into `into`, tables key by key, anything else replaced
/// (`null`: nothing to merge).
fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (_, Value::Null) => {}
        (Value::Object(into), Value::Object(from)) => {
            for (key, value) in from {
                merge(into.entry(key).or_insert(Value::Null), value);
            }
        }
        (into, from) => *into = from,
    }
}

/// One service of a stack.
#[derive(Debug)]
struct Started {
    label: String,
    tier: u8,
    running: Running,
}

/// Services started by a [`StackBuilder`]. Dropping it signals every
/// service to stop without waiting; [`Stack::stop`] waits.
pub struct Stack {
    registry: Registry,
    members: Vec<Started>,
    /// How the services were started (to start more of them), and what
    /// must live as long as they run.
    builder: StackBuilder,
}

impl Stack {
    /// A builder with nothing chosen yet (see [`StackBuilder::new`]).
    pub fn builder() -> StackBuilder {
        StackBuilder::new()
    }

    /// Starts one more instance of `S` with the stack's settings for it
    /// (adjusted by `configure`), in `registry` (`None`: the stack's); it
    /// is not one of the stack's members: the caller holds it.
    ///
    /// # Errors
    /// The instance cannot start.
    pub async fn spawn<S: Member>(
        &self,
        registry: Option<&Registry>,
        configure: impl FnOnce(&mut S::Settings),
    ) -> Result<Running, StackError> {
        let replica = self.count(S::SPEC.name) + 1;
        let mut settings = self.settings::<S>(replica)?;
        configure(&mut settings);
        spawn::<S>(settings, registry.unwrap_or(&self.registry), replica).await
    }

    /// The settings the stack gives replica `replica` (from 1) of `S`.
    ///
    /// # Errors
    /// The configuration file or environment does not fit the settings.
    pub fn settings<S: Member>(&self, replica: usize) -> Result<S::Settings, StackError> {
        self.builder.settings::<S>(replica)
    }

    /// What the services share: databases, the service token.
    pub fn plan(&self) -> &Plan {
        &self.builder.plan
    }

    /// How many of the stack's members are instances of the service
    /// `scope`.
    fn count(&self, scope: &str) -> usize {
        self.members
            .iter()
            .filter(|member| member.label.split('-').next() == Some(scope))
            .count()
    }

    /// The registry the services found each other through.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The running service labelled `label` (`users`, `cart-2`, `orders`).
    pub fn running(&self, label: &str) -> Option<&Running> {
        self.members
            .iter()
            .find(|member| member.label == label)
            .map(|member| &member.running)
    }

    /// The running instances of the service `scope` (`cart`), in start
    /// order.
    pub fn instances<'a>(&'a self, scope: &'a str) -> impl Iterator<Item = &'a Running> + 'a {
        self.members
            .iter()
            .filter(move |member| member.label.split('-').next() == Some(scope))
            .map(|member| &member.running)
    }

    /// Takes the service labelled `label` out of the stack: the caller
    /// stops or kills it.
    pub fn take(&mut self, label: &str) -> Option<Running> {
        let index = self
            .members
            .iter()
            .position(|member| member.label == label)?;
        Some(self.members.remove(index).running)
    }

    /// Where each service listens, edge first; admin listeners as
    /// `<label>-admin`, after the services.
    pub fn addresses(&self) -> Vec<(String, SocketAddr)> {
        let members = || self.in_stop_order();
        let services = members().map(|member| (member.label.clone(), member.running.addr()));
        let admins = members().filter_map(|member| {
            let admin = member.running.admin_addr()?;
            Some((format!("{}-admin", member.label), admin))
        });
        services.chain(admins).collect()
    }

    /// The address of the named listener (`users`, `cart-1`, `orders-admin`).
    pub fn addr(&self, name: &str) -> Option<SocketAddr> {
        self.addresses()
            .into_iter()
            .find(|(candidate, _)| candidate == name)
            .map(|(_, addr)| addr)
    }

    fn in_stop_order(&self) -> impl Iterator<Item = &Started> {
        let mut members: Vec<&Started> = self.members.iter().collect();
        // Stable: within a tier, the later started stops first.
        members.reverse();
        members.sort_by_key(|member| std::cmp::Reverse(member.tier));
        members.into_iter()
    }

    /// Stops the services tier by tier from the edge inward, each
    /// deregistering and draining its requests, and waits for them.
    ///
    /// # Errors
    /// The first service that failed while running or stopping (every
    /// other is still stopped).
    pub async fn stop(self) -> Result<(), StackError> {
        let Self {
            mut members,
            builder,
            ..
        } = self;
        members.reverse();
        members.sort_by_key(|member| std::cmp::Reverse(member.tier));
        let mut first_error = None;
        while let Some(tier) = members.first().map(|member| member.tier) {
            let split = members
                .iter()
                .position(|member| member.tier != tier)
                .unwrap_or(members.len());
            let mut stopping: Vec<Started> = members.drain(..split).collect();
            for member in &stopping {
                member.running.stop();
            }
            for member in &mut stopping {
                if let Err(source) = member.running.stopped().await {
                    tracing::error!(service = %member.label, error = %source, "service stopped with an error");
                    first_error.get_or_insert(StackError::Stopped {
                        service: member.label.clone(),
                        source,
                    });
                }
            }
        }
        // Last: what the services used (a test's databases).
        drop(builder);
        first_error.map_or(Ok(()), Err)
    }
}

/// Builds replica `replica` of `S` from `settings` in `registry` and runs
/// it on its own task.
async fn spawn<S: Member>(
    settings: S::Settings,
    registry: &Registry,
    replica: usize,
) -> Result<Running, StackError> {
    match Application::<S>::build_in(settings, registry.clone()).await {
        Ok(app) => Ok(app.spawn()),
        Err(source) => Err(StackError::Start {
            service: label::<S>(replica),
            source,
        }),
    }
}
