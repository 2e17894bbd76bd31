//! The ReplicaSet controller's decisions, IO-free: which pods to claim, how many to create, which
//! to delete (Kubernetes' ranking), and the status to report. The shell (`mod.rs`) reads the cache,
//! calls these, and performs the writes.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use niwa_api::selector::LabelSelector;

use crate::util::owner::{self, Claim};
use crate::util::pod as podutil;

/// Kubernetes' `BurstReplicas`: at most this many creations or deletions per sync.
pub const BURST_REPLICAS: usize = 500;

/// `spec.replicas` with Kubernetes' default (1).
pub fn desired_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
        .max(0)
}

pub fn min_ready_seconds(rs: &ReplicaSet) -> i32 {
    rs.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// The ReplicaSet's selector, parsed.
pub fn selector(rs: &ReplicaSet) -> Result<LabelSelector, niwa_api::selector::SelectorError> {
    LabelSelector::from_api(rs.spec.as_ref().map(|s| &s.selector))
}

/// How the ReplicaSet claims the namespace's active pods.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Claims<'a> {
    /// Pods that are already ours and match.
    pub owned: Vec<&'a Pod>,
    /// Matching orphans to adopt.
    pub adopt: Vec<&'a Pod>,
    /// Pods to release (ours, no longer matching).
    pub release: Vec<&'a Pod>,
}

/// Claim pods for `rs` among `pods` (only active pods count, as `FilterActivePods` then `ClaimPods`).
pub fn claim_pods<'a>(rs: &ReplicaSet, selector: &LabelSelector, pods: &[&'a Pod]) -> Claims<'a> {
    let uid = rs.metadata.uid.as_deref().unwrap_or("");
    let deleting = rs.metadata.deletion_timestamp.is_some();
    let empty = BTreeMap::new();
    let mut out = Claims::default();
    for p in pods.iter().copied().filter(|p| podutil::is_active(p)) {
        match owner::claim(&p.metadata, uid, deleting, selector, &empty) {
            Claim::Owned => out.owned.push(p),
            Claim::Adopt => out.adopt.push(p),
            Claim::Release => out.release.push(p),
            Claim::Ignore => {}
        }
    }
    out
}

/// What `manageReplicas` decides for the claimed (active, owned) pods.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Manage {
    /// Pods to create now (already capped at [`BURST_REPLICAS`]).
    pub create: usize,
    /// Names of pods to delete, in deletion order.
    pub delete: Vec<String>,
}

/// Kubernetes' `manageReplicas` decision. `related` are the active pods of every ReplicaSet of the
/// same owner (the "doubled up" rank counts them per node); pass `claimed` when there is no owner.
pub fn manage_replicas(
    rs: &ReplicaSet,
    claimed: &[&Pod],
    related: &[&Pod],
    now: Timestamp,
) -> Manage {
    let want = desired_replicas(rs) as usize;
    let have = claimed.len();
    if have < want {
        Manage {
            create: (want - have).min(BURST_REPLICAS),
            delete: Vec::new(),
        }
    } else if have > want {
        let diff = (have - want).min(BURST_REPLICAS);
        Manage {
            create: 0,
            delete: pods_to_delete(claimed, related, diff, now)
                .into_iter()
                .map(|p| p.metadata.name.clone().unwrap_or_default())
                .collect(),
        }
    } else {
        Manage::default()
    }
}

/// The first `diff` pods in Kubernetes' deletion order (`getPodsToDelete` with `ActivePodsWithRanks`
/// and LogarithmicScaleDown): unscheduled, then Pending < Unknown < Running, not ready < ready, lower
/// pod-deletion-cost, more co-located siblings, shorter ready time (log2 buckets), more restarts,
/// newer creation (log2 buckets), then UID.
pub fn pods_to_delete<'a>(
    pods: &[&'a Pod],
    related: &[&Pod],
    diff: usize,
    now: Timestamp,
) -> Vec<&'a Pod> {
    let mut per_node: HashMap<&str, i64> = HashMap::new();
    for p in related.iter().filter(|p| podutil::is_active(p)) {
        *per_node.entry(podutil::node_name(p)).or_default() += 1;
    }
    let mut ranked: Vec<(DeletionKey<'a>, &'a Pod)> = pods
        .iter()
        .map(|p| {
            let rank = per_node.get(podutil::node_name(p)).copied().unwrap_or(0);
            (deletion_key(p, rank, now), *p)
        })
        .collect();
    if diff < ranked.len() {
        // Each key is computed once: at 10,000 pods a comparator that re-reads conditions and
        // parses timestamps on every comparison costs more than the rest of the sync.
        ranked.sort_by(|a, b| a.0.cmp(&b.0));
    }
    ranked.into_iter().take(diff).map(|(_, p)| p).collect()
}

fn phase_ordinal(pod: &Pod) -> u8 {
    match podutil::phase(pod) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    }
}

/// floor(log2(now - t)) in nanoseconds, -1 for a non-positive age.
fn log_bucket(t: Timestamp, now: Timestamp) -> i64 {
    let nanos = now.duration_since(t).as_nanos();
    if nanos <= 0 {
        -1
    } else {
        (nanos as f64).log2() as i64
    }
}

