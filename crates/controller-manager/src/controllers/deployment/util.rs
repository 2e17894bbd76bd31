//! Deployment helpers, as Kubernetes' `pkg/controller/deployment/util`: defaults, maxSurge /
//! maxUnavailable resolution, revision and replica annotations, conditions, ReplicaSet orderings.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY_ANNOTATION: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/max-replicas";
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
/// Kubernetes caps the revision-history annotation at this many characters.
pub const REVISION_HISTORY_LIMIT_CHARS: usize = 2000;

// Condition reasons, exactly as Kubernetes writes them.
pub const NEW_RS_AVAILABLE_REASON: &str = "NewReplicaSetAvailable";
pub const REPLICA_SET_UPDATED_REASON: &str = "ReplicaSetUpdated";
pub const TIMED_OUT_REASON: &str = "ProgressDeadlineExceeded";
pub const FOUND_NEW_RS_REASON: &str = "FoundNewReplicaSet";
pub const NEW_RS_REASON: &str = "NewReplicaSetCreated";
pub const FAILED_RS_CREATE_REASON: &str = "ReplicaSetCreateError";
pub const PAUSED_REASON: &str = "DeploymentPaused";
pub const RESUMED_REASON: &str = "DeploymentResumed";
pub const MIN_AVAILABLE_REASON: &str = "MinimumReplicasAvailable";
pub const MIN_UNAVAILABLE_REASON: &str = "MinimumReplicasUnavailable";

/// Annotations that are never copied from a Deployment to its ReplicaSets.
const SKIP_COPY_ANNOTATIONS: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
    DESIRED_REPLICAS_ANNOTATION,
    MAX_REPLICAS_ANNOTATION,
    "deprecated.deployment.rollback.to",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeploymentError {
    #[error("invalid value {value:?} for {field}: {reason}")]
    InvalidIntOrPercent {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
}

/// `spec.replicas` (default 1).
pub fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1).max(0)
}

pub fn min_ready_seconds(d: &Deployment) -> i32 {
    d.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

pub fn paused(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false)
}

/// `spec.revisionHistoryLimit` (default 10).
pub fn revision_history_limit(d: &Deployment) -> i32 {
    d.spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(10)
}

/// `spec.progressDeadlineSeconds` (default 600; MaxInt32 means "no deadline").
pub fn progress_deadline(d: &Deployment) -> Option<i32> {
    match d.spec.as_ref().and_then(|s| s.progress_deadline_seconds) {
        None => Some(600),
        Some(i32::MAX) => None,
        Some(s) => Some(s),
    }
}

/// Whether the strategy is Recreate (anything else, including none, is RollingUpdate).
pub fn is_recreate(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        == Some("Recreate")
}

pub fn template(d: &Deployment) -> PodTemplateSpec {
    d.spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default()
}

/// Kubernetes' `GetScaledValueFromIntOrPercent`.
pub fn scaled_value(
    v: &IntOrString,
    total: i32,
    round_up: bool,
    field: &'static str,
) -> Result<i32, DeploymentError> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let bad = |reason| DeploymentError::InvalidIntOrPercent {
                field,
                value: s.clone(),
                reason,
            };
            let pct = s
                .strip_suffix('%')
                .ok_or_else(|| bad("must be an integer or a percentage"))?;
            let pct: i64 = pct.parse().map_err(|_| bad("invalid percentage"))?;
            let num = pct * i64::from(total);
            let v = if round_up {
                (num + 99).div_euclid(100)
            } else {
                num.div_euclid(100)
            };
            Ok(v as i32)
        }
    }
}

/// Kubernetes' `ResolveFenceposts`: (maxSurge rounded up, maxUnavailable rounded down), never both 0.
pub fn resolve_fenceposts(
    max_surge: &IntOrString,
    max_unavailable: &IntOrString,
    desired: i32,
) -> Result<(i32, i32), DeploymentError> {
    let surge = scaled_value(
        max_surge,
        desired,
        true,
        "spec.strategy.rollingUpdate.maxSurge",
    )?;
    let unavailable = scaled_value(
        max_unavailable,
        desired,
        false,
        "spec.strategy.rollingUpdate.maxUnavailable",
    )?;
    if surge == 0 && unavailable == 0 {
        // Validation prevents both being zero; a rollout must be able to make progress.
        return Ok((0, 1));
    }
    Ok((surge, unavailable))
}

fn rolling_params(d: &Deployment) -> (IntOrString, IntOrString) {
    let default = || IntOrString::String("25%".into());
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    (
        ru.and_then(|r| r.max_surge.clone()).unwrap_or_else(default),
        ru.and_then(|r| r.max_unavailable.clone())
            .unwrap_or_else(default),
    )
}

/// Kubernetes' `MaxSurge` (0 for Recreate).
pub fn max_surge(d: &Deployment) -> Result<i32, DeploymentError> {
    if is_recreate(d) {
        return Ok(0);
    }
    let (s, u) = rolling_params(d);
    Ok(resolve_fenceposts(&s, &u, replicas(d))?.0)
}

