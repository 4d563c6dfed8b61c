//! The compose file as the checks see it: per service, the environment its
//! container gets (`env_file` entries, then `environment`, which wins), the
//! secrets mounted under `/run/secrets/`, its published ports, its image,
//! command line, replica count, the networks it joins (who can open a
//! connection to whom: [`ComposeService::shares_network`]) and how long
//! compose waits for it to stop.

use std::path::Path;

use serde_json::Value;

use crate::yaml::{self, scalar};
use crate::{Error, Service};

/// One service of the compose file.
#[derive(Debug, Clone)]
pub struct ComposeService {
    /// Its name in the compose file (`cart-1`).
    pub name: String,
    /// The ferroshop service it runs (from `build.args.SERVICE` or the image).
    pub service: Option<Service>,
    /// `image:` as written.
    pub image: Option<String>,
    /// `command:` as a list (a string is split at whitespace).
    pub command: Vec<String>,
    /// How many containers it runs: `deploy.replicas`, else `scale`, else 1.
    pub replicas: u32,
    /// The container's environment, in the order compose applies it.
    pub env: Vec<(String, String)>,
    /// Files mounted from compose `secrets:` (`/run/secrets/<name>`).
    pub secret_files: Vec<String>,
    /// `ports:` entries as written.
    pub ports: Vec<String>,
    /// The container ports those entries publish (`target` of the long
    /// syntax, the last number of the short one); an entry naming no
    /// readable port is left out.
    pub published_targets: Vec<u16>,
    /// Services it waits for, with their condition.
    pub depends_on: Vec<(String, String)>,
    /// Whether it has a health check.
    pub healthcheck: bool,
    /// The networks it joins (`networks:` as a list or a map); compose puts
    /// a service that names none on `default`.
    pub networks: Vec<String>,
    /// `stop_grace_period:` as written (compose waits 10 s without it).
    pub stop_grace_period: Option<String>,
    /// `profiles:`: compose starts a service that names any only when one
    /// of them is enabled (`--profile monitoring`); none, always.
    pub profiles: Vec<String>,
}

impl ComposeService {
    /// Whether `self` and `other` share a network: only then can one open a
    /// connection to the other (compose's networks are the only fence
    /// between containers).
    pub fn shares_network(&self, other: &Self) -> bool {
        self.networks.iter().any(|n| other.networks.contains(n))
    }
}

/// The network compose attaches a service to when it names none.
pub const DEFAULT_NETWORK: &str = "default";

/// Reads every service of `compose` (the file's text). `env_file` paths are
/// resolved against `root` (the compose file's folder, or the folder
/// `scripts/gen-secrets.sh --root` wrote to).
///
/// # Errors
/// [`Error`] when the file is not a compose file, an env file is missing or
/// a replica count is not a number.
pub fn services(compose: &str, root: &Path) -> Result<Vec<ComposeService>, Error> {
    let docs = yaml::parse(compose)?;
    let doc = docs
        .first()
        .ok_or_else(|| Error::Shape("empty compose file".into()))?;
    let services = doc["services"]
        .as_object()
        .ok_or_else(|| Error::Shape("compose file has no services".into()))?;
    services
        .iter()
        .map(|(name, spec)| service(name, spec, root))
        .collect()
}

fn service(name: &str, spec: &Value, root: &Path) -> Result<ComposeService, Error> {
    let service = spec["build"]["args"]["SERVICE"]
        .as_str()
        .or_else(|| spec["image"].as_str())
        .and_then(Service::from_name_or_image);
    let mut env = Vec::new();
    for file in string_list(&spec["env_file"], "path") {
        let path = root.join(&file);
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        env.extend(parse_env_file(&text));
    }
    match &spec["environment"] {
        Value::Object(map) => {
            for (key, value) in map {
                env.push((key.clone(), scalar(value).unwrap_or_default()));
            }
        }
        Value::Array(list) => {
            for item in list.iter().filter_map(Value::as_str) {
                let (key, value) = item.split_once('=').unwrap_or((item, ""));
                env.push((key.to_owned(), value.to_owned()));
            }
        }
        _ => {}
    }
    let secret_files = string_list(&spec["secrets"], "source")
        .into_iter()
        .map(|name| format!("/run/secrets/{name}"))
        .collect();
    let depends_on = match &spec["depends_on"] {
        Value::Object(map) => map
            .iter()
            .map(|(dep, how)| {
                let condition = how["condition"].as_str().unwrap_or("service_started");
                (dep.clone(), condition.to_owned())
            })
            .collect(),
        Value::Array(list) => list
            .iter()
            .filter_map(Value::as_str)
            .map(|dep| (dep.to_owned(), "service_started".to_owned()))
            .collect(),
        _ => Vec::new(),
    };
    let replicas = match [&spec["deploy"]["replicas"], &spec["scale"]]
        .into_iter()
        .find_map(scalar)
    {
        None => 1,
        Some(text) => text.parse().map_err(|_| {
            Error::Shape(format!("{name}: replicas {text:?} is not a whole number"))
        })?,
    };
    let command = match &spec["command"] {
        Value::String(line) => line.split_whitespace().map(ToOwned::to_owned).collect(),
        Value::Array(items) => items.iter().filter_map(scalar).collect(),
        _ => Vec::new(),
    };
    Ok(ComposeService {
        name: name.to_owned(),
        service,
        image: spec["image"].as_str().map(ToOwned::to_owned),
        command,
        replicas,
        env: last_wins(env),
        secret_files,
        ports: string_list(&spec["ports"], "published"),
        published_targets: published_targets(&spec["ports"]),
        depends_on,
        healthcheck: spec["healthcheck"].is_object(),
        networks: networks(&spec["networks"]),
        stop_grace_period: scalar(&spec["stop_grace_period"]),
        profiles: string_list(&spec["profiles"], "name"),
    })
}

