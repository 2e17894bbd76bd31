//! PodTopologySpread: `DoNotSchedule` constraints (filter: skew = matching pods in the node's
//! domain + self − global minimum ≤ maxSkew) and `ScheduleAnyway` constraints — or, for a pod
//! with none, the system defaults (hostname maxSkew 3, zone maxSkew 5) over the selector of its
//! Services and controller — as a score.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::TopologySpreadConstraint;
use niwa_api::selector::LabelSelector;
use niwa_api::selector::label::{Operator, Requirement};

use super::node::untolerated_taint;
use super::{Code, FilterResult, MAX_NODE_SCORE, Plugin, Rejection};
use crate::node_info::NodeInfo;
use crate::pod_info::{Labels, PodInfo};
use crate::snapshot::Snapshot;

pub const ERR_CONSTRAINTS: &str = "node(s) didn't match pod topology spread constraints";
pub const ERR_MISSING_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";
const LABEL_ZONE: &str = "topology.kubernetes.io/zone";

/// A constraint with its defaults applied and selector parsed.
#[derive(Debug, Clone)]
pub struct Constraint {
    pub max_skew: i64,
    pub topology_key: String,
    pub selector: LabelSelector,
    pub min_domains: i64,
    pub honor_node_affinity: bool,
    pub honor_node_taints: bool,
}

impl Constraint {
    fn includes(&self, pod: &PodInfo, node: &NodeInfo) -> bool {
        (!self.honor_node_affinity
            || pod.matches_node_selector_and_affinity(node.name(), node.labels()))
            && (!self.honor_node_taints || untolerated_taint(node, &pod.tolerations).is_none())
    }
}

/// The pod's constraints with this `whenUnsatisfiable`, `matchLabelKeys` merged into the selector.
pub fn constraints(pod: &PodInfo, action: &str) -> Vec<Constraint> {
    pod.spread_constraints
        .iter()
        .filter(|c| c.when_unsatisfiable == action)
        .map(|c| build(pod, c))
        .collect()
}

fn build(pod: &PodInfo, c: &TopologySpreadConstraint) -> Constraint {
    let mut selector =
        LabelSelector::from_api(c.label_selector.as_ref()).unwrap_or(LabelSelector::Nothing);
    if let LabelSelector::Requirements(reqs) = &mut selector {
        for key in c.match_label_keys.iter().flatten() {
            if let Some(v) = pod.labels.get(key)
                && let Ok(r) = Requirement::new(key, Operator::In, &[v])
            {
                reqs.push(r);
            }
        }
    }
    Constraint {
        max_skew: c.max_skew as i64,
        topology_key: c.topology_key.clone(),
        selector,
        min_domains: c.min_domains.unwrap_or(1) as i64,
        honor_node_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
        honor_node_taints: c.node_taints_policy.as_deref() == Some("Honor"),
    }
}

/// kube's `countPodsMatchSelector`: same namespace, not terminating, selector matches.
fn count_matching(pods: &[std::sync::Arc<PodInfo>], selector: &LabelSelector, ns: &str) -> i64 {
    if selector.is_everything() {
        return 0; // kube: an empty selector counts nothing
    }
    pods.iter()
        .filter(|p| !p.terminating && p.namespace == ns && selector.matches(&p.labels))
        .count() as i64
}

fn has_all_keys(labels: &Labels, cs: &[Constraint]) -> bool {
    cs.iter().all(|c| labels.contains_key(&c.topology_key))
}

/// PreFilter state: per constraint, matching pods per domain.
#[derive(Debug, Clone)]
pub struct PreFilterState {
    constraints: Vec<Constraint>,
    counts: Vec<HashMap<String, i64>>,
}

impl PreFilterState {
    fn min_match(&self, i: usize) -> i64 {
        let c = &self.counts[i];
        if (c.len() as i64) < self.constraints[i].min_domains {
            return 0;
        }
        c.values().copied().min().unwrap_or(i32::MAX as i64)
    }
}

