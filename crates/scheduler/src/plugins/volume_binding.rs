//! VolumeBinding's PreFilter and Filter for the claims a pod's volumes name (its PreBind half is
//! [`crate::volume_binding`]).
//!
//! PreFilter: a claim that does not exist or is being deleted makes the pod unschedulable on
//! every node, with kube's message as the whole FitError reason (`0/3 nodes are available:
//! persistentvolumeclaim "data" not found.`). Filter: a node must satisfy the required node
//! affinity of every bound claim's volume (`node(s) had volume node affinity conflict`), and a
//! claim bound to a volume the scheduler does not know fails on every node, as kube's
//! `checkBoundClaims` does. Unbound claims pass (PreBind provisions them on the chosen node).
//!
//! Like kube's `volume.CheckNodeAffinity`, the terms are matched against the node's labels only:
//! kube builds a node object without a name for it, so a `matchFields` `metadata.name` term
//! never matches. The matcher is the pod node affinity's [`NodeTerm`], called with an empty name.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};

use super::{Code, FilterResult, Plugin, Rejection};
use crate::node_info::NodeInfo;
use crate::pod_info::{NodeTerm, PodInfo};

pub const ERR_REASON_NODE_CONFLICT: &str = "node(s) had volume node affinity conflict";
pub const ERR_REASON_PV_NOT_EXIST: &str =
    "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)";

/// What the scheduler keeps of a PersistentVolumeClaim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// `spec.volumeName` when set (the claim is bound).
    pub volume_name: Option<String>,
    pub deleting: bool,
}

impl Claim {
    pub fn new(c: &PersistentVolumeClaim) -> Claim {
        Claim {
            volume_name: c
                .spec
                .as_ref()
                .and_then(|s| s.volume_name.clone())
                .filter(|v| !v.is_empty()),
            deleting: c.metadata.deletion_timestamp.is_some(),
        }
    }
}

/// What the scheduler keeps of a PersistentVolume: its required node affinity terms (ORed;
/// `None`: usable from every node).
#[derive(Debug, Clone, Default)]
pub struct Volume {
    pub required: Option<Arc<Vec<NodeTerm>>>,
}

impl Volume {
    pub fn new(pv: &PersistentVolume) -> Volume {
        let required = pv
            .spec
            .as_ref()
            .and_then(|s| s.node_affinity.as_ref())
            .and_then(|a| a.required.as_ref())
            .map(|r| Arc::new(r.node_selector_terms.iter().map(NodeTerm::new).collect()));
        Volume { required }
    }
}

/// Claims by (namespace, name) and volumes by name, as the informers last saw them.
#[derive(Debug, Clone, Default)]
pub struct VolumeObjects {
    pub claims: HashMap<(String, String), Claim>,
    pub volumes: HashMap<String, Volume>,
}

/// PreFilter's result for a pod with claims: its bound claims' volumes (`None`: not known).
#[derive(Debug, Clone, Default)]
pub struct PreFilterState {
    pub bound: Vec<Option<Volume>>,
}

/// `Ok(None)`: the pod has no claims (kube's Skip). `Err`: unschedulable everywhere.
pub fn pre_filter(
    pod: &PodInfo,
    objects: &VolumeObjects,
) -> Result<Option<PreFilterState>, Rejection> {
    let names = crate::volume_binding::claim_names(&pod.pod);
    if names.is_empty() {
        return Ok(None);
    }
    let mut state = PreFilterState::default();
    for name in names {
        let reject = |msg: String| {
            Rejection::new(
                Plugin::VolumeBinding,
                Code::UnschedulableAndUnresolvable,
                msg,
            )
        };
        let Some(claim) = objects.claims.get(&(pod.namespace.clone(), name.clone())) else {
            return Err(reject(format!(
                "persistentvolumeclaim \"{name}\" not found"
            )));
        };
        if claim.deleting {
            return Err(reject(format!(
                "persistentvolumeclaim \"{name}\" is being deleted"
            )));
        }
        if let Some(v) = &claim.volume_name {
            state.bound.push(objects.volumes.get(v).cloned());
        }
    }
    Ok(Some(state))
}

