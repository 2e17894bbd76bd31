//! InterPodAffinity: required pod affinity / anti-affinity (filter, with the symmetric check of
//! existing pods' anti-affinity) and preferred terms (score), counted per topology domain as
//! kube's plugin does in PreFilter/PreScore.

use std::collections::HashMap;

use super::{Code, FilterResult, MAX_NODE_SCORE, Plugin, Rejection};
use crate::node_info::NodeInfo;
use crate::pod_info::{AffinityTerm, Labels, PodInfo};
use crate::snapshot::Snapshot;

pub const ERR_AFFINITY_RULES: &str = "node(s) didn't match pod affinity rules";
pub const ERR_ANTI_AFFINITY_RULES: &str = "node(s) didn't match pod anti-affinity rules";
pub const ERR_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";

/// Counts per topology pair: key → value → count.
#[derive(Debug, Clone, Default)]
pub struct TopologyCounts(HashMap<String, HashMap<String, i64>>);

impl TopologyCounts {
    fn add(&mut self, key: &str, value: &str, n: i64) {
        let inner = self.0.entry(key.to_string()).or_default();
        let c = inner.entry(value.to_string()).or_default();
        *c += n;
        if *c == 0 {
            inner.remove(value);
            if inner.is_empty() {
                self.0.remove(key);
            }
        }
    }

