//! The StatefulSet controller's decisions, IO-free: one call to [`sync`] is one pass of Kubernetes'
//! `updateStatefulSet` over the cached set, its pods, its PersistentVolumeClaims and its
//! ControllerRevisions.
//!
//! * Identity: pod `<set>-<ordinal>` (from `spec.ordinals.start`), hostname = pod name, subdomain =
//!   `spec.serviceName`, labels `statefulset.kubernetes.io/pod-name`, `apps.kubernetes.io/pod-index`
//!   and `controller-revision-hash`; each volumeClaimTemplate becomes the claim
//!   `<template>-<set>-<ordinal>`, created before its pod and kept when the pod goes.
//! * OrderedReady: create in order, each only after the previous is Running and Ready; remove
//!   surplus pods highest ordinal first, one at a time. Parallel: all at once.
//! * RollingUpdate: from the highest ordinal down to `partition`, delete one pod at an old revision
//!   at a time, waiting for its replacement to be Running and Ready. OnDelete: only pods the user
//!   deletes are recreated at the new revision.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::util::owner;
use crate::util::pod as podutil;
use crate::util::revision::{self, REVISION_HASH_LABEL, RevisionStep};

pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A write to the revision history.
    Revision(RevisionStep),
    CreateClaim(Box<PersistentVolumeClaim>),
    CreatePod(Box<Pod>),
    DeletePod(String),
    UpdateStatus(StatefulSetStatus),
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

pub fn replicas(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
        .max(0)
}

fn start_ordinal(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.ordinals.as_ref())
        .and_then(|o| o.start)
        .unwrap_or(0)
}

fn parallel(set: &StatefulSet) -> bool {
    set.spec
        .as_ref()
        .and_then(|s| s.pod_management_policy.as_deref())
        == Some("Parallel")
}

fn on_delete(set: &StatefulSet) -> bool {
    set.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        == Some("OnDelete")
}

fn partition(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .unwrap_or(0)
}

