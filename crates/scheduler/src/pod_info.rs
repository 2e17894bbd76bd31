//! [`PodInfo`]: everything the plugins need from a pod, parsed once when the pod enters the
//! scheduler (requests, host ports, tolerations, node and pod affinity terms), so that the hot
//! filter and score loops never touch JSON or re-parse selectors.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    NodeSelectorRequirement, NodeSelectorTerm, Pod, PodAffinityTerm, PodSpec, Toleration,
    TopologySpreadConstraint, WeightedPodAffinityTerm,
};
use niwa_api::selector::LabelSelector;

use crate::resources::{PodRequests, pod_requests};

pub type Labels = BTreeMap<String, String>;

/// A parsed `PodAffinityTerm` (kube's `framework.AffinityTerm`).
#[derive(Debug, Clone)]
pub struct AffinityTerm {
    pub namespaces: BTreeSet<String>,
    /// `Nothing` when the term has no namespaceSelector.
    pub namespace_selector: LabelSelector,
    pub selector: LabelSelector,
    pub topology_key: String,
    /// For preferred terms: the term's weight; for required terms: 0.
    pub weight: i64,
}

impl AffinityTerm {
    fn new(owner_ns: &str, term: &PodAffinityTerm, weight: i64) -> AffinityTerm {
        let mut namespaces: BTreeSet<String> = term.namespaces.iter().flatten().cloned().collect();
        if namespaces.is_empty() && term.namespace_selector.is_none() {
            namespaces.insert(owner_ns.to_string());
        }
        AffinityTerm {
            namespaces,
            namespace_selector: LabelSelector::from_api(term.namespace_selector.as_ref())
                .unwrap_or(LabelSelector::Nothing),
            // An invalid selector selects nothing (kube rejects such pods at admission).
            selector: LabelSelector::from_api(term.label_selector.as_ref())
                .unwrap_or(LabelSelector::Nothing),
            topology_key: term.topology_key.clone(),
            weight,
        }
    }

    /// kube's `AffinityTerm.Matches`: the pod's namespace is selected and its labels match.
    pub fn matches(&self, pod: &PodInfo, namespace_labels: Option<&Labels>) -> bool {
        let ns_ok = self.namespaces.contains(&pod.namespace)
            || namespace_labels.is_some_and(|l| self.namespace_selector.matches(l));
        ns_ok && self.selector.matches(&pod.labels)
    }
}

/// One `NodeSelectorRequirement` over labels or fields.
#[derive(Debug, Clone)]
pub struct NodeRequirement {
    pub key: String,
    pub operator: String,
    pub values: Vec<String>,
}

impl NodeRequirement {
    fn new(r: &NodeSelectorRequirement) -> NodeRequirement {
        NodeRequirement {
            key: r.key.clone(),
            operator: r.operator.clone(),
            values: r.values.clone().unwrap_or_default(),
        }
    }

