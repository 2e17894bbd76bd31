//! apps/v1: Deployments, ReplicaSets, StatefulSets, DaemonSets and ControllerRevisions —
//! `SetDefaults_*` of apps/v1 and `pkg/apis/apps/validation`.
//!
//! The rules all workloads share are here; each kind's `Strategy` is in a file of its own:
//! `deployment` (Deployment and ReplicaSet), `daemonset`, `statefulset`.

mod daemonset;
mod deployment;
mod statefulset;
#[cfg(test)]
mod tests;

use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, DaemonSetUpdateStrategy, Deployment, DeploymentStrategy,
    ReplicaSet, RollingUpdateDaemonSet, RollingUpdateDeployment, RollingUpdateStatefulSetStrategy,
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Strategy, or, or_str, pod, selector};
use crate::status::Cause;
use crate::validation::field::{self, Path};

const DEFAULT_REVISION_HISTORY: i32 = 10;

fn percent(s: &str) -> IntOrString {
    IntOrString::String(s.to_string())
}

// ---------------------------------------------------------------------------------------------
// Shared rules

/// A workload's selector and template: selector present and non-empty, matching the template's
/// labels; the template valid with restartPolicy Always and no activeDeadlineSeconds.
fn validate_workload(
    selector: &LabelSelector,
    template: Option<&PodTemplateSpec>,
    spec: &Path,
    kind: &str,
) -> Vec<Cause> {
    // An absent selector decodes as an empty one; both are reported the way a missing one is.
    let selector = (!selector::is_empty(selector)).then_some(selector);
    let labels = template
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.as_ref());
    let mut causes = selector::validate_against_template(
        selector,
        labels,
        spec,
        &format!("empty selector is invalid for {kind}"),
    );
    if selector.is_none() {
        let empty = Default::default();
        causes.push(field::invalid(
            &spec.child("template").child("metadata").child("labels"),
            field::go_map(labels.unwrap_or(&empty)),
            "`selector` does not match template `labels`",
        ));
    }
    let Some(template) = template else {
        causes.push(field::required(&spec.child("template"), ""));
        return causes;
    };
    let tpath = spec.child("template");
    causes.extend(pod::validate_template(template, &tpath));
    if let Some(ps) = &template.spec {
        let rp = ps.restart_policy.as_deref().unwrap_or_default();
        if rp != "Always" {
            causes.push(field::not_supported(
                &tpath.child("spec").child("restartPolicy"),
                rp,
                &["Always"],
            ));
        }
        if ps.active_deadline_seconds.is_some() {
            causes.push(field::forbidden(
                &tpath.child("spec").child("activeDeadlineSeconds"),
                "activeDeadlineSeconds in ReplicaSet is not Supported",
            ));
        }
    }
    causes
}

fn nonnegative_i32(path: &Path, v: Option<i32>) -> Vec<Cause> {
    field::nonnegative(path, v.map(i64::from))
}

/// `ValidatePositiveIntOrPercent` and `IsNotMoreThan100Percent`.
fn int_or_percent(v: &IntOrString, path: &Path, at_most_100: bool) -> Vec<Cause> {
    match v {
        IntOrString::Int(n) if *n < 0 => vec![field::invalid(path, *n, field::NEGATIVE)],
        IntOrString::Int(_) => Vec::new(),
        IntOrString::String(s) => match s.strip_suffix('%').map(str::parse::<i64>) {
            Some(Ok(p)) if p > 100 && at_most_100 => {
                vec![field::invalid(
                    path,
                    s.as_str(),
                    "must not be greater than 100%",
                )]
            }
            Some(Ok(p)) if p >= 0 => Vec::new(),
            _ => vec![field::invalid(
                path,
                s.as_str(),
                "a valid percent string must be a numeric string followed by an ending '%' (e.g. \
                 '1%',  or '93%', regex used for validation is '[0-9]+%')",
            )],
        },
    }
}

fn is_zero(v: Option<&IntOrString>) -> bool {
    match v {
        None => true,
        Some(IntOrString::Int(n)) => *n == 0,
        Some(IntOrString::String(s)) => s.strip_suffix('%').is_some_and(|p| p.parse() == Ok(0)),
    }
}

fn render_int_or_string(v: Option<&IntOrString>) -> field::Bad {
    match v {
        Some(IntOrString::Int(n)) => field::Bad::Int(i64::from(*n)),
        Some(IntOrString::String(s)) => field::Bad::Str(s.clone()),
        None => field::Bad::Int(0),
    }
}

/// The rolling-update bounds Deployments and DaemonSets share (`ValidateRollingUpdateDeployment`,
/// `ValidateRollingUpdateDaemonSet`): each of `maxUnavailable` and `maxSurge` a non-negative int
/// or percent, `maxUnavailable` at most 100% (`maxSurge` too when `surge_at_most_100`, as for
/// DaemonSets), and not both zero — a rollout that may neither surge nor take a pod down
/// cannot progress.
fn validate_rolling_update(
    max_unavailable: Option<&IntOrString>,
    max_surge: Option<&IntOrString>,
    path: &Path,
    surge_at_most_100: bool,
) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Some(v) = max_unavailable {
        causes.extend(int_or_percent(v, &path.child("maxUnavailable"), true));
    }
    if let Some(v) = max_surge {
        causes.extend(int_or_percent(
            v,
            &path.child("maxSurge"),
            surge_at_most_100,
        ));
    }
    if is_zero(max_unavailable) && is_zero(max_surge) {
        causes.push(field::invalid(
            &path.child("maxUnavailable"),
            render_int_or_string(max_unavailable),
            "may not be 0 when `maxSurge` is 0",
        ));
    }
    causes
}

fn selector_immutable(new: &LabelSelector, old: &LabelSelector) -> Vec<Cause> {
    field::immutable(
        &Path::new("spec").child("selector"),
        new,
        old,
        selector::render(new),
    )
}

// ---------------------------------------------------------------------------------------------
// ControllerRevision

impl Strategy for ControllerRevision {
    fn validate(&self) -> Vec<Cause> {
        let mut causes = field::nonnegative(&Path::new("revision"), Some(self.revision));
        if self.data.is_none() {
            causes.push(field::required(&Path::new("data"), ""));
        }
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = self.validate();
        if self.data != old.data {
            causes.push(field::invalid(
                &Path::new("data"),
                field::Bad::Raw("runtime.RawExtension{...}".into()),
                field::IMMUTABLE,
            ));
        }
        causes
    }
}