/// PreFilter. `None` when the pod has no DoNotSchedule constraint.
pub fn pre_filter(pod: &PodInfo, snap: &Snapshot) -> Option<PreFilterState> {
    let constraints = constraints(pod, "DoNotSchedule");
    if constraints.is_empty() {
        return None;
    }
    let mut counts = vec![HashMap::new(); constraints.len()];
    for node in &snap.nodes {
        if !has_all_keys(node.labels(), &constraints) {
            continue;
        }
        for (i, c) in constraints.iter().enumerate() {
            if !c.includes(pod, node) {
                continue;
            }
            let value = &node.labels()[&c.topology_key];
            *counts[i].entry(value.clone()).or_default() +=
                count_matching(&node.pods, &c.selector, &pod.namespace);
        }
    }
    Some(PreFilterState {
        constraints,
        counts,
    })
}

pub fn filter(s: &PreFilterState, pod: &PodInfo, node: &NodeInfo) -> FilterResult {
    for (i, c) in s.constraints.iter().enumerate() {
        let Some(value) = node.labels().get(&c.topology_key) else {
            return Err(Rejection::new(
                Plugin::PodTopologySpread,
                Code::UnschedulableAndUnresolvable,
                ERR_MISSING_LABEL,
            ));
        };
        let self_match = i64::from(c.selector.matches(&pod.labels));
        let matched = s.counts[i].get(value).copied().unwrap_or(0);
        if matched + self_match - s.min_match(i) > c.max_skew {
            return Err(Rejection::new(
                Plugin::PodTopologySpread,
                Code::Unschedulable,
                ERR_CONSTRAINTS,
            ));
        }
    }
    Ok(())
}

/// PreScore state.
#[derive(Debug, Clone)]
pub struct ScoreState {
    constraints: Vec<Constraint>,
    /// Per constraint (non-hostname keys): domain → matching pods on eligible nodes.
    counts: Vec<HashMap<String, i64>>,
    weights: Vec<f64>,
    /// Filtered nodes lacking a required topology key: scored 0.
    ignored: Vec<bool>,
}

/// PreScore over the nodes that passed filtering (`feasible` indexes `snap.nodes`).
pub fn pre_score(pod: &PodInfo, snap: &Snapshot, feasible: &[usize]) -> Option<ScoreState> {
    let (constraints, require_all) = if pod.spread_constraints.is_empty() {
        let selector = snap.objects.default_selector(pod)?;
        let defaults = [(LABEL_HOSTNAME, 3), (LABEL_ZONE, 5)];
        let cs: Vec<Constraint> = defaults
            .iter()
            .map(|(key, skew)| Constraint {
                max_skew: *skew,
                topology_key: key.to_string(),
                selector: selector.clone(),
                min_domains: 1,
                honor_node_affinity: true,
                honor_node_taints: false,
            })
            .collect();
        (cs, false)
    } else {
        (constraints(pod, "ScheduleAnyway"), true)
    };
    if constraints.is_empty() || feasible.is_empty() {
        return None;
    }
    let mut counts = vec![HashMap::new(); constraints.len()];
    let mut ignored = vec![false; feasible.len()];
    let mut sizes = vec![0usize; constraints.len()];
    // Whether a feasible node carries the key with an empty value: only then is the "" domain's
    // count ever read (score skips nodes lacking the key, which also land in "").
    let mut empty_value_read = vec![false; constraints.len()];
    for (j, &n) in feasible.iter().enumerate() {
        let labels = snap.nodes[n].labels();
        if require_all && !has_all_keys(labels, &constraints) {
            ignored[j] = true;
            continue;
        }
        for (i, c) in constraints.iter().enumerate() {
            if c.topology_key == LABEL_HOSTNAME {
                continue;
            }
            let value = labels.get(&c.topology_key);
            empty_value_read[i] |= value.is_some_and(String::is_empty);
            if let std::collections::hash_map::Entry::Vacant(e) =
                counts[i].entry(value.cloned().unwrap_or_default())
            {
                e.insert(0);
                sizes[i] += 1;
            }
        }
    }
    let n_ignored = ignored.iter().filter(|i| **i).count();
    let weights = constraints
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let size = if c.topology_key == LABEL_HOSTNAME {
                feasible.len() - n_ignored
            } else {
                sizes[i]
            };
            ((size + 2) as f64).ln()
        })
        .collect();
    // kube counts every node's pods into every domain a candidate sits in — O(all pods) per pod.
    // A domain no candidate can read (the "" of nodes lacking the key: the default zone constraint
    // on an unzoned cluster) is dropped first, so such clusters skip the scan entirely; the
    // weights above already counted it, as kube's topoSize does.
    for (i, read) in empty_value_read.iter().enumerate() {
        if !read {
            counts[i].remove("");
        }
    }
    if counts.iter().any(|c| !c.is_empty()) {
        for node in &snap.nodes {
            let labels = node.labels();
            if require_all && !has_all_keys(labels, &constraints) {
                continue;
            }
            for (i, c) in constraints.iter().enumerate() {
                if !c.includes(pod, node) {
                    continue;
                }
                let value = labels
                    .get(&c.topology_key)
                    .map(String::as_str)
                    .unwrap_or("");
                if let Some(count) = counts[i].get_mut(value) {
                    *count += count_matching(&node.pods, &c.selector, &pod.namespace);
                }
            }
        }
    }
    Some(ScoreState {
        constraints,
        counts,
        weights,
        ignored,
    })
}

