//! The database connection budget: every service shares one PostgreSQL, so
//! every replica's pool together must fit in what PostgreSQL admits to
//! non-superusers (`max_connections` minus the reserved slots). When it does
//! not, the last replicas to start (an autoscaler scaling up, a rollout)
//! fail with "too many clients" and crash-loop.
//!
//! [`budget`] is the pure computation; [`compose`] and [`kubernetes`] gather
//! its input from a parsed deployment: instances per service (compose's
//! `deploy.replicas`; an autoscaler's `maxReplicas` or `spec.replicas`),
//! connections per instance from the service's own loaded `Settings`
//! ([`crate::Loaded::database_connections`]), and the limits from the
//! PostgreSQL container's command line.

use std::fmt;

use crate::compose::ComposeService;
use crate::k8s::Workload;
use crate::{Error, Service};

/// PostgreSQL's own defaults for the settings the budget reads.
const DEFAULT_MAX_CONNECTIONS: u32 = 100;
const DEFAULT_SUPERUSER_RESERVED_CONNECTIONS: u32 = 3;

/// What one service's instances may hold open together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    /// The service.
    pub service: Service,
    /// How many instances may run at once.
    pub instances: u32,
    /// The most connections one instance may open.
    pub connections: u32,
}

impl Share {
    /// `instances × connections`.
    pub fn total(&self) -> u64 {
        u64::from(self.instances) * u64::from(self.connections)
    }
}

/// The PostgreSQL settings that bound how many clients may connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostgresLimits {
    /// `max_connections` (default 100).
    pub max_connections: u32,
    /// `superuser_reserved_connections` (default 3): slots only superusers
    /// may take; the services' roles are not superusers.
    pub superuser_reserved_connections: u32,
    /// `reserved_connections` (PostgreSQL 16 and later, default 0): slots
    /// for roles with `pg_use_reserved_connections`, which the services'
    /// roles do not have.
    pub reserved_connections: u32,
}

impl Default for PostgresLimits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            superuser_reserved_connections: DEFAULT_SUPERUSER_RESERVED_CONNECTIONS,
            reserved_connections: 0,
        }
    }
}

impl PostgresLimits {
    /// Reads the limits from a PostgreSQL container's command line (its
    /// `command` followed by its `args`): `-c name=value`, `-cname=value`,
    /// `--name=value` and `-N n` (`max_connections`); the last setting of a
    /// name wins, as in `postgres`. Settings not given keep PostgreSQL's
    /// defaults. Settings made in a mounted `postgresql.conf` or by
    /// `ALTER SYSTEM` are not seen.
    ///
    /// # Errors
    /// [`Error::Shape`] when one of these settings is not a whole number.
    pub fn from_args<S: AsRef<str>>(args: &[S]) -> Result<Self, Error> {
        let mut limits = Self::default();
        let mut args = args.iter().map(AsRef::as_ref);
        while let Some(arg) = args.next() {
            let setting = match arg {
                "-c" => args.next().map(ToOwned::to_owned),
                "-N" => args.next().map(|n| format!("max_connections={n}")),
                _ => {
                    if let Some(rest) = arg.strip_prefix("--") {
                        Some(rest.to_owned())
                    } else if let Some(rest) = arg.strip_prefix("-c") {
                        Some(rest.to_owned())
                    } else {
                        arg.strip_prefix("-N")
                            .map(|n| format!("max_connections={n}"))
                    }
                }
            };
            let Some((name, value)) = setting.as_deref().and_then(|s| s.split_once('=')) else {
                continue;
            };
            let name = name.trim().to_ascii_lowercase().replace('-', "_");
            let slot = match name.as_str() {
                "max_connections" => &mut limits.max_connections,
                "superuser_reserved_connections" => &mut limits.superuser_reserved_connections,
                "reserved_connections" => &mut limits.reserved_connections,
                _ => continue,
            };
            let value = value.trim().trim_matches(|c| c == '\'' || c == '"');
            *slot = value.parse().map_err(|_| {
                Error::Shape(format!(
                    "PostgreSQL setting {name}={value:?} is not a whole number"
                ))
            })?;
        }
        Ok(limits)
    }

    /// The connections the services' (non-superuser) roles may hold:
    /// `max_connections − superuser_reserved_connections − reserved_connections`.
    pub fn available(&self) -> u64 {
        u64::from(self.max_connections)
            .saturating_sub(u64::from(self.superuser_reserved_connections))
            .saturating_sub(u64::from(self.reserved_connections))
    }
}

