//! [`NodeInfo`]: a node and the pods assigned (or assumed) to it, with the running totals the
//! filters need — kube's `framework.NodeInfo`.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Taint};

use crate::pod_info::{HostPort, Labels, PodInfo};
use crate::resources::{Resource, node_allocatable};

/// The taint the node lifecycle controller puts on a node whose Ready condition is False.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// … and on one whose Ready condition is Unknown.
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The taint that stands for `spec.unschedulable`.
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// The parts of a node that change only when the Node object changes.
#[derive(Debug, Clone)]
pub struct NodeStatic {
    pub node: Arc<Node>,
    pub name: String,
    pub labels: Labels,
    /// `spec.taints`, plus the condition taint the node lifecycle controller would add for a node
    /// that reports Ready=False/Unknown (so that a not-ready node is filtered even when no
    /// controller-manager runs, and the message names the taint as Kubernetes users see it).
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    pub allocatable: Resource,
}

impl NodeStatic {
    pub fn new(node: Arc<Node>) -> NodeStatic {
        let spec = node.spec.clone().unwrap_or_default();
        let mut taints = spec.taints.unwrap_or_default();
        let ready = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.clone());
        let condition_taint = match ready.as_deref() {
            Some("False") => Some(TAINT_NOT_READY),
            Some("True") | None => None,
            Some(_) => Some(TAINT_UNREACHABLE),
        };
        if let Some(key) = condition_taint
            && !taints
                .iter()
                .any(|t| t.key == key && t.effect == "NoSchedule")
        {
            taints.push(Taint {
                key: key.into(),
                effect: "NoSchedule".into(),
                ..Default::default()
            });
        }
        NodeStatic {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            taints,
            unschedulable: spec.unschedulable.unwrap_or(false),
            allocatable: node_allocatable(&node),
            node,
        }
    }
}

/// A node with its pods and running totals.
///
/// The [`NodeStatic`] fields that every cycle's filters and scores read (`unschedulable`,
/// whether there are taints, `allocatable`) are copied inline: a cycle walks hundreds of nodes,
/// and each `Arc<NodeStatic>` was a second, dependent cache miss per node after the `NodeInfo`'s
/// own — ~60 % of the scheduling thread's samples at 5,000 nodes (perf, docs/BENCHMARKS.md).
/// Set through [`NodeInfo::set_node`] so the copies follow the node.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub node: Arc<NodeStatic>,
    /// `node.unschedulable`.
    pub unschedulable: bool,
    /// `!node.taints.is_empty()`.
    pub has_taints: bool,
    /// `node.allocatable`.
    pub allocatable: Resource,
    pub pods: Vec<Arc<PodInfo>>,
    /// Pods with any (anti-)affinity term.
    pub pods_with_affinity: usize,
    /// Pods with a required anti-affinity term.
    pub pods_with_required_anti_affinity: usize,
    pub requested: Resource,
    pub non_zero_milli_cpu: i64,
    pub non_zero_memory: i64,
    pub used_ports: Vec<HostPort>,
    /// Bumped on every change; lets snapshots copy only what changed.
    pub generation: u64,
}

impl NodeInfo {
    pub fn new(node: Arc<NodeStatic>) -> NodeInfo {
        NodeInfo {
            unschedulable: node.unschedulable,
            has_taints: !node.taints.is_empty(),
            allocatable: node.allocatable.clone(),
            node,
            pods: Vec::new(),
            pods_with_affinity: 0,
            pods_with_required_anti_affinity: 0,
            requested: Resource::default(),
            non_zero_milli_cpu: 0,
            non_zero_memory: 0,
            used_ports: Vec::new(),
            generation: 0,
        }
    }

    /// Replaces the node object (keeping the pods).
    pub fn set_node(&mut self, node: Arc<NodeStatic>) {
        self.unschedulable = node.unschedulable;
        self.has_taints = !node.taints.is_empty();
        self.allocatable = node.allocatable.clone();
        self.node = node;
    }

    pub fn name(&self) -> &str {
        &self.node.name
    }

