//! `shop`: the whole ferroshop stack in one process, for a laptop: users,
//! catalog, payments, the carts, orders, the gateway and the storefront
//! (`web`, whose pages the gateway serves at `/`).
//!
//! Every service runs as it does on its own — its own listener, its own
//! SQLite database under the data directory — and they reach each other over
//! real HTTP and gRPC on loopback, found through one in-process registry. The
//! services' own configuration still applies, scoped by service name: the
//! `[cart]` table of the `--config` file, or `SHOP_CART__…` variables.
//!
//! On Ctrl-C the stack stops from the edge inward, so no request in flight
//! at the edge finds a service behind it already gone.
//!
//! Spans are exported once too, when the top-level `[telemetry]` table or
//! `SHOP_TELEMETRY__OTLP_ENDPOINT` (or the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT`) names a collector: one exporter for the
//! process (`service.name` `shop`), every span carrying the `service`
//! attribute of the service it belongs to, so a trace still tells them
//! apart. The services' own `[cart.telemetry]` tables are not read here.
//!
//! Metrics are served once: every service of the process records into one
//! process-wide registry (told apart by the `service` label), so one
//! `/metrics` holds all of it, and several would serve the same text and
//! make a scraper count everything twice. orders' admin listener serves it
//! (orders always has one); the HTTP services' admin listeners are off
//! (`admin.enabled = false`; a `[cart.admin]` table may turn one back on).
//!
//! [`stack`] is how the services are started — here, and in the services'
//! integration tests, which start the part of the stack they need.
//! [`testing`] (feature `testing`) holds what those tests share.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Parser;
use serde_json::json;
use shop_common::config::{self, ConfigError};
use shop_common::telemetry::TelemetrySettings;
use shop_discovery::Registry;
use tokio_util::sync::CancellationToken;

pub mod stack;
#[cfg(feature = "testing")]
pub mod testing;

pub use stack::{Ports, Stack, StackBuilder, StackError};

/// The database files the stack keeps under the data directory.
const DATABASES: [&str; 5] = ["users", "catalog", "payments", "cart", "orders"];
/// The development signing key, kept so that tokens survive restarts.
const SIGNING_KEY_FILE: &str = "dev-signing-key.pem";
/// Most cart replicas `--cart-replicas` accepts.
const MAX_CART_REPLICAS: usize = 16;

/// Command-line options of `shop`.
#[derive(Debug, Clone, Parser)]
#[command(version, about = "The whole ferroshop stack in one process")]
pub struct Options {
    /// Directory for the SQLite databases and the development signing key.
    #[arg(long, default_value = "./data")]
    pub data_dir: PathBuf,
    /// How many cart instances to run.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=MAX_CART_REPLICAS as i64))]
    pub cart_replicas: u16,
    /// The gateway's port.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Address every service binds (loopback by default: a laptop stack is
    /// not meant to be reachable from the network).
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub host: IpAddr,
    /// Start from empty databases (the signing key is kept).
    #[arg(long)]
    pub reset: bool,
    /// A TOML file with one table per service (`[users]`, `[cart]`, …).
    #[arg(long, env = "SHOP_CONFIG")]
    pub config: Option<PathBuf>,
    /// Bind every service to a free port instead of the defaults (tests).
    #[arg(skip)]
    pub ephemeral_ports: bool,
}

impl Options {
    /// Options for tests: everything under `data_dir`, every port free.
    pub fn ephemeral(data_dir: &Path) -> Self {
        Self {
            data_dir: data_dir.to_path_buf(),
            cart_replicas: 2,
            port: 0,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            reset: false,
            config: None,
            ephemeral_ports: true,
        }
    }

    /// The process's `[telemetry]` settings: the top-level table of the
    /// `--config` file, then `SHOP_TELEMETRY__…` variables.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the `telemetry.` key at fault.
    pub fn telemetry(&self) -> Result<TelemetrySettings, ConfigError> {
        let settings: TelemetrySettings =
            config::load_scoped(self.config.as_deref(), "telemetry", json!({}))?;
        settings.validate()?;
        Ok(settings)
    }

    /// The whole stack these options describe, not started yet.
    fn stack(&self) -> StackBuilder {
        let dir = &self.data_dir;
        let ports = if self.ephemeral_ports {
            Ports::Ephemeral
        } else {
            Ports::Defaults { gateway: self.port }
        };
        let mut builder = Stack::builder()
            .everything(self.cart_replicas.into())
            .host(self.host)
            .ports(ports)
            .admin(false)
            .config(self.config.clone())
            .defaults::<shop_users::Users>(json!({
                "auth": {"signing_key_file": dir.join(SIGNING_KEY_FILE)},
                "login_limit": {"trust_forwarded_for": true},
            }));
        for name in DATABASES {
            let file = dir.join(format!("{name}.db"));
            builder = builder.database(name, format!("sqlite:{}", file.display()));
        }
        builder
    }
}

/// The running stack.
pub struct Shop {
    stack: Stack,
    /// Where the process's `/metrics` is served (orders' admin listener).
    metrics: SocketAddr,
    data_dir: PathBuf,
}

