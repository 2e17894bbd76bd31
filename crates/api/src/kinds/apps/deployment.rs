//! Deployment and ReplicaSet defaults and validation.

use super::*;

impl Strategy for Deployment {
    fn default(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        or(&mut spec.replicas, 1);
        let strategy = spec
            .strategy
            .get_or_insert_with(DeploymentStrategy::default);
        or_str(&mut strategy.type_, "RollingUpdate");
        if strategy.type_.as_deref() == Some("RollingUpdate") {
            let ru = strategy
                .rolling_update
                .get_or_insert_with(RollingUpdateDeployment::default);
            or(&mut ru.max_unavailable, percent("25%"));
            or(&mut ru.max_surge, percent("25%"));
        }
        or(&mut spec.revision_history_limit, DEFAULT_REVISION_HISTORY);
        or(&mut spec.progress_deadline_seconds, 600);
        pod::default_template(&mut spec.template);
    }

    fn prepare_create(&mut self) {
        self.status = Some(Default::default());
    }

    fn validate(&self) -> Vec<Cause> {
        let path = Path::new("spec");
        let Some(spec) = &self.spec else {
            return vec![field::required(&path, "")];
        };
        let mut causes = nonnegative_i32(&path.child("replicas"), spec.replicas);
        causes.extend(validate_workload(
            &spec.selector,
            Some(&spec.template),
            &path,
            "deployment",
        ));
        if let Some(strategy) = &spec.strategy {
            let sp = path.child("strategy");
            match strategy.type_.as_deref().unwrap_or_default() {
                "Recreate" => {
                    if strategy.rolling_update.is_some() {
                        causes.push(field::forbidden(
                            &sp.child("rollingUpdate"),
                            "may not be specified when strategy `type` is 'Recreate'",
                        ));
                    }
                }
                "RollingUpdate" => {
                    if let Some(ru) = &strategy.rolling_update {
                        causes.extend(validate_rolling_update(
                            ru.max_unavailable.as_ref(),
                            ru.max_surge.as_ref(),
                            &sp.child("rollingUpdate"),
                            false,
                        ));
                    }
                }
                "" => causes.push(field::required(&sp.child("type"), "")),
                other => causes.push(field::not_supported(
                    &sp.child("type"),
                    other,
                    &["Recreate", "RollingUpdate"],
                )),
            }
        }
        causes.extend(nonnegative_i32(
            &path.child("minReadySeconds"),
            spec.min_ready_seconds,
        ));
        causes.extend(nonnegative_i32(
            &path.child("revisionHistoryLimit"),
            spec.revision_history_limit,
        ));
        if let Some(pds) = spec.progress_deadline_seconds {
            causes.extend(nonnegative_i32(
                &path.child("progressDeadlineSeconds"),
                Some(pds),
            ));
            if pds <= spec.min_ready_seconds.unwrap_or(0) {
                causes.push(field::invalid(
                    &path.child("progressDeadlineSeconds"),
                    pds,
                    "must be greater than minReadySeconds",
                ));
            }
        }
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = self.validate();
        if let (Some(new), Some(old)) = (&self.spec, &old.spec) {
            causes.extend(selector_immutable(&new.selector, &old.selector));
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
            ("replicas", s.replicas),
            ("updatedReplicas", s.updated_replicas),
            ("readyReplicas", s.ready_replicas),
            ("availableReplicas", s.available_replicas),
            ("unavailableReplicas", s.unavailable_replicas),
        ] {
            causes.extend(nonnegative_i32(&p.child(name), v));
        }
        causes
    }
}

// ---------------------------------------------------------------------------------------------
// ReplicaSet

impl Strategy for ReplicaSet {
    fn default(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        or(&mut spec.replicas, 1);
        if let Some(t) = spec.template.as_mut() {
            pod::default_template(t);
        }
    }

    fn prepare_create(&mut self) {
        self.status = Some(Default::default());
    }

    fn validate(&self) -> Vec<Cause> {
        let path = Path::new("spec");
        let Some(spec) = &self.spec else {
            return vec![field::required(&path, "")];
        };
        let mut causes = nonnegative_i32(&path.child("replicas"), spec.replicas);
        causes.extend(nonnegative_i32(
            &path.child("minReadySeconds"),
            spec.min_ready_seconds,
        ));
        causes.extend(validate_workload(
            &spec.selector,
            spec.template.as_ref(),
            &path,
            "deployment",
        ));
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = self.validate();
        if let (Some(new), Some(old)) = (&self.spec, &old.spec) {
            causes.extend(selector_immutable(&new.selector, &old.selector));
        }
        causes
    }

    fn validate_status(&self, _old: &Self) -> Vec<Cause> {
        let Some(s) = &self.status else {
            return Vec::new();
        };
        let p = Path::new("status");
        let mut causes = nonnegative_i32(&p.child("replicas"), Some(s.replicas));
        for (name, v) in [
            ("fullyLabeledReplicas", s.fully_labeled_replicas),
            ("readyReplicas", s.ready_replicas),
            ("availableReplicas", s.available_replicas),
        ] {
            causes.extend(nonnegative_i32(&p.child(name), v));
        }
        causes
    }
}
