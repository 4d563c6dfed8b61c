//! The deployment files against the services' own settings.
//!
//! `docker-compose.yml` is read with the env files `scripts/gen-secrets.sh`
//! writes (generated into a temporary folder), and `k8s/` is rendered with
//! `kubectl kustomize` (base and overlays, on a temporary copy with
//! generated secrets). Each service container's `SHOP_*` environment is then
//! loaded into that service's `Settings` exactly as at start-up, so a
//! misspelt or foreign key, a malformed value or a missing required key
//! fails here rather than in a crash-looping container.
//!
//! Who may call whom ([`Service::upstreams`]) is checked against the compose
//! networks and the NetworkPolicies: every call gets through, and no
//! service is reachable by more than its callers (payments by orders alone,
//! the storefront by the gateway alone), and the storefront reaches nothing
//! but the gateway. Only the gateway publishes a port. Every workload has a
//! PodDisruptionBudget.
//!
//! The database connection budget is checked on the same parsed files, and
//! then on copies with a replica count or a pool raised just past it, so the
//! check is seen failing on the real manifests too. Every image name is
//! checked against the one scheme: `<prefix>/ferroshop/<service>:<version>`.
//!
//! kubectl is found on PATH, in `$KUBECTL`, or where scripts/validate-deploy.sh
//! installs it. Without it the Kubernetes half is skipped with a note, and
//! fails under `CI=true`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use shop_deploy_check::budget::{self, Budget, BudgetError, OverBudget};
use shop_deploy_check::compose::{self, ComposeService};
use shop_deploy_check::k8s::{Manifests, Workload};
use shop_deploy_check::monitoring::{self, ScrapeTarget};
use shop_deploy_check::{Loaded, Service, Topology, check, load, split_host_port, stop};
use shop_discovery::RegistrySettings;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A temporary root with `k8s/` copied and fresh secrets generated into it.
fn generated_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("tempdir");
    copy_dir(&repo().join("k8s"), &root.path().join("k8s"));
    // Never the developer's own secrets: regenerate them.
    let _ = std::fs::remove_dir_all(root.path().join("k8s/base/secrets"));
    let status = Command::new("bash")
        .arg(repo().join("scripts/gen-secrets.sh"))
        .arg("--root")
        .arg(root.path())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run scripts/gen-secrets.sh");
    assert!(status.success(), "scripts/gen-secrets.sh failed");
    root
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

fn compose_services(root: &Path) -> Vec<ComposeService> {
    let text = std::fs::read_to_string(repo().join("docker-compose.yml")).expect("compose file");
    compose::services(&text, root).expect("compose file parses")
}

/// The fault harness's stack: docker-compose.yml with deploy/compose.faults.yml
/// laid over it, as `docker compose -f … -f …` merges them.
fn faults_services(root: &Path) -> Vec<ComposeService> {
    let text = std::fs::read_to_string(repo().join("deploy/compose.faults.yml"))
        .expect("deploy/compose.faults.yml");
    let extra = compose::services(&text, root).expect("deploy/compose.faults.yml parses");
    compose::overlay(compose_services(root), extra).expect("the overlay merges")
}

fn checked(service: Service, topology: Topology, id: &str, env: &[(String, String)]) -> Loaded {
    match check(service, topology, env) {
        Ok(loaded) => loaded,
        Err(problems) => panic!(
            "{id} would not start as configured:\n  {}",
            problems.join("\n  ")
        ),
    }
}

#[test]
fn every_compose_service_starts_with_its_environment() {
    let root = generated_root();
    let services = compose_services(root.path());
    let names: BTreeSet<&str> = services.iter().map(|s| s.name.as_str()).collect();
    let mut seen: BTreeMap<Service, Vec<&str>> = BTreeMap::new();
    let mut tokens = BTreeSet::new();
    let mut admin_ports = BTreeMap::new();
    for entry in &services {
        let Some(service) = entry.service else {
            continue;
        };
        seen.entry(service).or_default().push(&entry.name);
        let loaded = checked(service, Topology::Compose, &entry.name, &entry.env);

        // Others reach it at its advertised address: a compose service name
        // and the port it really binds.
        let advertised = loaded
            .instance
            .advertise_addr
            .as_deref()
            .unwrap_or_default();
        let (host, port) = split_host_port(advertised).unwrap_or_else(|| {
            panic!(
                "{}: advertise address {advertised:?} is not host:port",
                entry.name
            )
        });
        assert_eq!(
            host, entry.name,
            "{}: advertises another container's name",
            entry.name
        );
        assert_eq!(
            port, loaded.registered_port,
            "{}: advertises a port it does not bind",
            entry.name
        );

        if let Some(file) = &loaded.signing_key_file {
            assert!(
                entry.secret_files.contains(file),
                "{}: SHOP_AUTH__SIGNING_KEY_FILE={file} is not a mounted secret ({:?})",
                entry.name,
                entry.secret_files
            );
        }
        if let Some(url) = &loaded.database_url {
            assert!(
                url.ends_with(&format!("@postgres:5432/{}", service.name())),
                "{}: database URL must point at its own database on postgres",
                entry.name
            );
        }
        if let Some(token) = &loaded.service_token {
            tokens.insert(token.clone());
        }
        assert!(entry.healthcheck, "{}: no health check", entry.name);
        for (dependency, condition) in &entry.depends_on {
            assert!(
                names.contains(dependency.as_str()),
                "{}: depends on unknown {dependency}",
                entry.name
            );
            assert_eq!(
                condition, "service_healthy",
                "{}: waits for {dependency} to start, not to be healthy",
                entry.name
            );
        }
        let admin = admin_port(&entry.name, &loaded);
        admin_ports.insert(entry.name.clone(), admin);
    }
    assert_eq!(compose_publish_problems(&services), Vec::<String>::new());
    // scripts/compose-e2e.sh reads /metrics on each one's admin port: both
    // cart replicas', and catalog's and payments' (orders' saga reached them).
    let script =
        std::fs::read_to_string(repo().join("scripts/compose-e2e.sh")).expect("compose-e2e.sh");
    let mut read = Vec::new();
    for line in script.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let words: Vec<&str> = line.split_whitespace().collect();
        for pair in words.windows(3) {
            if pair[0].ends_with("api_requests") {
                let port: u16 = pair[2].trim_end_matches(')').parse().expect("a port");
                assert_eq!(
                    Some(&port),
                    admin_ports.get(pair[1]),
                    "compose-e2e.sh reads {}'s /metrics on {port}, not its admin port",
                    pair[1]
                );
                read.push(pair[1]);
            }
        }
    }
    for name in ["cart-1", "cart-2", "catalog", "payments"] {
        assert!(
            read.contains(&name),
            "compose-e2e.sh reads no /metrics of {name}"
        );
    }
    assert_eq!(
        tokens.len(),
        1,
        "every service but users must share one internal service token (orders presents it to catalog, cart and payments, web to the gateway)"
    );
    assert_every_service("compose runs no", |service| seen.contains_key(&service));
    assert_eq!(
        seen[&Service::Cart].len(),
        2,
        "compose runs two cart replicas"
    );
    assert_eq!(
        seen[&Service::Orders].len(),
        2,
        "compose runs two orders replicas"
    );
}

