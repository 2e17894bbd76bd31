//! The Deployment controller's decisions, IO-free: one call to [`sync`] is one pass of Kubernetes'
//! `syncDeployment` over the cached Deployment, its ReplicaSets and (for Recreate) their pods. It
//! returns the writes to make, in order; the shell performs them and stops at the first failure
//! (the next pass starts over from the cache, as every level-triggered controller does).
//!
//! Like Kubernetes, a pass does one step of a rollout (scale the new ReplicaSet up *or* the old ones
//! down) and relies on the ReplicaSets' status updates to trigger the next.

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

    /// Kubernetes' `getAllReplicaSetsAndSyncRevision` (+ `getNewReplicaSet`).
    fn sync_revision(&mut self, create: bool) {
        let template = template(&self.d);
        if self.new.is_none() {
            let mut idx: Vec<usize> = (0..self.rss.len()).collect();
            idx.sort_by(|a, b| by_creation(&self.rss[*a], &self.rss[*b]));
            self.new = idx.into_iter().find(|i| {
                self.rss[*i]
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| equal_ignore_hash(t, &template))
            });
        }
        let max_old_revision = self
            .old_indices()
            .iter()
            .map(|i| revision(&self.rss[*i]))
            .max()
            .unwrap_or(0);
        let new_revision = max_old_revision + 1;
        if let Some(n) = self.new {
            let mut rs = self.rss[n].clone();
            let mut changed =
                set_new_rs_annotations(&self.d, &mut rs, new_revision, true, self.surge);
            let min_ready = min_ready_seconds(&self.d);
            if let Some(spec) = rs.spec.as_mut()
                && spec.min_ready_seconds.unwrap_or(0) != min_ready
            {
                spec.min_ready_seconds = Some(min_ready);
                changed = true;
            }
            if changed {
                self.steps.push(Step::UpdateReplicaSet(rs.clone()));
                self.rss[n] = rs;
            }
            let rev = revision(&self.rss[n]).to_string();
            self.set_deployment_revision(rev);
            if progress_deadline(&self.d).is_some()
                && condition(self.status(), "Progressing").is_none()
            {
                let msg = format!("Found new replica set {:?}", rs_name(&self.rss[n]));
                let cond = new_condition("Progressing", "True", FOUND_NEW_RS_REASON, msg, self.now);
                set_condition(self.status(), cond);
            }
            return;
        }
        if !create {
            return;
        }
        self.create_new_rs(template, new_revision);
    }

    fn set_deployment_revision(&mut self, rev: String) {
        let ann = self
            .d
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new);
        if ann.get(REVISION_ANNOTATION) != Some(&rev) {
            ann.insert(REVISION_ANNOTATION.into(), rev.clone());
            self.steps.push(Step::SetRevision(rev));
        }
    }

    fn create_new_rs(
        &mut self,
        mut template: k8s_openapi::api::core::v1::PodTemplateSpec,
        new_revision: i64,
    ) {
        let collision = self.d.status.as_ref().and_then(|s| s.collision_count);
        let hash = compute_hash(&template, collision);
        let meta = template.metadata.get_or_insert_with(Default::default);
        meta.labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
        let labels = meta.labels.clone();
        let mut selector: LabelSelector = self
            .d
            .spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
        let name = format!("{}-{}", self.d.metadata.name.as_deref().unwrap_or(""), hash);
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: self.d.metadata.namespace.clone(),
                labels,
                owner_references: Some(vec![owner::controller_reference(
                    "apps/v1",
                    "Deployment",
                    &self.d.metadata,
                )]),
                creation_timestamp: Some(Time(self.now)),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: Some(min_ready_seconds(&self.d)),
                selector,
                template: Some(template),
            }),
            status: None,
        };
        self.rss.push(rs);
        let n = self.rss.len() - 1;
        self.new = Some(n);
        let count = self.new_rs_new_replicas();
        let mut rs = self.rss[n].clone();
        set_rs_replicas(&mut rs, count);
        set_new_rs_annotations(&self.d, &mut rs, new_revision, false, self.surge);
        self.rss[n] = rs.clone();
        // The create is what the shell sends; it must not carry our local creation time.
        let mut to_create = rs;
        to_create.metadata.creation_timestamp = None;
        self.steps.push(Step::CreateReplicaSet(to_create));
        if count > 0 {
            self.event(
                "Normal",
                "ScalingReplicaSet",
                format!("Scaled up replica set {name} from 0 to {count}"),
            );
        }
        self.set_deployment_revision(new_revision.to_string());
        if progress_deadline(&self.d).is_some() {
            let msg = format!("Created new replica set {name:?}");
            let cond = new_condition("Progressing", "True", NEW_RS_REASON, msg, self.now);
            set_condition(self.status(), cond);
        }
    }

    /// Kubernetes' `NewRSNewReplicas`.
    fn new_rs_new_replicas(&self) -> i32 {
        let Some(n) = self.new else { return 0 };
        let new_replicas = rs_replicas(&self.rss[n]);
        if is_recreate(&self.d) {
            return self.replicas();
        }
        let current = self.spec_sum(&self.all_indices());
        let max_total = self.replicas() + self.surge;
        if current >= max_total {
            return new_replicas;
        }
        let up = (max_total - current).min(self.replicas() - new_replicas);
        new_replicas + up
    }

    /// Kubernetes' `scaleReplicaSet`: returns whether the size changed.
    fn scale_rs(&mut self, i: usize, new_scale: i32, operation: &str) -> bool {
        let r = self.replicas();
        let max = r + self.surge;
        let old_scale = rs_replicas(&self.rss[i]);
        let size_changed = old_scale != new_scale;
        if !size_changed && !replicas_annotations_need_update(&self.rss[i], r, max) {
            return false;
        }
        let mut rs = self.rss[i].clone();
        set_rs_replicas(&mut rs, new_scale);
        set_replicas_annotations(&mut rs, r, max);
        self.steps.push(Step::UpdateReplicaSet(rs.clone()));
        let name = rs_name(&rs).to_string();
        self.rss[i] = rs;
        if size_changed {
            self.event(
                "Normal",
                "ScalingReplicaSet",
                format!("Scaled {operation} replica set {name} from {old_scale} to {new_scale}"),
            );
        }
        size_changed
    }

    /// Kubernetes' `scaleReplicaSetAndRecordEvent`.
    fn scale_rs_and_record(&mut self, i: usize, new_scale: i32) -> bool {
        let cur = rs_replicas(&self.rss[i]);
        if cur == new_scale {
            return false;
        }
        let op = if cur < new_scale { "up" } else { "down" };
        self.scale_rs(i, new_scale, op)
    }

    /// Kubernetes' `isScalingEvent`: an active ReplicaSet was sized for another replica count.
    fn is_scaling_event(&self) -> bool {
        let r = self.replicas();
        self.active(&self.all_indices())
            .iter()
            .filter_map(|i| desired_replicas_annotation(&self.rss[*i]))
            .any(|desired| desired != r)
    }

    /// Kubernetes' `sync`: scaling and, when paused, history cleanup; then status.
    fn sync_scaling(&mut self) {
        self.sync_revision(false);
        self.scale();
        if paused(&self.d) {
            let old = self.old_indices();
            self.cleanup(&old);
        }
        self.sync_deployment_status();
    }

    /// Kubernetes' `scale`: proportional scaling across active ReplicaSets.
    fn scale(&mut self) {
        let r = self.replicas();
        if let Some(i) = self.active_or_latest() {
            if rs_replicas(&self.rss[i]) != r {
                self.scale_rs_and_record(i, r);
            }
            return;
        }
        if let Some(n) = self.new
            && self.is_saturated(n)
        {
            for i in self.active(&self.old_indices()) {
                self.scale_rs_and_record(i, 0);
            }
            return;
        }
        if is_recreate(&self.d) {
            return;
        }
        let mut all = self.active(&self.all_indices());
        let total = self.spec_sum(&all);
        let allowed = if r > 0 { r + self.surge } else { 0 };
        let to_add = allowed - total;
        let operation = if to_add > 0 {
            all.sort_by(|a, b| by_size_newer(&self.rss[*a], &self.rss[*b]));
            "up"
        } else if to_add < 0 {
            all.sort_by(|a, b| by_size_older(&self.rss[*a], &self.rss[*b]));
            "down"
        } else {
            ""
        };
        let mut added = 0;
        let mut sizes: Vec<i32> = Vec::with_capacity(all.len());
        for i in &all {
            let cur = rs_replicas(&self.rss[*i]);
            if to_add != 0 {
                let p = self.proportion(*i, to_add, added);
                sizes.push(cur + p);
                added += p;
            } else {
                sizes.push(cur);
            }
        }
        for (k, i) in all.iter().enumerate() {
            if k == 0 && to_add != 0 {
                sizes[0] = (sizes[0] + to_add - added).max(0);
            }
            self.scale_rs(*i, sizes[k], operation);
        }
    }

    /// Kubernetes' `FindActiveOrLatest`.
    fn active_or_latest(&self) -> Option<usize> {
        if self.rss.is_empty() {
            return None;
        }
        let mut old = self.old_indices();
        old.reverse();
        let mut all = old.clone();
        all.extend(self.new);
        let active = self.active(&all);
        match active.len() {
            0 => self.new.or_else(|| old.first().copied()),
            1 => Some(active[0]),
            _ => None,
        }
    }

    fn is_saturated(&self, i: usize) -> bool {
        let rs = &self.rss[i];
        let r = self.replicas();
        desired_replicas_annotation(rs) == Some(r) && rs_replicas(rs) == r && rs_available(rs) == r
    }

    /// Kubernetes' `GetReplicaSetProportion`.
    fn proportion(&self, i: usize, to_add: i32, added: i32) -> i32 {
        let rs = &self.rss[i];
        let cur = rs_replicas(rs);
        if cur == 0 || to_add == 0 || to_add == added {
            return 0;
        }
        let fraction = self.fraction(rs);
        let allowed = to_add - added;
        if to_add > 0 {
            fraction.min(allowed)
        } else {
            fraction.max(allowed)
        }
    }

    /// Kubernetes' `getReplicaSetFraction`.
    fn fraction(&self, rs: &ReplicaSet) -> i32 {
        let r = self.replicas();
        let cur = rs_replicas(rs);
        if r == 0 {
            return -cur;
        }
        let max_now = r + self.surge;
        let before = match max_replicas_annotation(rs) {
            Some(v) if v != 0 => v,
            _ => self.d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0),
        };
        if before == 0 {
            return 0;
        }
        let size = f64::from(cur) * f64::from(max_now) / f64::from(before);
        // Go's math.Round: half away from zero, as f64::round.
        size.round() as i32 - cur
    }

    fn rollout_rolling(&mut self) {
        self.sync_revision(true);
        if self.reconcile_new() || self.reconcile_old() {
            self.sync_rollout_status();
            return;
        }
        if deployment_complete(&self.d, &self.d.status.clone().unwrap_or_default()) {
            let old = self.old_indices();
            self.cleanup(&old);
        }
        self.sync_rollout_status();
    }

    /// Kubernetes' `reconcileNewReplicaSet`.
    fn reconcile_new(&mut self) -> bool {
        let Some(n) = self.new else { return false };
        let r = self.replicas();
        let cur = rs_replicas(&self.rss[n]);
        if cur == r {
            return false;
        }
        if cur > r {
            return self.scale_rs_and_record(n, r);
        }
        let count = self.new_rs_new_replicas();
        self.scale_rs_and_record(n, count)
    }

    /// Kubernetes' `reconcileOldReplicaSets`.
    fn reconcile_old(&mut self) -> bool {
        let Some(n) = self.new else { return false };
        let old = self.active(&self.old_indices());
        if self.spec_sum(&old) == 0 {
            return false;
        }
        let all_pods = self.spec_sum(&self.all_indices());
        let min_available = self.replicas() - self.unavailable;
        let new_unavailable = rs_replicas(&self.rss[n]) - rs_available(&self.rss[n]);
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        let cleaned = self.cleanup_unhealthy(&old, max_scaled_down);
        let scaled = self.scale_down_old_for_rolling(&old);
        cleaned + scaled > 0
    }

    /// Kubernetes' `cleanupUnhealthyReplicas`: scale down old pods that are not available first.
    fn cleanup_unhealthy(&mut self, old: &[usize], max_cleanup: i32) -> i32 {
        let mut total = 0;
        for &i in old {
            if total >= max_cleanup {
                break;
            }
            let cur = rs_replicas(&self.rss[i]);
            let available = rs_available(&self.rss[i]);
            if cur == 0 || cur == available {
                continue;
            }
            let down = (max_cleanup - total).min(cur - available);
            if down <= 0 {
                continue;
            }
            self.scale_rs_and_record(i, cur - down);
            total += down;
        }
        total
    }

    /// Kubernetes' `scaleDownOldReplicaSetsForRollingUpdate`.
    fn scale_down_old_for_rolling(&mut self, old: &[usize]) -> i32 {
        let min_available = self.replicas() - self.unavailable;
        // A ReplicaSet this controller has just scaled down still reports the available count of
        // its previous size until its own controller catches up; counting those pods again would
        // scale down past maxUnavailable. Kubernetes leans on sync timing here; niwa caps each
        // ReplicaSet's available count at its desired size, which is always a safe upper bound.
        let available: i32 = self
            .all_indices()
            .iter()
            .map(|i| rs_available(&self.rss[*i]).min(rs_replicas(&self.rss[*i])))
            .sum();
        if available <= min_available {
            return 0;
        }
        let wanted = available - min_available;
        let mut total = 0;
        for &i in old {
            if total >= wanted {
                break;
            }
            let cur = rs_replicas(&self.rss[i]);
            if cur == 0 {
                continue;
            }
            let down = cur.min(wanted - total);
            self.scale_rs_and_record(i, cur - down);
            total += down;
        }
        total
    }

    fn rollout_recreate(&mut self, pods: &[&Pod]) {
        self.sync_revision(false);
        let old = self.active(&self.old_indices());
        let mut scaled_down = false;
        for i in old {
            if rs_replicas(&self.rss[i]) != 0 {
                scaled_down |= self.scale_rs_and_record(i, 0);
            }
        }
        if scaled_down || self.old_pods_running(pods) {
            self.sync_rollout_status();
            return;
        }
        if self.new.is_none() {
            self.sync_revision(true);
        }
        if let Some(n) = self.new {
            let r = self.replicas();
            self.scale_rs_and_record(n, r);
        }
        if deployment_complete(&self.d, &self.d.status.clone().unwrap_or_default()) {
            let old = self.old_indices();
            self.cleanup(&old);
        }
        self.sync_rollout_status();
    }

    /// Kubernetes' `oldPodsRunning`: Recreate waits until no pod of an old ReplicaSet is left
    /// (terminating pods included) before creating new ones.
    fn old_pods_running(&self, pods: &[&Pod]) -> bool {
        let old = self.old_indices();
        if old
            .iter()
            .map(|i| rs_status_replicas(&self.rss[*i]))
            .sum::<i32>()
            > 0
        {
            return true;
        }
        let new_uid = self.new.and_then(|n| self.rss[n].metadata.uid.clone());
        let uids: Vec<String> = old
            .iter()
            .filter_map(|i| self.rss[*i].metadata.uid.clone())
            .collect();
        pods.iter().any(|p| {
            let Some(ctl) = owner::controller_of(&p.metadata) else {
                return false;
            };
            if new_uid.as_deref() == Some(ctl.uid.as_str()) || !uids.contains(&ctl.uid) {
                return false;
            }
            !matches!(podutil::phase(p), "Failed" | "Succeeded")
        })
    }

    /// Kubernetes' `cleanupDeployment`: delete the oldest fully scaled-down ReplicaSets beyond
    /// revisionHistoryLimit.
    fn cleanup(&mut self, old: &[usize]) {
        let limit = revision_history_limit(&self.d).max(0) as usize;
        let mut alive: Vec<usize> = old
            .iter()
            .copied()
            .filter(|i| self.rss[*i].metadata.deletion_timestamp.is_none())
            .collect();
        if alive.len() <= limit {
            return;
        }
        let diff = alive.len() - limit;
        alive.sort_by(|a, b| by_revision(&self.rss[*a], &self.rss[*b]));
        for &i in alive.iter().take(diff) {
            let rs = &self.rss[i];
            let observed = rs
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .unwrap_or(0);
            if rs_status_replicas(rs) != 0
                || rs_replicas(rs) != 0
                || rs.metadata.generation.unwrap_or(0) > observed
            {
                continue;
            }
            self.steps
                .push(Step::DeleteReplicaSet(rs_name(rs).to_string()));
        }
    }

    /// Kubernetes' `calculateStatus`.
    fn calculate_status(&self) -> DeploymentStatus {
        let all = self.all_indices();
        let available: i32 = all.iter().map(|i| rs_available(&self.rss[*i])).sum();
        let total = self.spec_sum(&all);
        let old = self.d.status.clone().unwrap_or_default();
        let mut status = DeploymentStatus {
            observed_generation: self.d.metadata.generation,
            replicas: Some(all.iter().map(|i| rs_status_replicas(&self.rss[*i])).sum()),
            updated_replicas: Some(
                self.new
                    .map(|n| rs_status_replicas(&self.rss[n]))
                    .unwrap_or(0),
            ),
            ready_replicas: Some(all.iter().map(|i| rs_ready(&self.rss[*i])).sum()),
            available_replicas: Some(available),
            unavailable_replicas: Some((total - available).max(0)),
            collision_count: old.collision_count,
            conditions: old.conditions.clone(),
            terminating_replicas: old.terminating_replicas,
        };
        let cond = if available >= self.replicas() - self.unavailable {
            new_condition(
                "Available",
                "True",
                MIN_AVAILABLE_REASON,
                "Deployment has minimum availability.".into(),
                self.now,
            )
        } else {
            new_condition(
                "Available",
                "False",
                MIN_UNAVAILABLE_REASON,
                "Deployment does not have minimum availability.".into(),
                self.now,
            )
        };
        set_condition(&mut status, cond);
        status
    }

    /// Kubernetes' `syncDeploymentStatus` (no progress estimation).
    fn sync_deployment_status(&mut self) {
        let status = self.calculate_status();
        self.d.status = Some(status);
    }

    /// Kubernetes' `syncRolloutStatus`: counts, Available, Progressing (with the deadline), and the
    /// ReplicaFailure condition of the ReplicaSets.
    fn sync_rollout_status(&mut self) {
        let mut status = self.calculate_status();
        let deadline = progress_deadline(&self.d);
        if deadline.is_none() {
            remove_condition(&mut status, "Progressing");
        }
        let current = self
            .d
            .status
            .as_ref()
            .and_then(|s| condition(s, "Progressing"))
            .cloned();
        let complete_already = status.replicas == status.updated_replicas
            && current
                .as_ref()
                .is_some_and(|c| c.reason.as_deref() == Some(NEW_RS_AVAILABLE_REASON));
        let new_name = self.new.map(|n| rs_name(&self.rss[n]).to_string());
        let dname = self.d.metadata.name.clone().unwrap_or_default();
        let subject = match &new_name {
            Some(n) => format!("ReplicaSet {n:?}"),
            None => format!("Deployment {dname:?}"),
        };
        if deadline.is_some() && !complete_already {
            if deployment_complete(&self.d, &status) {
                let cond = new_condition(
                    "Progressing",
                    "True",
                    NEW_RS_AVAILABLE_REASON,
                    format!("{subject} has successfully progressed."),
                    self.now,
                );
                set_condition(&mut status, cond);
            } else if deployment_progressing(&self.d, &status) {
                let mut cond = new_condition(
                    "Progressing",
                    "True",
                    REPLICA_SET_UPDATED_REASON,
                    format!("{subject} is progressing."),
                    self.now,
                );
                if let Some(cur) = &current {
                    if cur.status == "True" {
                        cond.last_transition_time = cur.last_transition_time.clone();
                    }
                    remove_condition(&mut status, "Progressing");
                }
                set_condition(&mut status, cond);
            } else if deployment_timed_out(&self.d, &status, self.now) {
                let cond = new_condition(
                    "Progressing",
                    "False",
                    TIMED_OUT_REASON,
                    format!("{subject} has timed out progressing."),
                    self.now,
                );
                set_condition(&mut status, cond);
            }
        }
        match self.replica_failure() {
            Some(cond) => set_condition(&mut status, cond),
            None => remove_condition(&mut status, "ReplicaFailure"),
        }
        self.d.status = Some(status);
    }

    /// Kubernetes' `getReplicaFailures`: the new ReplicaSet's ReplicaFailure condition, else an old one's.
    fn replica_failure(&self) -> Option<k8s_openapi::api::apps::v1::DeploymentCondition> {
        let mut order: Vec<usize> = self.new.into_iter().collect();
        order.extend(self.old_indices());
        order.iter().find_map(|i| {
            let c = self.rss[*i]
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == "ReplicaFailure")?;
            Some(k8s_openapi::api::apps::v1::DeploymentCondition {
                type_: "ReplicaFailure".into(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                last_update_time: c.last_transition_time.clone(),
                last_transition_time: c.last_transition_time.clone(),
            })
        })
    }

    /// Kubernetes' `checkPausedConditions`.
    fn check_paused_conditions(&mut self) {
        if progress_deadline(&self.d).is_none() {
            return;
        }
        let cond = self
            .d
            .status
            .as_ref()
            .and_then(|s| condition(s, "Progressing"))
            .cloned();
        let reason = cond.as_ref().and_then(|c| c.reason.clone());
        if reason.as_deref() == Some(TIMED_OUT_REASON) {
            return;
        }
        let paused_cond = reason.as_deref() == Some(PAUSED_REASON);
        let now = self.now;
        if paused(&self.d) && !paused_cond {
            let c = new_condition(
                "Progressing",
                "Unknown",
                PAUSED_REASON,
                "Deployment is paused".into(),
                now,
            );
            set_condition(self.status(), c);
        } else if !paused(&self.d) && paused_cond {
            let c = new_condition(
                "Progressing",
                "Unknown",
                RESUMED_REASON,
                "Deployment is resumed".into(),
                now,
            );
            set_condition(self.status(), c);
        }
    }

    /// Kubernetes' `requeueStuckDeployment`: look again when the progress deadline would pass.
    fn stuck_requeue(&self) -> Option<Duration> {
        let deadline = progress_deadline(&self.d)?;
        let status = self.d.status.as_ref()?;
        let cond = condition(status, "Progressing")?;
        if deployment_complete(&self.d, status) || cond.reason.as_deref() == Some(TIMED_OUT_REASON)
        {
            return None;
        }
        let from = cond.last_update_time.as_ref()?.0;
        let at = from + jiff::SignedDuration::from_secs(i64::from(deadline));
        let after = at.duration_since(self.now);
        if after < jiff::SignedDuration::from_secs(1) {
            return Some(Duration::from_secs(1));
        }
        Some(after.unsigned_abs() + Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests;
