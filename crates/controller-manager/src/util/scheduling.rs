//! The node-fit rules a DaemonSet applies before placing a pod on a node (Kubernetes'
//! `NodeShouldRunDaemonPod`): taints and tolerations, nodeSelector, required node affinity.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, PodSpec, Taint, Toleration,
};

/// Kubernetes' `Toleration.ToleratesTaint`.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if t.effect
        .as_ref()
        .is_some_and(|e| !e.is_empty() && *e != taint.effect)
    {
        return false;
    }
    if t.key
        .as_ref()
        .is_some_and(|k| !k.is_empty() && *k != taint.key)
    {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&String>) -> bool {
    let values = r.values.clone().unwrap_or_default();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(bound)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                values.first().and_then(|b| b.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

/// Whether a node selector term matches the node (expressions on labels, fields on metadata.name).
pub fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    let exprs = term.match_expressions.clone().unwrap_or_default();
    let fields = term.match_fields.clone().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let name = node.metadata.name.clone();
    exprs
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key)))
        && fields
            .iter()
            .all(|r| r.key == "metadata.name" && requirement_matches(r, name.as_ref()))
}

/// nodeSelector and required node affinity.
pub fn node_matches(spec: &PodSpec, node: &Node) -> bool {
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    if let Some(sel) = &spec.node_selector
        && !sel.iter().all(|(k, v)| labels.get(k) == Some(v))
    {
        return false;
    }
    let terms = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|r| r.node_selector_terms.clone());
    match terms {
        Some(terms) => terms.iter().any(|t| term_matches(t, node)),
        None => true,
    }
}

/// (should run, should continue running) for a pod with `spec` on `node`: untolerated NoSchedule
/// taints stop new pods, untolerated NoExecute taints evict running ones too.
pub fn should_run(spec: &PodSpec, node: &Node) -> (bool, bool) {
    if !node_matches(spec, node) {
        return (false, false);
    }
    let tolerations = spec.tolerations.clone().unwrap_or_default();
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let mut run = true;
    let mut keep = true;
    for taint in &taints {
        if tolerated(&tolerations, taint) {
            continue;
        }
        match taint.effect.as_str() {
            "NoExecute" => {
                run = false;
                keep = false;
            }
            "NoSchedule" => run = false,
            _ => {}
        }
    }
    (run, keep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Affinity, NodeAffinity, NodeSelector, NodeSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn node(name: &str, labels: &[(&str, &str)], taints: Vec<Taint>) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: Some(taints),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: Some(value.into()),
            effect: effect.into(),
            time_added: None,
        }
    }

    #[test]
    fn toleration_table() {
        let t = taint("dedicated", "gpu", "NoSchedule");
        let tol = |key: Option<&str>,
                   op: Option<&str>,
                   value: Option<&str>,
                   effect: Option<&str>| Toleration {
            key: key.map(Into::into),
            operator: op.map(Into::into),
            value: value.map(Into::into),
            effect: effect.map(Into::into),
            toleration_seconds: None,
        };
        assert!(tolerates(
            &tol(Some("dedicated"), None, Some("gpu"), None),
            &t
        ));
        assert!(!tolerates(
            &tol(Some("dedicated"), None, Some("cpu"), None),
            &t
        ));
        assert!(tolerates(
            &tol(Some("dedicated"), Some("Exists"), None, Some("NoSchedule")),
            &t
        ));
        assert!(!tolerates(
            &tol(Some("dedicated"), Some("Exists"), None, Some("NoExecute")),
            &t
        ));
        assert!(tolerates(&tol(None, Some("Exists"), None, None), &t));
        assert!(!tolerates(
            &tol(Some("other"), Some("Exists"), None, None),
            &t
        ));
    }

    #[test]
    fn should_run_table() {
        let plain = PodSpec::default();
        assert_eq!(should_run(&plain, &node("a", &[], vec![])), (true, true));
        assert_eq!(
            should_run(&plain, &node("a", &[], vec![taint("k", "v", "NoSchedule")])),
            (false, true)
        );
        assert_eq!(
            should_run(&plain, &node("a", &[], vec![taint("k", "v", "NoExecute")])),
            (false, false)
        );
        assert_eq!(
            should_run(
                &plain,
                &node("a", &[], vec![taint("k", "v", "PreferNoSchedule")])
            ),
            (true, true)
        );
        let sel = PodSpec {
            node_selector: Some(BTreeMap::from([("disk".into(), "ssd".into())])),
            ..Default::default()
        };
        assert_eq!(
            should_run(&sel, &node("a", &[("disk", "ssd")], vec![])),
            (true, true)
        );
        assert_eq!(
            should_run(&sel, &node("a", &[("disk", "hdd")], vec![])),
            (false, false)
        );
        let aff = PodSpec {
            affinity: Some(Affinity {
                node_affinity: Some(NodeAffinity {
                    required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                        node_selector_terms: vec![NodeSelectorTerm {
                            match_expressions: Some(vec![NodeSelectorRequirement {
                                key: "zone".into(),
                                operator: "NotIn".into(),
                                values: Some(vec!["b".into()]),
                            }]),
                            match_fields: Some(vec![NodeSelectorRequirement {
                                key: "metadata.name".into(),
                                operator: "In".into(),
                                values: Some(vec!["a".into(), "c".into()]),
                            }]),
                        }],
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(node_matches(&aff, &node("a", &[("zone", "a")], vec![])));
        assert!(!node_matches(&aff, &node("a", &[("zone", "b")], vec![])));
        assert!(!node_matches(&aff, &node("d", &[], vec![])));
    }
}
