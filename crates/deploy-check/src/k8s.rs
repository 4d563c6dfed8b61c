//! Rendered Kubernetes manifests (`kubectl kustomize` output) as the checks
//! see them: each workload container's environment, resolved through its
//! ConfigMaps and Secrets the way the kubelet resolves it, the files mounted
//! from them, its image and command line, how many instances may run (the
//! autoscaler's maximum, else `replicas`), its ports and pod metadata, the
//! Services, the PodDisruptionBudgets, and who the NetworkPolicies let reach
//! a port (ingress and egress) — with the rules for the admin (`/metrics`)
//! port built on them.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use serde_json::Value;

use crate::yaml::{self, scalar};
use crate::{Error, Service};

/// Stands in for values only known in a running pod (`fieldRef`).
const FIELD_REF_PLACEHOLDER: &str = "10.0.0.1";

/// The namespace whose pods alone may reach an admin (`/metrics`) port.
pub const MONITORING_NAMESPACE: &str = "monitoring";

/// The name of the container port that `/metrics` is served on.
pub const ADMIN_PORT_NAME: &str = "admin";

/// The rendered objects.
#[derive(Debug, Clone)]
pub struct Manifests {
    objects: Vec<Value>,
}

/// One container of a Deployment or StatefulSet.
#[derive(Debug, Clone)]
pub struct Workload {
    /// `Deployment/users`.
    pub id: String,
    /// The container's name.
    pub container: String,
    /// The ferroshop service it runs (from its image).
    pub service: Option<Service>,
    /// Its image as rendered.
    pub image: String,
    /// Its `command` followed by its `args`.
    pub command: Vec<String>,
    /// The most pods that may run it at once: the `maxReplicas` of a
    /// HorizontalPodAutoscaler targeting the workload, else its `replicas`
    /// (default 1).
    pub instances: u32,
    /// Its environment: `envFrom` sources in order, then `env` (which wins).
    pub env: Vec<(String, String)>,
    /// Every file path mounted from a Secret or ConfigMap volume.
    pub files: Vec<String>,
    /// The container ports by number.
    pub ports: Vec<u16>,
    /// The named container ports.
    pub named_ports: BTreeMap<String, u16>,
    /// The pod template's labels.
    pub pod_labels: BTreeMap<String, String>,
    /// The pod template's annotations.
    pub pod_annotations: BTreeMap<String, String>,
    /// The whole pod spec, for further checks.
    pub pod: Value,
    /// The whole container spec.
    pub spec: Value,
}

/// One NetworkPolicy ingress rule that lets some sources reach a port.
#[derive(Debug, Clone)]
pub struct Admission {
    /// The NetworkPolicy's name.
    pub policy: String,
    /// The rule's `from` peers; `None` when it admits every source.
    pub peers: Option<Vec<Value>>,
}

impl Admission {
    /// Whether every source it admits is a pod of the monitoring namespace.
    pub fn monitoring_only(&self) -> bool {
        self.peers
            .as_ref()
            .is_some_and(|peers| !peers.is_empty() && peers.iter().all(is_monitoring_peer))
    }
}

/// A `from` peer that selects the monitoring namespace by its name label
/// (any of its pods, or some of them), and nothing else.
fn is_monitoring_peer(peer: &Value) -> bool {
    let namespaces = &peer["namespaceSelector"];
    let labels = namespaces["matchLabels"].as_object();
    peer["ipBlock"].is_null()
        && namespaces["matchExpressions"]
            .as_array()
            .is_none_or(Vec::is_empty)
        && labels.is_some_and(|labels| {
            labels.len() == 1
                && labels
                    .get("kubernetes.io/metadata.name")
                    .and_then(Value::as_str)
                    == Some(MONITORING_NAMESPACE)
        })
}

/// Whether a label selector (`matchLabels`, `matchExpressions`) selects
/// `labels`; an empty selector selects everything.
fn selects(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    let by_label = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(key, value)| labels.get(key).map(String::as_str) == value.as_str());
    let by_expression = selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|expression| {
            let value = expression["key"].as_str().and_then(|key| labels.get(key));
            let listed = || {
                expression["values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|v| Some(v.as_str().unwrap_or_default()) == value.map(String::as_str))
            };
            match expression["operator"].as_str() {
                Some("In") => listed(),
                Some("NotIn") => !listed(),
                Some("Exists") => value.is_some(),
                Some("DoesNotExist") => value.is_none(),
                _ => false,
            }
        });
    by_label && by_expression
}

/// Whether a NetworkPolicy spec is of `kind` (`Ingress`, `Egress`): as
/// listed in `policyTypes`, or, without that list, Ingress always and
/// Egress when it has an `egress` section (Kubernetes' defaulting).
fn policy_is(spec: &Value, kind: &str) -> bool {
    match spec["policyTypes"].as_array() {
        Some(types) => types.iter().any(|t| t == kind),
        None => kind == "Ingress" || !spec["egress"].is_null(),
    }
}

