//! Scaling ReplicaSets: one ReplicaSet's size (`scaleReplicaSet`) and a scaling event spread over
//! the active ReplicaSets in proportion to their sizes (`scale`, proportional scaling).

use super::*;

impl Syncer {
    /// Kubernetes' `scaleReplicaSet`: returns whether the size changed.
    pub(super) fn scale_rs(&mut self, i: usize, new_scale: i32, operation: &str) -> bool {
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
    pub(super) fn scale_rs_and_record(&mut self, i: usize, new_scale: i32) -> bool {
        let cur = rs_replicas(&self.rss[i]);
        if cur == new_scale {
            return false;
        }
        let op = if cur < new_scale { "up" } else { "down" };
        self.scale_rs(i, new_scale, op)
    }

    /// Kubernetes' `isScalingEvent`: an active ReplicaSet was sized for another replica count.
    pub(super) fn is_scaling_event(&self) -> bool {
        let r = self.replicas();
        self.active(&self.all_indices())
            .iter()
            .filter_map(|i| desired_replicas_annotation(&self.rss[*i]))
            .any(|desired| desired != r)
    }

    /// Kubernetes' `sync`: scaling and, when paused, history cleanup; then status.
    pub(super) fn sync_scaling(&mut self) {
        self.sync_revision(false);
        self.scale();
        if paused(&self.d) {
            let old = self.old_indices();
            self.cleanup(&old);
        }
        self.sync_deployment_status();
    }

    /// Kubernetes' `scale`: proportional scaling across active ReplicaSets.
    pub(super) fn scale(&mut self) {
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
    pub(super) fn active_or_latest(&self) -> Option<usize> {
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

    pub(super) fn is_saturated(&self, i: usize) -> bool {
        let rs = &self.rss[i];
        let r = self.replicas();
        desired_replicas_annotation(rs) == Some(r) && rs_replicas(rs) == r && rs_available(rs) == r
    }

    /// Kubernetes' `GetReplicaSetProportion`.
    pub(super) fn proportion(&self, i: usize, to_add: i32, added: i32) -> i32 {
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
    pub(super) fn fraction(&self, rs: &ReplicaSet) -> i32 {
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
}