    pub fn labels(&self) -> &Labels {
        &self.node.labels
    }

    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests.requested);
        self.non_zero_milli_cpu += pod.requests.non_zero_milli_cpu;
        self.non_zero_memory += pod.requests.non_zero_memory;
        self.used_ports.extend(pod.host_ports.iter().cloned());
        if pod.has_affinity() {
            self.pods_with_affinity += 1;
        }
        if !pod.required_anti_affinity_terms.is_empty() {
            self.pods_with_required_anti_affinity += 1;
        }
        self.pods.push(pod);
    }

    /// Removes the pod with this uid; returns whether it was there.
    pub fn remove_pod(&mut self, uid: &str) -> bool {
        let Some(i) = self.pods.iter().position(|p| p.uid == uid) else {
            return false;
        };
        let pod = self.pods.swap_remove(i);
        self.requested.sub(&pod.requests.requested);
        self.non_zero_milli_cpu -= pod.requests.non_zero_milli_cpu;
        self.non_zero_memory -= pod.requests.non_zero_memory;
        for hp in &pod.host_ports {
            if let Some(j) = self.used_ports.iter().position(|u| u == hp) {
                self.used_ports.swap_remove(j);
            }
        }
        if pod.has_affinity() {
            self.pods_with_affinity -= 1;
        }
        if !pod.required_anti_affinity_terms.is_empty() {
            self.pods_with_required_anti_affinity -= 1;
        }
        true
    }

    /// kube's `HostPortInfo.CheckConflict`: 0.0.0.0 conflicts with every address.
    pub fn port_conflicts(&self, want: &HostPort) -> bool {
        self.used_ports.iter().any(|u| {
            u.port == want.port
                && u.protocol == want.protocol
                && (want.ip == "0.0.0.0" || u.ip == "0.0.0.0" || u.ip == want.ip)
        })
    }
}

#[cfg(test)]
pub(crate) mod test_nodes {
    use super::*;
    use serde_json::{Value, json};

    /// A Ready node with this allocatable cpu/memory (110 pods), labels and spec.
    pub fn node(name: &str, cpu: &str, mem: &str, labels: Value, spec: Value) -> NodeInfo {
        let mut l = json!({"kubernetes.io/hostname": name});
        if let (Some(l), Some(extra)) = (l.as_object_mut(), labels.as_object()) {
            for (k, v) in extra {
                l.insert(k.clone(), v.clone());
            }
        }
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": l},
            "spec": spec,
            "status": {"allocatable": {"cpu": cpu, "memory": mem, "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .expect("node json");
        NodeInfo::new(Arc::new(NodeStatic::new(Arc::new(node))))
    }
}

#[cfg(test)]
mod tests {
    use super::test_nodes::node;
    use super::*;
    use crate::pod_info::test_pods::{pod, pod_req};
    use serde_json::json;

    #[test]
    fn totals_follow_pods() {
        let mut n = node("n1", "4", "8Gi", json!({}), json!({}));
        let a = pod_req("a", "1", "1Gi");
        let b = pod(
            "b",
            json!({}),
            json!({"containers": [{"name": "c", "image": "i",
            "ports": [{"containerPort": 80, "hostPort": 8080}]}]}),
        );
        n.add_pod(a.clone());
        n.add_pod(b.clone());
        assert_eq!(n.requested.milli_cpu, 1000);
        assert_eq!(n.non_zero_milli_cpu, 1100);
        let want = HostPort {
            ip: "127.0.0.1".into(),
            protocol: "TCP".into(),
            port: 8080,
        };
        assert!(n.port_conflicts(&want));
        assert!(!n.port_conflicts(&HostPort {
            protocol: "UDP".into(),
            ..want.clone()
        }));
        assert!(n.remove_pod(&b.uid));
        assert!(!n.port_conflicts(&want));
        assert!(n.remove_pod(&a.uid));
        assert!(n.requested.is_zero());
        assert_eq!(n.non_zero_memory, 0);
    }

    #[test]
    fn not_ready_nodes_carry_the_condition_taint() {
        let node: Node = serde_json::from_value(json!({"metadata": {"name": "n"},
            "status": {"conditions": [{"type": "Ready", "status": "False"}]}}))
        .expect("node");
        let s = NodeStatic::new(Arc::new(node));
        assert_eq!(s.taints.len(), 1);
        assert_eq!(s.taints[0].key, TAINT_NOT_READY);
        let node: Node = serde_json::from_value(json!({"metadata": {"name": "n"},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}))
        .expect("node");
        assert_eq!(
            NodeStatic::new(Arc::new(node)).taints[0].key,
            TAINT_UNREACHABLE
        );
    }
}
