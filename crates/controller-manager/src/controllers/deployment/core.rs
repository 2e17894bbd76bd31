//! The Deployment controller's decisions, IO-free: one call to [`sync`] is one pass of Kubernetes'
//! `syncDeployment` over the cached Deployment, its ReplicaSets and (for Recreate) their pods. It
//! returns the writes to make, in order; the shell performs them and stops at the first failure
//! (the next pass starts over from the cache, as every level-triggered controller does).
//!
//! Like Kubernetes, a pass does one step of a rollout (scale the new ReplicaSet up *or* the old ones
//! down) and relies on the ReplicaSets' status updates to trigger the next.
//!
//! One pass is a [`Syncer`] whose methods live by concern: the new ReplicaSet and the revision in
//! `revision`, scaling in `scaling`, the RollingUpdate and Recreate strategies in `rollout`, status
//! and conditions in `status`.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};

use super::util::*;
use crate::util::hash::compute_hash;
use crate::util::owner;
use crate::util::pod as podutil;

/// One write the shell performs.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Create this ReplicaSet (named `<deployment>-<pod-template-hash>`).
    CreateReplicaSet(ReplicaSet),
    /// Replace this ReplicaSet (replicas, annotations, minReadySeconds), with its resourceVersion.
    UpdateReplicaSet(ReplicaSet),
    /// Delete this old ReplicaSet (revisionHistoryLimit).
    DeleteReplicaSet(String),
    /// Set the Deployment's `deployment.kubernetes.io/revision` annotation.
    SetRevision(String),
    /// Write the Deployment's status.
    UpdateStatus(DeploymentStatus),
    /// Record an Event on the Deployment (after the write before it succeeded).
    Event {
        type_: &'static str,
        reason: &'static str,
        message: String,
    },
}

/// The outcome of one pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Look again after this long (progress deadline checks).
    pub requeue_after: Option<Duration>,
}

/// Run one pass. `replica_sets` are the ReplicaSets the Deployment controls (already claimed);
/// `pods` the pods controlled by them (only Recreate reads them).
pub fn sync(
    d: &Deployment,
    replica_sets: &[ReplicaSet],
    pods: &[&Pod],
    now: Timestamp,
) -> Result<Plan, DeploymentError> {
    let mut s = Syncer {
        original: d.clone(),
        d: d.clone(),
        rss: replica_sets.to_vec(),
        new: None,
        steps: Vec::new(),
        now,
        surge: max_surge(d)?,
        unavailable: max_unavailable(d)?,
    };
    if selects_everything(d) {
        s.event(
            "Warning",
            "SelectingAll",
            "This deployment is selecting all pods. A non-empty selector is required.".into(),
        );
        let mut status = d.status.clone().unwrap_or_default();
        if status.observed_generation != d.metadata.generation {
            status.observed_generation = d.metadata.generation;
            s.steps.push(Step::UpdateStatus(status));
        }
        return Ok(s.finish(None));
    }
    if d.metadata.deletion_timestamp.is_some() {
        s.sync_revision(false);
        s.sync_deployment_status();
        return Ok(s.finish(None));
    }
    s.check_paused_conditions();
    if paused(d) {
        s.sync_scaling();
        return Ok(s.finish(None));
    }
    s.sync_revision(false);
    if s.is_scaling_event() {
        s.sync_scaling();
        return Ok(s.finish(None));
    }
    if is_recreate(d) {
        s.rollout_recreate(pods);
    } else {
        s.rollout_rolling();
    }
    let requeue = s.stuck_requeue();
    Ok(s.finish(requeue))
}

/// The Progressing condition Kubernetes sets when creating the new ReplicaSet failed (shell: on a
/// create error other than AlreadyExists).
pub fn create_failed_status(
    d: &Deployment,
    rs_name: &str,
    error: &str,
    now: Timestamp,
) -> Option<DeploymentStatus> {
    progress_deadline(d)?;
    let mut status = d.status.clone().unwrap_or_default();
    set_condition(
        &mut status,
        new_condition(
            "Progressing",
            "False",
            FAILED_RS_CREATE_REASON,
            format!("Failed to create new replica set {rs_name:?}: {error}"),
            now,
        ),
    );
    Some(status)
}

/// The status after a hash collision (the name `<deployment>-<hash>` is taken by a ReplicaSet with
/// another template): collisionCount + 1, so that the next pass computes another name.
pub fn collision_status(d: &Deployment) -> DeploymentStatus {
    let mut status = d.status.clone().unwrap_or_default();
    status.collision_count = Some(status.collision_count.unwrap_or(0).saturating_add(1));
    status
}

fn selects_everything(d: &Deployment) -> bool {
    match d.spec.as_ref() {
        None => true,
        Some(spec) => {
            spec.selector
                .match_labels
                .as_ref()
                .is_none_or(|m| m.is_empty())
                && spec
                    .selector
                    .match_expressions
                    .as_ref()
                    .is_none_or(|e| e.is_empty())
        }
    }
}

struct Syncer {
    original: Deployment,
    /// The Deployment as this pass has updated it in memory (annotations, status conditions).
    d: Deployment,
    rss: Vec<ReplicaSet>,
    /// Index into `rss` of the ReplicaSet whose template equals the Deployment's.
    new: Option<usize>,
    steps: Vec<Step>,
    now: Timestamp,
    surge: i32,
    unavailable: i32,
}

impl Syncer {
    fn finish(mut self, requeue_after: Option<Duration>) -> Plan {
        // Coalesce the status writes of a pass into one, written last (as the final UpdateStatus of
        // Kubernetes' pass carries every earlier in-memory change too).
        let mut last_status = None;
        self.steps.retain(|s| match s {
            Step::UpdateStatus(st) => {
                last_status = Some(st.clone());
                false
            }
            _ => true,
        });
        let final_status = self.d.status.clone().unwrap_or_default();
        let original = self.original.status.clone().unwrap_or_default();
        if let Some(st) = last_status {
            self.steps.push(Step::UpdateStatus(st));
        } else if final_status != original {
            self.steps.push(Step::UpdateStatus(final_status));
        }
        Plan {
            steps: self.steps,
            requeue_after,
        }
    }

    fn event(&mut self, type_: &'static str, reason: &'static str, message: String) {
        self.steps.push(Step::Event {
            type_,
            reason,
            message,
        });
    }

    fn replicas(&self) -> i32 {
        replicas(&self.d)
    }

    fn status(&mut self) -> &mut DeploymentStatus {
        self.d.status.get_or_insert_with(Default::default)
    }

    fn old_indices(&self) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.rss.len())
            .filter(|i| Some(*i) != self.new)
            .collect();
        idx.sort_by(|a, b| by_creation(&self.rss[*a], &self.rss[*b]));
        idx
    }

    fn active(&self, idx: &[usize]) -> Vec<usize> {
        idx.iter()
            .copied()
            .filter(|i| rs_replicas(&self.rss[*i]) > 0)
            .collect()
    }

    fn all_indices(&self) -> Vec<usize> {
        let mut idx = self.old_indices();
        idx.extend(self.new);
        idx
    }

    fn spec_sum(&self, idx: &[usize]) -> i32 {
        idx.iter().map(|i| rs_replicas(&self.rss[*i])).sum()
    }
}

mod revision;
mod rollout;
mod scaling;
mod status;
#[cfg(test)]
mod tests;
