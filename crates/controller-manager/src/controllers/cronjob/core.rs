//! The CronJob controller's decisions, IO-free: one call to [`sync`] is one pass of Kubernetes'
//! `syncCronJob` (controller v2) over the cached CronJob and the Jobs it owns, at an injected `now`.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::schedule::{Schedule, ScheduleError};
use crate::controllers::job::core::is_finished;
use crate::util::owner;

pub const SCHEDULED_TIMESTAMP_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Kubernetes requeues 100 ms after the next scheduled time, so the pass runs once it has passed.
const NEXT_SCHEDULE_DELTA: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Delete this Job (background propagation: its pods follow).
    DeleteJob(String),
    CreateJob(Box<Job>),
    UpdateStatus(CronJobStatus),
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

fn job_ref(j: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: j.metadata.name.clone(),
        namespace: j.metadata.namespace.clone(),
        uid: j.metadata.uid.clone(),
        resource_version: j.metadata.resource_version.clone(),
        ..Default::default()
    }
}

/// Kubernetes' `getJobName`: `<cronjob>-<scheduled time in minutes since the epoch>`, so that a
/// restarted controller recreating "the same" run hits AlreadyExists instead of duplicating it.
pub fn job_name(cj: &CronJob, scheduled: Timestamp) -> String {
    format!(
        "{}-{}",
        cj.metadata.name.as_deref().unwrap_or(""),
        scheduled.as_second().div_euclid(60)
    )
}

/// The Job created for a scheduled time: the jobTemplate, the scheduled-timestamp annotation, our
/// controller reference.
pub fn job_for(cj: &CronJob, scheduled: Timestamp, tz_name: Option<&str>) -> Job {
    let tpl = cj
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let meta = tpl.metadata.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    let stamp = match tz_name.and_then(|n| jiff::tz::TimeZone::get(n).ok()) {
        Some(tz) => scheduled
            .to_zoned(tz)
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string(),
        None => scheduled.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    };
    annotations.insert(SCHEDULED_TIMESTAMP_ANNOTATION.into(), stamp);
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(cj, scheduled)),
            namespace: cj.metadata.namespace.clone(),
            labels: meta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![owner::controller_reference(
                "batch/v1",
                "CronJob",
                &cj.metadata,
            )]),
            ..Default::default()
        },
        spec: tpl.spec,
        status: None,
    }
}

