//! The Job controller's decisions, IO-free: one call to [`sync`] is one pass of Kubernetes'
//! `syncJob` over the cached Job and its pods.
//!
//! * Pods carry the `batch.kubernetes.io/job-tracking` finalizer; a finished pod is first recorded in
//!   `status.uncountedTerminatedPods`, then its finalizer is removed, then it is folded into
//!   `succeeded`/`failed` — so a pod is counted exactly once even if the controller restarts or the
//!   pod is deleted right away.
//! * Failures: `backoffLimit` (with restartPolicy OnFailure, container restarts count too),
//!   `activeDeadlineSeconds`, `podFailurePolicy` (FailJob / Ignore / Count); new pods wait an
//!   exponential backoff (10 s · 2^(n−1), at most 6 min) after consecutive failures.
//! * Completion: `completions` successes (NonIndexed), every index succeeded (Indexed), or — with no
//!   `completions` — one success and no active pod. As Kubernetes ≥ 1.31 does, the interim
//!   `FailureTarget`/`SuccessCriteriaMet` condition is set first, remaining pods are terminated, and
//!   `Failed`/`Complete` follows once none is left.
//!
//! Besides [`sync`] here: what is read from pods in `pods`, the failure policy and backoff in
//! `failure`, the pods a Job creates in `template`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::util::owner;
use crate::util::pod as podutil;

pub use self::failure::backoff_delay;
use self::failure::*;
pub use self::pods::*;
pub use self::template::*;

pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
pub const COMPLETION_INDEX_ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
/// Kubernetes' `DefaultJobPodFailureBackOff` and `MaxJobPodFailureBackOff`.
pub const BACKOFF_BASE: Duration = Duration::from_secs(10);
pub const BACKOFF_MAX: Duration = Duration::from_secs(360);
/// At most this many pod creations or deletions per pass.
pub const BURST: usize = 500;

/// One write the shell performs, in order; it stops at the first failure.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    UpdateStatus(JobStatus),
    /// Remove the tracking finalizer from these pods (by name).
    RemoveFinalizers(Vec<String>),
    CreatePods(Vec<Pod>),
    /// Delete these active pods (by name).
    DeletePods(Vec<String>),
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

fn spec_i32(
    job: &Job,
    f: impl Fn(&k8s_openapi::api::batch::v1::JobSpec) -> Option<i32>,
) -> Option<i32> {
    job.spec.as_ref().and_then(f)
}

pub fn parallelism(job: &Job) -> i32 {
    spec_i32(job, |s| s.parallelism).unwrap_or(1).max(0)
}
pub fn completions(job: &Job) -> Option<i32> {
    spec_i32(job, |s| s.completions)
}
pub fn backoff_limit(job: &Job) -> i32 {
    spec_i32(job, |s| s.backoff_limit).unwrap_or(6)
}
pub fn is_indexed(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.completion_mode.as_deref()) == Some("Indexed")
}
pub fn is_suspended(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.suspend).unwrap_or(false)
}
fn restart_policy(job: &Job) -> &str {
    job.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Never")
}

fn cond<'a>(status: &'a JobStatus, type_: &str) -> Option<&'a JobCondition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// Whether the Job has its final Complete or Failed condition.
pub fn is_finished(job: &Job) -> Option<(&'static str, Timestamp)> {
    let status = job.status.as_ref()?;
    for t in ["Complete", "Failed"] {
        if let Some(c) = cond(status, t) {
            let at = c
                .last_transition_time
                .as_ref()
                .map(|t| t.0)
                .unwrap_or(Timestamp::UNIX_EPOCH);
            return Some((
                if t == "Complete" {
                    "Complete"
                } else {
                    "Failed"
                },
                at,
            ));
        }
    }
    None
}