/// Kubernetes' `MaxUnavailable` (0 for Recreate or 0 replicas, at most replicas).
pub fn max_unavailable(d: &Deployment) -> Result<i32, DeploymentError> {
    if is_recreate(d) || replicas(d) == 0 {
        return Ok(0);
    }
    let (s, u) = rolling_params(d);
    Ok(resolve_fenceposts(&s, &u, replicas(d))?.1.min(replicas(d)))
}

// ---- ReplicaSet accessors ----

pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn set_rs_replicas(rs: &mut ReplicaSet, n: i32) {
    if let Some(spec) = rs.spec.as_mut() {
        spec.replicas = Some(n);
    }
}

pub fn rs_status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map(|s| s.replicas).unwrap_or(0)
}

pub fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

pub fn rs_ready(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

pub fn rs_name(rs: &ReplicaSet) -> &str {
    rs.metadata.name.as_deref().unwrap_or("")
}

fn annotation<'a>(rs: &'a ReplicaSet, key: &str) -> Option<&'a str> {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// The RS's revision (0 when absent or malformed).
pub fn revision(rs: &ReplicaSet) -> i64 {
    annotation(rs, REVISION_ANNOTATION)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn desired_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    annotation(rs, DESIRED_REPLICAS_ANNOTATION).and_then(|v| v.parse().ok())
}

pub fn max_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    annotation(rs, MAX_REPLICAS_ANNOTATION).and_then(|v| v.parse().ok())
}

/// Kubernetes' `SetReplicasAnnotations`; returns whether anything changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let ann = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (k, v) in [
        (DESIRED_REPLICAS_ANNOTATION, desired),
        (MAX_REPLICAS_ANNOTATION, max),
    ] {
        let v = v.to_string();
        if ann.get(k) != Some(&v) {
            ann.insert(k.to_string(), v);
            changed = true;
        }
    }
    changed
}

pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    desired_replicas_annotation(rs) != Some(desired) || max_replicas_annotation(rs) != Some(max)
}

/// Kubernetes' `SetNewReplicaSetAnnotations`: copy the Deployment's annotations, raise the revision
/// (keeping the previous one in revision-history), and for a new RS set the replica annotations.
pub fn set_new_rs_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
    max_surge: i32,
) -> bool {
    let mut changed = copy_deployment_annotations(d, rs);
    let old_revision = annotation(rs, REVISION_ANNOTATION).map(str::to_string);
    let old_int = old_revision
        .as_deref()
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0);
    let ann = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    if old_int < new_revision {
        ann.insert(REVISION_ANNOTATION.into(), new_revision.to_string());
        changed = true;
    }
    if let Some(old) = old_revision.filter(|_| old_int < new_revision) {
        let history = ann
            .get(REVISION_HISTORY_ANNOTATION)
            .cloned()
            .unwrap_or_default();
        if history.is_empty() {
            ann.insert(REVISION_HISTORY_ANNOTATION.into(), old);
        } else {
            let mut revs: Vec<&str> = history.split(',').collect();
            let mut total = history.len() + old.len() + 1;
            let mut start = 0;
            while total > REVISION_HISTORY_LIMIT_CHARS && start < revs.len() {
                total -= revs[start].len() + 1;
                start += 1;
            }
            if total <= REVISION_HISTORY_LIMIT_CHARS {
                revs = revs.split_off(start);
                revs.push(&old);
                let joined = revs.join(",");
                ann.insert(REVISION_HISTORY_ANNOTATION.into(), joined);
            }
        }
    }
    if !exists {
        let r = replicas(d);
        changed |= set_replicas_annotations(rs, r, r + max_surge);
    }
    changed
}

fn copy_deployment_annotations(d: &Deployment, rs: &mut ReplicaSet) -> bool {
    let Some(src) = d.metadata.annotations.as_ref() else {
        return false;
    };
    let dst = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (k, v) in src {
        if SKIP_COPY_ANNOTATIONS.contains(&k.as_str()) || dst.get(k) == Some(v) {
            continue;
        }
        dst.insert(k.clone(), v.clone());
        changed = true;
    }
    changed
}

/// Templates equal apart from the pod-template-hash label (Kubernetes' `EqualIgnoreHash`),
/// compared semantically ([`crate::util::semantic`]).
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    fn strip(t: &PodTemplateSpec) -> serde_json::Value {
        let mut t = t.clone();
        if let Some(m) = t.metadata.as_mut()
            && let Some(l) = m.labels.as_mut()
        {
            l.remove(POD_TEMPLATE_HASH_LABEL);
            if l.is_empty() {
                m.labels = None;
            }
        }
        crate::util::semantic::normalize(
            &serde_json::to_value(&t).unwrap_or(serde_json::Value::Null),
        )
    }
    strip(a) == strip(b)
}

fn created(rs: &ReplicaSet) -> Option<Timestamp> {
    rs.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// `ReplicaSetsByCreationTimestamp`: older first, then by name.
pub fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    created(a)
        .cmp(&created(b))
        .then_with(|| rs_name(a).cmp(rs_name(b)))
}