/// Raw score of the `j`-th feasible node.
pub fn score(s: &ScoreState, pod: &PodInfo, j: usize, node: &NodeInfo) -> i64 {
    if s.ignored[j] {
        return 0;
    }
    let mut score = 0f64;
    for (i, c) in s.constraints.iter().enumerate() {
        let Some(value) = node.labels().get(&c.topology_key) else {
            continue;
        };
        let count = if c.topology_key == LABEL_HOSTNAME {
            count_matching(&node.pods, &c.selector, &pod.namespace)
        } else {
            s.counts[i].get(value).copied().unwrap_or(0)
        };
        score += count as f64 * s.weights[i] + (c.max_skew - 1) as f64;
    }
    score.round() as i64
}

/// kube's NormalizeScore: fewer matching pods → higher score; ignored nodes get 0.
pub fn normalize(s: &ScoreState, scores: &mut [i64]) {
    let mut min = i64::MAX;
    let mut max = 0;
    for (j, v) in scores.iter().enumerate() {
        if s.ignored[j] {
            continue;
        }
        min = min.min(*v);
        max = max.max(*v);
    }
    for (j, v) in scores.iter_mut().enumerate() {
        *v = if s.ignored[j] {
            0
        } else if max == 0 {
            MAX_NODE_SCORE
        } else {
            MAX_NODE_SCORE * (max + min - *v) / max
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_info::test_nodes::node;
    use crate::pod_info::test_pods::pod;
    use crate::snapshot::{ClusterObjects, Snapshot};
    use serde_json::json;

    fn zoned() -> Vec<NodeInfo> {
        vec![
            node("a", "4", "8Gi", json!({"zone": "z1"}), json!({})),
            node("b", "4", "8Gi", json!({"zone": "z1"}), json!({})),
            node("c", "4", "8Gi", json!({"zone": "z2"}), json!({})),
            node("d", "4", "8Gi", json!({}), json!({})),
        ]
    }

    fn app(name: &str) -> std::sync::Arc<PodInfo> {
        pod(name, json!({"labels": {"app": "web"}}), json!({}))
    }

    fn spread(when: &str, skew: i32) -> serde_json::Value {
        json!({"topologySpreadConstraints": [{"maxSkew": skew, "topologyKey": "zone",
            "whenUnsatisfiable": when, "labelSelector": {"matchLabels": {"app": "web"}}}]})
    }

    #[test]
    fn golden_do_not_schedule_skew() {
        let mut nodes = zoned();
        nodes[0].add_pod(app("w1"));
        nodes[1].add_pod(app("w2"));
        nodes[2].add_pod(app("w3"));
        let snap = Snapshot::new(nodes, ClusterObjects::default());
        let p = pod(
            "w4",
            json!({"labels": {"app": "web"}}),
            spread("DoNotSchedule", 1),
        );
        let s = pre_filter(&p, &snap).expect("constraints");
        // z1 has 2, z2 has 1: min 1. z1: 2+1-1 = 2 > 1; z2: 1+1-1 = 1.
        let r: Vec<_> = snap
            .nodes
            .iter()
            .map(|n| filter(&s, &p, n).map_err(|e| e.reasons[0].clone()))
            .collect();
        assert_eq!(r[0], Err(ERR_CONSTRAINTS.into()));
        assert_eq!(r[1], Err(ERR_CONSTRAINTS.into()));
        assert_eq!(r[2], Ok(()));
        assert_eq!(r[3], Err(ERR_MISSING_LABEL.into()));
    }

    #[test]
    fn golden_min_domains_treats_missing_domains_as_zero() {
        let mut nodes = zoned();
        nodes[2].add_pod(app("w1"));
        let snap = Snapshot::new(nodes, ClusterObjects::default());
        let mut spec = spread("DoNotSchedule", 1);
        spec["topologySpreadConstraints"][0]["minDomains"] = json!(3);
        let p = pod("w2", json!({"labels": {"app": "web"}}), spec);
        let s = pre_filter(&p, &snap).expect("constraints");
        // Only 2 domains < minDomains 3 → global min 0: z2 would reach 2 > 1.
        assert!(filter(&s, &p, &snap.nodes[2]).is_err());
        assert!(filter(&s, &p, &snap.nodes[0]).is_ok());
    }

    #[test]
    fn golden_schedule_anyway_prefers_the_emptier_zone() {
        let mut nodes = zoned();
        nodes[0].add_pod(app("w1"));
        nodes[0].add_pod(app("w2"));
        let snap = Snapshot::new(nodes, ClusterObjects::default());
        let p = pod(
            "w3",
            json!({"labels": {"app": "web"}}),
            spread("ScheduleAnyway", 1),
        );
        let feasible = [0, 1, 2, 3];
        let s = pre_score(&p, &snap, &feasible).expect("constraints");
        let mut raw: Vec<i64> = feasible
            .iter()
            .map(|&i| score(&s, &p, i, &snap.nodes[i]))
            .collect();
        // weight ln(2 domains + 2) = 1.386: z1 → 2*1.386 = 2.77 → 3; z2 → 0; d ignored.
        assert_eq!(raw, vec![3, 3, 0, 0]);
        normalize(&s, &mut raw);
        assert_eq!(raw, vec![0, 0, 100, 0]);
    }

    #[test]
    fn golden_default_spreading_uses_the_replicaset_selector() {
        let mut objects = ClusterObjects::default();
        objects.replica_sets.insert(
            ("default".into(), "rs".into()),
            LabelSelector::parse("app=web").expect("selector"),
        );
        let owned = |name: &str| {
            pod(
                name,
                json!({"labels": {"app": "web"}, "ownerReferences": [{"apiVersion": "apps/v1",
                "kind": "ReplicaSet", "name": "rs", "uid": "u", "controller": true}]}),
                json!({}),
            )
        };
        let zone = |z: &str| json!({"topology.kubernetes.io/zone": z});
        let mut nodes = vec![
            node("a", "4", "8Gi", zone("z1"), json!({})),
            node("b", "4", "8Gi", zone("z1"), json!({})),
            node("c", "4", "8Gi", zone("z2"), json!({})),
            node("d", "4", "8Gi", json!({}), json!({})),
        ];
        nodes[0].add_pod(owned("w1"));
        let snap = Snapshot::new(nodes, objects);
        let p = owned("w2");
        let feasible = [0, 1, 2, 3];
        let s = pre_score(&p, &snap, &feasible).expect("defaults apply");
        let mut raw: Vec<i64> = feasible
            .iter()
            .map(|&i| score(&s, &p, i, &snap.nodes[i]))
            .collect();
        // hostname: weight ln(6)=1.79, skew 3 → +2; zone (3 domains incl. ""): ln(5)=1.61, skew 5 → +4.
        // a: 1*1.79+2 + 1*1.61+4 = 9.4 → 9; b: 2 + 1.61 + 4 = 7.6 → 8; c: 6; d has no zone label,
        // so only its hostname term counts (kube does the same): 2.
        assert_eq!(raw, vec![9, 8, 6, 2]);
        normalize(&s, &mut raw);
        assert_eq!(raw, vec![22, 33, 55, 100]);
        let stray = pod("x", json!({"labels": {"app": "web"}}), json!({}));
        assert!(
            pre_score(&stray, &snap, &feasible).is_none(),
            "no owner, no service: no default spreading"
        );
    }

    fn owned_by_rs(name: &str) -> std::sync::Arc<PodInfo> {
        pod(
            name,
            json!({"labels": {"app": "web"}, "ownerReferences": [{"apiVersion": "apps/v1",
            "kind": "ReplicaSet", "name": "rs", "uid": "u", "controller": true}]}),
            json!({}),
        )
    }

    fn rs_objects() -> ClusterObjects {
        let mut objects = ClusterObjects::default();
        objects.replica_sets.insert(
            ("default".into(), "rs".into()),
            LabelSelector::parse("app=web").expect("selector"),
        );
        objects
    }

    #[test]
    fn golden_default_spreading_on_an_unzoned_cluster_counts_no_zone_domain() {
        let mut nodes = vec![
            node("a", "4", "8Gi", json!({}), json!({})),
            node("b", "4", "8Gi", json!({}), json!({})),
            node("c", "4", "8Gi", json!({}), json!({})),
        ];
        nodes[0].add_pod(owned_by_rs("w1"));
        nodes[0].add_pod(owned_by_rs("w2"));
        nodes[1].add_pod(owned_by_rs("w3"));
        let snap = Snapshot::new(nodes, rs_objects());
        let p = owned_by_rs("w4");
        let feasible = [0, 1, 2];
        let s = pre_score(&p, &snap, &feasible).expect("defaults apply");
        // No node has a zone label: the "" domain is never read, so it is not counted at all.
        assert!(s.counts.iter().all(HashMap::is_empty));
        let mut raw: Vec<i64> = feasible
            .iter()
            .map(|&i| score(&s, &p, i, &snap.nodes[i]))
            .collect();
        // hostname only: weight ln(3+2)=1.61, skew 3 → +2: a 2*1.61+2 = 5.2 → 5, b 3.6 → 4, c 2.
        assert_eq!(raw, vec![5, 4, 2]);
        normalize(&s, &mut raw);
        assert_eq!(raw, vec![40, 60, 100]);
    }

    #[test]
    fn golden_an_empty_zone_label_reads_the_domain_of_unzoned_nodes() {
        let mut nodes = vec![
            node("a", "4", "8Gi", json!({}), json!({})),
            node(
                "b",
                "4",
                "8Gi",
                json!({"topology.kubernetes.io/zone": ""}),
                json!({}),
            ),
        ];
        nodes[0].add_pod(owned_by_rs("w1"));
        let snap = Snapshot::new(nodes, rs_objects());
        let p = owned_by_rs("w2");
        let s = pre_score(&p, &snap, &[0, 1]).expect("defaults apply");
        // kube keys both nodes' pods under the pair (zone, ""): b reads a's pod.
        assert_eq!(s.counts[1].get(""), Some(&1));
    }
}
