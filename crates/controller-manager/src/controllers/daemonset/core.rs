//! The DaemonSet controller's decisions, IO-free: one call to [`sync`] is one pass of Kubernetes'
//! `syncDaemonSet` (manage + rollingUpdate + status) over the cached set, the nodes, the set's pods
//! and its ControllerRevisions.
//!
//! Pods are created unbound with a required node affinity on `metadata.name` (as Kubernetes does
//! since 1.12, so the scheduler binds them) and the DaemonSet tolerations (not-ready, unreachable,
//! pressure conditions, unschedulable).

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodTemplateSpec, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::controllers::deployment::util::scaled_value;
use crate::util::owner;
use crate::util::pod as podutil;
use crate::util::revision::{self, REVISION_HASH_LABEL, RevisionStep};
use crate::util::scheduling::should_run;

pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A write to the revision history.
    Revision(RevisionStep),
    /// Create a pod for this node.
    CreatePod {
        node: String,
        pod: Box<Pod>,
    },
    DeletePod(String),
    UpdateStatus(DaemonSetStatus),
    Event {
        type_: &'static str,
        reason: &'static str,
        message: String,
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub requeue_after: Option<Duration>,
}

fn ds_name(ds: &DaemonSet) -> &str {
    ds.metadata.name.as_deref().unwrap_or("")
}

fn min_ready(ds: &DaemonSet) -> i32 {
    ds.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

fn is_on_delete(ds: &DaemonSet) -> bool {
    ds.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        == Some("OnDelete")
}

/// (maxSurge, maxUnavailable) for `desired` nodes, both rounded up; never both 0.
fn rolling_params(ds: &DaemonSet, desired: i32) -> (i32, i32) {
    let ru = ds
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.rolling_update.as_ref());
    let surge = ru
        .and_then(|r| r.max_surge.clone())
        .unwrap_or(IntOrString::Int(0));
    let unavailable = ru
        .and_then(|r| r.max_unavailable.clone())
        .unwrap_or(IntOrString::Int(1));
    let s = scaled_value(
        &surge,
        desired,
        true,
        "spec.updateStrategy.rollingUpdate.maxSurge",
    )
    .unwrap_or(0);
    let u = scaled_value(
        &unavailable,
        desired,
        true,
        "spec.updateStrategy.rollingUpdate.maxUnavailable",
    )
    .unwrap_or(1);
    if s == 0 && u == 0 { (0, 1) } else { (s, u) }
}