/// A pod's place in the deletion order, smallest first: (assigned, phase, ready, deletion cost,
/// fewer co-located siblings, ready-time bucket, fewer restarts, creation bucket, UID).
///
/// Kubernetes' `ActivePodsWithRanks.Less` is not a total order: two pods whose ready (or creation)
/// times differ but fall in the same log2 bucket are ordered by UID at once, while two with equal
/// times go on to the later rules — so three pods can form a cycle, which Go's sort tolerates and
/// Rust's sort rejects with a panic (it did, on every scale-down sync of a 10,000-pod rolling
/// update). Here a bucket is one rank of the key for equal and unequal times alike, and the UID
/// breaks the ties last; the order differs from Kubernetes' only among pods of the same bucket.
type DeletionKey<'a> = (
    bool,
    u8,
    bool,
    i32,
    std::cmp::Reverse<i64>,
    Option<i64>,
    std::cmp::Reverse<i32>,
    Option<i64>,
    &'a str,
);

fn deletion_key(p: &Pod, rank: i64, now: Timestamp) -> DeletionKey<'_> {
    let ready = podutil::is_ready(p);
    // An empty time counts as the newest (`afterOrZero`): None sorts first.
    let ready_bucket = if ready {
        podutil::ready_since(p).map(|t| log_bucket(t, now))
    } else {
        None
    };
    (
        !podutil::node_name(p).is_empty(),
        phase_ordinal(p),
        ready,
        podutil::deletion_cost(p),
        std::cmp::Reverse(rank),
        ready_bucket,
        std::cmp::Reverse(podutil::max_container_restarts(p)),
        podutil::created_at(p).map(|t| log_bucket(t, now)),
        uid(p),
    )
}

fn uid(p: &Pod) -> &str {
    p.metadata.uid.as_deref().unwrap_or("")
}

/// Kubernetes' `calculateStatus`: counts over the claimed pods, the ReplicaFailure condition set
/// when managing replicas failed (`manage_error`) and cleared when it succeeded.
pub fn calculate_status(
    rs: &ReplicaSet,
    claimed: &[&Pod],
    manage_error: Option<&str>,
    now: Timestamp,
) -> ReplicaSetStatus {
    let old = rs.status.clone().unwrap_or_default();
    let template_labels = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let min_ready = min_ready_seconds(rs);
    let mut fully_labeled = 0;
    let mut ready = 0;
    let mut available = 0;
    for p in claimed {
        let labels = p.metadata.labels.as_ref();
        if template_labels
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        {
            fully_labeled += 1;
        }
        if podutil::is_ready(p) {
            ready += 1;
            if podutil::is_available(p, min_ready, now) {
                available += 1;
            }
        }
    }
    let mut conditions = old.conditions.clone().unwrap_or_default();
    let has_failure = conditions.iter().any(|c| c.type_ == "ReplicaFailure");
    match manage_error {
        Some(msg) if !has_failure => {
            let diff = claimed.len() as i64 - i64::from(desired_replicas(rs));
            let reason = match diff.cmp(&0) {
                Ordering::Less => "FailedCreate",
                Ordering::Greater => "FailedDelete",
                Ordering::Equal => "",
            };
            conditions.push(ReplicaSetCondition {
                type_: "ReplicaFailure".into(),
                status: "True".into(),
                reason: Some(reason.into()),
                message: Some(msg.to_string()),
                last_transition_time: Some(Time(now)),
            });
        }
        None if has_failure => conditions.retain(|c| c.type_ != "ReplicaFailure"),
        _ => {}
    }
    ReplicaSetStatus {
        replicas: claimed.len() as i32,
        fully_labeled_replicas: Some(fully_labeled),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        observed_generation: rs.metadata.generation,
        conditions: (!conditions.is_empty()).then_some(conditions),
        terminating_replicas: old.terminating_replicas,
    }
}

/// When to look again so that pods becoming available after minReadySeconds are counted: Kubernetes
/// requeues after minReadySeconds when every pod is ready but not all are available.
pub fn requeue_for_availability(rs: &ReplicaSet, status: &ReplicaSetStatus) -> Option<Duration> {
    let min_ready = min_ready_seconds(rs);
    let want = desired_replicas(rs);
    (min_ready > 0
        && status.ready_replicas.unwrap_or(0) == want
        && status.available_replicas.unwrap_or(0) != want)
        .then(|| Duration::from_secs(min_ready as u64))
}

/// The pod a controller creates from its template (Kubernetes' `GetPodFromTemplate`): labels,
/// annotations and finalizers from the template, `generateName: <owner>-`, our controller reference.
pub fn pod_from_template(
    template: &PodTemplateSpec,
    owner_meta: &ObjectMeta,
    owner_ref: OwnerReference,
) -> Pod {
    let tmeta = template.metadata.clone().unwrap_or_default();
    let prefix = owner_meta.name.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(pod_name_prefix(&prefix)),
            namespace: owner_meta.namespace.clone(),
            labels: tmeta.labels,
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![owner_ref]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// `<owner>-`, shortened as Kubernetes' `getPodsPrefix` does so that the generated name stays valid.
pub fn pod_name_prefix(owner: &str) -> String {
    let prefix = format!("{owner}-");
    // validation.NameIsDNSSubdomain(prefix, true) fails only past 253 characters; the apiserver
    // appends 5 random characters, and pod names must stay within 253.
    if prefix.len() > 248 {
        owner.chars().take(247).collect::<String>() + "-"
    } else {
        prefix
    }
}

#[cfg(test)]
mod tests;