/// What compose publishes that it should not: only the gateway publishes a
/// port, and only its API port. The storefront above all is reached through
/// the gateway (which routes its pages and sets the `x-shop-client-ip` web
/// passes on); published, web would take any address a client claims, and
/// no admin port (`/metrics`) is ever published.
fn compose_publish_problems(services: &[ComposeService]) -> Vec<String> {
    let mut problems = Vec::new();
    for entry in services {
        let Some(service) = entry.service else {
            continue;
        };
        let loaded = load(service, &entry.env).expect("loads");
        if service != Service::Gateway && !entry.ports.is_empty() {
            problems.push(format!(
                "{}: publishes {:?}, but only the gateway publishes a port",
                entry.name, entry.ports
            ));
        }
        if let Some(admin) = loaded
            .admin_port
            .filter(|p| entry.published_targets.contains(p))
        {
            problems.push(format!(
                "{}: publishes its admin port {admin} (/metrics)",
                entry.name
            ));
        }
        if service == Service::Gateway && entry.published_targets != [loaded.http_port] {
            problems.push(format!(
                "{}: publishes {:?}, not its API port {} alone",
                entry.name, entry.published_targets, loaded.http_port
            ));
        }
    }
    problems
}

#[test]
fn compose_publishes_the_storefront_through_the_gateway_only() {
    let root = generated_root();
    let services = compose_services(root.path());
    let web = compose_entry(&services, "web");
    assert_eq!(web.service, Some(Service::Web));
    assert!(web.ports.is_empty(), "web publishes {:?}", web.ports);
    // The gateway comes up once web is healthy, as with its other upstreams.
    let gateway = compose_entry(&services, "gateway");
    assert!(
        gateway
            .depends_on
            .contains(&("web".to_owned(), "service_healthy".to_owned())),
        "gateway: {:?}",
        gateway.depends_on
    );

    // web's port published on the host is named.
    let mut published = services.clone();
    let web = compose_entry_mut(&mut published, "web");
    web.ports.push("127.0.0.1:8087:8087".to_owned());
    web.published_targets.push(8087);
    let found = compose_publish_problems(&published).join("\n");
    assert!(
        found.contains("web: publishes [\"127.0.0.1:8087:8087\"], but only the gateway"),
        "{found}"
    );
    // So is its admin port, and a second port of the gateway.
    let mut published = services.clone();
    compose_entry_mut(&mut published, "web")
        .published_targets
        .push(9087);
    compose_entry_mut(&mut published, "gateway")
        .published_targets
        .push(8087);
    let found = compose_publish_problems(&published).join("\n");
    assert!(
        found.contains("web: publishes its admin port 9087"),
        "{found}"
    );
    assert!(found.contains("gateway: publishes [8080, 8087]"), "{found}");
}

/// The port `/metrics` is served on; it is never the API port (but for
/// orders, whose HTTP listener is its admin listener: its API is gRPC).
fn admin_port(id: &str, loaded: &Loaded) -> u16 {
    let admin = loaded
        .admin_port
        .unwrap_or_else(|| panic!("{id}: admin.enabled is off, so nothing serves /metrics"));
    if loaded.service != Service::Orders {
        assert_ne!(admin, loaded.http_port, "{id}: /metrics on the API port");
    }
    admin
}

/// The services on a network of their own, with what may share it: every
/// other ferroshop service must share no network with them. payments takes
/// money, so only its callers (orders) may reach it. web holds the internal
/// service token and renders pages for anyone: it may share a network with
/// the gateway alone (its caller and its one upstream), so it can open no
/// connection to the internal routes of catalog, cart or payments.
const ISOLATED: [Service; 2] = [Service::Payments, Service::Web];

/// What is wrong with who can reach whom in compose: a call
/// ([`Service::upstreams`]) between containers that share no network, or a
/// ferroshop container sharing a network with an [`ISOLATED`] service it
/// neither calls nor is called by.
fn compose_network_problems(services: &[ComposeService]) -> Vec<String> {
    let mut problems = Vec::new();
    for caller in services {
        let Some(service) = caller.service else {
            continue;
        };
        for upstream in service.upstreams() {
            for callee in services
                .iter()
                .filter(|c| c.service.is_some_and(|s| s.name() == *upstream))
            {
                if !caller.shares_network(callee) {
                    problems.push(format!(
                        "{} calls {} but shares no network with it ({:?} and {:?})",
                        caller.name, callee.name, caller.networks, callee.networks
                    ));
                }
            }
        }
    }
    // Only its callers and upstreams may share a network with an isolated
    // service (the infrastructure, etcd and PostgreSQL, runs no ferroshop
    // service).
    for isolated in ISOLATED {
        let mut peers = isolated.callers();
        peers.extend(
            isolated
                .upstreams()
                .iter()
                .filter_map(|name| Service::from_name_or_image(name)),
        );
        for entry in services.iter().filter(|s| s.service == Some(isolated)) {
            for other in services.iter().filter(|o| o.name != entry.name) {
                let Some(service) = other.service else {
                    continue;
                };
                if !peers.contains(&service) && other.shares_network(entry) {
                    problems.push(format!(
                        "{} shares a network with {} ({:?}), which only {:?} may reach",
                        other.name, entry.name, other.networks, peers
                    ));
                }
            }
        }
    }
    problems
}

#[test]
fn compose_networks_let_every_call_through_and_isolate_payments_and_web() {
    let root = generated_root();
    let services = compose_services(root.path());
    assert_eq!(compose_network_problems(&services), Vec::<String>::new());
    let payments = compose_entry(&services, "payments");
    assert!(
        !payments
            .networks
            .contains(&compose::DEFAULT_NETWORK.to_owned()),
        "payments must not be on the default network: {:?}",
        payments.networks
    );

    // The gateway put on payments' network is named.
    let mut opened = services.clone();
    compose_entry_mut(&mut opened, "gateway")
        .networks
        .push("payments".to_owned());
    let found = compose_network_problems(&opened).join("\n");
    assert!(
        found.contains("gateway shares a network with payments"),
        "{found}"
    );

    // web is on its own network, with the gateway.
    let web = compose_entry(&services, "web");
    assert!(
        !web.networks.contains(&compose::DEFAULT_NETWORK.to_owned()),
        "web must not be on the default network: {:?}",
        web.networks
    );
    // web put on the default network would share it with every service
    // behind the gateway.
    let mut opened = services.clone();
    compose_entry_mut(&mut opened, "web")
        .networks
        .push(compose::DEFAULT_NETWORK.to_owned());
    let found = compose_network_problems(&opened).join("\n");
    for other in ["catalog", "cart-1", "users", "orders-2"] {
        assert!(
            found.contains(&format!("{other} shares a network with web")),
            "{found}"
        );
    }
    // catalog put on web's network is named.
    let mut opened = services.clone();
    compose_entry_mut(&mut opened, "catalog")
        .networks
        .push("web".to_owned());
    let found = compose_network_problems(&opened).join("\n");
    assert!(
        found.contains("catalog shares a network with web"),
        "{found}"
    );
    // The gateway taken off web's network: neither reaches the other.
    let mut cut = services.clone();
    compose_entry_mut(&mut cut, "gateway")
        .networks
        .retain(|n| n != "web");
    let found = compose_network_problems(&cut).join("\n");
    assert!(
        found.contains("web calls gateway but shares no network with it")
            && found.contains("gateway calls web but shares no network with it"),
        "{found}"
    );

    // Either orders replica taken off payments' network can no longer call it.
    for replica in ["orders-1", "orders-2"] {
        let mut cut = services.clone();
        compose_entry_mut(&mut cut, replica)
            .networks
            .retain(|n| n != "payments");
        let found = compose_network_problems(&cut).join("\n");
        assert!(
            found.contains(&format!(
                "{replica} calls payments but shares no network with it"
            )),
            "{found}"
        );
    }
}

