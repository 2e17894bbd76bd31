//! NodeUnschedulable, NodeName, TaintToleration and NodePorts.

use k8s_openapi::api::core::v1::{Taint, Toleration};

use super::{Code, FilterResult, Plugin, Rejection};
use crate::node_info::{NodeInfo, TAINT_UNSCHEDULABLE};
use crate::pod_info::PodInfo;

pub const ERR_UNSCHEDULABLE: &str = "node(s) were unschedulable";
pub const ERR_NODE_NAME: &str = "node(s) didn't match the requested node name";
pub const ERR_NODE_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";

/// kube's `Toleration.ToleratesTaint`.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = t.effect.as_deref().filter(|e| !e.is_empty())
        && effect != taint.effect
    {
        return false;
    }
    if let Some(key) = t.key.as_deref().filter(|k| !k.is_empty())
        && key != taint.key
    {
        return false;
    }
    match t.operator.as_deref().unwrap_or("") {
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        _ => false,
    }
}

pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

/// The first NoSchedule/NoExecute taint the pod does not tolerate.
pub fn untolerated_taint<'a>(node: &'a NodeInfo, tolerations: &[Toleration]) -> Option<&'a Taint> {
    if !node.has_taints {
        return None; // without touching the NodeStatic (see NodeInfo)
    }
    node.node.taints.iter().find(|t| {
        (t.effect == "NoSchedule" || t.effect == "NoExecute") && !tolerated(tolerations, t)
    })
}

/// NodeUnschedulable: `spec.unschedulable` nodes, unless the pod tolerates the unschedulable taint.
pub fn node_unschedulable(pod: &PodInfo, node: &NodeInfo) -> FilterResult {
    if !node.unschedulable {
        return Ok(());
    }
    let taint = Taint {
        key: TAINT_UNSCHEDULABLE.into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    };
    if tolerated(&pod.tolerations, &taint) {
        return Ok(());
    }
    Err(Rejection::new(
        Plugin::NodeUnschedulable,
        Code::UnschedulableAndUnresolvable,
        ERR_UNSCHEDULABLE,
    ))
}

/// NodeName: `spec.nodeName`, when set, must be this node.
pub fn node_name(pod: &PodInfo, node: &NodeInfo) -> FilterResult {
    match &pod.node_name {
        Some(n) if n != node.name() => Err(Rejection::new(
            Plugin::NodeName,
            Code::UnschedulableAndUnresolvable,
            ERR_NODE_NAME,
        )),
        _ => Ok(()),
    }
}

/// TaintToleration filter: every NoSchedule/NoExecute taint must be tolerated.
pub fn taint_toleration(pod: &PodInfo, node: &NodeInfo) -> FilterResult {
    match untolerated_taint(node, &pod.tolerations) {
        None => Ok(()),
        Some(t) => Err(Rejection::new(
            Plugin::TaintToleration,
            Code::UnschedulableAndUnresolvable,
            format!(
                "node(s) had untolerated taint {{{}: {}}}",
                t.key,
                t.value.as_deref().unwrap_or("")
            ),
        )),
    }
}

/// TaintToleration score (raw): the number of PreferNoSchedule taints the pod does not tolerate.
/// Normalised with `default_normalize(reverse = true)`.
pub fn taint_toleration_score(pod: &PodInfo, node: &NodeInfo) -> i64 {
    if !node.has_taints {
        return 0;
    }
    let prefer: Vec<&Toleration> = pod
        .tolerations
        .iter()
        .filter(|t| {
            matches!(
                t.effect.as_deref(),
                None | Some("") | Some("PreferNoSchedule")
            )
        })
        .collect();
    node.node
        .taints
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule" && !prefer.iter().any(|tol| tolerates(tol, t)))
        .count() as i64
}

/// NodePorts: the pod's host ports must be free on the node.
pub fn node_ports(pod: &PodInfo, node: &NodeInfo) -> FilterResult {
    if pod.host_ports.iter().any(|p| node.port_conflicts(p)) {
        return Err(Rejection::new(
            Plugin::NodePorts,
            Code::Unschedulable,
            ERR_NODE_PORTS,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_info::test_nodes::node;
    use crate::pod_info::test_pods::pod;
    use serde_json::json;

    #[test]
    fn golden_taints_and_tolerations() {
        let n = node(
            "n",
            "4",
            "8Gi",
            json!({}),
            json!({"taints": [
            {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
            {"key": "spot", "effect": "PreferNoSchedule"}]}),
        );
        let plain = pod("p", json!({}), json!({}));
        let err = taint_toleration(&plain, &n).expect_err("untolerated");
        assert_eq!(
            err.reasons,
            vec!["node(s) had untolerated taint {dedicated: gpu}"]
        );
        assert_eq!(err.code, Code::UnschedulableAndUnresolvable);
        assert_eq!(taint_toleration_score(&plain, &n), 1);

        let equal = pod(
            "q",
            json!({}),
            json!({"tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]}),
        );
        assert!(taint_toleration(&equal, &n).is_ok());
        let wrong_value = pod(
            "r",
            json!({}),
            json!({"tolerations": [
            {"key": "dedicated", "value": "cpu"}]}),
        );
        assert!(taint_toleration(&wrong_value, &n).is_err());
        let exists_all = pod(
            "s",
            json!({}),
            json!({"tolerations": [{"operator": "Exists"}]}),
        );
        assert!(taint_toleration(&exists_all, &n).is_ok());
        assert_eq!(taint_toleration_score(&exists_all, &n), 0);
        let noexec_only = pod(
            "t",
            json!({}),
            json!({"tolerations": [
            {"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}]}),
        );
        assert!(taint_toleration(&noexec_only, &n).is_err());
    }

    #[test]
    fn golden_unschedulable_nodename_ports() {
        let cordoned = node("n", "4", "8Gi", json!({}), json!({"unschedulable": true}));
        let p = pod("p", json!({}), json!({}));
        assert_eq!(
            node_unschedulable(&p, &cordoned)
                .expect_err("cordoned")
                .reasons,
            vec![ERR_UNSCHEDULABLE]
        );
        let tolerant = pod(
            "q",
            json!({}),
            json!({"tolerations": [
            {"key": TAINT_UNSCHEDULABLE, "operator": "Exists", "effect": "NoSchedule"}]}),
        );
        assert!(node_unschedulable(&tolerant, &cordoned).is_ok());

        let named = pod("r", json!({}), json!({"nodeName": "other"}));
        assert_eq!(
            node_name(&named, &cordoned).expect_err("name").reasons,
            vec![ERR_NODE_NAME]
        );

        let mut n = node("n2", "4", "8Gi", json!({}), json!({}));
        let web = |name: &str| {
            pod(
                name,
                json!({}),
                json!({"containers": [{"name": "c", "image": "i",
            "ports": [{"containerPort": 80, "hostPort": 80}]}]}),
            )
        };
        assert!(node_ports(&web("a"), &n).is_ok());
        n.add_pod(web("a"));
        let err = node_ports(&web("b"), &n).expect_err("port taken");
        assert_eq!(
            (err.code, err.reasons[0].as_str()),
            (Code::Unschedulable, ERR_NODE_PORTS)
        );
    }
}
