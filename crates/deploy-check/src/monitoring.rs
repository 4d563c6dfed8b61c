//! The compose `monitoring` profile (deploy/monitoring/): Prometheus must
//! scrape every service container on the port it serves `/metrics` on, over
//! a network they share; the monitoring services must start only under the
//! profile and publish nothing but Prometheus' UI on loopback; and every
//! alert rule must carry what an operator needs (a severity, a summary, a
//! description, a runbook section) and be seen firing and not firing by
//! its `promtool test rules` file.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::Error;
use crate::compose::ComposeService;
use crate::yaml::{self, scalar};

/// The compose profile the monitoring services belong to.
pub const PROFILE: &str = "monitoring";

/// The monitoring services' images, by the tool's name
/// (`localhost/ferroshop/<tool>:<version>`), and whether it publishes its
/// UI (on 127.0.0.1, this port).
pub const TOOLS: [(&str, Option<u16>); 2] = [("prometheus", Some(9090)), ("alertmanager", None)];

/// The severities alertmanager.yml routes: `critical` pages, `warning`
/// opens a ticket.
pub const SEVERITIES: [&str; 2] = ["critical", "warning"];

/// Where every alert's runbook lives: a section of docs/operations.md
/// whose anchor is `alert-` and the alert's name in lower case.
pub const RUNBOOK_PREFIX: &str = "docs/operations.md#alert-";

/// The monitoring tool a compose service runs: its image is
/// `<prefix>/ferroshop/<tool>:<version>` for one of [`TOOLS`].
pub fn tool(entry: &ComposeService) -> Option<&'static str> {
    let image = entry.image.as_deref()?;
    let (path, _version) = image.rsplit_once(':')?;
    TOOLS
        .iter()
        .map(|(tool, _)| *tool)
        .find(|tool| path.ends_with(&format!("/ferroshop/{tool}")))
}

/// One static scrape target of prometheus.yml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeTarget {
    /// `job_name` of its scrape config.
    pub job: String,
    /// The host (a compose service name).
    pub host: String,
    /// The port scraped.
    pub port: u16,
}

/// What prometheus.yml says.
#[derive(Debug, Clone, Default)]
pub struct PrometheusConfig {
    /// Every `static_configs` target of every scrape config.
    pub targets: Vec<ScrapeTarget>,
    /// `rule_files` as written.
    pub rule_files: Vec<String>,
}

/// Reads prometheus.yml's scrape targets and rule files.
///
/// # Errors
/// [`Error`] when it is not YAML, or a target is not `host:port`.
pub fn prometheus_config(text: &str) -> Result<PrometheusConfig, Error> {
    let docs = yaml::parse(text)?;
    let doc = docs.first().unwrap_or(&Value::Null);
    let mut config = PrometheusConfig {
        rule_files: list(&doc["rule_files"]).iter().filter_map(scalar).collect(),
        ..PrometheusConfig::default()
    };
    for scrape in list(&doc["scrape_configs"]) {
        let job = scalar(&scrape["job_name"]).unwrap_or_default();
        for group in list(&scrape["static_configs"]) {
            for target in list(&group["targets"]).iter().filter_map(scalar) {
                let (host, port) = crate::split_host_port(&target).ok_or_else(|| {
                    Error::Shape(format!("{job}: scrape target {target:?} is not host:port"))
                })?;
                config.targets.push(ScrapeTarget {
                    job: job.clone(),
                    host: host.to_owned(),
                    port,
                });
            }
        }
    }
    Ok(config)
}

fn list(value: &Value) -> &[Value] {
    match value {
        Value::Array(items) => items,
        _ => &[],
    }
}

/// What is wrong with what Prometheus scrapes in compose: a ferroshop
/// service container with an admin port (`admin_ports`, by compose service
/// name) that no target scrapes on that port, a target of a ferroshop
/// container on another port or under another job than its service's, a
/// target naming a host compose does not run, and a scraped container
/// Prometheus shares no network with.
pub fn scrape_problems(
    services: &[ComposeService],
    admin_ports: &BTreeMap<String, u16>,
    targets: &[ScrapeTarget],
) -> Vec<String> {
    let mut problems = Vec::new();
    let prometheus = services.iter().find(|s| tool(s) == Some("prometheus"));
    let Some(prometheus) = prometheus else {
        return vec!["no compose service runs the prometheus image".to_owned()];
    };
    for (name, port) in admin_ports {
        if !targets.iter().any(|t| t.host == *name && t.port == *port) {
            problems.push(format!(
                "{name}: serves /metrics on port {port}, but prometheus.yml has no target {name}:{port}"
            ));
        }
    }
    for target in targets {
        // Prometheus scrapes itself on its own loopback.
        if target.host == "localhost" {
            continue;
        }
        let Some(entry) = services.iter().find(|s| s.name == target.host) else {
            problems.push(format!(
                "prometheus.yml scrapes {}:{}, but compose runs no {}",
                target.host, target.port, target.host
            ));
            continue;
        };
        if let Some(service) = entry.service {
            match admin_ports.get(&entry.name) {
                Some(port) if *port != target.port => problems.push(format!(
                    "prometheus.yml scrapes {}:{}, but {} serves /metrics on port {port}",
                    target.host, target.port, entry.name
                )),
                _ => {}
            }
            if target.job != service.name() {
                problems.push(format!(
                    "prometheus.yml scrapes {} under job {:?}: the job is the service ({})",
                    target.host,
                    target.job,
                    service.name()
                ));
            }
        }
        if entry.name != prometheus.name && !prometheus.shares_network(entry) {
            problems.push(format!(
                "{} cannot reach {}: they share no network ({:?} and {:?})",
                prometheus.name, entry.name, prometheus.networks, entry.networks
            ));
        }
    }
    problems
}