fn kubectl() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("KUBECTL").map(PathBuf::from),
        Some(PathBuf::from("kubectl")),
        std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".cache/ferroshop/deploy-tools/venv/bin/kubectl")),
    ];
    candidates.into_iter().flatten().find(|candidate| {
        Command::new(candidate)
            .args(["version", "--client"])
            .output()
            .is_ok_and(|out| out.status.success())
    })
}

fn render(kubectl: &Path, dir: &Path) -> Manifests {
    let out = Command::new(kubectl)
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("run kubectl kustomize");
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Manifests::parse(&String::from_utf8_lossy(&out.stdout)).expect("rendered YAML parses")
}

/// The base and every overlay.
const TARGETS: [&str; 3] = ["k8s", "k8s/overlays/dev", "k8s/overlays/prod"];

/// Every target rendered; `None` (after a note) when kubectl is missing
/// outside CI.
fn rendered_targets() -> Option<Vec<(&'static str, Manifests)>> {
    let Some(kubectl) = kubectl() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "kubectl is needed under CI=true (scripts/validate-deploy.sh installs it)"
        );
        eprintln!("note: kubectl not found; skipping the Kubernetes deploy-config checks");
        return None;
    };
    let root = generated_root();
    Some(
        TARGETS
            .into_iter()
            .map(|target| (target, render(&kubectl, &root.path().join(target))))
            .collect(),
    )
}

#[test]
fn every_kubernetes_workload_starts_with_its_environment() {
    let Some(targets) = rendered_targets() else {
        return;
    };
    for (target, manifests) in &targets {
        let services = manifests.services();
        let mut seen = BTreeSet::new();
        for workload in manifests.workloads().expect("references resolve") {
            let Some(service) = workload.service else {
                continue;
            };
            seen.insert(service);
            let id = format!("{target}: {}", workload.id);
            let loaded = checked(service, Topology::Kubernetes, &id, &workload.env);

            let admin = admin_port(&id, &loaded);
            assert!(
                workload.ports.contains(&loaded.http_port)
                    && workload.ports.contains(&loaded.registered_port)
                    && workload.ports.contains(&admin),
                "{id}: container ports {:?} do not include the ports it binds",
                workload.ports
            );
            let problems = manifests.admin_port_problems(&workload, admin);
            assert!(
                problems.is_empty(),
                "{id}: /metrics on port {admin}:\n  {}",
                problems.join("\n  ")
            );
            if let Some(file) = &loaded.signing_key_file {
                assert!(
                    workload.files.contains(file),
                    "{id}: {file} is not mounted ({:?})",
                    workload.files
                );
            }
            // Every DNS name it resolves is a headless Service on the right port.
            let RegistrySettings::Dns(dns) = &loaded.registry else {
                unreachable!("check() requires dns on Kubernetes");
            };
            for upstream in service.upstreams() {
                let target_service = &dns.services[*upstream];
                let found = services.iter().find(|s| s.name == target_service.host);
                let found = found.unwrap_or_else(|| {
                    panic!(
                        "{id}: {upstream} resolves {}, which is not a rendered Service",
                        target_service.host
                    )
                });
                assert!(
                    found.headless,
                    "{id}: {} must be headless (one record per pod)",
                    found.name
                );
                assert!(
                    found.ports.contains(&target_service.port),
                    "{id}: {} has no port {}",
                    found.name,
                    target_service.port
                );
                assert_eq!(
                    found
                        .selector
                        .get("app.kubernetes.io/name")
                        .map(String::as_str),
                    Some(*upstream),
                    "{id}: {} selects the wrong pods",
                    found.name
                );
            }
            // Locked down as the brief says.
            let pod = &workload.pod;
            let container = &workload.spec;
            assert_eq!(
                pod["automountServiceAccountToken"], false,
                "{id}: mounts a token"
            );
            assert_eq!(
                pod["securityContext"]["runAsNonRoot"], true,
                "{id}: may run as root"
            );
            assert_eq!(
                pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
                "{id}"
            );
            assert_eq!(
                container["securityContext"]["readOnlyRootFilesystem"], true,
                "{id}"
            );
            assert_eq!(
                container["securityContext"]["capabilities"]["drop"][0], "ALL",
                "{id}"
            );
            for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
                assert!(container[probe].is_object(), "{id}: no {probe}");
            }
            for (resources, what) in [("requests", "request"), ("limits", "limit")] {
                assert!(
                    container["resources"][resources]["memory"].is_string(),
                    "{id}: no memory {what}"
                );
            }
        }
        let deploys = format!("{target} deploys no");
        assert_every_service(&deploys, |service| seen.contains(&service));
    }
}

#[test]
fn kubernetes_admin_ports_opened_beyond_monitoring_fail_naming_the_policy() {
    let Some(targets) = rendered_targets() else {
        return;
    };
    for (target, manifests) in targets {
        let problems_of = |manifests: &Manifests, service: Service| {
            let workload = manifests
                .workloads()
                .expect("resolves")
                .into_iter()
                .find(|w| w.service == Some(service))
                .expect("deployed");
            let loaded = load(service, &workload.env).expect("loads");
            manifests
                .admin_port_problems(&workload, loaded.admin_port.expect("admin on"))
                .join("\n")
        };

        // The Ingress controller's namespace added to the metrics policy.
        let mut opened = manifests.clone();
        let rule = &mut opened
            .get_mut("NetworkPolicy", "metrics")
            .unwrap_or_else(|| panic!("{target}: no NetworkPolicy/metrics"))["spec"]["ingress"][0];
        match &mut rule["from"] {
            Value::Array(peers) => peers.push(json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}})),
            other => panic!("{target}: metrics policy has no from list: {other}"),
        }
        let found = problems_of(&opened, Service::Gateway);
        eprintln!("{target}, metrics policy opened: {found}");
        assert!(
            found.contains("NetworkPolicy/metrics admits port 9080")
                && found.contains("ingress-nginx"),
            "{target}: {found}"
        );

        // The gateway's own policy opened to every port.
        let mut opened = manifests.clone();
        opened
            .get_mut("NetworkPolicy", "gateway")
            .expect("rendered")["spec"]["ingress"][0]
            .as_object_mut()
            .expect("a rule")
            .remove("ports");
        let found = problems_of(&opened, Service::Gateway);
        assert!(
            found.contains("NetworkPolicy/gateway admits port 9080"),
            "{target}: {found}"
        );

        // A Deployment without its admin port or annotations.
        let mut bare = manifests.clone();
        let template =
            &mut bare.get_mut("Deployment", "users").expect("rendered")["spec"]["template"];
        template["metadata"]
            .as_object_mut()
            .expect("metadata")
            .remove("annotations");
        template["spec"]["containers"][0]["ports"] =
            json!([{"name": "http", "containerPort": 8081}]);
        let found = problems_of(&bare, Service::Users);
        assert!(
            found.contains("no container port named \"admin\""),
            "{target}: {found}"
        );
        assert!(found.contains("prometheus.io/scrape"), "{target}: {found}");
    }
}

#[test]
fn both_stacks_run_the_one_postgres_init_script() {
    let compose =
        std::fs::read_to_string(repo().join("docker-compose.yml")).expect("docker-compose.yml");
    assert!(
        compose.contains("./k8s/base/postgres/init.sh:/docker-entrypoint-initdb.d/"),
        "docker-compose.yml must mount k8s/base/postgres/init.sh, the script kustomize packs"
    );
    assert!(repo().join("k8s/base/postgres/init.sh").is_file());
}

