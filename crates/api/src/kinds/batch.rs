//! batch/v1: Jobs and CronJobs — defaults, the generated Job selector, and
//! `pkg/apis/batch/validation` (including cron schedule syntax).

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, Job, JobSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::{Strategy, or, or_str, pod, selector};
use crate::status::Cause;
use crate::validation::field::{self, Path};

/// The label a Job's generated selector and its pods carry.
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
const LEGACY_CONTROLLER_UID_LABEL: &str = "controller-uid";
const LEGACY_JOB_NAME_LABEL: &str = "job-name";
/// CronJob names leave room for the 11-character suffix of their Jobs.
const CRONJOB_NAME_MAX: usize = 52;

/// `SetDefaults_Job`.
fn default_job_spec(spec: &mut JobSpec) {
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    match (spec.completions, spec.parallelism) {
        (None, None) => {
            spec.completions = Some(1);
            spec.parallelism = Some(1);
        }
        (_, None) => spec.parallelism = Some(1),
        _ => {}
    }
    if spec.backoff_limit.is_none() {
        // Indexed jobs with a per-index limit are unlimited overall.
        spec.backoff_limit = Some(if indexed && spec.backoff_limit_per_index.is_some() {
            i32::MAX
        } else {
            6
        });
    }
    or_str(&mut spec.completion_mode, "NonIndexed");
    or(&mut spec.suspend, false);
    if spec.pod_failure_policy.is_none() {
        or_str(&mut spec.pod_replacement_policy, "TerminatingOrFailed");
    } else {
        or_str(&mut spec.pod_replacement_policy, "Failed");
    }
    for rule in spec
        .pod_failure_policy
        .iter_mut()
        .flat_map(|p| p.rules.iter_mut())
    {
        for pattern in rule.on_pod_conditions.iter_mut().flatten() {
            if pattern.status.is_empty() {
                pattern.status = "True".into();
            }
        }
    }
    pod::default_template(&mut spec.template);
}

/// `generateSelector`: unless `manualSelector`, the selector is the Job's uid and the template
/// carries the uid and name labels.
fn generate_selector(job: &mut Job) {
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let name = job.metadata.name.clone().unwrap_or_default();
    let Some(spec) = job.spec.as_mut() else {
        return;
    };
    if spec.manual_selector == Some(true) {
        return;
    }
    let labels = spec
        .template
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(BTreeMap::new);
    for (k, v) in [
        (CONTROLLER_UID_LABEL, &uid),
        (LEGACY_CONTROLLER_UID_LABEL, &uid),
        (JOB_NAME_LABEL, &name),
        (LEGACY_JOB_NAME_LABEL, &name),
    ] {
        labels.entry(k.to_string()).or_insert_with(|| v.clone());
    }
    if spec.selector.is_none() {
        spec.selector = Some(LabelSelector {
            match_labels: Some([(CONTROLLER_UID_LABEL.to_string(), uid)].into()),
            match_expressions: None,
        });
    }
}

fn validate_job_template(template: &PodTemplateSpec, path: &Path) -> Vec<Cause> {
    let mut causes = pod::validate_template(template, path);
    if let Some(spec) = &template.spec {
        let rp = spec.restart_policy.as_deref().unwrap_or_default();
        if rp != "OnFailure" && rp != "Never" {
            causes.push(field::not_supported(
                &path.child("spec").child("restartPolicy"),
                rp,
                &["OnFailure", "Never"],
            ));
        }
    }
    causes
}