fn set_cond(
    status: &mut JobStatus,
    type_: &str,
    value: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> bool {
    let conds = status.conditions.get_or_insert_with(Vec::new);
    if let Some(c) = conds.iter_mut().find(|c| c.type_ == type_) {
        if c.status == value
            && c.reason.as_deref() == Some(reason)
            && c.message.as_deref() == Some(message)
        {
            return false;
        }
        if c.status != value {
            c.last_transition_time = Some(Time(now));
        }
        c.status = value.into();
        c.reason = Some(reason.into());
        c.message = Some(message.into());
        c.last_probe_time = Some(Time(now));
        return true;
    }
    conds.push(JobCondition {
        type_: type_.into(),
        status: value.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    });
    true
}

/// Run one pass. `pods` are the pods the Job controls (already claimed).
pub fn sync(job: &Job, pods: &[&Pod], now: Timestamp) -> Plan {
    let mut steps = Vec::new();
    let original = job.status.clone().unwrap_or_default();
    let mut status = original.clone();
    let indexed = is_indexed(job);
    let total = completions(job);

    // 1. Finished pods: record as uncounted, drop finalizers, fold into the counts.
    let mut uncounted = status.uncounted_terminated_pods.clone().unwrap_or_default();
    let mut un_s: BTreeSet<String> = uncounted
        .succeeded
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let mut un_f: BTreeSet<String> = uncounted
        .failed
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let mut fail_job: Option<String> = None;
    let mut newly_recorded = false;
    let mut succeeded_indexes = match (indexed, total) {
        (true, Some(c)) => parse_indexes(status.completed_indexes.as_deref().unwrap_or(""), c),
        _ => BTreeSet::new(),
    };
    let mut finalizers_to_remove = Vec::new();
    for p in pods.iter().filter(|p| has_finalizer(p)) {
        let id = uid(p);
        if !is_succeeded(p) && !is_failed(p) {
            continue;
        }
        if !un_s.contains(&id) && !un_f.contains(&id) {
            if is_succeeded(p) {
                un_s.insert(id.clone());
            } else {
                match match_failure_policy(job, p) {
                    FailureAction::FailJob(msg) => {
                        fail_job.get_or_insert(msg);
                        un_f.insert(id.clone());
                    }
                    // Not counted towards backoffLimit: recorded nowhere, only the finalizer goes.
                    FailureAction::Ignore => {}
                    FailureAction::Count => {
                        un_f.insert(id.clone());
                    }
                }
            }
            newly_recorded = true;
        }
        finalizers_to_remove.push(p.metadata.name.clone().unwrap_or_default());
    }
    if newly_recorded {
        uncounted.succeeded = Some(un_s.iter().cloned().collect());
        uncounted.failed = Some(un_f.iter().cloned().collect());
        status.uncounted_terminated_pods = Some(uncounted);
        steps.push(Step::UpdateStatus(status.clone()));
    }
    if !finalizers_to_remove.is_empty() {
        steps.push(Step::RemoveFinalizers(finalizers_to_remove));
    }
    // Fold every uncounted pod (its finalizer is gone now, or it is gone itself).
    if !un_s.is_empty() || !un_f.is_empty() {
        for p in pods.iter().filter(|p| un_s.contains(&uid(p))) {
            if let (true, Some(i), Some(c)) = (indexed, completion_index(p), total)
                && i >= 0
                && i < c
            {
                succeeded_indexes.insert(i);
            }
        }
        if indexed {
            status.succeeded = Some(succeeded_indexes.len() as i32);
        } else {
            status.succeeded = Some(status.succeeded.unwrap_or(0) + un_s.len() as i32);
        }
        status.failed = Some(status.failed.unwrap_or(0) + un_f.len() as i32);
        status.uncounted_terminated_pods = Some(UncountedTerminatedPods::default());
    }
    if indexed {
        status.completed_indexes = Some(format_indexes(&succeeded_indexes));
    }

    let active: Vec<&Pod> = pods
        .iter()
        .copied()
        .filter(|p| podutil::is_active(p))
        .collect();
    let terminating = pods
        .iter()
        .filter(|p| podutil::is_terminating(p) && !is_succeeded(p) && podutil::phase(p) != "Failed")
        .count() as i32;
    let succeeded = status.succeeded.unwrap_or(0);
    let failed = status.failed.unwrap_or(0);

    let mut requeue: Option<Duration> = None;
    let want_requeue = |d: Duration, r: &mut Option<Duration>| {
        *r = Some(r.map_or(d, |x| x.min(d)));
    };

    // A finished Job only cleans up.
    if is_finished(job).is_some() {
        return finish(job, steps, status, &original, &active, 0, requeue);
    }
    // 2. Suspension.
    let suspended = is_suspended(job);
    if suspended {
        if set_cond(
            &mut status,
            "Suspended",
            "True",
            "JobSuspended",
            "Job suspended",
            now,
        ) {
            steps.push(Step::Event {
                type_: "Normal",
                reason: "Suspended",
                message: "Job suspended".into(),
            });
        }
        status.start_time = None;
        let del: Vec<String> = active
            .iter()
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect();
        if !del.is_empty() {
            steps.push(Step::DeletePods(del));
        }
        return finish(job, steps, status, &original, &[], terminating, requeue);
    }
    if status.conditions.as_ref().is_some_and(|c| {
        c.iter()
            .any(|c| c.type_ == "Suspended" && c.status == "True")
    }) {
        set_cond(
            &mut status,
            "Suspended",
            "False",
            "JobResumed",
            "Job resumed",
            now,
        );
        steps.push(Step::Event {
            type_: "Normal",
            reason: "Resumed",
            message: "Job resumed".into(),
        });
        status.start_time = Some(Time(now));
    }
    if status.start_time.is_none() {
        status.start_time = Some(Time(now));
    }
    let start = status.start_time.as_ref().map(|t| t.0).unwrap_or(now);

    // 3. Failure and success criteria.
    let interim_failure = cond(&status, "FailureTarget").map(|c| {
        (
            c.reason.clone().unwrap_or_default(),
            c.message.clone().unwrap_or_default(),
        )
    });
    let interim_success = cond(&status, "SuccessCriteriaMet").is_some();
    let mut failure = interim_failure;
    if failure.is_none() && !interim_success {
        let restarts: i32 = if restart_policy(job) == "OnFailure" {
            active
                .iter()
                .map(|p| podutil::max_container_restarts(p))
                .sum()
        } else {
            0
        };
        if let Some(msg) = fail_job {
            failure = Some(("PodFailurePolicy".into(), msg));
        } else if failed + restarts > backoff_limit(job) {
            failure = Some((
                "BackoffLimitExceeded".into(),
                "Job has reached the specified backoff limit".into(),
            ));
        } else if let Some(deadline) = job.spec.as_ref().and_then(|s| s.active_deadline_seconds) {
            let at = start + SignedDuration::from_secs(deadline);
            if at <= now {
                failure = Some((
                    "DeadlineExceeded".into(),
                    "Job was active longer than specified deadline".into(),
                ));
            } else {
                want_requeue(at.duration_since(now).unsigned_abs(), &mut requeue);
            }
        }
    }
    let complete = interim_success
        || match (indexed, total) {
            (true, Some(c)) => succeeded >= c,
            (false, Some(c)) => succeeded >= c,
            (_, None) => succeeded > 0 && active.is_empty(),
        };
    let all_del = || {
        active
            .iter()
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect::<Vec<_>>()
    };
    if let Some((reason, message)) = failure {
        set_cond(&mut status, "FailureTarget", "True", &reason, &message, now);
        if !active.is_empty() {
            steps.push(Step::DeletePods(all_del()));
        } else if terminating == 0 {
            set_cond(&mut status, "Failed", "True", &reason, &message, now);
            steps.push(Step::Event {
                type_: "Warning",
                reason: leak(&reason),
                message,
            });
        }
        return finish(job, steps, status, &original, &[], terminating, None);
    }
    if complete {
        let msg = "Reached expected number of succeeded pods";
        set_cond(
            &mut status,
            "SuccessCriteriaMet",
            "True",
            "CompletionsReached",
            msg,
            now,
        );
        if !active.is_empty() {
            steps.push(Step::DeletePods(all_del()));
        } else if terminating == 0 {
            set_cond(
                &mut status,
                "Complete",
                "True",
                "CompletionsReached",
                msg,
                now,
            );
            status.completion_time = Some(Time(now));
            steps.push(Step::Event {
                type_: "Normal",
                reason: "Completed",
                message: "Job completed".into(),
            });
        }
        return finish(job, steps, status, &original, &[], terminating, None);
    }

    // 4. Manage active pods.
    let par = parallelism(job);
    let mut create = Vec::new();
    let mut delete = Vec::new();
    if indexed {
        let c = total.unwrap_or(0);
        let mut seen = BTreeSet::new();
        for p in &active {
            match completion_index(p) {
                Some(i) if i >= 0 && i < c && !succeeded_indexes.contains(&i) && seen.insert(i) => {
                }
                _ => delete.push(p.metadata.name.clone().unwrap_or_default()),
            }
        }
        let live = seen.len() as i32;
        let room = (par - live).max(0) as usize;
        for i in (0..c)
            .filter(|i| !seen.contains(i) && !succeeded_indexes.contains(i))
            .take(room.min(BURST))
        {
            create.push(i);
        }
    } else {
        let want = match total {
            Some(c) => par.min(c - succeeded).max(0),
            // After one success, whatever runs may finish; nothing new starts.
            None if succeeded > 0 => active.len() as i32,
            None => par,
        } as usize;
        if active.len() > want {
            let surplus = active.len() - want;
            let chosen = crate::controllers::replicaset::core::pods_to_delete(
                &active,
                &active,
                surplus.min(BURST),
                now,
            );
            delete.extend(
                chosen
                    .iter()
                    .map(|p| p.metadata.name.clone().unwrap_or_default()),
            );
        } else {
            create.extend((0..(want - active.len()).min(BURST)).map(|_| -1));
        }
    }
    if !create.is_empty() {
        // Exponential backoff after consecutive failures (failures since the last success).
        let last_success = pods
            .iter()
            .filter(|p| is_succeeded(p))
            .filter_map(|p| finished_at(p))
            .max();
        let recent_failures: Vec<Timestamp> = pods
            .iter()
            .filter(|p| is_failed(p) && !podutil::is_terminating(p))
            .filter_map(|p| finished_at(p))
            .filter(|t| last_success.is_none_or(|s| *t > s))
            .collect();
        if let Some(last) = recent_failures.iter().max() {
            let delay = backoff_delay(recent_failures.len() as u32);
            let at = *last + SignedDuration::try_from(delay).unwrap_or(SignedDuration::ZERO);
            if at > now {
                want_requeue(at.duration_since(now).unsigned_abs(), &mut requeue);
                create.clear();
            }
        }
    }
    if !delete.is_empty() {
        steps.push(Step::DeletePods(delete.clone()));
    }
    if !create.is_empty() {
        steps.push(Step::CreatePods(
            create
                .iter()
                .map(|i| pod_for(job, (*i >= 0).then_some(*i)))
                .collect(),
        ));
    }
    let active_after = active.len() as i32 - delete.len() as i32 + create.len() as i32;
    let mut p = finish(job, steps, status, &original, &active, terminating, requeue);
    // The status written counts pods about to be created as active, as Kubernetes does.
    if let Some(Step::UpdateStatus(st)) = p
        .steps
        .iter_mut()
        .rev()
        .find(|s| matches!(s, Step::UpdateStatus(_)))
    {
        st.active = Some(active_after.max(0));
    }
    p
}

fn leak(reason: &str) -> &'static str {
    match reason {
        "BackoffLimitExceeded" => "BackoffLimitExceeded",
        "DeadlineExceeded" => "DeadlineExceeded",
        "PodFailurePolicy" => "PodFailurePolicy",
        _ => "JobFailed",
    }
}