/// What is wrong with who can reach whom in rendered manifests: a call
/// ([`Service::upstreams`], and every database owner to PostgreSQL) the
/// NetworkPolicies do not let through, or a service's API port admitting
/// more than its callers (sources beyond the namespace only for the
/// gateway, behind the Ingress controller).
fn kubernetes_call_problems(manifests: &Manifests) -> Vec<String> {
    let workloads = manifests.workloads().expect("references resolve");
    let postgres = workloads
        .iter()
        .find(|w| shop_deploy_check::budget::is_postgres_image(&w.image));
    let mut problems = Vec::new();
    let of = |service: Service| -> Vec<(&Workload, Loaded)> {
        workloads
            .iter()
            .filter(|w| w.service == Some(service))
            .map(|w| (w, load(service, &w.env).expect("loads")))
            .collect()
    };
    for service in Service::ALL {
        for (workload, loaded) in of(service) {
            let mut calls: Vec<(&Workload, u16)> = Vec::new();
            for upstream in service.upstreams() {
                let upstream = Service::from_name_or_image(upstream).expect("a service");
                calls.extend(
                    of(upstream)
                        .into_iter()
                        .map(|(w, l)| (w, l.registered_port)),
                );
            }
            if let Some(postgres) = postgres.filter(|_| service.owns_database()) {
                calls.push((postgres, 5432));
            }
            for (callee, port) in calls {
                problems.extend(manifests.unreachable(workload, callee, port));
            }
            // Who reaches its API port: exactly its callers' pods.
            let reach = manifests.who_may_reach(workload, loaded.registered_port, &workloads);
            let callers: BTreeSet<String> = service
                .callers()
                .into_iter()
                .flat_map(|caller| of(caller).into_iter().map(|(w, _)| w.id.clone()))
                .collect();
            if reach.workloads != callers {
                problems.push(format!(
                    "{} port {}: admits {:?}, but only {:?} call it",
                    workload.id, loaded.registered_port, reach.workloads, callers
                ));
            }
            if service != Service::Gateway && !reach.beyond.is_empty() {
                problems.push(format!(
                    "{} port {}: {}",
                    workload.id,
                    loaded.registered_port,
                    reach.beyond.join("; ")
                ));
            }
        }
    }
    problems
}

#[test]
fn kubernetes_policies_let_every_call_through_and_only_orders_reach_payments() {
    let Some(targets) = rendered_targets() else {
        return;
    };
    for (target, manifests) in targets {
        assert_eq!(
            kubernetes_call_problems(&manifests),
            Vec::<String>::new(),
            "{target}"
        );

        // The gateway admitted to payments.
        let mut opened = manifests.clone();
        let rule = &mut opened
            .get_mut("NetworkPolicy", "payments")
            .unwrap_or_else(|| panic!("{target}: no NetworkPolicy/payments"))["spec"]["ingress"][0];
        match &mut rule["from"] {
            Value::Array(peers) => peers.push(
                json!({"podSelector": {"matchLabels": {"app.kubernetes.io/name": "gateway"}}}),
            ),
            other => panic!("{target}: payments policy has no from list: {other}"),
        }
        let found = kubernetes_call_problems(&opened).join("\n");
        eprintln!("{target}, payments opened to the gateway: {found}");
        assert!(
            found.contains("Deployment/payments port 8086: admits")
                && found.contains("Deployment/gateway"),
            "{target}: {found}"
        );

        // Another namespace admitted to payments.
        let mut opened = manifests.clone();
        opened
            .get_mut("NetworkPolicy", "payments")
            .expect("rendered")["spec"]["ingress"][0]["from"][0] = json!({"namespaceSelector": {}});
        let found = kubernetes_call_problems(&opened).join("\n");
        assert!(
            found.contains("NetworkPolicy/payments admits {\"namespaceSelector\":{}}"),
            "{target}: {found}"
        );

        // orders' egress to payments and to catalog removed, one at a time.
        for (callee, port) in [("payments", 8086), ("catalog", 8082)] {
            let mut cut = manifests.clone();
            let egress =
                &mut cut.get_mut("NetworkPolicy", "orders").expect("rendered")["spec"]["egress"];
            match egress {
                Value::Array(rules) => rules.retain(|rule| {
                    rule["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] != callee
                }),
                other => panic!("{target}: orders policy has no egress list: {other}"),
            }
            let found = kubernetes_call_problems(&cut).join("\n");
            assert!(
                found.contains(&format!(
                    "no egress rule of a NetworkPolicy selecting Deployment/orders lets it reach Deployment/{callee} on port {port}"
                )),
                "{target}: {found}"
            );
        }
    }
}

/// Every port of a workload other than the gateway that web's pods could
/// open a connection to: web is a client of the public API, so it must
/// reach the gateway's API port and nothing else (DNS aside), above all no
/// internal route of the services behind the gateway (web holds the
/// internal service token).
fn web_reach_problems(manifests: &Manifests) -> Vec<String> {
    let workloads = manifests.workloads().expect("references resolve");
    let mut problems = Vec::new();
    for web in workloads.iter().filter(|w| w.service == Some(Service::Web)) {
        for other in &workloads {
            if other.id == web.id || other.service == Some(Service::Gateway) {
                continue;
            }
            for &port in &other.ports {
                if manifests.unreachable(web, other, port).is_none() {
                    problems.push(format!("{} can reach {} on port {port}", web.id, other.id));
                }
            }
        }
    }
    problems
}

/// Removes from `NetworkPolicy/policy`'s `direction` (`ingress`, `egress`)
/// the rules whose peers select pods named `peer`.
fn drop_rules(manifests: &mut Manifests, policy: &str, direction: &str, peer: &str) {
    let side = if direction == "ingress" { "from" } else { "to" };
    match &mut manifests
        .get_mut("NetworkPolicy", policy)
        .unwrap_or_else(|| panic!("no NetworkPolicy/{policy}"))["spec"][direction]
    {
        Value::Array(rules) => rules.retain(|rule| {
            rule[side][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] != peer
        }),
        other => panic!("NetworkPolicy/{policy} has no {direction} list: {other}"),
    }
}

#[test]
fn kubernetes_policies_let_the_gateway_reach_web_and_web_the_gateway_alone() {
    let Some(targets) = rendered_targets() else {
        return;
    };
    for (target, manifests) in targets {
        assert_eq!(
            web_reach_problems(&manifests),
            Vec::<String>::new(),
            "{target}"
        );

        // Each side of each path cut in turn is named.
        for (policy, direction, peer, expected) in [
            (
                "gateway",
                "egress",
                "web",
                "no egress rule of a NetworkPolicy selecting Deployment/gateway lets it reach Deployment/web on port 8087",
            ),
            (
                "web",
                "ingress",
                "gateway",
                "no ingress rule of a NetworkPolicy selecting Deployment/web admits Deployment/gateway on port 8087",
            ),
            (
                "web",
                "egress",
                "gateway",
                "no egress rule of a NetworkPolicy selecting Deployment/web lets it reach Deployment/gateway on port 8080",
            ),
            (
                "gateway",
                "ingress",
                "web",
                "no ingress rule of a NetworkPolicy selecting Deployment/gateway admits Deployment/web on port 8080",
            ),
        ] {
            let mut cut = manifests.clone();
            drop_rules(&mut cut, policy, direction, peer);
            let found = kubernetes_call_problems(&cut).join("\n");
            assert!(
                found.contains(expected),
                "{target}: {policy} {direction} without {peer}: {found}"
            );
        }

        // web let through to catalog's internal routes (its egress and
        // catalog's ingress both opened) is named by both checks.
        let mut opened = manifests.clone();
        let web = json!({"podSelector": {"matchLabels": {"app.kubernetes.io/name": "web"}}});
        let catalog =
            json!({"podSelector": {"matchLabels": {"app.kubernetes.io/name": "catalog"}}});
        match &mut opened.get_mut("NetworkPolicy", "web").expect("rendered")["spec"]["egress"] {
            Value::Array(rules) => {
                rules.push(json!({"to": [catalog], "ports": [{"protocol": "TCP", "port": 8082}]}))
            }
            other => panic!("{target}: web policy has no egress list: {other}"),
        }
        match &mut opened
            .get_mut("NetworkPolicy", "catalog")
            .expect("rendered")["spec"]["ingress"][0]["from"]
        {
            Value::Array(peers) => peers.push(web),
            other => panic!("{target}: catalog policy has no from list: {other}"),
        }
        let found = web_reach_problems(&opened).join("\n");
        assert!(
            found.contains("Deployment/web can reach Deployment/catalog on port 8082"),
            "{target}: {found}"
        );
        let found = kubernetes_call_problems(&opened).join("\n");
        assert!(
            found.contains("Deployment/catalog port 8082: admits")
                && found.contains("Deployment/web"),
            "{target}: {found}"
        );
    }
}

#[test]
fn every_kubernetes_workload_has_a_disruption_budget() {
    let Some(targets) = rendered_targets() else {
        return;
    };
    let budgets_of = |manifests: &Manifests| -> BTreeMap<Service, Vec<String>> {
        let workloads = manifests.workloads().expect("references resolve");
        workloads
            .iter()
            .filter_map(|w| Some((w.service?, manifests.disruption_budgets(w))))
            .collect()
    };
    for (target, manifests) in targets {
        let budgets = budgets_of(&manifests);
        assert_every_service(
            &format!("{target}: no PodDisruptionBudget for"),
            |service| budgets.get(&service).is_some_and(|names| names.len() == 1),
        );
        assert_eq!(budgets[&Service::Payments], ["payments"], "{target}");

        // Without payments' budget, the check names it.
        let mut without = manifests.clone();
        without
            .get_mut("PodDisruptionBudget", "payments")
            .expect("rendered")["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] =
            json!("nothing");
        let budgets = budgets_of(&without);
        assert!(budgets[&Service::Payments].is_empty(), "{target}");
    }
}

// ---- stopping: shutdown delay, drain, compose's grace and k8s' preStop

/// Why compose may kill a service before it has stopped.
fn compose_stop_problems(services: &[ComposeService]) -> Vec<String> {
    services
        .iter()
        .filter_map(|entry| {
            let loaded = load(entry.service?, &entry.env).expect("loads");
            stop::compose_problem(entry, &loaded)
        })
        .collect()
}

#[test]
fn every_compose_service_serves_on_while_deregistered_and_is_given_time_to_stop() {
    let root = generated_root();
    let services = compose_services(root.path());
    assert_eq!(compose_stop_problems(&services), Vec::<String>::new());
    for entry in &services {
        let Some(service) = entry.service else {
            continue;
        };
        let loaded = load(service, &entry.env).expect("loads");
        // orders' API listener is its gRPC one (SHOP_GRPC__SHUTDOWN_DELAY_MS).
        assert!(
            !loaded.shutdown_delay.is_zero(),
            "{}: no shutdown delay (SHOP_HTTP__SHUTDOWN_DELAY_MS): callers whose etcd watch lags meet refused connections",
            entry.name
        );
    }

    // A grace period cut below the stop time is named.
    let mut short = services.clone();
    compose_entry_mut(&mut short, "cart-1").stop_grace_period = Some("5s".to_owned());
    let found = compose_stop_problems(&short).join("\n");
    assert!(
        found.contains("cart-1: stop_grace_period 5 s is shorter than its stop"),
        "{found}"
    );
    // compose's default (10 s) is too short for the default drain alone.
    let mut unset = services.clone();
    compose_entry_mut(&mut unset, "users").stop_grace_period = None;
    let found = compose_stop_problems(&unset).join("\n");
    assert!(found.contains("users: stop_grace_period 10 s"), "{found}");
}

/// Why Kubernetes may kill a Deployment's pod before it has stopped, or
/// keep routing to it while it stops.
fn kubernetes_stop_problems(manifests: &Manifests) -> Vec<String> {
    manifests
        .workloads()
        .expect("references resolve")
        .iter()
        .filter_map(|workload| {
            let loaded = load(workload.service?, &workload.env).expect("loads");
            stop::kubernetes_problem(workload, &loaded)
        })
        .collect()
}

/// The first container of `Deployment/name`.
fn deployment_container<'a>(manifests: &'a mut Manifests, name: &str) -> &'a mut Value {
    &mut manifests
        .get_mut("Deployment", name)
        .unwrap_or_else(|| panic!("no Deployment/{name}"))["spec"]["template"]["spec"]["containers"]
        [0]
}