/// `ValidateJobSpec`.
fn validate_job_spec(spec: &JobSpec, path: &Path, generated: bool) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (name, v) in [
        ("parallelism", spec.parallelism),
        ("completions", spec.completions),
        ("backoffLimit", spec.backoff_limit),
        ("ttlSecondsAfterFinished", spec.ttl_seconds_after_finished),
    ] {
        causes.extend(field::nonnegative(&path.child(name), v.map(i64::from)));
    }
    if let Some(ads) = spec.active_deadline_seconds
        && ads <= 0
    {
        causes.push(field::invalid(
            &path.child("activeDeadlineSeconds"),
            ads,
            "must be greater than zero",
        ));
    }
    match spec.completion_mode.as_deref() {
        None | Some("NonIndexed") => {}
        Some("Indexed") => {
            if spec.completions.is_none() {
                causes.push(field::required(
                    &path.child("completions"),
                    "when completion mode is Indexed",
                ));
            }
        }
        Some(other) => causes.push(field::not_supported(
            &path.child("completionMode"),
            other,
            &["NonIndexed", "Indexed"],
        )),
    }
    if let Some(p) = spec.pod_replacement_policy.as_deref()
        && p != "TerminatingOrFailed"
        && p != "Failed"
    {
        causes.push(field::not_supported(
            &path.child("podReplacementPolicy"),
            p,
            &["Failed", "TerminatingOrFailed"],
        ));
    }
    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref());
    match &spec.selector {
        None if generated => causes.push(field::required(&path.child("selector"), "")),
        None => {}
        Some(sel) => {
            causes.extend(selector::validate(sel, &path.child("selector")));
            let empty = BTreeMap::new();
            if causes.is_empty() && !selector::matches(sel, labels.unwrap_or(&empty)) {
                causes.push(field::invalid(
                    &path.child("template").child("metadata").child("labels"),
                    field::go_map(labels.unwrap_or(&empty)),
                    "`selector` does not match template `labels`",
                ));
            }
        }
    }
    causes.extend(validate_job_template(
        &spec.template,
        &path.child("template"),
    ));
    causes
}

impl Strategy for Job {
    fn default(&mut self) {
        default_job_spec(self.spec.get_or_insert_with(Default::default));
    }

    fn prepare_create(&mut self) {
        generate_selector(self);
        self.status = Some(Default::default());
    }

    fn validate(&self) -> Vec<Cause> {
        let path = Path::new("spec");
        match &self.spec {
            Some(spec) => validate_job_spec(spec, &path, true),
            None => vec![field::required(&path, "")],
        }
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = self.validate();
        let (Some(new), Some(old)) = (&self.spec, &old.spec) else {
            return causes;
        };
        let spec = Path::new("spec");
        if new.selector != old.selector {
            let shown = new
                .selector
                .as_ref()
                .map(selector::render)
                .unwrap_or(field::Bad::Raw("nil".into()));
            causes.push(field::invalid(
                &spec.child("selector"),
                shown,
                field::IMMUTABLE,
            ));
        }
        if new.template != old.template {
            causes.push(field::invalid(
                &spec.child("template"),
                field::Bad::Raw("core.PodTemplateSpec{...}".into()),
                field::IMMUTABLE,
            ));
        }
        if new.completion_mode != old.completion_mode {
            causes.push(field::invalid(
                &spec.child("completionMode"),
                new.completion_mode.clone().unwrap_or_default(),
                field::IMMUTABLE,
            ));
        }
        if new.completions != old.completions && new.completion_mode.as_deref() != Some("Indexed") {
            causes.push(field::invalid(
                &spec.child("completions"),
                new.completions.unwrap_or(0),
                field::IMMUTABLE,
            ));
        }
        causes
    }

    fn validate_status(&self, _old: &Self) -> Vec<Cause> {
        let Some(s) = &self.status else {
            return Vec::new();
        };
        let p = Path::new("status");
        let mut causes = Vec::new();
        for (name, v) in [
            ("active", s.active),
            ("succeeded", s.succeeded),
            ("failed", s.failed),
            ("ready", s.ready),
            ("terminating", s.terminating),
        ] {
            causes.extend(field::nonnegative(&p.child(name), v.map(i64::from)));
        }
        causes
    }
}

