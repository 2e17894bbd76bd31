//! DaemonSet defaults and validation.

use super::*;

impl Strategy for DaemonSet {
    fn default(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        let strategy = spec
            .update_strategy
            .get_or_insert_with(DaemonSetUpdateStrategy::default);
        or_str(&mut strategy.type_, "RollingUpdate");
        if strategy.type_.as_deref() == Some("RollingUpdate") {
            let ru = strategy
                .rolling_update
                .get_or_insert_with(RollingUpdateDaemonSet::default);
            or(&mut ru.max_unavailable, IntOrString::Int(1));
            or(&mut ru.max_surge, IntOrString::Int(0));
        }
        or(&mut spec.revision_history_limit, DEFAULT_REVISION_HISTORY);
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
        let mut causes =
            validate_workload(&spec.selector, Some(&spec.template), &path, "daemonset");
        causes.extend(nonnegative_i32(
            &path.child("minReadySeconds"),
            spec.min_ready_seconds,
        ));
        causes.extend(nonnegative_i32(
            &path.child("revisionHistoryLimit"),
            spec.revision_history_limit,
        ));
        if let Some(strategy) = &spec.update_strategy {
            let sp = path.child("updateStrategy");
            match strategy.type_.as_deref().unwrap_or_default() {
                "OnDelete" => {}
                "RollingUpdate" => {
                    if let Some(ru) = &strategy.rolling_update {
                        let rp = sp.child("rollingUpdate");
                        causes.extend(validate_rolling_update(
                            ru.max_unavailable.as_ref(),
                            ru.max_surge.as_ref(),
                            &rp,
                            true,
                        ));
                        // A DaemonSet surges or takes pods down, never both.
                        if !is_zero(ru.max_unavailable.as_ref()) && !is_zero(ru.max_surge.as_ref())
                        {
                            causes.push(field::invalid(
                                &rp.child("maxSurge"),
                                render_int_or_string(ru.max_surge.as_ref()),
                                "may not be set when maxUnavailable is non-zero",
                            ));
                        }
                    }
                }
                "" => causes.push(field::required(&sp.child("type"), "")),
                other => causes.push(field::not_supported(
                    &sp.child("type"),
                    other,
                    &["OnDelete", "RollingUpdate"],
                )),
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
}
