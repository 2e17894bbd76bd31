//! The Deployment's status and conditions: `calculateStatus`, Progressing/Available with their
//! reasons, the progress deadline, and the paused conditions.

use super::*;

impl Syncer {
    /// Kubernetes' `calculateStatus`.
    pub(super) fn calculate_status(&self) -> DeploymentStatus {
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
    pub(super) fn sync_deployment_status(&mut self) {
        let status = self.calculate_status();
        self.d.status = Some(status);
    }

    /// Kubernetes' `syncRolloutStatus`: counts, Available, Progressing (with the deadline), and the
    /// ReplicaFailure condition of the ReplicaSets.
    pub(super) fn sync_rollout_status(&mut self) {
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
    pub(super) fn replica_failure(
        &self,
    ) -> Option<k8s_openapi::api::apps::v1::DeploymentCondition> {
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
    pub(super) fn check_paused_conditions(&mut self) {
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
    pub(super) fn stuck_requeue(&self) -> Option<Duration> {
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