impl Strategy for CronJob {
    fn default(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        or_str(&mut spec.concurrency_policy, "Allow");
        or(&mut spec.suspend, false);
        or(&mut spec.successful_jobs_history_limit, 3);
        or(&mut spec.failed_jobs_history_limit, 1);
        if let Some(job) = spec.job_template.spec.as_mut() {
            pod::default_template(&mut job.template);
        }
    }

    fn prepare_create(&mut self) {
        self.status = Some(Default::default());
    }

    fn validate(&self) -> Vec<Cause> {
        let path = Path::new("spec");
        let mut causes = Vec::new();
        let name = self.metadata.name.as_deref().unwrap_or_default();
        if name.len() > CRONJOB_NAME_MAX {
            causes.push(field::invalid(
                &Path::new("metadata").child("name"),
                name,
                &format!("must be no more than {CRONJOB_NAME_MAX} characters"),
            ));
        }
        let Some(spec) = &self.spec else {
            causes.push(field::required(&path, ""));
            return causes;
        };
        if spec.schedule.is_empty() {
            causes.push(field::required(&path.child("schedule"), ""));
        } else if spec.schedule.contains("TZ") {
            causes.push(field::invalid(
                &path.child("schedule"),
                spec.schedule.as_str(),
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        } else if let Err(e) = check_schedule(&spec.schedule) {
            causes.push(field::invalid(
                &path.child("schedule"),
                spec.schedule.as_str(),
                &e,
            ));
        }
        if let Some(tz) = spec.time_zone.as_deref()
            && (tz.is_empty() || tz.contains(' '))
        {
            causes.push(field::invalid(
                &path.child("timeZone"),
                tz,
                "unknown time zone",
            ));
        }
        match spec.concurrency_policy.as_deref().unwrap_or_default() {
            "Allow" | "Forbid" | "Replace" => {}
            "" => causes.push(field::required(&path.child("concurrencyPolicy"), "")),
            other => causes.push(field::not_supported(
                &path.child("concurrencyPolicy"),
                other,
                &["Allow", "Forbid", "Replace"],
            )),
        }
        for (f, v) in [
            ("startingDeadlineSeconds", spec.starting_deadline_seconds),
            (
                "successfulJobsHistoryLimit",
                spec.successful_jobs_history_limit.map(i64::from),
            ),
            (
                "failedJobsHistoryLimit",
                spec.failed_jobs_history_limit.map(i64::from),
            ),
        ] {
            causes.extend(field::nonnegative(&path.child(f), v));
        }
        let jt = path.child("jobTemplate").child("spec");
        match &spec.job_template.spec {
            Some(job) => causes.extend(validate_job_spec(job, &jt, false)),
            None => causes.push(field::required(&jt, "")),
        }
        causes
    }
}

/// The standard 5-field cron syntax (with names, ranges, steps, lists, `?`) and the `@` macros,
/// as robfig/cron's `ParseStandard` accepts it. The error wording follows that parser.
pub fn check_schedule(schedule: &str) -> Result<(), String> {
    let s = schedule.trim();
    if let Some(mac) = s.strip_prefix('@') {
        return match mac {
            "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly" => {
                Ok(())
            }
            m if m.starts_with("every ") => Ok(()),
            _ => Err(format!("unrecognized descriptor: {s}")),
        };
    }
    let fields: Vec<&str> = s.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    const MONTHS: &[&str] = &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let bounds: [(u32, u32, &[&str]); 5] = [
        (0, 59, &[]),
        (0, 23, &[]),
        (1, 31, &[]),
        (1, 12, MONTHS),
        (0, 6, DAYS),
    ];
    for (field, (min, max, names)) in fields.iter().zip(bounds) {
        for part in field.split(',') {
            check_cron_part(part, min, max, names)?;
        }
    }
    Ok(())
}

fn check_cron_part(part: &str, min: u32, max: u32, names: &[&str]) -> Result<(), String> {
    let (range, step) = match part.split_once('/') {
        Some((r, s)) => {
            let step: u32 = s.parse().map_err(|_| {
                format!("failed to parse int from {s}: strconv.Atoi: parsing {s:?}: invalid syntax")
            })?;
            if step == 0 {
                return Err(format!("step of range should be a positive number: {part}"));
            }
            (r, Some(step))
        }
        None => (part, None),
    };
    let value = |s: &str| -> Result<u32, String> {
        let lower = s.to_ascii_lowercase();
        if let Some(i) = names.iter().position(|n| *n == lower) {
            // Months are 1-based, weekdays 0-based.
            return Ok(i as u32 + min);
        }
        s.parse::<u32>().map_err(|_| {
            format!("failed to parse int from {s}: strconv.Atoi: parsing {s:?}: invalid syntax")
        })
    };
    if range == "*" || range == "?" {
        return Ok(());
    }
    let (lo, hi) = match range.split_once('-') {
        Some((a, b)) => (value(a)?, value(b)?),
        None => {
            let v = value(range)?;
            (v, if step.is_some() { max } else { v })
        }
    };
    if lo < min {
        return Err(format!(
            "beginning of range ({lo}) below minimum ({min}): {part}"
        ));
    }
    if hi > max {
        return Err(format!("end of range ({hi}) above maximum ({max}): {part}"));
    }
    if lo > hi {
        return Err(format!(
            "beginning of range ({lo}) beyond end of range ({hi}): {part}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn job_defaults_and_generated_selector() {
        let mut job: Job = serde_json::from_value(json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "pi", "namespace": "default", "uid": "u-1"},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "pi", "image": "perl"}]}}}}))
        .unwrap_or_default();
        job.default();
        job.prepare_create();
        assert!(job.validate().is_empty(), "{:?}", job.validate());
        let v = serde_json::to_value(&job).unwrap_or_default();
        assert_eq!(v["spec"]["completions"], 1);
        assert_eq!(v["spec"]["parallelism"], 1);
        assert_eq!(v["spec"]["backoffLimit"], 6);
        assert_eq!(v["spec"]["completionMode"], "NonIndexed");
        assert_eq!(v["spec"]["podReplacementPolicy"], "TerminatingOrFailed");
        assert_eq!(
            v["spec"]["selector"]["matchLabels"][CONTROLLER_UID_LABEL],
            "u-1"
        );
        assert_eq!(
            v["spec"]["template"]["metadata"]["labels"][JOB_NAME_LABEL],
            "pi"
        );

        let mut always = job.clone();
        if let Some(s) = always.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
            s.restart_policy = Some("Always".into());
        }
        let causes = always.validate();
        assert_eq!(
            causes[0].to_line(),
            "spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""
        );
        assert_eq!(
            always.validate_update(&job).len(),
            2,
            "template is immutable"
        );
    }

    #[test]
    fn cron_schedules() {
        for ok in [
            "*/5 * * * *",
            "0 0 1 jan-jun mon",
            "@hourly",
            "0,30 9-17 * * 1-5",
            "? * * * *",
        ] {
            assert_eq!(check_schedule(ok), Ok(()), "{ok}");
        }
        assert_eq!(
            check_schedule("* * *"),
            Err("expected exactly 5 fields, found 3: [* * *]".into())
        );
        assert!(check_schedule("61 * * * *").is_err());
        assert!(check_schedule("@sometimes").is_err());
        let mut cj: CronJob = serde_json::from_value(json!({"apiVersion": "batch/v1",
            "kind": "CronJob", "metadata": {"name": "c", "namespace": "d"},
            "spec": {"schedule": "*/1 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "x"}]}}}}}}))
        .unwrap_or_default();
        cj.default();
        assert!(cj.validate().is_empty(), "{:?}", cj.validate());
        let v = serde_json::to_value(&cj).unwrap_or_default();
        assert_eq!(v["spec"]["concurrencyPolicy"], "Allow");
        assert_eq!(v["spec"]["successfulJobsHistoryLimit"], 3);
        assert_eq!(v["spec"]["failedJobsHistoryLimit"], 1);
    }
}