/// The tolerations Kubernetes adds to every DaemonSet pod.
fn daemon_tolerations(host_network: bool) -> Vec<Toleration> {
    let t = |key: &str, effect: &str| Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        value: None,
        toleration_seconds: None,
    };
    let mut v = vec![
        t("node.kubernetes.io/not-ready", "NoExecute"),
        t("node.kubernetes.io/unreachable", "NoExecute"),
        t("node.kubernetes.io/disk-pressure", "NoSchedule"),
        t("node.kubernetes.io/memory-pressure", "NoSchedule"),
        t("node.kubernetes.io/pid-pressure", "NoSchedule"),
        t("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if host_network {
        v.push(t("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    v
}

/// The template with the DaemonSet tolerations added (what eligibility is checked against).
fn template_with_tolerations(ds: &DaemonSet) -> PodTemplateSpec {
    let mut t = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let spec = t.spec.get_or_insert_with(Default::default);
    let host_network = spec.host_network.unwrap_or(false);
    let tol = spec.tolerations.get_or_insert_with(Vec::new);
    for d in daemon_tolerations(host_network) {
        if !tol.iter().any(|x| x.key == d.key && x.effect == d.effect) {
            tol.push(d);
        }
    }
    t
}

/// The node a daemon pod is for: its nodeName, or the `metadata.name` of its node affinity.
pub fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.clone().filter(|n| !n.is_empty()) {
        return Some(n);
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms.iter().find_map(|t| {
        t.match_fields.as_ref()?.iter().find_map(|f| {
            (f.key == "metadata.name" && f.operator == "In")
                .then(|| {
                    f.values
                        .as_ref()
                        .and_then(|v| (v.len() == 1).then(|| v[0].clone()))
                })
                .flatten()
        })
    })
}

/// The pod for `node` (Kubernetes' `ReplaceDaemonSetPodNodeNameNodeAffinity` on the template).
pub fn pod_for(ds: &DaemonSet, template: &PodTemplateSpec, node: &str, rev: &str) -> Pod {
    let tmeta = template.metadata.clone().unwrap_or_default();
    let mut labels = tmeta.labels.unwrap_or_default();
    labels.insert(REVISION_HASH_LABEL.into(), rev.into());
    if let Some(g) = ds.metadata.generation {
        labels.insert(TEMPLATE_GENERATION_LABEL.into(), g.to_string());
    }
    let mut spec = template.spec.clone().unwrap_or_default();
    let term = NodeSelectorTerm {
        match_expressions: None,
        match_fields: Some(vec![NodeSelectorRequirement {
            key: "metadata.name".into(),
            operator: "In".into(),
            values: Some(vec![node.into()]),
        }]),
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let na = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    na.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![term],
    });
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(crate::controllers::replicaset::core::pod_name_prefix(
                ds_name(ds),
            )),
            namespace: ds.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![owner::controller_reference(
                "apps/v1",
                "DaemonSet",
                &ds.metadata,
            )]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

fn revision_of(p: &Pod) -> Option<&str> {
    p.metadata
        .labels
        .as_ref()?
        .get(REVISION_HASH_LABEL)
        .map(String::as_str)
}

/// Run one pass. `pods` are the pods the set controls.
pub fn sync(
    ds: &DaemonSet,
    nodes: &[&Node],
    pods: &[&Pod],
    revisions: &[&ControllerRevision],
    now: Timestamp,
) -> Plan {
    let mut steps = Vec::new();
    let spec = ds.spec.clone().unwrap_or_default();
    let template = template_with_tolerations(ds);
    let pod_spec = template.spec.clone().unwrap_or_default();
    let original = ds.status.clone().unwrap_or_default();
    let oref = owner::controller_reference("apps/v1", "DaemonSet", &ds.metadata);
    let sel_labels = spec.selector.match_labels.clone().unwrap_or_default();
    let stored = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let hash = {
        let (name, step) = revision::resolve(revisions, &stored, |n| {
            revision::new_revision(
                &ds.metadata,
                oref.clone(),
                sel_labels.clone(),
                &stored,
                n,
                original.collision_count,
            )
        });
        steps.extend(step.map(Step::Revision));
        name
    };
    let min_ready = min_ready(ds);

    // Pods per node (pods for nodes that no longer exist go).
    let mut by_node: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
    let node_names: Vec<String> = nodes
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    let mut delete: Vec<String> = Vec::new();
    for p in pods {
        match target_node(p) {
            Some(n) if node_names.contains(&n) => by_node.entry(n).or_default().push(p),
            _ if !podutil::is_terminating(p) => {
                delete.push(p.metadata.name.clone().unwrap_or_default())
            }
            _ => {}
        }
    }
    let (surge, unavailable) = {
        let desired = nodes.iter().filter(|n| should_run(&pod_spec, n).0).count() as i32;
        rolling_params(ds, desired)
    };

    // Manage: one pod per eligible node.
    let mut create_on: Vec<String> = Vec::new();
    let mut status = DaemonSetStatus {
        observed_generation: ds.metadata.generation,
        collision_count: original.collision_count,
        conditions: original.conditions.clone(),
        ..Default::default()
    };
    for node in nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        let (run, keep) = should_run(&pod_spec, node);
        let mut on_node: Vec<&Pod> = by_node.get(&name).cloned().unwrap_or_default();
        on_node.sort_by_key(|p| podutil::created_at(p));
        if run {
            status.desired_number_scheduled += 1;
        }
        if on_node.is_empty() {
            if run {
                create_on.push(name.clone());
            }
            continue;
        }
        if !run {
            status.number_misscheduled += 1;
        } else {
            status.current_number_scheduled += 1;
            let p = on_node[0];
            if podutil::is_ready(p) {
                status.number_ready += 1;
                if podutil::is_available(p, min_ready, now) {
                    status.number_available = Some(status.number_available.unwrap_or(0) + 1);
                }
            }
            if revision_of(p) == Some(hash.as_str()) {
                status.updated_number_scheduled =
                    Some(status.updated_number_scheduled.unwrap_or(0) + 1);
            }
        }
        if keep {
            let mut running: Vec<&Pod> = Vec::new();
            for p in on_node.iter().filter(|p| !podutil::is_terminating(p)) {
                if podutil::phase(p) == "Failed" {
                    delete.push(p.metadata.name.clone().unwrap_or_default());
                    steps.push(Step::Event {
                        type_: "Warning",
                        reason: "FailedDaemonPod",
                        message: format!(
                            "Found failed daemon pod {}/{} on node {name}, will try to kill it",
                            p.metadata.namespace.as_deref().unwrap_or(""),
                            p.metadata.name.as_deref().unwrap_or("")
                        ),
                    });
                } else {
                    running.push(p);
                }
            }
            if surge == 0 {
                // Without surge, more than one pod on a node: keep the oldest.
                delete.extend(
                    running
                        .iter()
                        .skip(1)
                        .map(|p| p.metadata.name.clone().unwrap_or_default()),
                );
            } else {
                // With surge: keep the oldest of each revision kind.
                let (new, old): (Vec<&Pod>, Vec<&Pod>) = running
                    .iter()
                    .partition(|p| revision_of(p) == Some(hash.as_str()));
                delete.extend(
                    new.iter()
                        .skip(1)
                        .chain(old.iter().skip(1))
                        .map(|p| p.metadata.name.clone().unwrap_or_default()),
                );
            }
        } else {
            delete.extend(
                on_node
                    .iter()
                    .filter(|p| !podutil::is_terminating(p))
                    .map(|p| p.metadata.name.clone().unwrap_or_default()),
            );
        }
    }
    status.number_unavailable =
        Some((status.desired_number_scheduled - status.number_available.unwrap_or(0)).max(0));

    // Rolling update.
    let mut requeue = None;
    if !is_on_delete(ds) {
        let mut num_unavailable = 0;
        let mut allowed = Vec::new();
        let mut candidates = Vec::new();
        let mut new_nodes_allowed = Vec::new();
        let mut new_nodes_candidates = Vec::new();
        for node in nodes {
            let name = node.metadata.name.clone().unwrap_or_default();
            if !should_run(&pod_spec, node).1 {
                continue;
            }
            let live: Vec<&Pod> = by_node
                .get(&name)
                .into_iter()
                .flatten()
                .copied()
                .filter(|p| !podutil::is_terminating(p) && podutil::phase(p) != "Failed")
                .collect();
            let news: Vec<&Pod> = live
                .iter()
                .copied()
                .filter(|p| revision_of(p) == Some(hash.as_str()))
                .collect();
            let olds: Vec<&Pod> = live
                .iter()
                .copied()
                .filter(|p| revision_of(p) != Some(hash.as_str()))
                .collect();
            if news.len() > 1 || olds.len() > 1 {
                num_unavailable += 1;
                continue;
            }
            let (new, old) = (news.first(), olds.first());
            let available = |p: &Pod| podutil::is_available(p, min_ready, now);
            if surge == 0 {
                match (new, old) {
                    (None, None) | (Some(_), Some(_)) => num_unavailable += 1,
                    (Some(n), None) => {
                        if !available(n) {
                            num_unavailable += 1;
                            if podutil::is_ready(n) {
                                requeue = podutil::time_until_available(n, min_ready, now);
                            }
                        }
                    }
                    (None, Some(o)) => {
                        if !available(o) {
                            allowed.push(o.metadata.name.clone().unwrap_or_default());
                        } else if num_unavailable < unavailable {
                            candidates.push(o.metadata.name.clone().unwrap_or_default());
                        }
                    }
                }
            } else {
                match (new, old) {
                    (_, None) => {}
                    (None, Some(o)) => {
                        if !available(o) {
                            new_nodes_allowed.push(name.clone());
                        } else {
                            new_nodes_candidates.push(name.clone());
                        }
                    }
                    (Some(n), Some(o)) => {
                        if available(n) {
                            delete.push(o.metadata.name.clone().unwrap_or_default());
                        } else {
                            num_unavailable += 1;
                        }
                    }
                }
            }
        }
        if surge == 0 {
            let remaining =
                (unavailable - num_unavailable).clamp(0, candidates.len() as i32) as usize;
            delete.extend(allowed);
            delete.extend(candidates.into_iter().take(remaining));
        } else {
            let remaining =
                (surge - num_unavailable).clamp(0, new_nodes_candidates.len() as i32) as usize;
            create_on.extend(new_nodes_allowed);
            create_on.extend(new_nodes_candidates.into_iter().take(remaining));
        }
    }

    delete.sort();
    delete.dedup();
    for name in &delete {
        steps.push(Step::DeletePod(name.clone()));
        steps.push(Step::Event {
            type_: "Normal",
            reason: "SuccessfulDelete",
            message: format!("Deleted pod: {name}"),
        });
    }
    for node in create_on {
        let pod = pod_for(ds, &template, &node, &hash);
        steps.push(Step::CreatePod {
            node,
            pod: Box::new(pod),
        });
    }

    // History.
    let mut in_use: Vec<String> = pods
        .iter()
        .filter_map(|p| revision_of(p).map(String::from))
        .collect();
    in_use.push(hash.clone());
    for name in revision::history_to_delete(
        revisions,
        &in_use,
        spec.revision_history_limit.unwrap_or(10),
    ) {
        steps.push(Step::Revision(RevisionStep::Delete(name)));
    }
    if status != original {
        steps.push(Step::UpdateStatus(status));
    }
    Plan {
        steps,
        requeue_after: requeue,
    }
}

#[cfg(test)]
mod tests;