/// `base` with the services of an override file (`docker compose -f base
/// -f overlay`) laid over it, as compose merges them for what these checks
/// read: a service new to the overlay is added; one the base has keeps its
/// base definition, with the overlay's `environment` keys replacing or
/// adding to its own.
///
/// # Errors
/// [`Error::Shape`] when an overlay entry for a base service sets more than
/// `environment` (those merges are not modelled here, so they would go
/// unchecked).
pub fn overlay(
    mut base: Vec<ComposeService>,
    overlay: Vec<ComposeService>,
) -> Result<Vec<ComposeService>, Error> {
    for entry in overlay {
        let Some(existing) = base.iter_mut().find(|service| service.name == entry.name) else {
            base.push(entry);
            continue;
        };
        let only_environment = entry.service.is_none()
            && entry.image.is_none()
            && entry.command.is_empty()
            && entry.replicas == 1
            && entry.secret_files.is_empty()
            && entry.ports.is_empty()
            && entry.depends_on.is_empty()
            && !entry.healthcheck
            && entry.networks == [DEFAULT_NETWORK]
            && entry.stop_grace_period.is_none()
            && entry.profiles.is_empty();
        if !only_environment {
            return Err(Error::Shape(format!(
                "{}: an override of a base service may set only `environment`",
                entry.name
            )));
        }
        let mut env = std::mem::take(&mut existing.env);
        env.extend(entry.env);
        existing.env = last_wins(env);
    }
    Ok(base)
}

/// The container port of each `ports:` entry: `[HOST:][PUBLISHED:]TARGET[/PROTOCOL]`
/// or `{target: TARGET, …}`.
fn published_targets(ports: &Value) -> Vec<u16> {
    let entries = match ports {
        Value::Array(items) => items.as_slice(),
        _ => &[],
    };
    entries
        .iter()
        .filter_map(|entry| match entry {
            Value::Object(_) => scalar(&entry["target"]),
            other => scalar(other).map(|short| {
                let port = short.rsplit(':').next().unwrap_or_default();
                port.split('/').next().unwrap_or_default().to_owned()
            }),
        })
        .filter_map(|port| port.parse().ok())
        .collect()
}

/// The names under `networks:` (a list, or a map of name to options);
/// [`DEFAULT_NETWORK`] when it names none.
fn networks(value: &Value) -> Vec<String> {
    let names: Vec<String> = match value {
        Value::Object(map) => map.keys().cloned().collect(),
        other => string_list(other, "name"),
    };
    if names.is_empty() {
        vec![DEFAULT_NETWORK.to_owned()]
    } else {
        names
    }
}

/// A list of strings, or of objects whose `key` is the string (compose's
/// long syntax).
fn string_list(value: &Value, key: &str) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(|item| scalar(item).or_else(|| scalar(&item[key])))
            .collect(),
        _ => Vec::new(),
    }
}

/// `KEY=VALUE` lines; blank lines and `#` comments skipped.
pub fn parse_env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .collect()
}