/// What is wrong with the monitoring profile in compose: a monitoring
/// service outside the [`PROFILE`] (the default `docker compose up` would
/// start it), any other service in a profile (the default stack would lose
/// it) or waiting for a monitoring service, a monitoring service
/// publishing a port other than its UI's on 127.0.0.1, and a tool of
/// [`TOOLS`] no service runs.
pub fn profile_problems(services: &[ComposeService]) -> Vec<String> {
    let mut problems = Vec::new();
    let monitoring: BTreeSet<&str> = services
        .iter()
        .filter(|s| tool(s).is_some())
        .map(|s| s.name.as_str())
        .collect();
    for (tool_name, ui) in TOOLS {
        let Some(entry) = services.iter().find(|s| tool(s) == Some(tool_name)) else {
            problems.push(format!("no compose service runs the {tool_name} image"));
            continue;
        };
        if entry.profiles != [PROFILE] {
            problems.push(format!(
                "{}: profiles {:?}: it must start with the {PROFILE:?} profile only",
                entry.name, entry.profiles
            ));
        }
        let allowed: Vec<String> = ui
            .map(|port| format!("127.0.0.1:{port}:{port}"))
            .into_iter()
            .collect();
        if entry.ports != allowed {
            problems.push(format!(
                "{}: publishes {:?}, but may publish only {allowed:?}",
                entry.name, entry.ports
            ));
        }
    }
    for entry in services.iter().filter(|s| tool(s).is_none()) {
        if !entry.profiles.is_empty() {
            problems.push(format!(
                "{}: profiles {:?}: the stack's own services start without a profile",
                entry.name, entry.profiles
            ));
        }
        for (dependency, _) in &entry.depends_on {
            if monitoring.contains(dependency.as_str()) {
                problems.push(format!(
                    "{} depends on {dependency}, which starts only with the {PROFILE:?} profile",
                    entry.name
                ));
            }
        }
    }
    problems
}

/// One alert rule of a rule file.
#[derive(Debug, Clone)]
pub struct AlertRule {
    /// `alert:`.
    pub name: String,
    /// `labels:`.
    pub labels: BTreeMap<String, String>,
    /// `annotations:`.
    pub annotations: BTreeMap<String, String>,
}

