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
//! kubectl is found on PATH, in `$KUBECTL`, or where scripts/validate-deploy.sh
//! installs it. Without it the Kubernetes half is skipped with a note, and
//! fails under `CI=true`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use shop_deploy_check::compose::{self, ComposeService};
use shop_deploy_check::k8s::Manifests;
use shop_deploy_check::{Loaded, Service, Topology, check, split_host_port};
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
        if let Some(token) = loaded.service_token {
            tokens.insert(token);
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
        if service != Service::Gateway {
            assert!(
                entry.ports.is_empty(),
                "{}: only the gateway publishes a port",
                entry.name
            );
        }
    }
    assert_eq!(
        tokens.len(),
        1,
        "cart and orders must share one internal service token"
    );
    for service in Service::ALL {
        assert!(
            seen.contains_key(&service),
            "compose runs no {}",
            service.name()
        );
    }
    assert_eq!(
        seen[&Service::Cart].len(),
        2,
        "compose runs two cart replicas"
    );
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

#[test]
fn every_kubernetes_workload_starts_with_its_environment() {
    let Some(kubectl) = kubectl() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "kubectl is needed under CI=true (scripts/validate-deploy.sh installs it)"
        );
        eprintln!("note: kubectl not found; skipping the Kubernetes deploy-config checks");
        return;
    };
    let root = generated_root();
    for target in ["k8s", "k8s/overlays/dev", "k8s/overlays/prod"] {
        let manifests = render(&kubectl, &root.path().join(target));
        let services = manifests.services();
        let mut seen = BTreeSet::new();
        for workload in manifests.workloads().expect("references resolve") {
            let Some(service) = workload.service else {
                continue;
            };
            seen.insert(service);
            let id = format!("{target}: {}", workload.id);
            let loaded = checked(service, Topology::Kubernetes, &id, &workload.env);

            assert!(
                workload.ports.contains(&loaded.http_port)
                    && workload.ports.contains(&loaded.registered_port),
                "{id}: container ports {:?} do not include the ports it binds",
                workload.ports
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
            assert!(
                container["resources"]["requests"]["memory"].is_string(),
                "{id}: no memory request"
            );
            assert!(
                container["resources"]["limits"]["memory"].is_string(),
                "{id}: no memory limit"
            );
        }
        for service in Service::ALL {
            assert!(
                seen.contains(&service),
                "{target} deploys no {}",
                service.name()
            );
        }
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