    fn get(&self, key: &str, value: &str) -> i64 {
        self.0
            .get(key)
            .and_then(|m| m.get(value))
            .copied()
            .unwrap_or(0)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// kube's preFilterState.
#[derive(Debug, Clone, Default)]
pub struct PreFilterState {
    existing_anti_affinity: TopologyCounts,
    affinity: TopologyCounts,
    anti_affinity: TopologyCounts,
}

fn matches_all(terms: &[AffinityTerm], pod: &PodInfo, ns: Option<&Labels>) -> bool {
    !terms.is_empty() && terms.iter().all(|t| t.matches(pod, ns))
}

/// PreFilter. `None` when the plugin has nothing to check for this pod (kube's Skip).
pub fn pre_filter(pod: &PodInfo, snap: &Snapshot) -> Option<PreFilterState> {
    let mut s = PreFilterState::default();
    let own_ns = snap.namespace_labels(&pod.namespace);
    for &i in &snap.have_pods_with_required_anti_affinity {
        let node = &snap.nodes[i];
        for existing in node
            .pods
            .iter()
            .filter(|p| !p.required_anti_affinity_terms.is_empty())
        {
            for t in &existing.required_anti_affinity_terms {
                if t.matches(pod, own_ns)
                    && let Some(v) = node.labels().get(&t.topology_key)
                {
                    s.existing_anti_affinity.add(&t.topology_key, v, 1);
                }
            }
        }
    }
    if pod.required_affinity_terms.is_empty() && pod.required_anti_affinity_terms.is_empty() {
        return (!s.existing_anti_affinity.is_empty()).then_some(s);
    }
    for node in &snap.nodes {
        for existing in &node.pods {
            let ns = snap.namespace_labels(&existing.namespace);
            if matches_all(&pod.required_affinity_terms, existing, ns) {
                for t in &pod.required_affinity_terms {
                    if let Some(v) = node.labels().get(&t.topology_key) {
                        s.affinity.add(&t.topology_key, v, 1);
                    }
                }
            }
            for t in &pod.required_anti_affinity_terms {
                if t.matches(existing, ns)
                    && let Some(v) = node.labels().get(&t.topology_key)
                {
                    s.anti_affinity.add(&t.topology_key, v, 1);
                }
            }
        }
    }
    Some(s)
}

pub fn filter(s: &PreFilterState, pod: &PodInfo, node: &NodeInfo, snap: &Snapshot) -> FilterResult {
    let labels = node.labels();
    // Affinity: every term's topology label must exist, and a matching pod must be in the domain
    // (unless no pod matches anywhere and the pod matches its own terms: the first of a group).
    let mut pods_exist = true;
    for t in &pod.required_affinity_terms {
        match labels.get(&t.topology_key) {
            None => {
                return Err(rejection(
                    Code::UnschedulableAndUnresolvable,
                    ERR_AFFINITY_RULES,
                ));
            }
            Some(v) => {
                if s.affinity.get(&t.topology_key, v) <= 0 {
                    pods_exist = false;
                }
            }
        }
    }
    if !pods_exist {
        let first_of_group = s.affinity.is_empty()
            && matches_all(
                &pod.required_affinity_terms,
                pod,
                snap.namespace_labels(&pod.namespace),
            );
        if !first_of_group {
            return Err(rejection(
                Code::UnschedulableAndUnresolvable,
                ERR_AFFINITY_RULES,
            ));
        }
    }
    if !s.anti_affinity.is_empty() {
        for t in &pod.required_anti_affinity_terms {
            if let Some(v) = labels.get(&t.topology_key)
                && s.anti_affinity.get(&t.topology_key, v) > 0
            {
                return Err(rejection(Code::Unschedulable, ERR_ANTI_AFFINITY_RULES));
            }
        }
    }
    if !s.existing_anti_affinity.is_empty()
        && labels
            .iter()
            .any(|(k, v)| s.existing_anti_affinity.get(k, v) > 0)
    {
        return Err(rejection(Code::Unschedulable, ERR_EXISTING_ANTI_AFFINITY));
    }
    Ok(())
}

fn rejection(code: Code, reason: &str) -> Rejection {
    Rejection::new(Plugin::InterPodAffinity, code, reason)
}

/// kube's `HardPodAffinityWeight` default: existing pods' required affinity terms that match the
/// incoming pod count with this weight in scoring.
pub const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

/// PreScore: the weighted score of every topology pair. `None` when it would be empty (Skip).
pub fn pre_score(pod: &PodInfo, snap: &Snapshot) -> Option<TopologyCounts> {
    let has_constraints =
        !pod.preferred_affinity_terms.is_empty() || !pod.preferred_anti_affinity_terms.is_empty();
    let own_ns = snap.namespace_labels(&pod.namespace);
    let mut scores = TopologyCounts::default();
    let mut process = |node: &NodeInfo, existing: &PodInfo| {
        let labels = node.labels();
        if labels.is_empty() {
            return;
        }
        let mut term =
            |t: &AffinityTerm, weight: i64, target: &PodInfo, ns: Option<&Labels>, sign: i64| {
                if t.matches(target, ns)
                    && let Some(v) = labels.get(&t.topology_key)
                {
                    scores.add(&t.topology_key, v, weight * sign);
                }
            };
        let existing_ns = snap.namespace_labels(&existing.namespace);
        for t in &pod.preferred_affinity_terms {
            term(t, t.weight, existing, existing_ns, 1);
        }
        for t in &pod.preferred_anti_affinity_terms {
            term(t, t.weight, existing, existing_ns, -1);
        }
        for t in &existing.required_affinity_terms {
            term(t, HARD_POD_AFFINITY_WEIGHT, pod, own_ns, 1);
        }
        for t in &existing.preferred_affinity_terms {
            term(t, t.weight, pod, own_ns, 1);
        }
        for t in &existing.preferred_anti_affinity_terms {
            term(t, t.weight, pod, own_ns, -1);
        }
    };
    if has_constraints {
        for node in &snap.nodes {
            for existing in &node.pods {
                process(node, existing);
            }
        }
    } else {
        for &i in &snap.have_pods_with_affinity {
            let node = &snap.nodes[i];
            for existing in node.pods.iter().filter(|p| p.has_affinity()) {
                process(node, existing);
            }
        }
    }
    (!scores.is_empty()).then_some(scores)
}

/// Raw score: the sum of the pair scores of the node's labels.
pub fn score(s: &TopologyCounts, node: &NodeInfo) -> i64 {
    s.0.iter()
        .filter_map(|(k, values)| node.labels().get(k).and_then(|v| values.get(v)))
        .sum()
}

/// kube's min-max normalisation to [0, 100].
pub fn normalize(scores: &mut [i64]) {
    let (Some(&min), Some(&max)) = (scores.iter().min(), scores.iter().max()) else {
        return;
    };
    let diff = max - min;
    for s in scores.iter_mut() {
        *s = if diff > 0 {
            (MAX_NODE_SCORE as f64 * ((*s - min) as f64 / diff as f64)) as i64
        } else {
            0
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_info::test_nodes::node;
    use crate::pod_info::test_pods::pod;
    use crate::snapshot::{ClusterObjects, Snapshot};
    use serde_json::{Value, json};

    fn term(app: &str, key: &str) -> Value {
        json!({"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key})
    }

    fn cluster() -> Vec<NodeInfo> {
        vec![
            node("a", "4", "8Gi", json!({"zone": "z1"}), json!({})),
            node("b", "4", "8Gi", json!({"zone": "z1"}), json!({})),
            node("c", "4", "8Gi", json!({"zone": "z2"}), json!({})),
            node("d", "4", "8Gi", json!({}), json!({})),
        ]
    }

    fn run(pod: &PodInfo, snap: &Snapshot) -> Vec<Result<(), String>> {
        let s = pre_filter(pod, snap).unwrap_or_default();
        snap.nodes
            .iter()
            .map(|n| filter(&s, pod, n, snap).map_err(|r| r.reasons[0].clone()))
            .collect()
    }

    #[test]
    fn golden_required_affinity_follows_the_zone() {
        let mut nodes = cluster();
        nodes[0].add_pod(pod("db", json!({"labels": {"app": "db"}}), json!({})));
        let snap = Snapshot::new(nodes, ClusterObjects::default());
        let web = pod(
            "web",
            json!({}),
            json!({"affinity": {"podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [term("db", "zone")]}}}),
        );
        let r = run(&web, &snap);
        assert_eq!(r[0], Ok(()));
        assert_eq!(r[1], Ok(()), "same zone as the db pod");
        assert_eq!(r[2], Err(ERR_AFFINITY_RULES.into()));
        assert_eq!(r[3], Err(ERR_AFFINITY_RULES.into()), "no zone label");
    }

    #[test]
    fn golden_first_pod_of_a_self_affine_group_schedules() {
        let snap = Snapshot::new(cluster(), ClusterObjects::default());
        let p = pod(
            "p",
            json!({"labels": {"app": "x"}}),
            json!({"affinity": {"podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [term("x", "zone")]}}}),
        );
        let r = run(&p, &snap);
        assert_eq!(&r[..3], &[Ok(()), Ok(()), Ok(())]);
        assert_eq!(r[3], Err(ERR_AFFINITY_RULES.into()));
    }

    #[test]
    fn golden_anti_affinity_both_ways() {
        let mut nodes = cluster();
        // An existing pod that refuses app=web in its zone.
        nodes[2].add_pod(pod("guard", json!({"labels": {"app": "guard"}}), json!({"affinity": {
            "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("web", "zone")]}}})));
        nodes[0].add_pod(pod("web-1", json!({"labels": {"app": "web"}}), json!({})));
        let snap = Snapshot::new(nodes, ClusterObjects::default());
        let web = pod(
            "web-2",
            json!({"labels": {"app": "web"}}),
            json!({"affinity": {"podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [term("web", "kubernetes.io/hostname")]}}}),
        );
        let r = run(&web, &snap);
        assert_eq!(r[0], Err(ERR_ANTI_AFFINITY_RULES.into()));
        assert_eq!(r[1], Ok(()));
        assert_eq!(r[2], Err(ERR_EXISTING_ANTI_AFFINITY.into()));
        assert_eq!(r[3], Ok(()));
    }

    #[test]
    fn golden_preferred_scores() {
        let mut nodes = cluster();
        nodes[0].add_pod(pod("cache", json!({"labels": {"app": "cache"}}), json!({})));
        nodes[2].add_pod(pod("noisy", json!({"labels": {"app": "noisy"}}), json!({})));
        let snap = Snapshot::new(nodes, ClusterObjects::default());
        let p = pod(
            "p",
            json!({}),
            json!({"affinity": {
            "podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "podAffinityTerm": term("cache", "zone")}]},
            "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 5, "podAffinityTerm": term("noisy", "zone")}]}}}),
        );
        let s = pre_score(&p, &snap).expect("scores");
        let mut raw: Vec<i64> = snap.nodes.iter().map(|n| score(&s, n)).collect();
        assert_eq!(raw, vec![10, 10, -5, 0]);
        normalize(&mut raw);
        assert_eq!(raw, vec![100, 100, 0, 33]);
    }
}