/// Whether a `from`/`to` peer selects pods of the policy's own namespace
/// with these labels: a peer of a `podSelector` alone. A peer with a
/// `namespaceSelector` or an `ipBlock` is about other namespaces or
/// addresses, and is never taken to mean this namespace's pods.
fn peer_selects_pod(peer: &Value, labels: &BTreeMap<String, String>) -> bool {
    peer["namespaceSelector"].is_null()
        && peer["ipBlock"].is_null()
        && peer["podSelector"].is_object()
        && selects(&peer["podSelector"], labels)
}

/// Who the NetworkPolicies let open a connection to one port of a workload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reach {
    /// The workloads of the namespace admitted (their ids, `Deployment/orders`).
    pub workloads: BTreeSet<String>,
    /// Admissions of sources beyond the namespace's own pods (other
    /// namespaces, address blocks, every source), each naming its policy.
    pub beyond: Vec<String>,
}

/// A string map (labels, annotations) of a JSON object.
fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), scalar(v).unwrap_or_default()))
        .collect()
}

/// A Service object.
#[derive(Debug, Clone)]
pub struct ServiceObject {
    /// Its name.
    pub name: String,
    /// Whether it is headless (`clusterIP: None`).
    pub headless: bool,
    /// Its ports.
    pub ports: Vec<u16>,
    /// Its selector.
    pub selector: BTreeMap<String, String>,
}

impl Manifests {
    /// Parses a multi-document YAML stream.
    ///
    /// # Errors
    /// [`Error::Yaml`] when it is not YAML.
    pub fn parse(rendered: &str) -> Result<Self, Error> {
        Ok(Self {
            objects: yaml::parse(rendered)?,
        })
    }

    /// Every object.
    pub fn objects(&self) -> &[Value] {
        &self.objects
    }