#[test]
fn every_kubernetes_deployment_leaves_endpoints_before_stopping_and_is_given_time_to_stop() {
    let Some(targets) = rendered_targets() else {
        return;
    };
    for (target, manifests) in targets {
        assert_eq!(
            kubernetes_stop_problems(&manifests),
            Vec::<String>::new(),
            "{target}"
        );
        let workloads = manifests.workloads().expect("references resolve");
        let cart = workloads
            .iter()
            .find(|w| w.service == Some(Service::Cart))
            .expect("a cart workload");
        let pre_stop = stop::pre_stop_sleep_secs(cart).expect("a preStop sleep");
        let stop_time = load(Service::Cart, &cart.env).expect("loads").stop_time;
        eprintln!(
            "{target}: cart preStop {pre_stop} s, stop {} s, grace {} s",
            stop_time.as_secs_f64(),
            stop::termination_grace_secs(cart).expect("a number")
        );

        // The grace period lowered one second below preStop + stop.
        let needed = pre_stop + stop_time.as_secs() + u64::from(stop_time.subsec_nanos() > 0);
        let mut short = manifests.clone();
        short.get_mut("Deployment", "cart").expect("rendered")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] =
            json!(needed - 1);
        let found = kubernetes_stop_problems(&short).join("\n");
        assert!(
            found.contains(&format!(
                "Deployment/cart: terminationGracePeriodSeconds {} is shorter than preStop",
                needed - 1
            )),
            "{target}: {found}"
        );

        // Without its preStop, the Deployment is named.
        let mut bare = manifests.clone();
        deployment_container(&mut bare, "orders")
            .as_object_mut()
            .expect("a container")
            .remove("lifecycle");
        let found = kubernetes_stop_problems(&bare).join("\n");
        assert!(
            found.contains("Deployment/orders: container orders has no lifecycle.preStop sleep"),
            "{target}: {found}"
        );
    }
}

// ---- the database connection budget

/// The connections an instance holds beside its pool: its readiness
/// check's own.
const PROBE: u64 = shop_common::db::READINESS_CONNECTIONS as u64;

/// The services that hold database connections, as every budget must count them.
const DATABASE_SERVICES: [Service; 5] = [
    Service::Users,
    Service::Catalog,
    Service::Cart,
    Service::Orders,
    Service::Payments,
];

fn assert_counts_every_database_service(what: &str, budget: &Budget) {
    for service in DATABASE_SERVICES {
        assert!(
            budget.of(service) > 0,
            "{what}: the budget does not count {} ({budget})",
            service.name()
        );
    }
    // The gateway and web hold no database connection.
    for service in Service::ALL.into_iter().filter(|s| !s.owns_database()) {
        assert!(!DATABASE_SERVICES.contains(&service));
        assert_eq!(budget.of(service), 0, "{what}: {} counted", service.name());
    }
}