/// kube's `FindPodVolumes` for bound claims: every reason that applies, one rejection.
pub fn filter(state: &PreFilterState, node: &NodeInfo) -> FilterResult {
    let mut conflict = false;
    let mut missing = false;
    for v in &state.bound {
        match v {
            None => missing = true,
            Some(Volume {
                required: Some(terms),
            }) => {
                // kube matches PV terms against a nameless node: see the module docs.
                if !terms.iter().any(|t| t.matches("", node.labels())) {
                    conflict = true;
                }
            }
            Some(_) => {}
        }
    }
    let mut reasons = Vec::new();
    if conflict {
        reasons.push(ERR_REASON_NODE_CONFLICT.to_string());
    }
    if missing {
        reasons.push(ERR_REASON_PV_NOT_EXIST.to_string());
    }
    if reasons.is_empty() {
        return Ok(());
    }
    Err(Rejection {
        plugin: Plugin::VolumeBinding,
        code: Code::UnschedulableAndUnresolvable,
        reasons,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_info::test_nodes::node;
    use crate::pod_info::test_pods::pod;
    use serde_json::json;

    fn objects() -> VolumeObjects {
        let claim = |v| Claim::new(&serde_json::from_value(v).unwrap_or_default());
        let volume = |v| Volume::new(&serde_json::from_value(v).unwrap_or_default());
        let on_a = json!({"metadata": {"name": "pv-a"}, "spec": {"nodeAffinity": {"required": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": ["a"]}]}]}}}});
        let by_field = json!({"metadata": {"name": "pv-f"}, "spec": {"nodeAffinity": {"required": {
            "nodeSelectorTerms": [{"matchFields": [
                {"key": "metadata.name", "operator": "In", "values": ["a"]}]}]}}}});
        let bound = |pv: &str| json!({"metadata": {"name": "x"}, "spec": {"volumeName": pv}});
        let mut o = VolumeObjects::default();
        let ns = |n: &str| ("default".to_string(), n.to_string());
        o.claims.insert(ns("data-a"), claim(bound("pv-a")));
        o.claims.insert(ns("data-f"), claim(bound("pv-f")));
        o.claims.insert(ns("data-any"), claim(bound("pv-any")));
        o.claims.insert(ns("data-gone"), claim(bound("pv-gone")));
        o.claims
            .insert(ns("pending"), claim(json!({"metadata": {"name": "p"}})));
        o.claims.insert(
            ns("dying"),
            claim(json!({"metadata": {"name": "d", "deletionTimestamp": "2026-11-29T00:00:00Z"}})),
        );
        o.volumes.insert("pv-a".into(), volume(on_a));
        o.volumes.insert("pv-f".into(), volume(by_field));
        o.volumes.insert(
            "pv-any".into(),
            volume(json!({"metadata": {"name": "pv-any"}})),
        );
        o
    }

    fn with_claims(claims: &[&str]) -> Arc<PodInfo> {
        let volumes: Vec<_> = claims
            .iter()
            .enumerate()
            .map(|(i, c)| json!({"name": format!("v{i}"), "persistentVolumeClaim": {"claimName": c}}))
            .collect();
        pod("p", json!({}), json!({"volumes": volumes}))
    }

    fn reasons(claims: &[&str], node_name: &str) -> Vec<String> {
        let o = objects();
        let state = pre_filter(&with_claims(claims), &o)
            .expect("pre_filter")
            .expect("claims");
        let n = node(
            node_name,
            "4",
            "8Gi",
            json!({"kubernetes.io/hostname": node_name}),
            json!({}),
        );
        filter(&state, &n)
            .err()
            .map(|r| r.reasons)
            .unwrap_or_default()
    }

    #[test]
    fn golden_prefilter_messages() {
        let o = objects();
        assert!(pre_filter(&with_claims(&[]), &o).expect("ok").is_none());
        let err = |c: &[&str]| pre_filter(&with_claims(c), &o).expect_err("rejected");
        let e = err(&["data-a", "missing"]);
        assert_eq!(e.reasons, ["persistentvolumeclaim \"missing\" not found"]);
        assert_eq!(
            (e.plugin, e.code),
            (Plugin::VolumeBinding, Code::UnschedulableAndUnresolvable)
        );
        assert_eq!(
            err(&["dying"]).reasons,
            ["persistentvolumeclaim \"dying\" is being deleted"]
        );
    }

    #[test]
    fn golden_bound_volume_node_affinity() {
        assert!(reasons(&["data-a"], "a").is_empty());
        assert_eq!(reasons(&["data-a"], "b"), [ERR_REASON_NODE_CONFLICT]);
        // No node affinity, or not bound yet: every node.
        assert!(reasons(&["data-any", "pending"], "b").is_empty());
        // kube's CheckNodeAffinity sees labels only: metadata.name fields match no node.
        assert_eq!(reasons(&["data-f"], "a"), [ERR_REASON_NODE_CONFLICT]);
        assert_eq!(
            reasons(&["data-a", "data-gone"], "b"),
            [ERR_REASON_NODE_CONFLICT, ERR_REASON_PV_NOT_EXIST]
        );
        assert_eq!(reasons(&["data-gone"], "a"), [ERR_REASON_PV_NOT_EXIST]);
    }
}