    /// The objects of one kind.
    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects
            .iter()
            .filter(move |o| o["kind"].as_str() == Some(kind))
    }

    /// The object of `kind` named `name`.
    pub fn get(&self, kind: &str, name: &str) -> Option<&Value> {
        self.objects.iter().find(|o| {
            o["kind"].as_str() == Some(kind) && o["metadata"]["name"].as_str() == Some(name)
        })
    }

    /// The object of `kind` named `name`, to change (tests raise a replica
    /// count or a pool size in the rendered objects).
    pub fn get_mut(&mut self, kind: &str, name: &str) -> Option<&mut Value> {
        self.objects.iter_mut().find(|o| {
            o["kind"].as_str() == Some(kind) && o["metadata"]["name"].as_str() == Some(name)
        })
    }

    /// The most pods of `kind`/`name` that may run at once: the
    /// `maxReplicas` of an autoscaler targeting it, else `spec.replicas`
    /// (default 1).
    fn instances(&self, kind: &str, object: &Value) -> Result<u32, Error> {
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let autoscaler = self.of_kind("HorizontalPodAutoscaler").find(|hpa| {
            let target = &hpa["spec"]["scaleTargetRef"];
            target["kind"].as_str() == Some(kind) && target["name"].as_str() == Some(name)
        });
        let (what, value) = match autoscaler {
            Some(hpa) => (
                format!(
                    "HorizontalPodAutoscaler/{} maxReplicas",
                    hpa["metadata"]["name"].as_str().unwrap_or("?")
                ),
                &hpa["spec"]["maxReplicas"],
            ),
            None => (
                format!("{kind}/{name} replicas"),
                &object["spec"]["replicas"],
            ),
        };
        if value.is_null() {
            return Ok(1);
        }
        value
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| Error::Shape(format!("{what}: {value} is not a replica count")))
    }

    /// The key/value data of a ConfigMap or Secret (Secret `data` decoded).
    fn data(&self, kind: &str, name: &str) -> Result<BTreeMap<String, String>, Error> {
        let object = self
            .get(kind, name)
            .ok_or_else(|| Error::Shape(format!("{kind}/{name} is referenced but not rendered")))?;
        let mut out = BTreeMap::new();
        if let Some(data) = object["data"].as_object() {
            for (key, value) in data {
                let text = value.as_str().unwrap_or_default();
                let text = if kind == "Secret" {
                    // Long values may be wrapped over lines.
                    let compact: String =
                        text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(compact)
                        .map_err(|err| Error::Shape(format!("Secret/{name} {key}: {err}")))?;
                    String::from_utf8_lossy(&bytes).into_owned()
                } else {
                    text.to_owned()
                };
                out.insert(key.clone(), text);
            }
        }
        if let Some(data) = object["stringData"].as_object() {
            for (key, value) in data {
                out.insert(key.clone(), scalar(value).unwrap_or_default());
            }
        }
        Ok(out)
    }

    /// Every container of every Deployment and StatefulSet.
    ///
    /// # Errors
    /// [`Error::Shape`] when a container refers to a ConfigMap or Secret (or
    /// a key of one) that is not rendered, or a replica count is not a number.
    pub fn workloads(&self) -> Result<Vec<Workload>, Error> {
        let mut out = Vec::new();
        for object in &self.objects {
            let kind = object["kind"].as_str().unwrap_or_default();
            if kind != "Deployment" && kind != "StatefulSet" {
                continue;
            }
            let id = format!(
                "{kind}/{}",
                object["metadata"]["name"].as_str().unwrap_or("?")
            );
            let instances = self.instances(kind, object)?;
            let template = &object["spec"]["template"];
            for container in template["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
            {
                out.push(self.workload(&id, instances, template, container)?);
            }
        }
        Ok(out)
    }

    fn workload(
        &self,
        id: &str,
        instances: u32,
        template: &Value,
        container: &Value,
    ) -> Result<Workload, Error> {
        let pod = &template["spec"];
        let mut env = Vec::new();
        for source in container["envFrom"].as_array().into_iter().flatten() {
            let prefix = source["prefix"].as_str().unwrap_or_default();
            let (kind, reference) = if source["configMapRef"].is_object() {
                ("ConfigMap", &source["configMapRef"])
            } else {
                ("Secret", &source["secretRef"])
            };
            let name = reference["name"].as_str().unwrap_or_default();
            for (key, value) in self.data(kind, name)? {
                env.push((format!("{prefix}{key}"), value));
            }
        }
        for var in container["env"].as_array().into_iter().flatten() {
            let name = var["name"].as_str().unwrap_or_default().to_owned();
            let value = if let Some(value) = scalar(&var["value"]) {
                value
            } else if var["valueFrom"]["fieldRef"].is_object()
                || var["valueFrom"]["resourceFieldRef"].is_object()
            {
                FIELD_REF_PLACEHOLDER.to_owned()
            } else {
                let (kind, reference) = if var["valueFrom"]["configMapKeyRef"].is_object() {
                    ("ConfigMap", &var["valueFrom"]["configMapKeyRef"])
                } else {
                    ("Secret", &var["valueFrom"]["secretKeyRef"])
                };
                let source = reference["name"].as_str().unwrap_or_default();
                let key = reference["key"].as_str().unwrap_or_default();
                self.data(kind, source)?.remove(key).ok_or_else(|| {
                    Error::Shape(format!(
                        "{id}: {name} refers to missing {kind}/{source} key {key}"
                    ))
                })?
            };
            env.push((name, value));
        }
        let image = container["image"].as_str().unwrap_or_default();
        Ok(Workload {
            id: id.to_owned(),
            container: container["name"].as_str().unwrap_or_default().to_owned(),
            service: Service::from_name_or_image(image),
            image: image.to_owned(),
            command: ["command", "args"]
                .into_iter()
                .flat_map(|key| container[key].as_array().into_iter().flatten())
                .filter_map(scalar)
                .collect(),
            instances,
            env: crate::compose::last_wins(env),
            files: self.mounted_files(pod, container)?,
            ports: port_numbers(&container["ports"], "containerPort"),
            named_ports: container["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    let name = p["name"].as_str()?;
                    let port = u16::try_from(p["containerPort"].as_u64()?).ok()?;
                    Some((name.to_owned(), port))
                })
                .collect(),
            pod_labels: string_map(&template["metadata"]["labels"]),
            pod_annotations: string_map(&template["metadata"]["annotations"]),
            pod: pod.clone(),
            spec: container.clone(),
        })
    }

    /// The paths of the files a container sees from Secret and ConfigMap volumes.
    fn mounted_files(&self, pod: &Value, container: &Value) -> Result<Vec<String>, Error> {
        let mut files = Vec::new();
        for mount in container["volumeMounts"].as_array().into_iter().flatten() {
            let volume_name = mount["name"].as_str().unwrap_or_default();
            let Some(volume) = pod["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|v| v["name"] == volume_name)
            else {
                continue;
            };
            let (kind, source, name_key) = if volume["secret"].is_object() {
                ("Secret", &volume["secret"], "secretName")
            } else if volume["configMap"].is_object() {
                ("ConfigMap", &volume["configMap"], "name")
            } else {
                continue;
            };
            let name = source[name_key].as_str().unwrap_or_default();
            let keys: Vec<(String, String)> = match source["items"].as_array() {
                Some(items) => items
                    .iter()
                    .map(|i| {
                        (
                            i["key"].as_str().unwrap_or_default().to_owned(),
                            i["path"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect(),
                None => self
                    .data(kind, name)?
                    .into_keys()
                    .map(|k| (k.clone(), k))
                    .collect(),
            };
            let data = self.data(kind, name)?;
            let mount_path = mount["mountPath"].as_str().unwrap_or_default();
            let sub_path = mount["subPath"].as_str();
            for (key, path) in keys {
                if !data.contains_key(&key) {
                    return Err(Error::Shape(format!(
                        "volume {volume_name}: {kind}/{name} has no key {key}"
                    )));
                }
                match sub_path {
                    Some(sub) if sub == path => files.push(mount_path.to_owned()),
                    Some(_) => {}
                    None => files.push(format!("{}/{path}", mount_path.trim_end_matches('/'))),
                }
            }
        }
        Ok(files)
    }

    /// Every ingress rule of the NetworkPolicies selecting `workload`'s pods
    /// that admits TCP `port` (a rule without ports admits every port; a
    /// named port is looked up in the workload's container).
    pub fn ingress_admissions(&self, workload: &Workload, port: u16) -> Vec<Admission> {
        let mut out = Vec::new();
        for policy in self.of_kind("NetworkPolicy") {
            let spec = &policy["spec"];
            if !selects(&spec["podSelector"], &workload.pod_labels) {
                continue;
            }
            let ingress_type = match spec["policyTypes"].as_array() {
                None => true,
                Some(types) => types.iter().any(|t| t == "Ingress"),
            };
            if !ingress_type {
                continue;
            }
            for rule in spec["ingress"].as_array().into_iter().flatten() {
                if !rule_admits_port(rule, workload, port) {
                    continue;
                }
                out.push(Admission {
                    policy: policy["metadata"]["name"]
                        .as_str()
                        .unwrap_or("?")
                        .to_owned(),
                    peers: rule["from"]
                        .as_array()
                        .filter(|peers| !peers.is_empty())
                        .cloned(),
                });
            }
        }
        out
    }

    /// The NetworkPolicies that select `workload`'s pods and are of `kind`
    /// (`Ingress`, `Egress`): with one, only what they allow is allowed.
    fn isolating<'a>(
        &'a self,
        workload: &'a Workload,
        kind: &'a str,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        self.of_kind("NetworkPolicy").filter(move |policy| {
            let spec = &policy["spec"];
            selects(&spec["podSelector"], &workload.pod_labels) && policy_is(spec, kind)
        })
    }

    /// Who may open a connection to TCP `port` of `target`'s pods, among
    /// `workloads` and beyond them.
    pub fn who_may_reach(&self, target: &Workload, port: u16, workloads: &[Workload]) -> Reach {
        let mut reach = Reach::default();
        if self.isolating(target, "Ingress").next().is_none() {
            reach
                .beyond
                .push("no NetworkPolicy isolates its pods: every source".to_owned());
            return reach;
        }
        for admission in self.ingress_admissions(target, port) {
            let Some(peers) = &admission.peers else {
                reach.beyond.push(format!(
                    "NetworkPolicy/{} admits every source",
                    admission.policy
                ));
                continue;
            };
            for peer in peers {
                if !peer["namespaceSelector"].is_null() || !peer["ipBlock"].is_null() {
                    reach
                        .beyond
                        .push(format!("NetworkPolicy/{} admits {peer}", admission.policy));
                    continue;
                }
                for workload in workloads {
                    if peer_selects_pod(peer, &workload.pod_labels) {
                        reach.workloads.insert(workload.id.clone());
                    }
                }
            }
        }
        reach
    }

    /// Why `from`'s pods cannot open a connection to TCP `port` of `to`'s
    /// pods: `from`'s egress policies do not allow it, or `to`'s ingress
    /// policies do not admit it (both must let it through). `None` when
    /// they can.
    pub fn unreachable(&self, from: &Workload, to: &Workload, port: u16) -> Option<String> {
        let mut egress = self.isolating(from, "Egress").peekable();
        let egress_allows = egress.peek().is_none()
            || egress.any(|policy| {
                policy["spec"]["egress"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|rule| {
                        let to_peer = match rule["to"].as_array() {
                            None => true,
                            Some(peers) if peers.is_empty() => true,
                            Some(peers) => peers
                                .iter()
                                .any(|peer| peer_selects_pod(peer, &to.pod_labels)),
                        };
                        to_peer && rule_admits_port(rule, to, port)
                    })
            });
        let ingress_admits = self.isolating(to, "Ingress").next().is_none()
            || self.ingress_admissions(to, port).iter().any(|admission| {
                admission.peers.as_ref().is_none_or(|peers| {
                    peers
                        .iter()
                        .any(|peer| peer_selects_pod(peer, &from.pod_labels))
                })
            });
        match (egress_allows, ingress_admits) {
            (true, true) => None,
            (false, true) => Some(format!(
                "no egress rule of a NetworkPolicy selecting {} lets it reach {} on port {port}",
                from.id, to.id
            )),
            (true, false) => Some(format!(
                "no ingress rule of a NetworkPolicy selecting {} admits {} on port {port}",
                to.id, from.id
            )),
            (false, false) => Some(format!(
                "neither {}'s egress nor {}'s ingress NetworkPolicies let {} reach {} on port {port}",
                from.id, to.id, from.id, to.id
            )),
        }
    }

    /// The names of the PodDisruptionBudgets that select `workload`'s pods.
    pub fn disruption_budgets(&self, workload: &Workload) -> Vec<String> {
        self.of_kind("PodDisruptionBudget")
            .filter(|pdb| selects(&pdb["spec"]["selector"], &workload.pod_labels))
            .map(|pdb| {
                pdb["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    }

    /// What is wrong with how `workload` serves `/metrics` on `admin_port`
    /// (the port its settings bind): a container port named `admin`, the
    /// `prometheus.io/scrape`, `/port` and `/path` pod annotations, and
    /// NetworkPolicies that admit that port from the monitoring namespace
    /// and from nowhere else. Empty when all is well.
    pub fn admin_port_problems(&self, workload: &Workload, admin_port: u16) -> Vec<String> {
        let mut problems = Vec::new();
        match workload.named_ports.get(ADMIN_PORT_NAME) {
            Some(&port) if port == admin_port => {}
            Some(port) => problems.push(format!(
                "container port {ADMIN_PORT_NAME:?} is {port}, but the service binds its admin listener on {admin_port}"
            )),
            None => problems.push(format!(
                "no container port named {ADMIN_PORT_NAME:?} ({admin_port}, where /metrics is served)"
            )),
        }
        let admin = admin_port.to_string();
        for (key, expected) in [
            ("prometheus.io/scrape", "true"),
            ("prometheus.io/port", admin.as_str()),
            ("prometheus.io/path", "/metrics"),
        ] {
            let found = workload.pod_annotations.get(key).map(String::as_str);
            if found != Some(expected) {
                problems.push(format!(
                    "pod annotation {key} must be {expected:?}, found {found:?}"
                ));
            }
        }
        let admissions = self.ingress_admissions(workload, admin_port);
        if !admissions.iter().any(Admission::monitoring_only) {
            problems.push(format!(
                "no NetworkPolicy admits port {admin_port} from the {MONITORING_NAMESPACE} namespace"
            ));
        }
        for admission in admissions.iter().filter(|a| !a.monitoring_only()) {
            problems.push(format!(
                "NetworkPolicy/{} admits port {admin_port} from {}",
                admission.policy,
                admission.peers.as_ref().map_or_else(
                    || "every source".to_owned(),
                    |peers| Value::Array(peers.clone()).to_string()
                )
            ));
        }
        problems
    }

    /// Every Service.
    pub fn services(&self) -> Vec<ServiceObject> {
        self.of_kind("Service")
            .map(|s| ServiceObject {
                name: s["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                headless: s["spec"]["clusterIP"] == "None",
                ports: port_numbers(&s["spec"]["ports"], "port"),
                selector: s["spec"]["selector"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), scalar(v).unwrap_or_default()))
                    .collect(),
            })
            .collect()
    }
}

/// Whether an ingress rule admits TCP `port` of `workload`'s container.
fn rule_admits_port(rule: &Value, workload: &Workload, port: u16) -> bool {
    let Some(ports) = rule["ports"].as_array().filter(|ports| !ports.is_empty()) else {
        return true;
    };
    ports.iter().any(|entry| {
        if entry["protocol"].as_str().is_some_and(|p| p != "TCP") {
            return false;
        }
        match &entry["port"] {
            Value::Null => true,
            Value::String(name) => match name.parse::<u16>() {
                Ok(number) => number == port,
                Err(_) => workload.named_ports.get(name) == Some(&port),
            },
            number => number.as_u64().is_some_and(|first| {
                let last = entry["endPort"].as_u64().unwrap_or(first);
                (first..=last).contains(&u64::from(port))
            }),
        }
    })
}

/// The port numbers under `key` in a list of ports (a container's
/// `ports`, a Service's `spec.ports`); entries without one are skipped.
fn port_numbers(ports: &Value, key: &str) -> Vec<u16> {
    ports
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|port| port[key].as_u64())
        .filter_map(|port| u16::try_from(port).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Topology, check};

    const RENDERED: &str = "\
apiVersion: v1
kind: ConfigMap
metadata: {name: env-abc}
data:
  SHOP_REGISTRY__BACKEND: dns
  SHOP_REGISTRY__SERVICES__CATALOG__HOST: catalog-headless
  SHOP_REGISTRY__SERVICES__CATALOG__PORT: '8082'
  SHOP_REGISTRY__SERVICES__USERS__HOST: users-headless
  SHOP_REGISTRY__SERVICES__USERS__PORT: '8081'
---
apiVersion: v1
kind: Secret
metadata: {name: cart-xyz}
data:
  SHOP_DATABASE__URL: cG9zdGdyZXM6Ly9jYXJ0OnB3QHBvc3RncmVzOjU0MzIvY2FydA==
  SHOP_INTERNAL__SERVICE_TOKEN: dG9rZW4=
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: cart}
spec:
  template:
    spec:
      containers:
        - name: cart
          image: ferroshop/cart:0.1.0
          envFrom:
            - configMapRef: {name: env-abc}
            - secretRef: {name: cart-xyz}
          env:
            - {name: SHOP_CURRENCY, value: EUR}
            - name: SHOP_INSTANCE__ADVERTISE_ADDR
              valueFrom: {fieldRef: {fieldPath: status.podIP}}
          ports: [{containerPort: 8083}]
          volumeMounts: [{name: keys, mountPath: /etc/keys}]
      volumes:
        - name: keys
          secret: {secretName: cart-xyz, items: [{key: SHOP_INTERNAL__SERVICE_TOKEN, path: token}]}
---
apiVersion: v1
kind: Service
metadata: {name: cart-headless}
spec: {clusterIP: None, ports: [{port: 8083}], selector: {app: cart}}
";

    #[test]
    fn environment_resolves_through_config_maps_and_secrets() {
        let manifests = Manifests::parse(RENDERED).expect("yaml");
        let workloads = manifests.workloads().expect("resolves");
        let cart = &workloads[0];
        assert_eq!(cart.service, Some(Service::Cart));
        assert_eq!(cart.files, ["/etc/keys/token"]);
        assert_eq!(cart.ports, [8083]);
        assert_eq!(cart.image, "ferroshop/cart:0.1.0");
        assert_eq!(cart.instances, 1, "no replicas, no autoscaler");
        let loaded = check(Service::Cart, Topology::Kubernetes, &cart.env).expect("valid");
        assert_eq!(loaded.service_token.as_deref(), Some("token"));
        assert_eq!(
            loaded.database_url.as_deref(),
            Some("postgres://cart:pw@postgres:5432/cart")
        );
        let services = manifests.services();
        assert!(services[0].headless);
        assert_eq!(services[0].ports, [8083]);
    }

    #[test]
    fn instances_are_the_autoscalers_maximum_else_the_replicas() {
        let with_replicas = RENDERED.replace(
            "metadata: {name: cart}\nspec:\n",
            "metadata: {name: cart}\nspec:\n  replicas: 4\n",
        );
        let manifests = Manifests::parse(&with_replicas).expect("yaml");
        assert_eq!(manifests.workloads().expect("resolves")[0].instances, 4);

        let hpa = "\n---\napiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: cart}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: cart}\n  minReplicas: 2\n  maxReplicas: 6\n";
        let mut manifests = Manifests::parse(&(with_replicas + hpa)).expect("yaml");
        assert_eq!(manifests.workloads().expect("resolves")[0].instances, 6);

        let spec = &mut manifests
            .get_mut("HorizontalPodAutoscaler", "cart")
            .expect("rendered")["spec"];
        spec["maxReplicas"] = "lots".into();
        let err = manifests.workloads().expect_err("not a number");
        assert!(
            err.to_string().contains("HorizontalPodAutoscaler/cart"),
            "{err}"
        );
    }

    /// The workloads of [`RENDERED`] with `from` replaced by `to`.
    fn workloads_with(from: &str, to: &str) -> Result<Vec<Workload>, Error> {
        Manifests::parse(&RENDERED.replace(from, to))
            .expect("yaml")
            .workloads()
    }

    #[test]
    fn command_and_args_are_read_in_order() {
        let workloads = workloads_with(
            "          image: ferroshop/cart:0.1.0\n",
            "          image: ferroshop/cart:0.1.0\n          command: [serve]\n          args: ['-c', 'x=1']\n",
        );
        assert_eq!(
            workloads.expect("resolves")[0].command,
            ["serve", "-c", "x=1"]
        );
    }

    #[test]
    fn a_typo_in_a_config_map_fails_the_check() {
        let typo = "SHOP_REGISTRY__SERVICES__USERS__POTR";
        let workloads = workloads_with("SHOP_REGISTRY__SERVICES__USERS__PORT", typo);
        let workloads = workloads.expect("resolves");
        let problems =
            check(Service::Cart, Topology::Kubernetes, &workloads[0].env).expect_err("typo");
        assert!(problems[0].contains("potr"), "{problems:?}");
    }

    /// [`RENDERED`] with an admin port, the scrape annotations and
    /// `policies` appended.
    fn with_admin(policies: &str) -> Manifests {
        let text = RENDERED
            .replace(
                "  template:\n    spec:\n",
                "  template:\n    metadata:\n      labels: {app.kubernetes.io/name: cart}\n      annotations: {prometheus.io/scrape: 'true', prometheus.io/port: '9083', prometheus.io/path: /metrics}\n    spec:\n",
            )
            .replace(
                "ports: [{containerPort: 8083}]",
                "ports: [{name: http, containerPort: 8083}, {name: admin, containerPort: 9083}]",
            );
        Manifests::parse(&(text + policies)).expect("yaml")
    }

    const DEFAULT_DENY: &str = "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: default-deny}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress]}\n";
    const METRICS: &str = "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: metrics}\nspec:\n  podSelector:\n    matchExpressions: [{key: app.kubernetes.io/name, operator: In, values: [users, cart]}]\n  policyTypes: [Ingress]\n  ingress:\n    - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}]\n      ports: [{protocol: TCP, port: 9083}]\n";

    fn problems(manifests: &Manifests) -> Vec<String> {
        let workloads = manifests.workloads().expect("resolves");
        manifests.admin_port_problems(&workloads[0], 9083)
    }

    #[test]
    fn an_admin_port_open_to_monitoring_only_passes() {
        let manifests = with_admin(&format!("{DEFAULT_DENY}{METRICS}"));
        let workloads = manifests.workloads().expect("resolves");
        assert_eq!(workloads[0].named_ports["admin"], 9083);
        assert_eq!(workloads[0].pod_labels["app.kubernetes.io/name"], "cart");
        assert_eq!(problems(&manifests), Vec::<String>::new());
        // The API port is not admitted by the metrics policy.
        assert!(manifests.ingress_admissions(&workloads[0], 8083).is_empty());
        // A policy naming the port instead of its number matches it too.
        let named = with_admin(&METRICS.replace("port: 9083", "port: admin"));
        assert_eq!(problems(&named), Vec::<String>::new());
    }

    #[test]
    fn an_admin_port_open_to_others_is_named() {
        let ingress = METRICS.replace(
            "{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}",
            "{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}, {namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ingress-nginx}}}",
        );
        let found = problems(&with_admin(&ingress)).join("\n");
        assert!(
            found.contains("NetworkPolicy/metrics admits port 9083 from"),
            "{found}"
        );
        assert!(found.contains("ingress-nginx"), "{found}");

        let everyone = "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: open}\nspec:\n  podSelector: {matchLabels: {app.kubernetes.io/name: cart}}\n  ingress: [{}]\n";
        let found = problems(&with_admin(&format!("{METRICS}{everyone}"))).join("\n");
        assert!(
            found.contains("NetworkPolicy/open admits port 9083 from every source"),
            "{found}"
        );

        let elsewhere = METRICS.replace("values: [users, cart]", "values: [users]");
        let found = problems(&with_admin(&elsewhere)).join("\n");
        assert!(
            found.contains("no NetworkPolicy admits port 9083 from the monitoring namespace"),
            "{found}"
        );
    }

    #[test]
    fn a_missing_admin_port_or_annotation_is_named() {
        let manifests = Manifests::parse(&format!("{RENDERED}{METRICS}")).expect("yaml");
        let found = problems(&manifests).join("\n");
        for expected in [
            "no container port named \"admin\"",
            "prometheus.io/scrape",
            "prometheus.io/port",
            "prometheus.io/path",
        ] {
            assert!(found.contains(expected), "{expected}: {found}");
        }
        let workloads = with_admin(METRICS).workloads().expect("resolves");
        let wrong = with_admin(METRICS)
            .admin_port_problems(&workloads[0], 9999)
            .join("\n");
        assert!(
            wrong.contains("container port \"admin\" is 9083"),
            "{wrong}"
        );
        assert!(
            wrong.contains("prometheus.io/port must be \"9999\""),
            "{wrong}"
        );
    }

    /// Deployments gateway, orders and payments (each labelled
    /// `app.kubernetes.io/name: <name>`, with an `http` port) and `extra`
    /// appended (policies, budgets).
    fn calls(extra: &str) -> (Manifests, Vec<Workload>) {
        let mut text = String::new();
        for (name, port) in [("gateway", 8080), ("orders", 8084), ("payments", 8086)] {
            text.push_str(&format!(
                "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  template:\n    metadata: {{labels: {{app.kubernetes.io/name: {name}}}}}\n    spec:\n      containers:\n        - name: {name}\n          image: localhost/ferroshop/{name}:0.1.0\n          ports: [{{name: http, containerPort: {port}}}]\n"
            ));
        }
        let manifests = Manifests::parse(&format!("{text}{extra}")).expect("yaml");
        let workloads = manifests.workloads().expect("resolves");
        (manifests, workloads)
    }

    const PAYMENTS_INGRESS: &str = "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: payments}\nspec:\n  podSelector: {matchLabels: {app.kubernetes.io/name: payments}}\n  policyTypes: [Ingress]\n  ingress:\n    - from: [{podSelector: {matchLabels: {app.kubernetes.io/name: orders}}}]\n      ports: [{protocol: TCP, port: 8086}]\n";
    const ORDERS_EGRESS: &str = "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: orders}\nspec:\n  podSelector: {matchLabels: {app.kubernetes.io/name: orders}}\n  policyTypes: [Egress]\n  egress:\n    - to: [{podSelector: {matchLabels: {app.kubernetes.io/name: payments}}}]\n      ports: [{protocol: TCP, port: http}]\n";

    #[test]
    fn a_call_needs_the_callers_egress_and_the_callees_ingress() {
        let (manifests, w) = calls(&format!("{DEFAULT_DENY}{PAYMENTS_INGRESS}{ORDERS_EGRESS}"));
        let (gateway, orders, payments) = (&w[0], &w[1], &w[2]);
        assert_eq!(manifests.unreachable(orders, payments, 8086), None);
        let refused = manifests
            .unreachable(gateway, payments, 8086)
            .expect("denied");
        assert!(
            refused.contains("neither Deployment/gateway's egress"),
            "{refused}"
        );
        let other_port = manifests
            .unreachable(orders, payments, 9086)
            .expect("denied");
        assert!(other_port.contains("port 9086"), "{other_port}");

        let (manifests, w) = calls(&format!("{DEFAULT_DENY}{PAYMENTS_INGRESS}"));
        let refused = manifests
            .unreachable(&w[1], &w[2], 8086)
            .expect("no egress");
        assert!(
            refused.starts_with("no egress rule of a NetworkPolicy selecting Deployment/orders"),
            "{refused}"
        );
        let (manifests, w) = calls(&format!("{DEFAULT_DENY}{ORDERS_EGRESS}"));
        let refused = manifests
            .unreachable(&w[1], &w[2], 8086)
            .expect("no ingress");
        assert!(
            refused.starts_with("no ingress rule of a NetworkPolicy selecting Deployment/payments"),
            "{refused}"
        );
    }

    #[test]
    fn who_may_reach_names_the_workloads_and_anything_beyond_them() {
        let (manifests, w) = calls(&format!("{DEFAULT_DENY}{PAYMENTS_INGRESS}"));
        let reach = manifests.who_may_reach(&w[2], 8086, &w);
        assert_eq!(
            reach.workloads,
            BTreeSet::from(["Deployment/orders".to_owned()])
        );
        assert!(reach.beyond.is_empty(), "{reach:?}");

        let wider = PAYMENTS_INGRESS.replace(
            "from: [{podSelector: {matchLabels: {app.kubernetes.io/name: orders}}}]",
            "from: [{podSelector: {}}, {namespaceSelector: {}}]",
        );
        let (manifests, w) = calls(&format!("{DEFAULT_DENY}{wider}"));
        let reach = manifests.who_may_reach(&w[2], 8086, &w);
        assert_eq!(reach.workloads.len(), 3, "every pod of the namespace");
        assert_eq!(reach.beyond.len(), 1, "{reach:?}");
        assert!(reach.beyond[0].starts_with("NetworkPolicy/payments admits"));

        let (manifests, w) = calls(DEFAULT_DENY);
        let reach = manifests.who_may_reach(&w[2], 8086, &w);
        assert_eq!(reach, Reach::default(), "default deny: no one");
        // Egress-only policies do not isolate ingress.
        let (manifests, w) = calls(ORDERS_EGRESS);
        assert_eq!(manifests.unreachable(&w[0], &w[2], 8086), None);
        let reach = manifests.who_may_reach(&w[2], 8086, &w);
        assert_eq!(
            reach.beyond,
            ["no NetworkPolicy isolates its pods: every source"]
        );
    }

    #[test]
    fn disruption_budgets_are_found_by_their_selector() {
        let pdb = "---\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: payments}\nspec:\n  maxUnavailable: 1\n  selector: {matchLabels: {app.kubernetes.io/name: payments}}\n";
        let (manifests, w) = calls(pdb);
        assert_eq!(manifests.disruption_budgets(&w[2]), ["payments"]);
        assert!(manifests.disruption_budgets(&w[1]).is_empty());
    }

    #[test]
    fn a_missing_config_map_is_an_error() {
        let reference = "configMapRef: {name: env-";
        let dangling = workloads_with(&format!("{reference}abc}}"), &format!("{reference}old}}"));
        let err = dangling.expect_err("dangling reference");
        assert!(err.to_string().contains("ConfigMap/env-old"), "{err}");
    }
}