/// What `service`'s share reads in the error, which lists every share.
fn assert_names_share(over: &OverBudget, service: Service, expected_total: u64) {
    assert_eq!(over.0.of(service), expected_total, "{over}");
    let text = over.to_string();
    for share in over.0.shares.iter().filter(|s| s.service == service) {
        let named = format!(
            "{} {}×{} = {}",
            service.name(),
            share.instances,
            share.connections,
            share.total()
        );
        assert!(text.contains(&named), "{named:?} not in: {text}");
    }
}

/// The largest count of `unit`-sized pieces that fits in what the budget
/// leaves once `own` (the share about to be resized) is taken out.
fn largest_fitting(budget: &Budget, own: u64, unit: u64) -> u64 {
    let room = budget.limits.available() - (budget.used - own);
    room / unit
}

fn compose_entry<'a>(services: &'a [ComposeService], name: &str) -> &'a ComposeService {
    services
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("compose has no {name}"))
}

fn compose_entry_mut<'a>(services: &'a mut [ComposeService], name: &str) -> &'a mut ComposeService {
    services
        .iter_mut()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("compose has no {name}"))
}

fn set_env(env: &mut Vec<(String, String)>, key: &str, value: &str) {
    env.retain(|(k, _)| k != key);
    env.push((key.to_owned(), value.to_owned()));
}

fn over(result: Result<Budget, BudgetError>, what: &str) -> OverBudget {
    match result {
        Err(BudgetError::Over(over)) => over,
        Ok(budget) => panic!("{what}: still fits: {budget}"),
        Err(other) => panic!("{what}: {other}"),
    }
}

#[test]
fn compose_fits_the_connection_budget() {
    let root = generated_root();
    let services = compose_services(root.path());
    let budget =
        budget::compose(&services).unwrap_or_else(|err| panic!("docker-compose.yml: {err}"));
    eprintln!("docker-compose.yml: {budget}");
    assert_counts_every_database_service("docker-compose.yml", &budget);
}

#[test]
fn compose_past_the_connection_budget_fails_naming_the_service() {
    let root = generated_root();
    let services = compose_services(root.path());
    let before = budget::compose(&services).expect("the real file fits");

    // One more cart-1 replica than fits.
    let per_cart = u64::from(
        load(Service::Cart, &compose_entry(&services, "cart-1").env)
            .expect("cart-1 loads")
            .database_connections,
    );
    let cart_1 = u64::from(compose_entry(&services, "cart-1").replicas);
    let fits = largest_fitting(&before, cart_1 * per_cart, per_cart);
    let mut raised = services.clone();
    compose_entry_mut(&mut raised, "cart-1").replicas = u32::try_from(fits).expect("small");
    let at_limit = budget::compose(&raised).expect("exactly at the limit still fits");
    eprintln!("docker-compose.yml, cart-1 × {fits}: {at_limit}");
    compose_entry_mut(&mut raised, "cart-1").replicas = u32::try_from(fits + 1).expect("small");
    let err = over(budget::compose(&raised), "cart-1 raised");
    eprintln!("docker-compose.yml, cart-1 × {}: {err}", fits + 1);
    assert_names_share(
        &err,
        Service::Cart,
        before.of(Service::Cart) + per_cart * (fits + 1 - cart_1),
    );

    // A users pool one connection past what fits.
    let users = u64::from(compose_entry(&services, "users").replicas);
    let each = largest_fitting(&before, before.of(Service::Users), users) + 1;
    let pool = each - PROBE;
    let mut raised = services.clone();
    set_env(
        &mut compose_entry_mut(&mut raised, "users").env,
        "SHOP_DATABASE__MAX_CONNECTIONS",
        &pool.to_string(),
    );
    let err = over(budget::compose(&raised), "users pool raised");
    eprintln!("docker-compose.yml, users pool {pool}: {err}");
    assert_names_share(&err, Service::Users, users * each);

    // A payments pool one connection past what fits: payments counts too.
    let payments = u64::from(compose_entry(&services, "payments").replicas);
    let each = largest_fitting(&before, before.of(Service::Payments), payments) + 1;
    let pool = each - PROBE;
    let mut raised = services.clone();
    set_env(
        &mut compose_entry_mut(&mut raised, "payments").env,
        "SHOP_DATABASE__MAX_CONNECTIONS",
        &pool.to_string(),
    );
    let err = over(budget::compose(&raised), "payments pool raised");
    eprintln!("docker-compose.yml, payments pool {pool}: {err}");
    assert_names_share(&err, Service::Payments, payments * each);
}

#[test]
fn every_kubernetes_target_fits_the_connection_budget() {
    let Some(targets) = rendered_targets() else {
        return;
    };
    for (target, manifests) in &targets {
        let workloads = manifests.workloads().expect("references resolve");
        let budget = budget::kubernetes(&workloads).unwrap_or_else(|err| panic!("{target}: {err}"));
        eprintln!("{target}: {budget}");
        assert_counts_every_database_service(target, &budget);
    }
}

/// The env list of the first container of `Deployment/name`.
fn deployment_env<'a>(manifests: &'a mut Manifests, name: &str) -> &'a mut Vec<Value> {
    let container = &mut manifests
        .get_mut("Deployment", name)
        .unwrap_or_else(|| panic!("no Deployment/{name}"))["spec"]["template"]["spec"]["containers"]
        [0];
    if !container["env"].is_array() {
        container["env"] = json!([]);
    }
    match &mut container["env"] {
        Value::Array(env) => env,
        _ => unreachable!("just made an array"),
    }
}

#[test]
fn kubernetes_past_the_connection_budget_fails_naming_the_service() {
    let Some(targets) = rendered_targets() else {
        return;
    };
    for (target, manifests) in targets {
        let workloads = manifests.workloads().expect("references resolve");
        let before = budget::kubernetes(&workloads).expect("the real manifests fit");

        // More cart pods than fit: through the autoscaler's maxReplicas where
        // one targets cart (base, prod), else the Deployment's replicas (dev).
        let cart = workloads
            .iter()
            .find(|w| w.service == Some(Service::Cart))
            .expect("a cart workload");
        let per_cart = u64::from(
            load(Service::Cart, &cart.env)
                .expect("loads")
                .database_connections,
        );
        let fits = largest_fitting(&before, before.of(Service::Cart), per_cart);
        let set_cart_pods = |manifests: &mut Manifests, pods: u64| {
            let (what, slot) = match manifests.get("HorizontalPodAutoscaler", "cart") {
                Some(_) => ("HorizontalPodAutoscaler", "maxReplicas"),
                None => ("Deployment", "replicas"),
            };
            manifests.get_mut(what, "cart").expect("rendered")["spec"][slot] = json!(pods);
        };
        let mut raised = manifests.clone();
        set_cart_pods(&mut raised, fits);
        let at_limit = budget::kubernetes(&raised.workloads().expect("resolves"))
            .unwrap_or_else(|err| panic!("{target}: exactly at the limit must fit: {err}"));
        eprintln!("{target}, cart × {fits}: {at_limit}");
        set_cart_pods(&mut raised, fits + 1);
        let err = over(
            budget::kubernetes(&raised.workloads().expect("resolves")),
            &format!("{target}: cart raised"),
        );
        eprintln!("{target}, cart × {}: {err}", fits + 1);
        assert_names_share(&err, Service::Cart, per_cart * (fits + 1));

        // A users pool, then a payments pool, one connection past what fits.
        for service in [Service::Users, Service::Payments] {
            let workload = workloads
                .iter()
                .find(|w| w.service == Some(service))
                .unwrap_or_else(|| panic!("{target}: no {} workload", service.name()));
            let pods = u64::from(workload.instances);
            let each = largest_fitting(&before, before.of(service), pods) + 1;
            let pool = each - PROBE;
            let mut raised = manifests.clone();
            let env = deployment_env(&mut raised, service.name());
            env.retain(|var| var["name"] != "SHOP_DATABASE__MAX_CONNECTIONS");
            env.push(json!({"name": "SHOP_DATABASE__MAX_CONNECTIONS", "value": pool.to_string()}));
            let err = over(
                budget::kubernetes(&raised.workloads().expect("resolves")),
                &format!("{target}: {} pool raised", service.name()),
            );
            eprintln!("{target}, {} pool {pool}: {err}", service.name());
            assert_names_share(&err, service, pods * each);
        }
    }
}

