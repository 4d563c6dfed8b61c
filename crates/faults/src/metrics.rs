//! What each resilience layer did in a scenario: the services' counters read
//! from /metrics before and after, summed over replicas, as deltas.

use std::collections::BTreeMap;

use crate::docker::Docker;

/// A series: the metric name and its labels as written (`{a="b"}`).
pub type Series = (String, String);

/// The metrics the harness reports, by name: counters (a delta) unless
/// listed in [`GAUGES`].
const REPORTED: [&str; 14] = [
    "upstream_retries_total",
    "upstream_ejections_total",
    "upstream_health_transitions_total",
    "upstream_requests_total",
    "upstream_breaker_state",
    "gateway_rejections_total",
    "orders_saga_step_failures_total",
    "orders_saga_recovered_total",
    "orders_settled_total",
    "outbox_dead_letters_total",
    "catalog_reservations_total",
    "catalog_releases_total",
    "payments_operations_total",
    "http_requests_total",
];

/// Metrics read as their value at the end, not a delta.
const GAUGES: [&str; 1] = ["upstream_breaker_state"];

/// The admin port where each service family serves /metrics.
pub fn admin_port(family: &str) -> Option<u16> {
    Some(match family {
        "gateway" => 9080,
        "users" => 9081,
        "catalog" => 9082,
        "cart" => 9083,
        "orders" => 8084,
        "payments" => 9086,
        _ => return None,
    })
}

/// A replica's family: its compose service without the replica suffix
/// (`cart-1` → `cart`).
pub fn family(service: &str) -> &str {
    match service.rsplit_once('-') {
        Some((family, n)) if n.chars().all(|c| c.is_ascii_digit()) => family,
        _ => service,
    }
}

/// The reported series of one replica at one moment.
pub type Reading = BTreeMap<Series, f64>;

/// Readings of every replica, by compose service; a replica that could not
/// be read is missing.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// Per replica.
    pub replicas: BTreeMap<String, Reading>,
    /// Replicas that could not be read, with why.
    pub unread: Vec<String>,
}

/// Reads every running service replica's /metrics.
pub async fn snapshot(docker: &Docker) -> Snapshot {
    let mut snapshot = Snapshot::default();
    let services = match docker.services().await {
        Ok(services) => services,
        Err(err) => {
            snapshot.unread.push(format!("{err:#}"));
            return snapshot;
        }
    };
    for service in services {
        let Some(port) = admin_port(family(&service)) else {
            continue;
        };
        match docker.metrics(&service, port).await {
            Ok(text) => {
                snapshot.replicas.insert(service, parse(&text));
            }
            Err(err) => snapshot.unread.push(format!("{service}: {err:#}")),
        }
    }
    snapshot
}

/// The reported series of a Prometheus text exposition.
pub fn parse(text: &str) -> Reading {
    let mut reading = Reading::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = match line.rsplit_once(' ') {
            Some(parts) => parts,
            None => continue,
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.find('{') {
            Some(i) => (&series[..i], &series[i..]),
            None => (series, ""),
        };
        if !REPORTED.contains(&name) {
            continue;
        }
        // Of the HTTP requests, only answers of 5xx say anything here.
        if name == "http_requests_total" && !labels.contains("status=\"5") {
            continue;
        }
        if name == "upstream_requests_total" && labels.contains("outcome=\"success\"") {
            continue;
        }
        *reading
            .entry((name.to_owned(), labels.to_owned()))
            .or_insert(0.0) += value;
    }
    reading
}

/// One line of a scenario's layer report.
#[derive(Debug, Clone)]
pub struct Delta {
    /// The service family.
    pub family: String,
    /// The metric.
    pub name: String,
    /// Its labels.
    pub labels: String,
    /// The change (or the end value of a gauge).
    pub value: f64,
}

/// The non-zero changes between `before` and `after`, summed per service
/// family. A counter lower after than before was reset by a restart: its
/// value after is what the new process counted (a lower bound).
pub fn deltas(before: &Snapshot, after: &Snapshot) -> Vec<Delta> {
    let mut sums: BTreeMap<(String, String, String), f64> = BTreeMap::new();
    for (service, reading) in &after.replicas {
        let family = family(service).to_owned();
        let earlier = before.replicas.get(service);
        for ((name, labels), value) in reading {
            let gauge = GAUGES.contains(&name.as_str());
            let start = earlier
                .and_then(|r| r.get(&(name.clone(), labels.clone())))
                .copied()
                .unwrap_or(0.0);
            let change = if gauge {
                *value
            } else if *value >= start {
                value - start
            } else {
                *value
            };
            *sums
                .entry((family.clone(), name.clone(), labels.clone()))
                .or_insert(0.0) += change;
        }
    }
    sums.into_iter()
        .filter(|(_, v)| *v != 0.0)
        .map(|((family, name, labels), value)| Delta {
            family,
            name,
            labels,
            value,
        })
        .collect()
}

/// A label's value in a `{a="b",c="d"}` label set.
pub fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    let pattern = format!("{key}=\"");
    let start = labels.find(&pattern)? + pattern.len();
    let rest = labels.get(start..)?;
    rest.find('"').and_then(|end| rest.get(..end))
}