/// Run one pass. `jobs` are the Jobs the CronJob controls.
pub fn sync(cj: &CronJob, jobs: &[&Job], now: Timestamp) -> Plan {
    let mut steps = Vec::new();
    let original = cj.status.clone().unwrap_or_default();
    let mut status = original.clone();
    let spec = cj.spec.clone().unwrap_or_default();
    let mut active: Vec<ObjectReference> = status.active.clone().unwrap_or_default();
    let event = |steps: &mut Vec<Step>, type_, reason, message: String| {
        steps.push(Step::Event {
            type_,
            reason,
            message,
        })
    };

    // 1. Reconcile the active list with the Jobs that exist.
    for j in jobs {
        let uid = j.metadata.uid.clone();
        let name = j.metadata.name.clone().unwrap_or_default();
        let listed = active.iter().any(|r| r.uid == uid);
        match is_finished(j) {
            Some((kind, _)) if listed => {
                active.retain(|r| r.uid != uid);
                event(
                    &mut steps,
                    "Normal",
                    "SawCompletedJob",
                    format!("Saw completed job: {name}, status: {kind}"),
                );
                if kind == "Complete" {
                    let done = j.status.as_ref().and_then(|s| s.completion_time.clone());
                    if done.is_some()
                        && (status.last_successful_time.is_none()
                            || status.last_successful_time < done)
                    {
                        status.last_successful_time = done;
                    }
                }
            }
            None if !listed => {
                // A Job we own that is not listed: the status write that listed it was lost (e.g. a
                // restart between the create and the status update). Kubernetes v2 only warns;
                // listing it keeps concurrencyPolicy honest.
                active.push(job_ref(j));
            }
            _ => {}
        }
    }
    let before = active.len();
    active.retain(|r| jobs.iter().any(|j| j.metadata.uid == r.uid));
    if active.len() != before {
        event(
            &mut steps,
            "Normal",
            "MissingJob",
            "Active job went missing".into(),
        );
    }
    status.active = (!active.is_empty()).then(|| active.clone());

    // 2. History limits.
    cleanup_history(&spec, jobs, &mut steps);

    if cj.metadata.deletion_timestamp.is_some() {
        return finish(steps, status, &original, None);
    }
    let schedule = match Schedule::parse(&spec.schedule, spec.time_zone.as_deref()) {
        Ok(s) => s,
        Err(e @ ScheduleError::UnknownTimeZone(_)) => {
            event(&mut steps, "Warning", "UnknownTimeZone", e.to_string());
            return finish(steps, status, &original, None);
        }
        Err(e) => {
            event(&mut steps, "Warning", "UnparseableSchedule", e.to_string());
            return finish(steps, status, &original, None);
        }
    };
    if spec.suspend.unwrap_or(false) {
        return finish(steps, status, &original, None);
    }
    let next_requeue = |from: Timestamp| {
        schedule
            .next_after(from)
            .map(|n| n.duration_since(now).unsigned_abs() + NEXT_SCHEDULE_DELTA)
    };

    // 3. The most recent unmet scheduled time.
    let created = cj
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(now);
    let mut earliest = status
        .last_schedule_time
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(created);
    if let Some(sds) = spec.starting_deadline_seconds {
        earliest = earliest.max(now - SignedDuration::from_secs(sds));
    }
    let (scheduled, missed) = schedule.most_recent(earliest, now);
    if missed > 100 {
        event(&mut steps, "Warning", "TooManyMissedTimes",
            "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew".into());
    }
    let Some(scheduled) = scheduled else {
        return finish(steps, status, &original, next_requeue(now));
    };
    if let Some(sds) = spec.starting_deadline_seconds
        && scheduled + SignedDuration::from_secs(sds) < now
    {
        event(
            &mut steps,
            "Warning",
            "MissSchedule",
            format!("Missed scheduled time to start a job: {scheduled}"),
        );
        return finish(steps, status, &original, next_requeue(now));
    }
    let name = job_name(cj, scheduled);
    let already = active.iter().any(|r| r.name.as_deref() == Some(&name))
        || jobs
            .iter()
            .any(|j| j.metadata.name.as_deref() == Some(&name))
        || status.last_schedule_time.as_ref().map(|t| t.0) == Some(scheduled);
    if already {
        return finish(steps, status, &original, next_requeue(now));
    }
    match spec.concurrency_policy.as_deref().unwrap_or("Allow") {
        "Forbid" if !active.is_empty() => {
            event(&mut steps, "Normal", "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid".into());
            return finish(steps, status, &original, next_requeue(now));
        }
        "Replace" => {
            for r in std::mem::take(&mut active) {
                let n = r.name.clone().unwrap_or_default();
                steps.push(Step::DeleteJob(n.clone()));
                event(
                    &mut steps,
                    "Normal",
                    "SuccessfulDelete",
                    format!("Deleted job {n}"),
                );
            }
        }
        _ => {}
    }
    let job = job_for(cj, scheduled, spec.time_zone.as_deref());
    steps.push(Step::CreateJob(Box::new(job.clone())));
    event(
        &mut steps,
        "Normal",
        "SuccessfulCreate",
        format!("Created job {name}"),
    );
    active.push(job_ref(&job));
    status.active = Some(active);
    status.last_schedule_time = Some(Time(scheduled));
    finish(steps, status, &original, next_requeue(now))
}

/// Kubernetes' `cleanupFinishedJobs`: keep the newest successfulJobsHistoryLimit (default 3)
/// completed and failedJobsHistoryLimit (default 1) failed Jobs.
fn cleanup_history(
    spec: &k8s_openapi::api::batch::v1::CronJobSpec,
    jobs: &[&Job],
    steps: &mut Vec<Step>,
) {
    let start = |j: &Job| {
        j.status
            .as_ref()
            .and_then(|s| s.start_time.as_ref().map(|t| t.0))
            .or_else(|| j.metadata.creation_timestamp.as_ref().map(|t| t.0))
    };
    for (kind, limit) in [
        ("Complete", spec.successful_jobs_history_limit.unwrap_or(3)),
        ("Failed", spec.failed_jobs_history_limit.unwrap_or(1)),
    ] {
        let mut done: Vec<&Job> = jobs
            .iter()
            .copied()
            .filter(|j| j.metadata.deletion_timestamp.is_none())
            .filter(|j| is_finished(j).is_some_and(|(k, _)| k == kind))
            .collect();
        let limit = limit.max(0) as usize;
        if done.len() <= limit {
            continue;
        }
        done.sort_by(|a, b| {
            start(a)
                .cmp(&start(b))
                .then_with(|| a.metadata.name.cmp(&b.metadata.name))
        });
        for j in &done[..done.len() - limit] {
            let n = j.metadata.name.clone().unwrap_or_default();
            steps.push(Step::DeleteJob(n.clone()));
            steps.push(Step::Event {
                type_: "Normal",
                reason: "SuccessfulDelete",
                message: format!("Deleted job {n}"),
            });
        }
    }
}

fn finish(
    mut steps: Vec<Step>,
    status: CronJobStatus,
    original: &CronJobStatus,
    requeue_after: Option<Duration>,
) -> Plan {
    if &status != original {
        steps.push(Step::UpdateStatus(status));
    }
    Plan {
        steps,
        requeue_after,
    }
}

#[cfg(test)]
mod tests;
