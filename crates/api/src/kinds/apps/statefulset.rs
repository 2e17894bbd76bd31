//! StatefulSet defaults and validation.

use super::*;

const STATEFULSET_UPDATE_FORBIDDEN: &str = "updates to statefulset spec for fields other than \
    'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', \
    'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden";

impl Strategy for StatefulSet {
    fn default(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        or(&mut spec.replicas, 1);
        or_str(&mut spec.pod_management_policy, "OrderedReady");
        let strategy = spec
            .update_strategy
            .get_or_insert_with(StatefulSetUpdateStrategy::default);
        or_str(&mut strategy.type_, "RollingUpdate");
        if strategy.type_.as_deref() == Some("RollingUpdate") {
            let ru = strategy
                .rolling_update
                .get_or_insert_with(RollingUpdateStatefulSetStrategy::default);
            or(&mut ru.partition, 0);
        }
        or(&mut spec.revision_history_limit, DEFAULT_REVISION_HISTORY);
        let retention = spec
            .persistent_volume_claim_retention_policy
            .get_or_insert_with(StatefulSetPersistentVolumeClaimRetentionPolicy::default);
        or_str(&mut retention.when_deleted, "Retain");
        or_str(&mut retention.when_scaled, "Retain");
        for claim in spec.volume_claim_templates.iter_mut().flatten() {
            if let Some(s) = claim.spec.as_mut() {
                or_str(&mut s.volume_mode, "Filesystem");
            }
            claim.status.get_or_insert_with(Default::default).phase = Some("Pending".into());
        }
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
        // Containers mount the claim templates by name: validate the template as the pods will
        // be, with a persistentVolumeClaim volume per claim template (what the controller adds).
        let mut template = spec.template.clone();
        let pod_spec = template.spec.get_or_insert_with(Default::default);
        let volumes = pod_spec.volumes.get_or_insert_with(Vec::new);
        for claim in spec.volume_claim_templates.iter().flatten() {
            let name = claim.metadata.name.clone().unwrap_or_default();
            if !name.is_empty() && !volumes.iter().any(|v| v.name == name) {
                volumes.push(k8s_openapi::api::core::v1::Volume {
                    name: name.clone(),
                    persistent_volume_claim: Some(
                        k8s_openapi::api::core::v1::PersistentVolumeClaimVolumeSource {
                            claim_name: name,
                            read_only: None,
                        },
                    ),
                    ..Default::default()
                });
            }
        }
        causes.extend(validate_workload(
            &spec.selector,
            Some(&template),
            &path,
            "statefulset",
        ));
        causes.extend(nonnegative_i32(
            &path.child("minReadySeconds"),
            spec.min_ready_seconds,
        ));
        causes.extend(nonnegative_i32(
            &path.child("revisionHistoryLimit"),
            spec.revision_history_limit,
        ));
        if let Some(p) = spec.pod_management_policy.as_deref() {
            match p {
                "OrderedReady" | "Parallel" => {}
                "" => causes.push(field::required(&path.child("podManagementPolicy"), "")),
                other => causes.push(field::invalid(
                    &path.child("podManagementPolicy"),
                    other,
                    "must be 'OrderedReady' or 'Parallel'",
                )),
            }
        }
        if let Some(strategy) = &spec.update_strategy {
            let sp = path.child("updateStrategy");
            match strategy.type_.as_deref().unwrap_or_default() {
                "OnDelete" => {
                    if strategy.rolling_update.is_some() {
                        causes.push(field::invalid(
                            &sp.child("rollingUpdate"),
                            "",
                            "only allowed for updateStrategy 'RollingUpdate'",
                        ));
                    }
                }
                "RollingUpdate" => {
                    if let Some(ru) = &strategy.rolling_update {
                        causes.extend(nonnegative_i32(
                            &sp.child("rollingUpdate").child("partition"),
                            ru.partition,
                        ));
                    }
                }
                "" => causes.push(field::required(&sp, "")),
                other => causes.push(field::invalid(
                    &sp,
                    other,
                    "must be 'RollingUpdate' or 'OnDelete'",
                )),
            }
        }
        if let Some(name) = spec.service_name.as_deref().filter(|n| !n.is_empty()) {
            for problem in crate::validation::names::dns1123_label(name) {
                causes.push(field::invalid(&path.child("serviceName"), name, &problem));
            }
        }
        for (i, claim) in spec.volume_claim_templates.iter().flatten().enumerate() {
            let name = claim.metadata.name.as_deref().unwrap_or_default();
            let p = path
                .child("volumeClaimTemplates")
                .index(i)
                .child("metadata")
                .child("name");
            if name.is_empty() {
                causes.push(field::required(&p, ""));
            }
            for problem in crate::validation::names::dns1123_subdomain(name) {
                if !name.is_empty() {
                    causes.push(field::invalid(&p, name, &problem));
                }
            }
        }
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = self.validate();
        if let (Some(new), Some(old)) = (&self.spec, &old.spec) {
            let mut comparable = new.clone();
            comparable.replicas = old.replicas;
            comparable.ordinals.clone_from(&old.ordinals);
            comparable.template.clone_from(&old.template);
            comparable.update_strategy.clone_from(&old.update_strategy);
            comparable.revision_history_limit = old.revision_history_limit;
            comparable
                .persistent_volume_claim_retention_policy
                .clone_from(&old.persistent_volume_claim_retention_policy);
            comparable.min_ready_seconds = old.min_ready_seconds;
            // Claim templates are compared without their (server-set) status.
            let strip = |s: &mut k8s_openapi::api::apps::v1::StatefulSetSpec| {
                for c in s.volume_claim_templates.iter_mut().flatten() {
                    c.status = None;
                }
            };
            let mut old_cmp = old.clone();
            strip(&mut comparable);
            strip(&mut old_cmp);
            if comparable != old_cmp {
                causes.push(field::forbidden(
                    &Path::new("spec"),
                    STATEFULSET_UPDATE_FORBIDDEN,
                ));
            }
        }
        causes
    }
}