/// `max_connections 200 - superuser_reserved_connections 3` (and
/// `- reserved_connections n` when set).
impl fmt::Display for PostgresLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "max_connections {} - superuser_reserved_connections {}",
            self.max_connections, self.superuser_reserved_connections
        )?;
        if self.reserved_connections > 0 {
            write!(f, " - reserved_connections {}", self.reserved_connections)?;
        }
        Ok(())
    }
}

/// The connections a deployment may open and what PostgreSQL admits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// Per service (and pool size), in the order of [`Service`].
    pub shares: Vec<Share>,
    /// The sum of every share.
    pub used: u64,
    /// PostgreSQL's limits.
    pub limits: PostgresLimits,
}

impl Budget {
    /// Whether the sum fits in what PostgreSQL admits.
    pub fn fits(&self) -> bool {
        self.used <= self.limits.available()
    }

    /// The share of `service` (the sum, if its instances differ in pool size).
    pub fn of(&self, service: Service) -> u64 {
        self.shares
            .iter()
            .filter(|s| s.service == service)
            .map(Share::total)
            .sum()
    }

    fn shares_text(&self, with_totals: bool) -> String {
        self.shares
            .iter()
            .map(|s| {
                let each = format!("{} {}×{}", s.service.name(), s.instances, s.connections);
                if with_totals {
                    format!("{each} = {}", s.total())
                } else {
                    each
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `173 of 197 connections (users 3×5, catalog 3×10, cart 10×8, orders 3×11, payments 3×5)`.
impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} connections ({})",
            self.used,
            self.limits.available(),
            self.shares_text(false)
        )
    }
}

/// The services may open more connections than PostgreSQL admits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the services may open {} database connections, more than the {} PostgreSQL admits to them \
     ({}): {}; lower a pool (SHOP_DATABASE__MAX_CONNECTIONS) or a replica count, or raise \
     max_connections",
    .0.used,
    .0.limits.available(),
    .0.limits,
    .0.shares_text(true)
)]
pub struct OverBudget(pub Budget);

/// Adds up `shares` (those of one service with the same pool size merged,
/// services without connections left out) and compares the sum with what
/// `limits` admit to non-superusers.
///
/// # Errors
/// [`OverBudget`], listing every service's share, when the sum exceeds
/// [`PostgresLimits::available`].
pub fn budget(shares: &[Share], limits: PostgresLimits) -> Result<Budget, OverBudget> {
    let mut merged: Vec<Share> = Vec::new();
    for share in shares.iter().filter(|s| s.total() > 0) {
        match merged
            .iter_mut()
            .find(|m| m.service == share.service && m.connections == share.connections)
        {
            Some(m) => m.instances = m.instances.saturating_add(share.instances),
            None => merged.push(*share),
        }
    }
    merged.sort_by_key(|s| s.service);
    let used = merged
        .iter()
        .map(Share::total)
        .fold(0_u64, u64::saturating_add);
    let budget = Budget {
        shares: merged,
        used,
        limits,
    };
    if budget.fits() {
        Ok(budget)
    } else {
        Err(OverBudget(budget))
    }
}

/// Why a deployment's budget could not be computed, or does not fit.
#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    /// A service's environment does not load into its settings.
    #[error("{id}: {message}")]
    Settings {
        /// The compose service or workload.
        id: String,
        /// The configuration error.
        message: String,
    },
    /// The PostgreSQL container is missing, ambiguous or malformed.
    #[error("{0}")]
    Postgres(String),
    /// The sum does not fit.
    #[error(transparent)]
    Over(#[from] OverBudget),
}

/// Whether `image` is PostgreSQL (`postgres:15-bookworm`,
/// `docker.io/library/postgres@sha256:…`).
pub fn is_postgres_image(image: &str) -> bool {
    let image = image.split('@').next().unwrap_or(image);
    let last = image.rsplit('/').next().unwrap_or(image);
    last.split(':').next() == Some("postgres")
}

/// The one PostgreSQL container's limits among `candidates` (id, command line).
fn limits_of<'a>(
    mut candidates: impl Iterator<Item = (&'a str, &'a [String])>,
    what: &str,
) -> Result<PostgresLimits, BudgetError> {
    let Some((id, args)) = candidates.next() else {
        return Err(BudgetError::Postgres(format!(
            "{what} runs no PostgreSQL (image postgres:…); its limits are unknown"
        )));
    };
    if let Some((other, _)) = candidates.next() {
        return Err(BudgetError::Postgres(format!(
            "{what} runs several PostgreSQL containers ({id}, {other}); the services share one"
        )));
    }
    PostgresLimits::from_args(args).map_err(|err| BudgetError::Postgres(format!("{id}: {err}")))
}

