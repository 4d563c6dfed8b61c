//! Whether a deployment waits long enough for an instance to stop cleanly.
//!
//! A stopping instance deregisters and reports not ready at once, keeps
//! serving for its shutdown delay (`http.shutdown_delay_ms`), then drains
//! (`http.drain_timeout_secs`), then its admin listener drains
//! ([`shop_common::server::ADMIN_DRAIN`]): [`crate::Loaded::stop_time`]. A
//! deployment that kills it sooner cuts requests off mid-way:
//!
//! - compose sends SIGTERM, then SIGKILL after `stop_grace_period` (10 s
//!   when unset), which must cover the stop time;
//! - Kubernetes runs the container's `lifecycle.preStop` first (a `sleep`,
//!   while the endpoints controller, kube-proxy, the Ingress and DNS forget
//!   the terminating pod), then SIGTERM; `terminationGracePeriodSeconds`
//!   (default 30) counts from the start of the preStop, so it must cover
//!   the preStop sleep plus the stop time. Every service's Deployment must
//!   have that preStop: without it callers still pick a pod that is going.

use std::time::Duration;

use serde_json::Value;

use crate::Loaded;
use crate::compose::ComposeService;
use crate::k8s::Workload;
use crate::yaml::scalar;

/// What compose waits for a container to stop when `stop_grace_period` is
/// not set.
pub const COMPOSE_DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// What Kubernetes waits for a pod to stop when
/// `terminationGracePeriodSeconds` is not set.
pub const KUBERNETES_DEFAULT_GRACE_SECS: u64 = 30;

/// Why `service` may be killed before it has stopped: its grace period is
/// unreadable or shorter than `loaded.stop_time`. `None` when it is long
/// enough.
pub fn compose_problem(service: &ComposeService, loaded: &Loaded) -> Option<String> {
    let grace = match service.stop_grace_period.as_deref() {
        None => COMPOSE_DEFAULT_GRACE,
        Some(text) => match parse_compose_duration(text) {
            Some(grace) => grace,
            None => {
                return Some(format!(
                    "{}: stop_grace_period {text:?} is not a duration",
                    service.name
                ));
            }
        },
    };
    (grace < loaded.stop_time).then(|| {
        format!(
            "{}: stop_grace_period {} s is shorter than its stop ({} s: shutdown delay, drain and admin drain)",
            service.name,
            grace.as_secs_f64(),
            loaded.stop_time.as_secs_f64()
        )
    })
}

/// The seconds of the container's `lifecycle.preStop.sleep`, when it has one.
pub fn pre_stop_sleep_secs(workload: &Workload) -> Option<u64> {
    scalar(&workload.spec["lifecycle"]["preStop"]["sleep"]["seconds"])?
        .parse()
        .ok()
}

/// `terminationGracePeriodSeconds` of the pod, or its default.
///
/// # Errors
/// The text of a value that is not a whole number of seconds.
pub fn termination_grace_secs(workload: &Workload) -> Result<u64, String> {
    match &workload.pod["terminationGracePeriodSeconds"] {
        Value::Null => Ok(KUBERNETES_DEFAULT_GRACE_SECS),
        value => scalar(value)
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| value.to_string()),
    }
}

/// Why `workload` may be killed before it has stopped, or still be picked
/// while it stops: no `preStop` sleep, or a grace period shorter than the
/// sleep plus `loaded.stop_time`. `None` when it waits long enough.
pub fn kubernetes_problem(workload: &Workload, loaded: &Loaded) -> Option<String> {
    let Some(pre_stop) = pre_stop_sleep_secs(workload) else {
        return Some(format!(
            "{}: container {} has no lifecycle.preStop sleep, so callers still pick it while it stops",
            workload.id, workload.container
        ));
    };
    let grace = match termination_grace_secs(workload) {
        Ok(grace) => grace,
        Err(text) => {
            return Some(format!(
                "{}: terminationGracePeriodSeconds {text} is not a whole number",
                workload.id
            ));
        }
    };
    let needed = Duration::from_secs(pre_stop) + loaded.stop_time;
    (Duration::from_secs(grace) < needed).then(|| {
        format!(
            "{}: terminationGracePeriodSeconds {grace} is shorter than preStop {pre_stop} s + its stop {} s (shutdown delay, drain and admin drain) = {} s",
            workload.id,
            loaded.stop_time.as_secs_f64(),
            needed.as_secs_f64()
        )
    })
}

/// A compose duration: `1m30s`, `20s`, `1.5s`, `500ms`, `2h`, or a bare
/// number of seconds; `None` when the text is none of these.
pub fn parse_compose_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let number: f64 = number.parse().ok()?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let unit_secs = match unit {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return None,
        };
        total += Duration::try_from_secs_f64(number * unit_secs).ok()?;
        rest = after;
    }
    (!text.is_empty()).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_durations_read_as_compose_reads_them() {
        let secs = |s: f64| Some(Duration::from_secs_f64(s));
        assert_eq!(parse_compose_duration("20s"), secs(20.0));
        assert_eq!(parse_compose_duration("1m30s"), secs(90.0));
        assert_eq!(parse_compose_duration("1.5s"), secs(1.5));
        assert_eq!(parse_compose_duration("500ms"), secs(0.5));
        assert_eq!(parse_compose_duration("2h"), secs(7200.0));
        assert_eq!(parse_compose_duration("15"), secs(15.0));
        assert_eq!(parse_compose_duration("ten seconds"), None);
        assert_eq!(parse_compose_duration("10x"), None);
        assert_eq!(parse_compose_duration(""), None);
    }
}