/// Keeps the last value of each key, in first-seen order.
pub(crate) fn last_wins(env: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(env.len());
    for (key, value) in env {
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => out.push((key, value)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `compose` read from an empty directory (no env files beside it).
    fn parse(compose: &str) -> Result<Vec<ComposeService>, Error> {
        let dir = tempfile::tempdir().expect("tempdir");
        services(compose, dir.path())
    }

    #[test]
    fn environment_overrides_env_files_and_anchors_merge() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("cart.env"),
            "# comment\nSHOP_DATABASE__URL=postgres://a\nSHOP_CURRENCY=USD\n",
        )
        .expect("write");
        let compose = "\
x-env: &env
  SHOP_REGISTRY__BACKEND: etcd
services:
  cart-1:
    build: {context: ., args: {SERVICE: cart}}
    env_file: [cart.env]
    environment:
      <<: *env
      SHOP_CURRENCY: EUR
      SHOP_HTTP__PORT: 8083
    secrets: [token]
    depends_on: {users: {condition: service_healthy}}
    healthcheck: {test: [CMD, x]}
";
        let services = services(compose, dir.path()).expect("parses");
        let cart = &services[0];
        assert_eq!(cart.service, Some(Service::Cart));
        let get = |key: &str| {
            cart.env
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("SHOP_CURRENCY"), Some("EUR"));
        assert_eq!(get("SHOP_DATABASE__URL"), Some("postgres://a"));
        assert_eq!(get("SHOP_REGISTRY__BACKEND"), Some("etcd"));
        assert_eq!(get("SHOP_HTTP__PORT"), Some("8083"));
        assert_eq!(cart.secret_files, ["/run/secrets/token"]);
        assert_eq!(
            cart.depends_on,
            [("users".to_owned(), "service_healthy".to_owned())]
        );
        assert!(cart.healthcheck);
        assert_eq!(cart.replicas, 1);
        assert_eq!(cart.image, None);
    }

    #[test]
    fn image_command_and_replicas_are_read() {
        let compose = "\
services:
  db:
    image: postgres:15-bookworm
    command: postgres -c max_connections=200
  cart:
    image: localhost/ferroshop/cart:0.1.0
    command: [serve, --port, 8083]
    deploy: {replicas: 3}
  old:
    scale: 2
  bad:
    deploy: {replicas: many}
";
        let err = parse(compose).expect_err("many is not a number");
        assert!(err.to_string().contains("bad"), "{err}");
        let services = parse(&compose.replace("many", "0")).expect("parses");
        let named = |name: &str| services.iter().find(|s| s.name == name).expect(name);
        let db = named("db");
        assert_eq!(db.image.as_deref(), Some("postgres:15-bookworm"));
        assert_eq!(db.command, ["postgres", "-c", "max_connections=200"]);
        assert_eq!(db.replicas, 1);
        let cart = named("cart");
        assert_eq!(cart.service, Some(Service::Cart));
        assert_eq!(cart.command, ["serve", "--port", "8083"]);
        assert_eq!(cart.replicas, 3);
        assert_eq!(named("old").replicas, 2);
        assert_eq!(named("bad").replicas, 0);
    }

    #[test]
    fn published_ports_are_read_as_the_container_ports_behind_them() {
        let compose = "\
services:
  gateway:
    ports:
      - '127.0.0.1:8080:8080'
      - 9080:9090/tcp
      - '7000'
      - {target: 9443, published: 443}
      - 'not a port'
";
        let services = parse(compose).expect("parses");
        assert_eq!(services[0].published_targets, [8080, 9090, 7000, 9443]);
    }

    #[test]
    fn a_typo_in_a_compose_environment_fails_the_check() {
        let compose = "\
services:
  catalog:
    image: ferroshop/catalog:0.1.0
    environment:
      SHOP_DATABASE__URL: postgres://c@postgres/catalog
      SHOP_REGISTRY__BACKEND: etcd
      SHOP_REGISTRY__ENDPOINTS: '[http://etcd:2379]'
      SHOP_INSTANCE__ADVERTISE_ADDR: catalog:8082
      SHOP_HTTP__PROT: '8082'
";
        let services = parse(compose).expect("parses");
        let catalog = &services[0];
        let problems = crate::check(Service::Catalog, crate::Topology::Compose, &catalog.env)
            .expect_err("SHOP_HTTP__PROT is a typo");
        assert!(problems[0].contains("prot"), "{problems:?}");
    }

    #[test]
    fn networks_are_read_as_lists_or_maps_and_default_to_default() {
        let compose = "\
services:
  gateway: {image: g}
  orders: {networks: [default, payments]}
  payments:
    networks:
      payments: {aliases: [pay]}
  etcd: {networks: {default: null, payments: null}}
";
        let services = parse(compose).expect("parses");
        let named = |name: &str| services.iter().find(|s| s.name == name).expect(name);
        assert_eq!(named("gateway").networks, ["default"]);
        assert_eq!(named("orders").networks, ["default", "payments"]);
        assert_eq!(named("payments").networks, ["payments"]);
        assert_eq!(named("etcd").networks, ["default", "payments"]);
        assert!(named("orders").shares_network(named("payments")));
        assert!(named("etcd").shares_network(named("payments")));
        assert!(!named("gateway").shares_network(named("payments")));
        assert!(named("gateway").shares_network(named("orders")));
    }

    #[test]
    fn profiles_are_read_and_default_to_none() {
        let compose = "\
services:
  prometheus: {image: p, profiles: [monitoring, debug]}
  gateway: {image: g}
";
        let services = parse(compose).expect("parses");
        let named = |name: &str| services.iter().find(|s| s.name == name).expect(name);
        assert_eq!(named("prometheus").profiles, ["monitoring", "debug"]);
        assert!(named("gateway").profiles.is_empty());
        // An overlay may not move a base service into a profile.
        let overlay = parse("services:\n  gateway: {profiles: [monitoring]}\n").expect("parses");
        let err = super::overlay(services, overlay).expect_err("only environment");
        assert!(err.to_string().contains("gateway"), "{err}");
    }

    #[test]
    fn a_missing_env_file_is_an_error() {
        let err = parse("services:\n  a:\n    env_file: nope.env\n").expect_err("missing");
        assert!(err.to_string().contains("nope.env"), "{err}");
    }
}