/// The budget of a compose file: each compose service running a ferroshop
/// service counts `deploy.replicas` instances (the two cart replicas are two
/// compose services), against the `postgres` service's command line.
///
/// # Errors
/// [`BudgetError`]: a service's settings do not load, there is not exactly
/// one PostgreSQL, or the sum does not fit.
pub fn compose(services: &[ComposeService]) -> Result<Budget, BudgetError> {
    let limits = limits_of(
        services
            .iter()
            .filter(|s| s.image.as_deref().is_some_and(is_postgres_image))
            .map(|s| (s.name.as_str(), s.command.as_slice())),
        "the compose file",
    )?;
    let mut shares = Vec::new();
    for entry in services {
        let Some(service) = entry.service.filter(|s| s.owns_database()) else {
            continue;
        };
        let loaded = crate::load(service, &entry.env).map_err(|message| BudgetError::Settings {
            id: entry.name.clone(),
            message,
        })?;
        shares.push(Share {
            service,
            instances: entry.replicas,
            connections: loaded.database_connections,
        });
    }
    Ok(budget(&shares, limits)?)
}

/// The budget of rendered manifests: each workload running a ferroshop
/// service counts [`Workload::instances`] (its autoscaler's maximum, else
/// its `replicas`), against the PostgreSQL container's `command` and `args`.
///
/// # Errors
/// [`BudgetError`]: a service's settings do not load, there is not exactly
/// one PostgreSQL, or the sum does not fit.
pub fn kubernetes(workloads: &[Workload]) -> Result<Budget, BudgetError> {
    let limits = limits_of(
        workloads
            .iter()
            .filter(|w| is_postgres_image(&w.image))
            .map(|w| (w.id.as_str(), w.command.as_slice())),
        "the manifests",
    )?;
    let mut shares = Vec::new();
    for workload in workloads {
        let Some(service) = workload.service.filter(|s| s.owns_database()) else {
            continue;
        };
        let loaded =
            crate::load(service, &workload.env).map_err(|message| BudgetError::Settings {
                id: workload.id.clone(),
                message,
            })?;
        shares.push(Share {
            service,
            instances: workload.instances,
            connections: loaded.database_connections,
        });
    }
    Ok(budget(&shares, limits)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(service: Service, instances: u32, connections: u32) -> Share {
        Share {
            service,
            instances,
            connections,
        }
    }

    /// Base k8s at the cart autoscaler's maximum, as the manifests set it.
    fn base() -> Vec<Share> {
        vec![
            share(Service::Users, 2, 5),
            share(Service::Catalog, 2, 10),
            share(Service::Cart, 6, 8),
            share(Service::Orders, 2, 11),
            share(Service::Payments, 2, 5),
        ]
    }

    fn limits(max: u32) -> PostgresLimits {
        PostgresLimits {
            max_connections: max,
            ..PostgresLimits::default()
        }
    }

    #[test]
    fn a_deployment_within_the_limit_fits_and_prints_its_shares() {
        let budget = budget(&base(), limits(200)).expect("fits");
        assert_eq!(budget.used, 10 + 20 + 48 + 22 + 10);
        assert_eq!(budget.of(Service::Cart), 48);
        assert_eq!(budget.of(Service::Payments), 10);
        assert_eq!(
            budget.to_string(),
            "110 of 197 connections (users 2×5, catalog 2×10, cart 6×8, orders 2×11, payments 2×5)"
        );
    }

    #[test]
    fn the_old_defaults_did_not_fit_postgres_defaults() {
        // Default pools of 10 (orders 11), cart at its autoscaler's maximum.
        let shares = [
            share(Service::Users, 2, 10),
            share(Service::Catalog, 2, 10),
            share(Service::Cart, 6, 10),
            share(Service::Orders, 2, 11),
        ];
        let err = budget(&shares, PostgresLimits::default()).expect_err("122 > 97");
        assert_eq!(err.0.used, 122);
        let text = err.to_string();
        for part in [
            "122 database connections",
            "the 97 PostgreSQL admits to them (max_connections 100 - superuser_reserved_connections 3)",
            "users 2×10 = 20",
            "catalog 2×10 = 20",
            "cart 6×10 = 60",
            "orders 2×11 = 22",
        ] {
            assert!(text.contains(part), "{part:?} not in {text}");
        }
    }

    #[test]
    fn raising_a_replica_count_or_a_pool_past_the_limit_fails() {
        let mut more_replicas = base();
        more_replicas[2].instances = 20; // cart: 20 × 8 = 160
        let err = budget(&more_replicas, limits(200)).expect_err("too many carts");
        assert_eq!(err.0.of(Service::Cart), 160);
        assert!(err.to_string().contains("cart 20×8 = 160"), "{err}");

        let mut bigger_pool = base();
        bigger_pool[0].connections = 60; // users: 2 × 60, 200 in all
        let err = budget(&bigger_pool, limits(200)).expect_err("users pool too big");
        assert!(err.to_string().contains("users 2×60 = 120"), "{err}");
    }

    #[test]
    fn a_payments_pool_counts_against_the_limit() {
        // The base fits with 87 to spare; payments' pods each hold their pool.
        let mut shares = base();
        shares[4].connections = 5 + 87 / 2;
        assert!(budget(&shares, limits(200)).is_ok());
        shares[4].connections += 1;
        let err = budget(&shares, limits(200)).expect_err("payments' pool too big");
        assert!(err.to_string().contains("payments 2×49 = 98"), "{err}");
        assert_eq!(err.0.used, 198);
    }

    #[test]
    fn exactly_the_limit_fits_and_one_more_does_not() {
        let shares = [share(Service::Cart, 97, 1)];
        assert!(budget(&shares, PostgresLimits::default()).is_ok());
        let shares = [share(Service::Cart, 98, 1)];
        assert!(budget(&shares, PostgresLimits::default()).is_err());
    }

    #[test]
    fn replicas_of_one_service_merge_and_services_without_connections_drop_out() {
        // compose: cart-1 and cart-2 are two services of one replica each.
        let shares = [
            share(Service::Orders, 1, 11),
            share(Service::Cart, 1, 10),
            share(Service::Gateway, 3, 0),
            share(Service::Cart, 1, 10),
            share(Service::Cart, 1, 20),
        ];
        let budget = budget(&shares, PostgresLimits::default()).expect("fits");
        assert_eq!(
            budget.to_string(),
            "51 of 97 connections (cart 2×10, cart 1×20, orders 1×11)"
        );
        assert_eq!(budget.of(Service::Cart), 40);
    }

    #[test]
    fn limits_come_from_every_command_line_form() {
        let args = |list: &[&str]| PostgresLimits::from_args(list).expect("parses");
        assert_eq!(args(&[]), PostgresLimits::default());
        assert_eq!(args(&["postgres"]).available(), 97);
        assert_eq!(args(&["-c", "max_connections=200"]).available(), 197);
        assert_eq!(
            args(&[
                "postgres",
                "--max_connections=150",
                "-c",
                "shared_buffers=1GB"
            ])
            .available(),
            147
        );
        assert_eq!(args(&["--max-connections=150"]).max_connections, 150);
        assert_eq!(args(&["-cmax_connections=120"]).max_connections, 120);
        assert_eq!(args(&["-N", "80"]).max_connections, 80);
        let all = args(&[
            "-c",
            "max_connections=100",
            "-c",
            "superuser_reserved_connections=5",
            "-c",
            "reserved_connections=2",
            "-c",
            "max_connections='300'",
        ]);
        assert_eq!(all.max_connections, 300);
        assert_eq!(all.available(), 293);
        let err = PostgresLimits::from_args(&["-c", "max_connections=lots"]).expect_err("NaN");
        assert!(err.to_string().contains("max_connections"), "{err}");
    }

    #[test]
    fn reserved_slots_beyond_the_maximum_admit_nothing() {
        let limits = PostgresLimits::from_args(&["-c", "superuser_reserved_connections=200"])
            .expect("parses");
        assert_eq!(limits.available(), 0);
        assert!(budget(&[share(Service::Users, 1, 1)], limits).is_err());
    }

    #[test]
    fn postgres_images_are_recognised() {
        assert!(is_postgres_image("postgres:15-bookworm"));
        assert!(is_postgres_image("docker.io/library/postgres@sha256:ab"));
        assert!(!is_postgres_image("localhost/ferroshop/users:0.1.0"));
        assert!(!is_postgres_image("bitnami/postgresql:15"));
    }
}