// ---- image names

/// `version` under `[workspace.package]` in the root Cargo.toml.
fn workspace_version() -> String {
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).expect("Cargo.toml");
    let section = manifest
        .split("[workspace.package]")
        .nth(1)
        .expect("[workspace.package]");
    let section = section.split("\n[").next().unwrap_or(section);
    section
        .lines()
        .filter_map(|line| line.split_once('='))
        .find(|(key, _)| key.trim() == "version")
        .map(|(_, value)| value.trim().trim_matches('"').to_owned())
        .expect("version under [workspace.package]")
}

/// `<prefix>/ferroshop/<service>:<workspace version>`.
fn image_name(prefix: &str, service: Service) -> String {
    format!(
        "{prefix}/ferroshop/{}:{}",
        service.name(),
        workspace_version()
    )
}

#[test]
fn this_crate_carries_the_workspace_version() {
    assert_eq!(env!("CARGO_PKG_VERSION"), workspace_version());
}

fn compose_postgres_image(services: &[ComposeService]) -> String {
    services
        .iter()
        .filter_map(|s| s.image.as_deref())
        .find(|image| budget::is_postgres_image(image))
        .expect("compose runs PostgreSQL")
        .to_owned()
}

#[test]
fn compose_names_every_image_localhost_ferroshop_service_version() {
    let root = generated_root();
    let services = compose_services(root.path());
    let mut seen = BTreeSet::new();
    for entry in &services {
        let image = entry.image.as_deref().unwrap_or_default();
        let Some(service) = entry.service else {
            // The monitoring profile's images are built under the same
            // prefix, named after the tool and tagged with its version.
            if let Some(tool) = monitoring::tool(entry) {
                assert!(
                    image.starts_with(&format!("localhost/ferroshop/{tool}:")),
                    "{}: runs {image}, not localhost/ferroshop/{tool}:<version>",
                    entry.name
                );
                continue;
            }
            assert!(
                !image.contains("ferroshop"),
                "{}: runs {image} but builds no ferroshop service",
                entry.name
            );
            continue;
        };
        seen.insert(service);
        assert_eq!(
            image,
            image_name("localhost", service),
            "{}: the image must be named after the service it builds (build.args.SERVICE {})",
            entry.name,
            service.name()
        );
    }
    assert_eq!(seen.len(), Service::ALL.len(), "compose builds {seen:?}");
}

#[test]
fn kubernetes_names_every_image_by_the_same_scheme_as_compose() {
    let Some(targets) = rendered_targets() else {
        return;
    };
    let root = generated_root();
    let postgres = compose_postgres_image(&compose_services(root.path()));
    for (target, manifests) in &targets {
        let prefix = if *target == "k8s/overlays/prod" {
            "registry.example.com"
        } else {
            "localhost"
        };
        let mut seen = BTreeSet::new();
        for workload in manifests.workloads().expect("references resolve") {
            let id = format!("{target}: {} container {}", workload.id, workload.container);
            if budget::is_postgres_image(&workload.image) {
                assert_eq!(workload.image, postgres, "{id}: compose runs {postgres}");
                continue;
            }
            // The container is named after the service it runs; its image must be too.
            let service = Service::from_name_or_image(&workload.container).unwrap_or_else(|| {
                panic!("{id}: runs {} but is no ferroshop service", workload.image)
            });
            seen.insert(service);
            assert_eq!(workload.image, image_name(prefix, service), "{id}");
        }
        assert_eq!(seen.len(), Service::ALL.len(), "{target} runs {seen:?}");
    }
}

/// Asserts `holds` of every service; `missing` starts the failure message
/// (`"compose runs no"`), which ends with the service's name.
fn assert_every_service(missing: &str, holds: impl Fn(Service) -> bool) {
    for service in Service::ALL {
        assert!(holds(service), "{missing} {}", service.name());
    }
}

#[test]
fn the_fault_stack_starts_fits_the_connection_budget_and_stops_cleanly() {
    let root = generated_root();
    let services = faults_services(root.path());
    let names: BTreeSet<&str> = services.iter().map(|s| s.name.as_str()).collect();
    for name in ["users-2", "catalog-2", "gateway-2", "orders-1", "orders-2"] {
        assert!(names.contains(name), "the fault stack runs no {name}");
    }
    let mut addresses = BTreeSet::new();
    for entry in &services {
        let Some(service) = entry.service else {
            continue;
        };
        let loaded = checked(service, Topology::Compose, &entry.name, &entry.env);
        let address = loaded.instance.advertise_addr.clone();
        assert!(
            address.as_ref().is_some_and(|a| a.starts_with(&entry.name)),
            "{}: advertises {address:?}, not its own container name",
            entry.name
        );
        assert!(
            addresses.insert(address.clone()),
            "{}: {address:?} is advertised by another replica too",
            entry.name
        );
    }
    let budget = budget::compose(&services)
        .unwrap_or_else(|err| panic!("docker-compose.yml + deploy/compose.faults.yml: {err}"));
    eprintln!("docker-compose.yml + deploy/compose.faults.yml: {budget}");
    assert_eq!(compose_stop_problems(&services), Vec::<String>::new());
    // gateway-2 is found in etcd by web like gateway: it must be on web's
    // network and believe the same token.
    assert_eq!(compose_network_problems(&services), Vec::<String>::new());
    assert_eq!(compose_publish_problems(&services), Vec::<String>::new());
    let tokens: BTreeSet<Option<String>> = services
        .iter()
        .filter(|entry| entry.service.is_some_and(Service::needs_service_token))
        .map(|entry| {
            load(entry.service.expect("filtered"), &entry.env)
                .expect("loads")
                .service_token
        })
        .collect();
    assert_eq!(tokens.len(), 1, "the fault stack's tokens: {tokens:?}");
    assert!(tokens.iter().all(Option::is_some), "a token is unset");
}

#[test]
fn an_overlay_entry_for_a_base_service_may_only_set_its_environment() {
    let root = generated_root();
    let extra = compose::services(
        "services:\n  users:\n    environment: {SHOP_DATABASE__MAX_CONNECTIONS: \"4\"}\n",
        root.path(),
    )
    .expect("parses");
    let merged = compose::overlay(compose_services(root.path()), extra).expect("merges");
    let users = merged.iter().find(|s| s.name == "users").expect("users");
    assert_eq!(
        users
            .env
            .iter()
            .filter(|(key, _)| key == "SHOP_DATABASE__MAX_CONNECTIONS")
            .map(|(_, value)| value.as_str())
            .collect::<Vec<_>>(),
        ["4"],
        "the overlay's value replaces the base's, once"
    );
    assert!(
        users
            .env
            .iter()
            .any(|(key, _)| key == "SHOP_INSTANCE__ADVERTISE_ADDR")
    );

    let extra = compose::services(
        "services:\n  users:\n    ports: ['8081:8081']\n",
        root.path(),
    )
    .expect("parses");
    let refused = compose::overlay(compose_services(root.path()), extra)
        .expect_err("a port on a base service is not modelled");
    assert!(refused.to_string().contains("users"), "{refused}");
}