fn finish(
    _job: &Job,
    mut steps: Vec<Step>,
    mut status: JobStatus,
    original: &JobStatus,
    active: &[&Pod],
    terminating: i32,
    requeue_after: Option<Duration>,
) -> Plan {
    status.active = Some(active.len() as i32);
    status.ready = Some(active.iter().filter(|p| podutil::is_ready(p)).count() as i32);
    status.terminating = Some(terminating);
    if status.succeeded.is_none() {
        status.succeeded = Some(0);
    }
    if status.failed.is_none() {
        status.failed = Some(0);
    }
    if &status != original {
        // Only the last status write matters; earlier ones (uncounted pods) must stay before the
        // finalizer removal, so only a trailing duplicate is dropped.
        steps.push(Step::UpdateStatus(status));
    }
    Plan {
        steps,
        requeue_after,
    }
}

/// ttlSecondsAfterFinished: `Some(Duration::ZERO)` when the finished Job is due for deletion now,
/// `Some(d)` when it will be in `d`, `None` when it has no TTL or is not finished.
pub fn ttl_remaining(job: &Job, now: Timestamp) -> Option<Duration> {
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    let (_, at) = is_finished(job)?;
    let finished = job
        .status
        .as_ref()
        .and_then(|s| s.completion_time.as_ref())
        .map(|t| t.0)
        .unwrap_or(at);
    let due = finished + SignedDuration::from_secs(i64::from(ttl));
    if due <= now {
        Some(Duration::ZERO)
    } else {
        Some(due.duration_since(now).unsigned_abs())
    }
}

mod failure;
mod pods;
mod template;
#[cfg(test)]
mod tests;