/// A sentence of what the deltas say each layer did.
pub fn summary(deltas: &[Delta]) -> String {
    let sum = |family: Option<&str>, name: &str, filter: &dyn Fn(&str) -> bool| -> f64 {
        deltas
            .iter()
            .filter(|d| family.is_none_or(|f| d.family == f) && d.name == name && filter(&d.labels))
            .map(|d| d.value)
            .fold(0.0, |a, b| a + b)
    };
    let any = |_: &str| true;
    let mut parts = Vec::new();
    for family in ["gateway", "orders", "cart"] {
        let mut did = Vec::new();
        let mut count = |n: f64, what: &str| {
            if n > 0.0 {
                did.push(format!("{n} {what}"));
            }
        };
        count(
            sum(Some(family), "upstream_retries_total", &any),
            "retries on another instance",
        );
        count(
            sum(Some(family), "upstream_ejections_total", &any),
            "ejections",
        );
        count(
            sum(Some(family), "upstream_health_transitions_total", &|l| {
                l.contains("state=\"unhealthy\"")
            }),
            "health checks turned unhealthy",
        );
        count(
            sum(Some(family), "upstream_requests_total", &|l| {
                !l.contains("outcome=\"success\"")
            }),
            "calls failed or answered 5xx",
        );
        if sum(Some(family), "upstream_breaker_state", &any) > 0.0 {
            did.push("a breaker left open or half-open".to_owned());
        }
        if !did.is_empty() {
            parts.push(format!("{family}'s upstream clients: {}", did.join(", ")));
        }
    }
    let shed = sum(Some("gateway"), "gateway_rejections_total", &any);
    if shed > 0.0 {
        parts.push(format!(
            "the gateway's edge layers rejected {shed} requests"
        ));
    }
    let step_failures = sum(Some("orders"), "orders_saga_step_failures_total", &any);
    if step_failures > 0.0 {
        parts.push(format!("the saga retried {step_failures} failed steps"));
    }
    let recovered = sum(Some("orders"), "orders_saga_recovered_total", &any);
    if recovered > 0.0 {
        parts.push(format!("the recovery worker took over {recovered} orders"));
    }
    let dead = sum(Some("orders"), "outbox_dead_letters_total", &any);
    if dead > 0.0 {
        parts.push(format!("the outbox dead-lettered {dead} rows"));
    }
    let server_errors = sum(None, "http_requests_total", &any);
    if server_errors > 0.0 {
        parts.push(format!(
            "services answered {server_errors} requests with a 5xx"
        ));
    }
    if parts.is_empty() {
        "No resilience layer had to act: no retries, ejections, health transitions, saga step failures or 5xx answers.".to_owned()
    } else {
        let mut text = parts.join("; ");
        text.push('.');
        let mut chars = text.chars();
        match chars.next() {
            Some(first) => first.to_uppercase().chain(chars).collect(),
            None => text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_keeps_reported_series_only() {
        let text = "# TYPE upstream_retries_total counter\n\
                    upstream_retries_total{upstream=\"cart\"} 3\n\
                    http_requests_total{method=\"GET\",route=\"/x\",status=\"200\"} 9\n\
                    http_requests_total{method=\"GET\",route=\"/x\",status=\"503\"} 2\n\
                    process_cpu_seconds_total 1.5\n";
        let reading = parse(text);
        assert_eq!(reading.len(), 2);
        assert_eq!(
            reading.get(&(
                "upstream_retries_total".to_owned(),
                "{upstream=\"cart\"}".to_owned()
            )),
            Some(&3.0)
        );
    }

    #[test]
    fn deltas_sum_replicas_and_survive_a_reset() {
        let series = (
            "upstream_retries_total".to_owned(),
            "{upstream=\"cart\"}".to_owned(),
        );
        let mut before = Snapshot::default();
        let mut after = Snapshot::default();
        before
            .replicas
            .insert("gateway".into(), [(series.clone(), 10.0)].into());
        before
            .replicas
            .insert("gateway-2".into(), [(series.clone(), 4.0)].into());
        after
            .replicas
            .insert("gateway".into(), [(series.clone(), 12.0)].into());
        // Restarted: counts from zero again.
        after
            .replicas
            .insert("gateway-2".into(), [(series.clone(), 1.0)].into());
        let deltas = deltas(&before, &after);
        assert_eq!(deltas.len(), 1);
        assert_eq!(deltas.first().map(|d| d.value), Some(3.0));
        assert_eq!(family("cart-2"), "cart");
        assert_eq!(family("gateway"), "gateway");
        assert_eq!(
            label("{upstream=\"cart\",state=\"healthy\"}", "state"),
            Some("healthy")
        );
    }

    #[test]
    fn summary_names_only_what_happened() {
        let delta = |family: &str, name: &str, labels: &str, value: f64| Delta {
            family: family.to_owned(),
            name: name.to_owned(),
            labels: labels.to_owned(),
            value,
        };
        let text = summary(&[
            delta(
                "gateway",
                "upstream_retries_total",
                "{upstream=\"cart\"}",
                4.0,
            ),
            delta(
                "orders",
                "orders_saga_step_failures_total",
                "{step=\"capture\"}",
                2.0,
            ),
        ]);
        assert_eq!(
            text,
            "Gateway's upstream clients: 4 retries on another instance; \
             the saga retried 2 failed steps."
        );
        assert!(summary(&[]).starts_with("No resilience layer had to act"));
    }
}