// ---- the monitoring profile (deploy/monitoring/)

fn prometheus_targets() -> Vec<ScrapeTarget> {
    let text = std::fs::read_to_string(repo().join("deploy/monitoring/prometheus.yml"))
        .expect("deploy/monitoring/prometheus.yml");
    monitoring::prometheus_config(&text)
        .expect("prometheus.yml parses")
        .targets
}

/// Every ferroshop container's admin port (where `/metrics` is), by name.
fn compose_admin_ports(services: &[ComposeService]) -> BTreeMap<String, u16> {
    services
        .iter()
        .filter_map(|entry| {
            let loaded = load(entry.service?, &entry.env).expect("loads");
            Some((entry.name.clone(), admin_port(&entry.name, &loaded)))
        })
        .collect()
}

#[test]
fn prometheus_scrapes_every_compose_service_on_its_admin_port() {
    let root = generated_root();
    let services = compose_services(root.path());
    let admin = compose_admin_ports(&services);
    let targets = prometheus_targets();
    assert_eq!(
        monitoring::scrape_problems(&services, &admin, &targets),
        Vec::<String>::new()
    );
    // One target per service container: every replica.
    for name in [
        "cart-1", "cart-2", "orders-1", "orders-2", "payments", "web",
    ] {
        assert!(
            targets.iter().any(|t| t.host == name),
            "{name} is not scraped"
        );
    }

    // A replica left out, and another scraped on its API port, are named.
    let mut fewer = targets.clone();
    fewer.retain(|t| t.host != "cart-2");
    let orders = fewer
        .iter_mut()
        .find(|t| t.host == "orders-1")
        .expect("orders-1");
    orders.port = 50051;
    let found = monitoring::scrape_problems(&services, &admin, &fewer).join("\n");
    assert!(
        found.contains(
            "cart-2: serves /metrics on port 9083, but prometheus.yml has no target cart-2:9083"
        ),
        "{found}"
    );
    assert!(
        found.contains(
            "prometheus.yml scrapes orders-1:50051, but orders-1 serves /metrics on port 8084"
        ),
        "{found}"
    );

    // Prometheus taken off payments' network cannot scrape it.
    let mut cut = services.clone();
    compose_entry_mut(&mut cut, "prometheus")
        .networks
        .retain(|n| n != "payments");
    let found = monitoring::scrape_problems(&cut, &admin, &targets).join("\n");
    assert!(
        found.contains("prometheus cannot reach payments: they share no network"),
        "{found}"
    );

    // A target compose does not run, and one under another service's job.
    let mut odd = targets.clone();
    odd.push(ScrapeTarget {
        job: "cart".into(),
        host: "cart-3".into(),
        port: 9083,
    });
    odd.iter_mut().find(|t| t.host == "web").expect("web").job = "gateway".into();
    let found = monitoring::scrape_problems(&services, &admin, &odd).join("\n");
    assert!(
        found.contains("prometheus.yml scrapes cart-3:9083, but compose runs no cart-3"),
        "{found}"
    );
    assert!(
        found.contains("prometheus.yml scrapes web under job \"gateway\""),
        "{found}"
    );
}

#[test]
fn the_monitoring_services_start_only_under_their_profile_and_publish_only_prometheus_on_loopback()
{
    let root = generated_root();
    let services = compose_services(root.path());
    assert_eq!(
        monitoring::profile_problems(&services),
        Vec::<String>::new()
    );
    // They are no application services: no database, no connection budget,
    // none of the checks of the stack's own services apply.
    for name in ["prometheus", "alertmanager"] {
        let entry = compose_entry(&services, name);
        assert_eq!(entry.service, None, "{name}");
        assert_eq!(entry.profiles, [monitoring::PROFILE], "{name}");
    }

    // Prometheus out of the profile would start with the default stack.
    let mut always = services.clone();
    compose_entry_mut(&mut always, "prometheus")
        .profiles
        .clear();
    let found = monitoring::profile_problems(&always).join("\n");
    assert!(
        found.contains(
            "prometheus: profiles []: it must start with the \"monitoring\" profile only"
        ),
        "{found}"
    );
    // The gateway moved into the profile, or waiting for Alertmanager,
    // would leave the default stack without it.
    let mut moved = services.clone();
    let gateway = compose_entry_mut(&mut moved, "gateway");
    gateway.profiles.push(monitoring::PROFILE.to_owned());
    gateway
        .depends_on
        .push(("alertmanager".to_owned(), "service_healthy".to_owned()));
    let found = monitoring::profile_problems(&moved).join("\n");
    assert!(
        found.contains(
            "gateway: profiles [\"monitoring\"]: the stack's own services start without a profile"
        ),
        "{found}"
    );
    assert!(
        found.contains(
            "gateway depends on alertmanager, which starts only with the \"monitoring\" profile"
        ),
        "{found}"
    );
    // Published on every interface, or Alertmanager published at all.
    let mut open = services.clone();
    compose_entry_mut(&mut open, "prometheus").ports = vec!["9090:9090".to_owned()];
    compose_entry_mut(&mut open, "alertmanager").ports = vec!["127.0.0.1:9093:9093".to_owned()];
    let found = monitoring::profile_problems(&open).join("\n");
    assert!(
        found.contains(
            "prometheus: publishes [\"9090:9090\"], but may publish only [\"127.0.0.1:9090:9090\"]"
        ),
        "{found}"
    );
    assert!(
        found
            .contains("alertmanager: publishes [\"127.0.0.1:9093:9093\"], but may publish only []"),
        "{found}"
    );
}

#[test]
fn every_alert_is_routed_has_a_runbook_and_is_tested_firing_and_silent() {
    let dir = repo().join("deploy/monitoring/rules");
    let mut rules = Vec::new();
    let mut tested = monitoring::TestedAlerts::default();
    let mut rule_files = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("deploy/monitoring/rules") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("a file")
            .to_string_lossy()
            .into_owned();
        if !name.ends_with(".yml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        if name.ends_with("_test.yml") {
            let found = monitoring::tested_alerts(&text).expect("a test file parses");
            tested.firing.extend(found.firing);
            tested.silent.extend(found.silent);
        } else {
            rules.extend(monitoring::alert_rules(&text).expect("a rule file parses"));
            rule_files.insert(format!("rules/{name}"));
        }
    }
    assert!(rules.len() >= 10, "only {} alerts", rules.len());
    assert_eq!(
        monitoring::alert_problems(&rules, &tested),
        Vec::<String>::new()
    );
    // Prometheus loads every rule file.
    let text = std::fs::read_to_string(repo().join("deploy/monitoring/prometheus.yml"))
        .expect("prometheus.yml");
    let loaded: BTreeSet<String> = monitoring::prometheus_config(&text)
        .expect("parses")
        .rule_files
        .into_iter()
        .collect();
    assert_eq!(loaded, rule_files, "prometheus.yml's rule_files");
    // Every severity is routed by alertmanager.yml.
    let routes = std::fs::read_to_string(repo().join("deploy/monitoring/alertmanager.yml"))
        .expect("alertmanager.yml");
    for severity in monitoring::SEVERITIES {
        assert!(
            routes.contains(&format!("severity=\"{severity}\"")),
            "alertmanager.yml does not route severity {severity}"
        );
    }
}