fn min_ready(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

fn set_name(set: &StatefulSet) -> &str {
    set.metadata.name.as_deref().unwrap_or("")
}

/// The ordinal of a pod named `<set>-<n>`.
pub fn ordinal(set: &StatefulSet, pod: &Pod) -> Option<i32> {
    let name = pod.metadata.name.as_deref()?;
    let rest = name.strip_prefix(set_name(set))?.strip_prefix('-')?;
    rest.parse()
        .ok()
        .filter(|n: &i32| *n >= 0 && rest == n.to_string())
}

fn revision_of(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()?
        .get(REVISION_HASH_LABEL)
        .map(String::as_str)
}

/// The claim names for a pod: `<template>-<set>-<ordinal>` per volumeClaimTemplate.
pub fn claim_name(template: &str, set: &str, ordinal: i32) -> String {
    format!("{template}-{set}-{ordinal}")
}

/// The PVCs a pod needs (Kubernetes' `getPersistentVolumeClaims`).
pub fn claims_for(set: &StatefulSet, ordinal: i32) -> Vec<PersistentVolumeClaim> {
    let spec = set.spec.clone().unwrap_or_default();
    let sel_labels = spec.selector.match_labels.clone().unwrap_or_default();
    spec.volume_claim_templates
        .unwrap_or_default()
        .into_iter()
        .map(|mut c| {
            let tname = c.metadata.name.clone().unwrap_or_default();
            let mut labels = c.metadata.labels.clone().unwrap_or_default();
            labels.extend(sel_labels.clone());
            c.metadata = ObjectMeta {
                name: Some(claim_name(&tname, set_name(set), ordinal)),
                namespace: set.metadata.namespace.clone(),
                labels: Some(labels),
                annotations: c.metadata.annotations.clone(),
                ..Default::default()
            };
            c.status = None;
            c
        })
        .collect()
}

/// The pod for `ordinal` from `template` at revision `rev` (Kubernetes' `newVersionedStatefulSetPod`).
pub fn pod_for(set: &StatefulSet, template: &PodTemplateSpec, ordinal: i32, rev: &str) -> Pod {
    let name = format!("{}-{}", set_name(set), ordinal);
    let tmeta = template.metadata.clone().unwrap_or_default();
    let mut labels = tmeta.labels.unwrap_or_default();
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    labels.insert(REVISION_HASH_LABEL.into(), rev.into());
    let mut spec = template.spec.clone().unwrap_or_default();
    spec.hostname = Some(name.clone());
    if let Some(svc) = set
        .spec
        .as_ref()
        .and_then(|s| s.service_name.clone())
        .filter(|s| !s.is_empty())
    {
        spec.subdomain = Some(svc);
    }
    let claims = claims_for(set, ordinal);
    if !claims.is_empty() {
        let volumes = spec.volumes.get_or_insert_with(Vec::new);
        for (c, tpl) in claims.iter().zip(
            set.spec
                .iter()
                .flat_map(|s| s.volume_claim_templates.iter().flatten()),
        ) {
            let vname = tpl.metadata.name.clone().unwrap_or_default();
            let source = PersistentVolumeClaimVolumeSource {
                claim_name: c.metadata.name.clone().unwrap_or_default(),
                read_only: None,
            };
            match volumes.iter_mut().find(|v| v.name == vname) {
                Some(v) => v.persistent_volume_claim = Some(source),
                None => volumes.push(Volume {
                    name: vname,
                    persistent_volume_claim: Some(source),
                    ..Default::default()
                }),
            }
        }
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: set.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![owner::controller_reference(
                "apps/v1",
                "StatefulSet",
                &set.metadata,
            )]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

fn running_and_ready(p: &Pod) -> bool {
    podutil::phase(p) == "Running" && podutil::is_ready(p) && !podutil::is_terminating(p)
}

/// Run one pass. `pods` are the pods the set controls; `claims` the names of the PVCs that exist in
/// the namespace; `revisions` the set's ControllerRevisions.
pub fn sync(
    set: &StatefulSet,
    pods: &[&Pod],
    claims: &[String],
    revisions: &[&ControllerRevision],
    now: Timestamp,
) -> Plan {
    let mut steps = Vec::new();
    let spec = set.spec.clone().unwrap_or_default();
    let template = spec.template.clone();
    let original = set.status.clone().unwrap_or_default();
    let mut status = original.clone();
    let oref = owner::controller_reference("apps/v1", "StatefulSet", &set.metadata);

    // Revisions: the update revision stores the current template.
    let sel_labels = spec.selector.match_labels.clone().unwrap_or_default();
    let update_rev = {
        let (name, step) = revision::resolve(revisions, &template, |n| {
            revision::new_revision(
                &set.metadata,
                oref.clone(),
                sel_labels.clone(),
                &template,
                n,
                status.collision_count,
            )
        });
        steps.extend(step.map(Step::Revision));
        name
    };
    let current_rev = status
        .current_revision
        .clone()
        .filter(|c| {
            revisions
                .iter()
                .any(|r| r.metadata.name.as_ref() == Some(c))
        })
        .unwrap_or_else(|| update_rev.clone());
    let current_template = revisions
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some(current_rev.as_str()))
        .and_then(|r| revision::template_of(r))
        .unwrap_or_else(|| template.clone());

    let want = replicas(set);
    let start = start_ordinal(set);
    let mut by_ordinal: BTreeMap<i32, &Pod> = BTreeMap::new();
    let mut condemned: Vec<&Pod> = Vec::new();
    for p in pods {
        match ordinal(set, p) {
            Some(o) if o >= start && o < start + want => {
                by_ordinal.insert(o, p);
            }
            _ => condemned.push(p),
        }
    }
    condemned.sort_by_key(|p| std::cmp::Reverse(ordinal(set, p).unwrap_or(i32::MAX)));
    let ordered = !parallel(set);
    let part = partition(set);
    let mut requeue = None;

    // Create or replace the pods in range, in order.
    let mut blocked = false;
    for o in start..start + want {
        match by_ordinal.get(&o) {
            None => {
                for c in claims_for(set, o) {
                    if !claims.contains(c.metadata.name.as_ref().unwrap_or(&String::new())) {
                        steps.push(Step::CreateClaim(Box::new(c)));
                    }
                }
                // New pods below the partition (RollingUpdate) keep the current revision.
                // (The apiserver defaults an absent rollingUpdate to partition 0, so Kubernetes'
                // "below status.currentReplicas" branch for a nil rollingUpdate never applies.)
                let use_current = !on_delete(set) && o - start < part;
                let (tpl, rev) = if use_current && current_rev != update_rev {
                    (&current_template, current_rev.as_str())
                } else {
                    (&template, update_rev.as_str())
                };
                let pod = pod_for(set, tpl, o, rev);
                let name = pod.metadata.name.clone().unwrap_or_default();
                steps.push(Step::CreatePod(Box::new(pod)));
                steps.push(Step::Event {
                    type_: "Normal",
                    reason: "SuccessfulCreate",
                    message: format!(
                        "create Pod {name} in StatefulSet {} successful",
                        set_name(set)
                    ),
                });
                if ordered {
                    blocked = true;
                    break;
                }
            }
            Some(p)
                if matches!(podutil::phase(p), "Failed" | "Succeeded")
                    && !podutil::is_terminating(p) =>
            {
                let name = p.metadata.name.clone().unwrap_or_default();
                steps.push(Step::DeletePod(name.clone()));
                steps.push(Step::Event {
                    type_: "Warning",
                    reason: "RecreatingFailedPod",
                    message: format!(
                        "StatefulSet {} is recreating failed Pod {name}",
                        set_name(set)
                    ),
                });
                if ordered {
                    blocked = true;
                    break;
                }
            }
            Some(p) => {
                if ordered
                    && !(running_and_ready(p) && podutil::is_available(p, min_ready(set), now))
                {
                    if running_and_ready(p) {
                        requeue = podutil::time_until_available(p, min_ready(set), now);
                    }
                    blocked = true;
                    break;
                }
            }
        }
    }

    // Scale down: highest ordinal first; OrderedReady waits for every other pod to be healthy.
    if !blocked && !condemned.is_empty() {
        let healthy = by_ordinal.values().all(|p| running_and_ready(p));
        for p in &condemned {
            if podutil::is_terminating(p) {
                if ordered {
                    break;
                }
                continue;
            }
            if ordered && !healthy {
                break;
            }
            let name = p.metadata.name.clone().unwrap_or_default();
            steps.push(Step::DeletePod(name.clone()));
            steps.push(Step::Event {
                type_: "Normal",
                reason: "SuccessfulDelete",
                message: format!(
                    "delete Pod {name} in StatefulSet {} successful",
                    set_name(set)
                ),
            });
            if ordered {
                break;
            }
        }
        blocked = true;
    }

    // Rolling update: highest ordinal first down to the partition, one pod at a time.
    if !blocked && !on_delete(set) {
        let all_ready =
            by_ordinal.len() as i32 == want && by_ordinal.values().all(|p| running_and_ready(p));
        if all_ready {
            for o in (start + part.max(0)..start + want).rev() {
                let Some(p) = by_ordinal.get(&o) else {
                    continue;
                };
                if revision_of(p) != Some(update_rev.as_str()) {
                    let name = p.metadata.name.clone().unwrap_or_default();
                    steps.push(Step::DeletePod(name.clone()));
                    steps.push(Step::Event {
                        type_: "Normal",
                        reason: "SuccessfulDelete",
                        message: format!(
                            "delete Pod {name} in StatefulSet {} successful",
                            set_name(set)
                        ),
                    });
                    break;
                }
            }
        }
    }

    // Status.
    let live: Vec<&&Pod> = pods
        .iter()
        .filter(|p| !podutil::is_terminating(p))
        .collect();
    status.observed_generation = set.metadata.generation;
    status.replicas = live.len() as i32;
    status.ready_replicas = Some(live.iter().filter(|p| podutil::is_ready(p)).count() as i32);
    status.available_replicas = Some(
        live.iter()
            .filter(|p| podutil::is_available(p, min_ready(set), now))
            .count() as i32,
    );
    let updated = live
        .iter()
        .filter(|p| revision_of(p) == Some(update_rev.as_str()))
        .count() as i32;
    let current = live
        .iter()
        .filter(|p| revision_of(p) == Some(current_rev.as_str()))
        .count() as i32;
    status.updated_replicas = Some(updated);
    status.current_replicas = Some(current);
    status.update_revision = Some(update_rev.clone());
    status.current_revision = Some(current_rev.clone());
    // The update is complete when every wanted pod runs the update revision.
    if updated == want
        && live.len() as i32 == want
        && by_ordinal
            .values()
            .all(|p| revision_of(p) == Some(update_rev.as_str()))
    {
        status.current_revision = Some(update_rev.clone());
        status.current_replicas = Some(updated);
    }

    // History: keep revisionHistoryLimit revisions besides those in use.
    let mut in_use: Vec<String> = pods
        .iter()
        .filter_map(|p| revision_of(p).map(str::to_string))
        .collect();
    in_use.push(update_rev.clone());
    if let Some(c) = status.current_revision.clone() {
        in_use.push(c);
    }
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
