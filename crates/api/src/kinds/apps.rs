//! apps/v1: Deployments, ReplicaSets, StatefulSets, DaemonSets and ControllerRevisions —
//! `SetDefaults_*` of apps/v1 and `pkg/apis/apps/validation`.

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

fn selector_immutable(new: &LabelSelector, old: &LabelSelector) -> Vec<Cause> {
    field::immutable(
        &Path::new("spec").child("selector"),
        new,
        old,
        selector::render(new),
    )
}

// ---------------------------------------------------------------------------------------------
// Deployment

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
                        let rp = sp.child("rollingUpdate");
                        if let Some(v) = &ru.max_unavailable {
                            causes.extend(int_or_percent(v, &rp.child("maxUnavailable"), true));
                        }
                        if let Some(v) = &ru.max_surge {
                            causes.extend(int_or_percent(v, &rp.child("maxSurge"), false));
                        }
                        if is_zero(ru.max_unavailable.as_ref()) && is_zero(ru.max_surge.as_ref()) {
                            causes.push(field::invalid(
                                &rp.child("maxUnavailable"),
                                render_int_or_string(ru.max_unavailable.as_ref()),
                                "may not be 0 when `maxSurge` is 0",
                            ));
                        }
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

// ---------------------------------------------------------------------------------------------
// DaemonSet

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
                        if let Some(v) = &ru.max_unavailable {
                            causes.extend(int_or_percent(v, &rp.child("maxUnavailable"), true));
                        }
                        if let Some(v) = &ru.max_surge {
                            causes.extend(int_or_percent(v, &rp.child("maxSurge"), true));
                        }
                        let (unavailable_zero, surge_zero) = (
                            is_zero(ru.max_unavailable.as_ref()),
                            is_zero(ru.max_surge.as_ref()),
                        );
                        if unavailable_zero && surge_zero {
                            causes.push(field::invalid(
                                &rp.child("maxUnavailable"),
                                render_int_or_string(ru.max_unavailable.as_ref()),
                                "may not be 0 when `maxSurge` is 0",
                            ));
                        } else if !unavailable_zero && !surge_zero {
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

// ---------------------------------------------------------------------------------------------
// StatefulSet

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn deploy(spec: Value) -> Deployment {
        serde_json::from_value(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "default"}, "spec": spec}))
        .unwrap_or_default()
    }

    fn lines(causes: &[Cause]) -> Vec<String> {
        causes.iter().map(Cause::to_line).collect()
    }

    #[test]
    fn deployment_defaults() {
        let mut d = deploy(json!({"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}}));
        d.default();
        assert!(d.validate().is_empty(), "{:?}", d.validate());
        let v = serde_json::to_value(&d).unwrap_or_default();
        assert_eq!(v["spec"]["replicas"], 1);
        assert_eq!(
            v["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
        );
        assert_eq!(v["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(v["spec"]["progressDeadlineSeconds"], 600);
        assert_eq!(v["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert_eq!(
            v["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
    }

    #[test]
    fn deployment_errors_as_kubernetes_words_them() {
        let mut d = deploy(json!({"replicas": -1,
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}}));
        d.default();
        assert_eq!(
            lines(&d.validate()),
            vec![
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                "spec.selector: Required value",
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
                "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0",
            ]
        );
    }

    #[test]
    fn selector_is_immutable() {
        let make = |app: &str| {
            let mut d = deploy(json!({"selector": {"matchLabels": {"app": app}},
                "template": {"metadata": {"labels": {"app": app}},
                    "spec": {"containers": [{"name": "c", "image": "x"}]}}}));
            d.default();
            d
        };
        let causes = make("b").validate_update(&make("a"));
        assert_eq!(
            lines(&causes),
            vec![
                "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"b\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
            ]
        );
    }

    #[test]
    fn statefulset_and_daemonset_defaults() {
        let mut s: StatefulSet = serde_json::from_value(json!({"apiVersion": "apps/v1",
            "kind": "StatefulSet", "metadata": {"name": "s", "namespace": "d"},
            "spec": {"serviceName": "s", "selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "x"}]}}}}))
        .unwrap_or_default();
        s.default();
        assert!(s.validate().is_empty());
        let v = serde_json::to_value(&s).unwrap_or_default();
        assert_eq!(v["spec"]["podManagementPolicy"], "OrderedReady");
        assert_eq!(
            v["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        assert_eq!(
            v["spec"]["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        let mut changed = s.clone();
        if let Some(spec) = changed.spec.as_mut() {
            spec.service_name = Some("other".into());
        }
        assert_eq!(changed.validate_update(&s).len(), 1);

        // Containers may mount the claim templates; other names must be volumes.
        let mounting = |mount: &str| -> StatefulSet {
            let mut s: StatefulSet = serde_json::from_value(json!({"apiVersion": "apps/v1",
                "kind": "StatefulSet", "metadata": {"name": "s", "namespace": "d"},
                "spec": {"serviceName": "s", "selector": {"matchLabels": {"a": "b"}},
                    "template": {"metadata": {"labels": {"a": "b"}},
                        "spec": {"containers": [{"name": "c", "image": "x",
                            "volumeMounts": [{"name": mount, "mountPath": "/data"}]}]}},
                    "volumeClaimTemplates": [{"metadata": {"name": "data"},
                        "spec": {"accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": "1Gi"}}}}]}}))
            .unwrap_or_default();
            s.default();
            s
        };
        assert!(mounting("data").validate().is_empty());
        let lines: Vec<String> = mounting("nope")
            .validate()
            .iter()
            .map(Cause::to_line)
            .collect();
        assert_eq!(
            lines,
            ["spec.template.spec.containers[0].volumeMounts[0].name: Not found: \"nope\""]
        );

        let mut ds: DaemonSet = serde_json::from_value(json!({"apiVersion": "apps/v1",
            "kind": "DaemonSet", "metadata": {"name": "s", "namespace": "d"},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "x"}]}}}}))
        .unwrap_or_default();
        ds.default();
        assert!(ds.validate().is_empty());
        let v = serde_json::to_value(&ds).unwrap_or_default();
        assert_eq!(
            v["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}})
        );
    }
}
