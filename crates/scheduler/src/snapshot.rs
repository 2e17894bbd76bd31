//! [`Snapshot`]: the consistent view of the cluster one scheduling cycle works on — the nodes (in a
//! stable order), which of them host pods with affinity, namespace labels, and the workload
//! selectors that default pod spreading needs.

use std::collections::HashMap;
use std::sync::Arc;

use niwa_api::selector::LabelSelector;

use crate::node_info::NodeInfo;
use crate::plugins::volume_binding::VolumeObjects;
use crate::pod_info::{Labels, PodInfo};

/// Objects other than nodes and pods that scheduling decisions read.
#[derive(Debug, Clone, Default)]
pub struct ClusterObjects {
    /// Namespace name → labels (for affinity terms' namespaceSelector).
    pub namespace_labels: HashMap<String, Labels>,
    /// (namespace, selector) of every Service with a selector.
    pub services: Vec<(String, Labels)>,
    /// (namespace, name) → selector, per controller kind.
    pub replica_sets: HashMap<(String, String), LabelSelector>,
    pub stateful_sets: HashMap<(String, String), LabelSelector>,
    pub replication_controllers: HashMap<(String, String), Labels>,
    /// PersistentVolumeClaims and PersistentVolumes (VolumeBinding); shared between rebuilds.
    pub volumes: Arc<VolumeObjects>,
}

impl ClusterObjects {
    /// kube's `helper.DefaultSelector`: the union of the selectors of the Services selecting the
    /// pod and of its controlling ReplicationController/ReplicaSet/StatefulSet. `None` when empty.
    pub fn default_selector(&self, pod: &PodInfo) -> Option<LabelSelector> {
        let mut set = Labels::new();
        for (ns, sel) in &self.services {
            if *ns == pod.namespace
                && !sel.is_empty()
                && sel.iter().all(|(k, v)| pod.labels.get(k) == Some(v))
            {
                set.extend(sel.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        let mut reqs = Vec::new();
        if let Some((api_version, kind, name)) = &pod.controller {
            let key = (pod.namespace.clone(), name.clone());
            match (api_version.as_str(), kind.as_str()) {
                ("v1", "ReplicationController") => {
                    if let Some(sel) = self.replication_controllers.get(&key) {
                        set.extend(sel.iter().map(|(k, v)| (k.clone(), v.clone())));
                    }
                }
                ("apps/v1", "ReplicaSet") | ("apps/v1", "StatefulSet") => {
                    let map = if kind == "ReplicaSet" {
                        &self.replica_sets
                    } else {
                        &self.stateful_sets
                    };
                    if let Some(LabelSelector::Requirements(r)) = map.get(&key) {
                        reqs.extend(r.iter().cloned());
                    }
                }
                _ => {}
            }
        }
        for (k, v) in &set {
            if let Ok(r) = niwa_api::selector::label::Requirement::new(
                k,
                niwa_api::selector::label::Operator::Equals,
                &[v],
            ) {
                reqs.push(r);
            }
        }
        if reqs.is_empty() {
            None
        } else {
            Some(LabelSelector::Requirements(reqs))
        }
    }
}

/// The cluster as one scheduling cycle sees it.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Every node, in a stable order (the order filtering walks them, round-robin).
    pub nodes: Vec<Arc<NodeInfo>>,
    /// Indices into `nodes` of nodes hosting pods with any (anti-)affinity term.
    pub have_pods_with_affinity: Vec<usize>,
    /// … with a required anti-affinity term.
    pub have_pods_with_required_anti_affinity: Vec<usize>,
    pub objects: Arc<ClusterObjects>,
}

impl Snapshot {
    /// Builds a snapshot from node infos (tests; the cache maintains its own incrementally).
    pub fn new(nodes: Vec<NodeInfo>, objects: ClusterObjects) -> Snapshot {
        let mut s = Snapshot {
            nodes: nodes.into_iter().map(Arc::new).collect(),
            objects: Arc::new(objects),
            ..Default::default()
        };
        s.reindex();
        s
    }

    /// Recomputes the affinity index lists.
    pub fn reindex(&mut self) {
        self.have_pods_with_affinity.clear();
        self.have_pods_with_required_anti_affinity.clear();
        for (i, n) in self.nodes.iter().enumerate() {
            if n.pods_with_affinity > 0 {
                self.have_pods_with_affinity.push(i);
            }
            if n.pods_with_required_anti_affinity > 0 {
                self.have_pods_with_required_anti_affinity.push(i);
            }
        }
    }

    /// Puts a changed node at index `i`, keeping the affinity index lists in step without a
    /// full [`Snapshot::reindex`] (which touches every node: at 5,000 nodes it cost more than
    /// filtering a cycle's sample of them).
    pub fn replace_node(&mut self, i: usize, info: Arc<NodeInfo>) {
        set_member(
            &mut self.have_pods_with_affinity,
            i,
            info.pods_with_affinity > 0,
        );
        set_member(
            &mut self.have_pods_with_required_anti_affinity,
            i,
            info.pods_with_required_anti_affinity > 0,
        );
        self.nodes[i] = info;
    }

    pub fn namespace_labels(&self, ns: &str) -> Option<&Labels> {
        self.objects.namespace_labels.get(ns)
    }
}

/// Adds `i` to or removes it from a sorted index list.
fn set_member(list: &mut Vec<usize>, i: usize, member: bool) {
    match (list.binary_search(&i), member) {
        (Ok(_), true) | (Err(_), false) => {}
        (Ok(at), false) => {
            list.remove(at);
        }
        (Err(at), true) => list.insert(at, i),
    }
}
