//! The two rollout strategies: RollingUpdate (scale the new ReplicaSet up, the old ones down within
//! maxSurge/maxUnavailable) and Recreate (all old pods gone before the new ones), and the cleanup of
//! old ReplicaSets past revisionHistoryLimit.

use super::*;

impl Syncer {
    pub(super) fn rollout_rolling(&mut self) {
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
    pub(super) fn reconcile_new(&mut self) -> bool {
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
    pub(super) fn reconcile_old(&mut self) -> bool {
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
    pub(super) fn cleanup_unhealthy(&mut self, old: &[usize], max_cleanup: i32) -> i32 {
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
    pub(super) fn scale_down_old_for_rolling(&mut self, old: &[usize]) -> i32 {
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

    pub(super) fn rollout_recreate(&mut self, pods: &[&Pod]) {
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
    pub(super) fn old_pods_running(&self, pods: &[&Pod]) -> bool {
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
    pub(super) fn cleanup(&mut self, old: &[usize]) {
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
}