    fn matches(&self, value: Option<&str>) -> bool {
        match self.operator.as_str() {
            "In" => value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            "NotIn" => value.is_none_or(|v| !self.values.iter().any(|x| x == v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            op @ ("Gt" | "Lt") => {
                let (Some(have), [want]) =
                    (value.and_then(|v| v.parse::<i64>().ok()), &self.values[..])
                else {
                    return false;
                };
                let Ok(want) = want.parse::<i64>() else {
                    return false;
                };
                if op == "Gt" { have > want } else { have < want }
            }
            _ => false,
        }
    }
}

/// A parsed `NodeSelectorTerm`: its expressions (labels) and fields (`metadata.name`) all hold.
/// An empty term matches nothing.
#[derive(Debug, Clone)]
pub struct NodeTerm {
    pub expressions: Vec<NodeRequirement>,
    pub fields: Vec<NodeRequirement>,
}

impl NodeTerm {
    pub fn new(t: &NodeSelectorTerm) -> NodeTerm {
        NodeTerm {
            expressions: t
                .match_expressions
                .iter()
                .flatten()
                .map(NodeRequirement::new)
                .collect(),
            fields: t
                .match_fields
                .iter()
                .flatten()
                .map(NodeRequirement::new)
                .collect(),
        }
    }

    pub fn matches(&self, node_name: &str, labels: &Labels) -> bool {
        if self.expressions.is_empty() && self.fields.is_empty() {
            return false;
        }
        self.expressions
            .iter()
            .all(|r| r.matches(labels.get(&r.key).map(String::as_str)))
            && self.fields.iter().all(|r| {
                r.key == "metadata.name"
                    && matches!(r.operator.as_str(), "In" | "NotIn")
                    && r.matches(Some(node_name))
            })
    }
}

/// A container port that claims a port on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// `0.0.0.0` when unset.
    pub ip: String,
    /// `TCP` when unset.
    pub protocol: String,
    pub port: i32,
}

/// The pod as the scheduler sees it. Shared (`Arc`) between the queue, the cache and snapshots.
#[derive(Debug, Clone)]
pub struct PodInfo {
    pub pod: Arc<Pod>,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub labels: Labels,
    pub priority: i32,
    pub requests: PodRequests,
    pub host_ports: Vec<HostPort>,
    pub tolerations: Vec<Toleration>,
    pub node_selector: Labels,
    /// `requiredDuringScheduling…` node affinity: the terms are ORed. `None`: no constraint.
    pub required_node_terms: Option<Vec<NodeTerm>>,
    pub preferred_node_terms: Vec<(i64, NodeTerm)>,
    pub required_affinity_terms: Vec<AffinityTerm>,
    pub required_anti_affinity_terms: Vec<AffinityTerm>,
    pub preferred_affinity_terms: Vec<AffinityTerm>,
    pub preferred_anti_affinity_terms: Vec<AffinityTerm>,
    pub spread_constraints: Vec<TopologySpreadConstraint>,
    /// `metadata.deletionTimestamp` is set.
    pub terminating: bool,
    pub node_name: Option<String>,
    pub scheduler_name: String,
    /// `spec.preemptionPolicy: Never`.
    pub never_preempts: bool,
    /// The controlling owner reference: (apiVersion, kind, name).
    pub controller: Option<(String, String, String)>,
}

impl PodInfo {
    pub fn new(pod: Arc<Pod>) -> PodInfo {
        let meta = &pod.metadata;
        let namespace = meta.namespace.clone().unwrap_or_else(|| "default".into());
        // Borrowed, not cloned: every pod event of the informer builds a PodInfo, and a clone of
        // the spec (containers, resources, …) was most of that cost.
        let no_spec;
        let spec = match &pod.spec {
            Some(s) => s,
            None => {
                no_spec = PodSpec::default();
                &no_spec
            }
        };
        let affinity = spec.affinity.as_ref();
        let node_aff = affinity.and_then(|a| a.node_affinity.as_ref());
        let pod_aff = affinity.and_then(|a| a.pod_affinity.as_ref());
        let anti = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
        let required = |terms: Option<&Vec<PodAffinityTerm>>| -> Vec<AffinityTerm> {
            terms
                .into_iter()
                .flatten()
                .map(|t| AffinityTerm::new(&namespace, t, 0))
                .collect()
        };
        let preferred = |terms: Option<&Vec<WeightedPodAffinityTerm>>| {
            terms
                .into_iter()
                .flatten()
                .map(|t| AffinityTerm::new(&namespace, &t.pod_affinity_term, t.weight as i64))
                .collect::<Vec<_>>()
        };
        let mut host_ports = Vec::new();
        let sidecars = spec
            .init_containers
            .iter()
            .flatten()
            .filter(|c| c.restart_policy.as_deref() == Some("Always"));
        for c in sidecars.chain(spec.containers.iter()) {
            for p in c.ports.iter().flatten() {
                if let Some(port) = p.host_port.filter(|p| *p > 0) {
                    host_ports.push(HostPort {
                        ip: p
                            .host_ip
                            .clone()
                            .filter(|s| !s.is_empty())
                            .unwrap_or_else(|| "0.0.0.0".into()),
                        protocol: p
                            .protocol
                            .clone()
                            .filter(|s| !s.is_empty())
                            .unwrap_or_else(|| "TCP".into()),
                        port,
                    });
                }
            }
        }
        let controller = meta
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| (o.api_version.clone(), o.kind.clone(), o.name.clone()));
        PodInfo {
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            labels: meta.labels.clone().unwrap_or_default(),
            priority: spec.priority.unwrap_or(0),
            requests: pod_requests(&pod),
            host_ports,
            tolerations: spec.tolerations.clone().unwrap_or_default(),
            node_selector: spec.node_selector.clone().unwrap_or_default(),
            required_node_terms: node_aff
                .and_then(|a| {
                    a.required_during_scheduling_ignored_during_execution
                        .as_ref()
                })
                .map(|s| s.node_selector_terms.iter().map(NodeTerm::new).collect()),
            preferred_node_terms: node_aff
                .and_then(|a| {
                    a.preferred_during_scheduling_ignored_during_execution
                        .as_ref()
                })
                .into_iter()
                .flatten()
                .filter(|t| t.weight != 0)
                .map(|t| (t.weight as i64, NodeTerm::new(&t.preference)))
                .collect(),
            required_affinity_terms: required(pod_aff.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            required_anti_affinity_terms: required(anti.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_affinity_terms: preferred(pod_aff.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_anti_affinity_terms: preferred(anti.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            spread_constraints: spec.topology_spread_constraints.clone().unwrap_or_default(),
            terminating: meta.deletion_timestamp.is_some(),
            node_name: spec.node_name.clone().filter(|n| !n.is_empty()),
            scheduler_name: spec
                .scheduler_name
                .clone()
                .unwrap_or_else(|| "default-scheduler".into()),
            never_preempts: spec.preemption_policy.as_deref() == Some("Never"),
            controller,
            namespace,
            pod,
        }
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Whether the pod has any (anti-)affinity term: kube's `PodsWithAffinity`.
    pub fn has_affinity(&self) -> bool {
        !self.required_affinity_terms.is_empty()
            || !self.required_anti_affinity_terms.is_empty()
            || !self.preferred_affinity_terms.is_empty()
            || !self.preferred_anti_affinity_terms.is_empty()
    }

    /// Whether the nodeSelector and required node affinity accept a node
    /// (kube's `nodeaffinity.GetRequiredNodeAffinity(pod).Match(node)`).
    /// Whether a nodeSelector or required node affinity constrains the pod.
    pub fn has_node_constraints(&self) -> bool {
        !self.node_selector.is_empty() || self.required_node_terms.is_some()
    }

    pub fn matches_node_selector_and_affinity(&self, node_name: &str, labels: &Labels) -> bool {
        if !self
            .node_selector
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
        {
            return false;
        }
        match &self.required_node_terms {
            None => true,
            Some(terms) => terms.iter().any(|t| t.matches(node_name, labels)),
        }
    }
}

#[cfg(test)]
pub(crate) mod test_pods {
    //! Builders for the plugin golden tests.
    use super::*;
    use serde_json::{Value, json};

    /// A pod from a JSON spec fragment, in namespace `default` unless the metadata says otherwise.
    pub fn pod(name: &str, meta: Value, spec: Value) -> Arc<PodInfo> {
        let mut m = json!({"name": name, "namespace": "default", "uid": format!("uid-{name}")});
        if let (Some(m), Some(extra)) = (m.as_object_mut(), meta.as_object()) {
            for (k, v) in extra {
                m.insert(k.clone(), v.clone());
            }
        }
        let mut spec = spec;
        if spec.get("containers").is_none() {
            spec["containers"] = json!([{"name": "c", "image": "i"}]);
        }
        let pod: Pod =
            serde_json::from_value(json!({"metadata": m, "spec": spec})).expect("pod json");
        Arc::new(PodInfo::new(Arc::new(pod)))
    }

    /// A pod requesting cpu/memory.
    pub fn pod_req(name: &str, cpu: &str, mem: &str) -> Arc<PodInfo> {
        pod(
            name,
            json!({}),
            json!({"containers": [{"name": "c", "image": "i",
                "resources": {"requests": {"cpu": cpu, "memory": mem}}}]}),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::test_pods::pod;
    use serde_json::json;

    #[test]
    fn node_terms_are_ored_and_requirements_anded() {
        let p = pod(
            "p",
            json!({}),
            json!({
                "nodeSelector": {"disk": "ssd"},
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]},
                                              {"key": "gen", "operator": "Gt", "values": ["3"]}]},
                        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["special"]}]}
                    ]}}}
            }),
        );
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(p.matches_node_selector_and_affinity(
            "n",
            &labels(&[("disk", "ssd"), ("zone", "a"), ("gen", "4")])
        ));
        assert!(!p.matches_node_selector_and_affinity(
            "n",
            &labels(&[("disk", "ssd"), ("zone", "a"), ("gen", "3")])
        ));
        assert!(
            !p.matches_node_selector_and_affinity("n", &labels(&[("zone", "a"), ("gen", "4")]))
        );
        assert!(p.matches_node_selector_and_affinity("special", &labels(&[("disk", "ssd")])));
    }

    #[test]
    fn affinity_terms_default_to_the_pods_namespace() {
        let p = pod(
            "p",
            json!({"namespace": "web"}),
            json!({"affinity": {"podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "x"}}, "topologyKey": "kubernetes.io/hostname"}]}}}),
        );
        let term = &p.required_anti_affinity_terms[0];
        let same = pod(
            "q",
            json!({"namespace": "web", "labels": {"app": "x"}}),
            json!({}),
        );
        let other = pod(
            "r",
            json!({"namespace": "db", "labels": {"app": "x"}}),
            json!({}),
        );
        assert!(term.matches(&same, None));
        assert!(!term.matches(&other, None));
        assert!(p.has_affinity());
    }
}