/// `ReplicaSetsBySizeNewer`: larger first; equal sizes newer first.
pub fn by_size_newer(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    rs_replicas(b)
        .cmp(&rs_replicas(a))
        .then_with(|| by_creation(b, a))
}

/// `ReplicaSetsBySizeOlder`: larger first; equal sizes older first.
pub fn by_size_older(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    rs_replicas(b)
        .cmp(&rs_replicas(a))
        .then_with(|| by_creation(a, b))
}

/// `ReplicaSetsByRevision`: lower revision first, then older.
pub fn by_revision(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    revision(a)
        .cmp(&revision(b))
        .then_with(|| by_creation(a, b))
}

// ---- conditions ----

pub fn condition<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Kubernetes' `SetDeploymentCondition`: no-op when status and reason are unchanged; keeps the
/// transition time when only the reason changes.
pub fn set_condition(status: &mut DeploymentStatus, mut cond: DeploymentCondition) {
    if let Some(cur) = condition(status, &cond.type_) {
        if cur.status == cond.status && cur.reason == cond.reason {
            return;
        }
        if cur.status == cond.status {
            cond.last_transition_time = cur.last_transition_time.clone();
        }
    }
    remove_condition(status, &cond.type_.clone());
    status.conditions.get_or_insert_with(Vec::new).push(cond);
}

pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(c) = status.conditions.as_mut() {
        c.retain(|c| c.type_ != type_);
        if c.is_empty() {
            status.conditions = None;
        }
    }
}

/// Kubernetes' `DeploymentComplete`.
pub fn deployment_complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let r = replicas(d);
    status.updated_replicas.unwrap_or(0) == r
        && status.replicas.unwrap_or(0) == r
        && status.available_replicas.unwrap_or(0) == r
        && status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Kubernetes' `DeploymentProgressing`: more updated, fewer old, more ready or more available pods.
pub fn deployment_progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let g = |v: Option<i32>| v.unwrap_or(0);
    let old_old = g(old.replicas) - g(old.updated_replicas);
    let new_old = g(new.replicas) - g(new.updated_replicas);
    g(new.updated_replicas) > g(old.updated_replicas)
        || new_old < old_old
        || g(new.ready_replicas) > g(old.ready_replicas)
        || g(new.available_replicas) > g(old.available_replicas)
}

/// Kubernetes' `DeploymentTimedOut`.
pub fn deployment_timed_out(d: &Deployment, new: &DeploymentStatus, now: Timestamp) -> bool {
    let Some(deadline) = progress_deadline(d) else {
        return false;
    };
    let Some(cond) = condition(new, "Progressing") else {
        return false;
    };
    match cond.reason.as_deref() {
        Some(NEW_RS_AVAILABLE_REASON) => false,
        Some(TIMED_OUT_REASON) => true,
        _ => cond.last_update_time.as_ref().is_some_and(|from| {
            from.0 + jiff::SignedDuration::from_secs(i64::from(deadline)) < now
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pct(s: &str) -> IntOrString {
        IntOrString::String(s.into())
    }

    #[test]
    fn fenceposts_round_surge_up_and_unavailable_down() {
        let table = [
            (pct("25%"), pct("25%"), 10, (3, 2)),
            (pct("25%"), pct("25%"), 1, (1, 0)),
            (pct("25%"), pct("25%"), 4, (1, 1)),
            (pct("0%"), pct("0%"), 10, (0, 1)),
            (IntOrString::Int(0), IntOrString::Int(0), 3, (0, 1)),
            (IntOrString::Int(2), pct("50%"), 5, (2, 2)),
            (pct("100%"), pct("0%"), 3, (3, 0)),
            (pct("30%"), pct("30%"), 7, (3, 2)),
        ];
        for (s, u, n, want) in table {
            assert_eq!(resolve_fenceposts(&s, &u, n), Ok(want), "{s:?} {u:?} {n}");
        }
        assert!(resolve_fenceposts(&pct("x%"), &pct("1%"), 3).is_err());
        assert!(resolve_fenceposts(&pct("10"), &pct("1%"), 3).is_err());
    }

    #[test]
    fn revision_history_keeps_previous_revisions() {
        let d = Deployment::default();
        let mut rs = ReplicaSet::default();
        assert!(set_new_rs_annotations(&d, &mut rs, 1, false, 0));
        assert_eq!(revision(&rs), 1);
        set_new_rs_annotations(&d, &mut rs, 3, true, 0);
        set_new_rs_annotations(&d, &mut rs, 5, true, 0);
        let ann = rs.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(ann.get(REVISION_ANNOTATION).map(String::as_str), Some("5"));
        assert_eq!(
            ann.get(REVISION_HISTORY_ANNOTATION).map(String::as_str),
            Some("1,3")
        );
        // Not raised again for an equal revision.
        assert!(!set_new_rs_annotations(&d, &mut rs, 5, true, 0));
    }
}
