//! The `main` every service binary shares: parse `--config` and
//! `--healthcheck`, then either probe the running service or load the
//! settings and run it, printing one line and exiting 1 on failure.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Arg, ArgAction, Command};

use crate::config::ConfigError;

/// What a service binary says about itself in `--help` and `--version`.
#[derive(Debug, Clone, Copy)]
pub struct Binary {
    /// The binary's name (`shop-users`).
    pub name: &'static str,
    /// One line on what it is.
    pub about: &'static str,
    /// Its version (`env!("CARGO_PKG_VERSION")`).
    pub version: &'static str,
}

/// The arguments every service binary takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceArgs {
    /// `--config PATH`: a TOML file (also `SHOP_CONFIG`).
    pub config: Option<PathBuf>,
    /// `--healthcheck`: probe the running service's `/readyz` and exit.
    pub healthcheck: bool,
}

impl ServiceArgs {
    fn command(binary: Binary) -> Command {
        Command::new(binary.name)
            .about(binary.about)
            .version(binary.version)
            .arg(
                Arg::new("config")
                    .long("config")
                    .value_name("PATH")
                    .value_parser(clap::value_parser!(PathBuf))
                    .help("TOML configuration file (also SHOP_CONFIG); SHOP_ env vars override it"),
            )
            .arg(
                Arg::new("healthcheck")
                    .long("healthcheck")
                    .action(ArgAction::SetTrue)
                    .help("Probe this service's /readyz on its configured port; exit 0 when ready (container health checks)"),
            )
    }

    /// Parses `args` (the first is the program name).
    ///
    /// # Errors
    /// clap's error for unknown or malformed arguments (and for `--help`).
    pub fn try_parse_from<I, T>(binary: Binary, args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Self::command(binary).try_get_matches_from(args)?;
        Ok(Self {
            config: matches.get_one::<PathBuf>("config").cloned(),
            healthcheck: matches.get_flag("healthcheck"),
        })
    }
}

/// Runs a service binary: `load` reads its settings from the config file
/// and environment, `probe_addr` says where its HTTP listener is (for
/// `--healthcheck`), `run` builds and serves it until SIGINT/SIGTERM.
pub async fn run_service<S, Run, Fut>(
    binary: Binary,
    load: impl Fn(Option<&Path>) -> Result<S, ConfigError>,
    probe_addr: impl Fn(&S) -> SocketAddr,
    run: Run,
) -> ExitCode
where
    Run: FnOnce(S) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let args = match ServiceArgs::try_parse_from(binary, std::env::args_os()) {
        Ok(args) => args,
        Err(err) => err.exit(),
    };
    if args.healthcheck {
        let bound = load(args.config.as_deref()).map(|settings| probe_addr(&settings));
        return crate::healthcheck::exit_code(bound).await;
    }
    crate::telemetry::init();
    let result = match load(args.config.as_deref()) {
        Ok(settings) => run(settings).await,
        Err(err) => Err(err.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{}: {err:#}", binary.name);
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BINARY: Binary = Binary {
        name: "shop-test",
        about: "a test",
        version: "1.2.3",
    };

    #[test]
    fn arguments_parse() {
        assert_eq!(
            ServiceArgs::try_parse_from(BINARY, ["shop-test"]).expect("no args"),
            ServiceArgs::default()
        );
        let args = ServiceArgs::try_parse_from(
            BINARY,
            ["shop-test", "--config", "a.toml", "--healthcheck"],
        )
        .expect("args");
        assert_eq!(args.config.as_deref(), Some(Path::new("a.toml")));
        assert!(args.healthcheck);
        assert!(ServiceArgs::try_parse_from(BINARY, ["shop-test", "--bogus"]).is_err());
        let version =
            ServiceArgs::try_parse_from(BINARY, ["shop-test", "--version"]).expect_err("exits");
        assert_eq!(version.kind(), clap::error::ErrorKind::DisplayVersion);
    }
}