impl Shop {
    /// Starts every service. Each is listening when this returns.
    ///
    /// # Errors
    /// The first service that cannot start, with the reason.
    pub async fn start(options: &Options) -> anyhow::Result<Self> {
        prepare_data_dir(options)?;
        let stack = options.stack().start().await?;
        let metrics = stack
            .addr("orders-admin")
            .context("orders has no admin listener")?;
        Ok(Self {
            stack,
            metrics,
            data_dir: options.data_dir.clone(),
        })
    }

    /// Where each service listens, edge first; admin listeners as
    /// `<service>-admin`, after the services.
    pub fn addresses(&self) -> Vec<(String, SocketAddr)> {
        self.stack.addresses()
    }

    /// Where the process's `/metrics` is served: one address for every
    /// service (see the crate documentation).
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics
    }

    /// The address of the named listener (`users`, `cart-1`, `orders-admin`, …).
    pub fn addr(&self, name: &str) -> Option<SocketAddr> {
        self.stack.addr(name)
    }

    /// The registry the services found each other through.
    pub fn registry(&self) -> &Registry {
        self.stack.registry()
    }

    /// What to print once the stack is up: where everything listens and a
    /// first command to try.
    pub fn banner(&self) -> String {
        let mut text = String::from("ferroshop is running (Ctrl-C stops it)\n\n");
        for (name, addr) in self.addresses() {
            let scheme = if name == "orders" { "grpc" } else { "http" };
            let _ = writeln!(text, "  {name:<13} {scheme}://{addr}");
        }
        let _ = writeln!(
            text,
            "\n  metrics: http://{}/metrics (every service of this process)",
            self.metrics
        );
        let _ = writeln!(text, "  data: {}", self.data_dir.display());
        if let Some(gateway) = self.addr("gateway") {
            let _ = write!(
                text,
                "\ntry:\n  open http://{gateway}/ in a browser: the shop\n  curl -s 'http://{gateway}/api/products?limit=3'\n  scripts/smoke.sh http://{gateway}\n  open http://{gateway}/docs in a browser\n"
            );
        }
        text
    }

    /// Runs until `stop` is cancelled, then stops the services tier by tier
    /// from the edge inward, each deregistering and draining its requests.
    ///
    /// # Errors
    /// The first service that failed while running.
    pub async fn run_until_stopped(self, stop: CancellationToken) -> anyhow::Result<()> {
        stop.cancelled().await;
        Ok(self.stack.stop().await?)
    }
}

/// Creates the data directory (private to its owner: it holds password
/// hashes and the signing key), removes the databases on `--reset`, and
/// creates the development signing key once.
fn prepare_data_dir(options: &Options) -> anyhow::Result<()> {
    let dir = &options.data_dir;
    create_private_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    if options.reset {
        for name in DATABASES {
            for suffix in ["db", "db-wal", "db-shm"] {
                let path = dir.join(format!("{name}.{suffix}"));
                match std::fs::remove_file(&path) {
                    Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                        return Err(err)
                            .with_context(|| format!("cannot remove {}", path.display()));
                    }
                    _ => {}
                }
            }
        }
    }
    let key = dir.join(SIGNING_KEY_FILE);
    if !key.exists() {
        let pem = shop_common::auth::generate_signing_key_pem()?;
        write_private(&key, &pem).with_context(|| format!("cannot write {}", key.display()))?;
        tracing::info!(path = %key.display(), "created a development signing key");
    }
    Ok(())
}

/// Creates `dir` (and missing parents) readable by its owner alone. A
/// directory that already exists is left as it is, with a warning when
/// others may read it: it may be shared on purpose.
#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    if dir.is_dir() {
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %dir.display(),
                mode = format!("{:o}", mode & 0o777),
                "the data directory is readable by others; it holds password hashes and the signing key (chmod 700 it)"
            );
        }
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn a_new_data_directory_and_its_key_are_private() {
        let parent = tempfile::tempdir().expect("tempdir");
        let dir = parent.path().join("data");
        prepare_data_dir(&Options::ephemeral(&dir)).expect("prepare");
        let mode = |path: &Path| {
            std::fs::metadata(path)
                .expect("metadata")
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(SIGNING_KEY_FILE)), 0o600);
    }

    /// The process's `[telemetry]` is the config file's top-level table;
    /// a bad value names its key.
    #[test]
    fn telemetry_comes_from_the_top_level_table() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("shop.toml");
        let mut options = Options::ephemeral(dir.path());
        options.config = Some(file.clone());
        std::fs::write(
            &file,
            "[telemetry]\notlp_endpoint = \"http://collector:4317\"\nsampling_ratio = 0.5\n",
        )
        .expect("write");
        let telemetry = options.telemetry().expect("valid");
        assert_eq!(
            telemetry.otlp_endpoint.as_deref(),
            Some("http://collector:4317")
        );
        assert_eq!(telemetry.sampling_ratio, Some(0.5));
        std::fs::write(&file, "[telemetry]\nsampling_ratio = 2.0\n").expect("write");
        let err = options.telemetry().expect_err("out of range").to_string();
        assert!(err.contains("telemetry.sampling_ratio"), "{err}");
    }
}