/// The alert rules of a Prometheus rule file.
///
/// # Errors
/// [`Error`] when it is not YAML.
pub fn alert_rules(text: &str) -> Result<Vec<AlertRule>, Error> {
    let docs = yaml::parse(text)?;
    let doc = docs.first().unwrap_or(&Value::Null);
    let strings = |value: &Value| -> BTreeMap<String, String> {
        value
            .as_object()
            .map(|map| {
                map.iter()
                    .filter_map(|(k, v)| Some((k.clone(), scalar(v)?)))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(list(&doc["groups"])
        .iter()
        .flat_map(|group| list(&group["rules"]))
        .filter_map(|rule| {
            Some(AlertRule {
                name: scalar(&rule["alert"])?,
                labels: strings(&rule["labels"]),
                annotations: strings(&rule["annotations"]),
            })
        })
        .collect())
}

/// What a `promtool test rules` file shows of each alert: the names of the
/// alerts some case expects firing, and of those some case expects silent.
#[derive(Debug, Clone, Default)]
pub struct TestedAlerts {
    /// Alerts an `alert_rule_test` expects to fire (`exp_alerts` not empty).
    pub firing: BTreeSet<String>,
    /// Alerts an `alert_rule_test` expects not to fire (`exp_alerts: []`).
    pub silent: BTreeSet<String>,
}

/// Reads a `promtool test rules` file.
///
/// # Errors
/// [`Error`] when it is not YAML.
pub fn tested_alerts(text: &str) -> Result<TestedAlerts, Error> {
    let docs = yaml::parse(text)?;
    let doc = docs.first().unwrap_or(&Value::Null);
    let mut tested = TestedAlerts::default();
    for case in list(&doc["tests"]) {
        for check in list(&case["alert_rule_test"]) {
            let Some(name) = scalar(&check["alertname"]) else {
                continue;
            };
            if list(&check["exp_alerts"]).is_empty() {
                tested.silent.insert(name);
            } else {
                tested.firing.insert(name);
            }
        }
    }
    Ok(tested)
}

/// What is wrong with the alert rules: a severity alertmanager.yml does
/// not route, a missing summary or description, a runbook that is not
/// `docs/operations.md#alert-<name in lower case>`, and an alert `tested`
/// does not show both firing and silent.
pub fn alert_problems(rules: &[AlertRule], tested: &TestedAlerts) -> Vec<String> {
    let mut problems = Vec::new();
    for rule in rules {
        let name = &rule.name;
        match rule.labels.get("severity") {
            Some(severity) if SEVERITIES.contains(&severity.as_str()) => {}
            other => problems.push(format!(
                "{name}: severity {other:?}, not one of {SEVERITIES:?} (alertmanager.yml routes those)"
            )),
        }
        for key in ["summary", "description"] {
            if rule
                .annotations
                .get(key)
                .is_none_or(|text| text.trim().is_empty())
            {
                problems.push(format!("{name}: no {key} annotation"));
            }
        }
        let runbook = format!("{RUNBOOK_PREFIX}{}", name.to_ascii_lowercase());
        if rule.annotations.get("runbook") != Some(&runbook) {
            problems.push(format!(
                "{name}: runbook {:?}, not {runbook:?}",
                rule.annotations.get("runbook")
            ));
        }
        if !tested.firing.contains(name) {
            problems.push(format!("{name}: no rule test shows it firing"));
        }
        if !tested.silent.contains(name) {
            problems.push(format!("{name}: no rule test shows it not firing"));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrape_targets_and_rule_files_are_read_through_anchors() {
        let config = prometheus_config(
            "\
rule_files: [rules/a.yml, rules/b.yml]
scrape_configs:
  - job_name: cart
    static_configs:
      - targets: ['cart-1:9083', 'cart-2:9083']
    relabel_configs: &relabel
      - {target_label: x}
  - job_name: orders
    static_configs:
      - targets: ['orders-1:8084']
    relabel_configs: *relabel
",
        )
        .expect("parses");
        assert_eq!(config.rule_files, ["rules/a.yml", "rules/b.yml"]);
        let found: Vec<(&str, &str, u16)> = config
            .targets
            .iter()
            .map(|t| (t.job.as_str(), t.host.as_str(), t.port))
            .collect();
        assert_eq!(
            found,
            [
                ("cart", "cart-1", 9083),
                ("cart", "cart-2", 9083),
                ("orders", "orders-1", 8084)
            ]
        );
        let err = prometheus_config(
            "scrape_configs: [{job_name: x, static_configs: [{targets: [nope]}]}]",
        )
        .expect_err("no port");
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn alerts_need_a_routed_severity_a_runbook_and_both_kinds_of_test() {
        let rules = alert_rules(
            "\
groups:
  - name: g
    rules:
      - record: x:y
        expr: up
      - alert: InstanceDown
        expr: up == 0
        labels: {severity: warning}
        annotations:
          summary: s
          description: d
          runbook: docs/operations.md#alert-instancedown
      - alert: Loud
        expr: up == 0
        labels: {severity: page}
        annotations: {summary: s, runbook: docs/operations.md#loud}
",
        )
        .expect("parses");
        assert_eq!(rules.len(), 2, "recording rules are no alerts");
        let tested = tested_alerts(
            "\
tests:
  - alert_rule_test:
      - {alertname: InstanceDown, exp_alerts: [{exp_labels: {severity: warning}}]}
      - {alertname: InstanceDown, exp_alerts: []}
      - {alertname: Loud, exp_alerts: []}
",
        )
        .expect("parses");
        let problems = alert_problems(&rules, &tested);
        let all = problems.join("\n");
        assert!(!all.contains("InstanceDown"), "{all}");
        for expected in [
            "Loud: severity Some(\"page\")",
            "Loud: no description",
            "Loud: runbook Some(\"docs/operations.md#loud\"), not \"docs/operations.md#alert-loud\"",
            "Loud: no rule test shows it firing",
        ] {
            assert!(all.contains(expected), "{expected} not in {all}");
        }
        assert!(
            !all.contains("Loud: no rule test shows it not firing"),
            "{all}"
        );
    }

    #[test]
    fn tools_are_told_by_their_image() {
        let entry = |image: &str| ComposeService {
            name: "x".into(),
            service: None,
            image: Some(image.into()),
            command: Vec::new(),
            replicas: 1,
            env: Vec::new(),
            secret_files: Vec::new(),
            ports: Vec::new(),
            published_targets: Vec::new(),
            depends_on: Vec::new(),
            healthcheck: false,
            networks: Vec::new(),
            stop_grace_period: None,
            profiles: Vec::new(),
        };
        assert_eq!(
            tool(&entry("localhost/ferroshop/prometheus:2.42.0")),
            Some("prometheus")
        );
        assert_eq!(
            tool(&entry("reg.example:5000/ferroshop/alertmanager:0.25.0")),
            Some("alertmanager")
        );
        assert_eq!(tool(&entry("prom/prometheus:v2.42.0")), None);
        assert_eq!(tool(&entry("localhost/ferroshop/cart:0.1.0")), None);
    }
}
