//! `ValidatePodSpec` and `ValidatePodTemplateSpec`: the pod-level rules (volumes, restart and DNS
//! policy, tolerations, …); each container is checked by `super::container`.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec, Toleration, Volume};
use serde_json::Value;

use super::RESTART_POLICIES;
use super::container::{host_port_conflicts, one_of, validate_container, validate_probes};
use crate::status::Cause;
use crate::validation::field::{self, Path};
use crate::validation::meta::validate_labels;
use crate::validation::names;

const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];

/// `ValidatePodTemplateSpec` for a template embedded at `path` (`spec.template`).
pub fn validate_template(template: &PodTemplateSpec, path: &Path) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Some(md) = &template.metadata {
        let labels = serde_json::to_value(&md.labels).unwrap_or(Value::Null);
        causes.extend(validate_labels(
            &labels,
            path.child("metadata").child("labels").as_str(),
        ));
    }
    match &template.spec {
        Some(spec) => causes.extend(validate_spec(spec, &path.child("spec"))),
        None => causes.push(field::required(&path.child("spec").child("containers"), "")),
    }
    causes
}

/// `ValidatePodSpec`.
pub fn validate_spec(spec: &PodSpec, path: &Path) -> Vec<Cause> {
    let mut causes = Vec::new();
    if spec.termination_grace_period_seconds.is_none() {
        causes.push(field::required(
            &path.child("terminationGracePeriodSeconds"),
            "",
        ));
    }
    let volumes = validate_volumes(
        spec.volumes.as_deref().unwrap_or_default(),
        &path.child("volumes"),
    );
    causes.extend(volumes.1);
    let volumes = volumes.0;

    // Regular containers.
    let cpath = path.child("containers");
    if spec.containers.is_empty() {
        causes.push(field::required(&cpath, ""));
    }
    let mut names = BTreeSet::new();
    for (i, c) in spec.containers.iter().enumerate() {
        let p = cpath.index(i);
        causes.extend(validate_container(c, &volumes, &p));
        if !names.insert(c.name.clone()) {
            causes.push(field::duplicate(&p.child("name"), c.name.as_str()));
        }
        causes.extend(validate_probes(c, &p));
        if c.restart_policy.is_some() {
            causes.push(field::forbidden(
                &p.child("restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }
    causes.extend(host_port_conflicts(&spec.containers, &cpath));

    // Init containers: names unique across both lists.
    let ipath = path.child("initContainers");
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let p = ipath.index(i);
        causes.extend(validate_container(c, &volumes, &p));
        let restartable = c.restart_policy.as_deref() == Some("Always");
        if let Some(rp) = c.restart_policy.as_deref()
            && rp != "Always"
        {
            causes.push(field::not_supported(
                &p.child("restartPolicy"),
                rp,
                &["Always"],
            ));
        }
        if names.contains(&c.name) {
            causes.push(field::duplicate(&p.child("name"), c.name.as_str()));
        } else if !c.name.is_empty() {
            names.insert(c.name.clone());
        }
        if restartable {
            causes.extend(validate_probes(c, &p));
        } else {
            let forbid = "may not be set for init containers without restartPolicy=Always";
            if c.lifecycle.is_some() {
                causes.push(field::forbidden(&p.child("lifecycle"), forbid));
            }
            for (name, probe) in [
                ("livenessProbe", &c.liveness_probe),
                ("readinessProbe", &c.readiness_probe),
                ("startupProbe", &c.startup_probe),
            ] {
                if probe.is_some() {
                    causes.push(field::forbidden(&p.child(name), forbid));
                }
            }
        }
    }

    if let Some(rp) = spec.restart_policy.as_deref() {
        causes.extend(one_of(&path.child("restartPolicy"), rp, RESTART_POLICIES));
    }
    if let Some(dp) = spec.dns_policy.as_deref() {
        causes.extend(one_of(&path.child("dnsPolicy"), dp, DNS_POLICIES));
        if dp == "None"
            && spec
                .dns_config
                .as_ref()
                .is_none_or(|c| c.nameservers.as_ref().is_none_or(Vec::is_empty))
        {
            causes.push(field::required(
                &path.child("dnsConfig"),
                "must provide `dnsConfig` when `dnsPolicy` is None",
            ));
        }
    }
    if let Some(sel) = &spec.node_selector {
        let json = serde_json::to_value(sel).unwrap_or_default();
        causes.extend(validate_labels(&json, path.child("nodeSelector").as_str()));
    }
    for (name, value, rule) in [
        (
            "serviceAccountName",
            &spec.service_account_name,
            names::dns1123_subdomain as fn(&str) -> Vec<String>,
        ),
        ("nodeName", &spec.node_name, names::dns1123_subdomain),
        ("hostname", &spec.hostname, names::dns1123_label),
        ("subdomain", &spec.subdomain, names::dns1123_label),
        (
            "priorityClassName",
            &spec.priority_class_name,
            names::dns1123_subdomain,
        ),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            for problem in rule(v) {
                causes.push(field::invalid(&path.child(name), v, &problem));
            }
        }
    }
    if let Some(ads) = spec.active_deadline_seconds
        && !(1..=i64::from(i32::MAX)).contains(&ads)
    {
        causes.push(field::invalid(
            &path.child("activeDeadlineSeconds"),
            ads,
            "must be between 1 and 2147483647, inclusive",
        ));
    }
    for (i, t) in spec.tolerations.iter().flatten().enumerate() {
        causes.extend(validate_toleration(t, &path.child("tolerations").index(i)));
    }
    for (i, s) in spec.image_pull_secrets.iter().flatten().enumerate() {
        if s.name.is_empty() {
            causes.push(field::required(
                &path.child("imagePullSecrets").index(i).child("name"),
                "",
            ));
        }
    }
    causes
}

/// Volume names (unique DNS labels), exactly one source each. Returns the names for mount checks.
fn validate_volumes(volumes: &[Volume], path: &Path) -> (BTreeSet<String>, Vec<Cause>) {
    let mut causes = Vec::new();
    let mut names_seen = BTreeSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let p = path.index(i);
        if v.name.is_empty() {
            causes.push(field::required(&p.child("name"), ""));
        } else {
            for problem in names::dns1123_label(&v.name) {
                causes.push(field::invalid(&p.child("name"), v.name.as_str(), &problem));
            }
            if !names_seen.insert(v.name.clone()) {
                causes.push(field::duplicate(&p.child("name"), v.name.as_str()));
            }
        }
        let json = serde_json::to_value(v).unwrap_or_default();
        let sources = json
            .as_object()
            .map(|m| m.keys().filter(|k| *k != "name").count())
            .unwrap_or(0);
        if sources == 0 {
            causes.push(field::required(&p, "must specify a volume type"));
        } else if sources > 1 {
            causes.push(field::forbidden(
                &p,
                "may not specify more than 1 volume type",
            ));
        }
        if let Some(cm) = &v.config_map
            && cm.name.is_empty()
        {
            causes.push(field::required(&p.child("configMap").child("name"), ""));
        }
        if let Some(s) = &v.secret
            && s.secret_name.as_deref().is_none_or(str::is_empty)
        {
            causes.push(field::required(&p.child("secret").child("secretName"), ""));
        }
        if let Some(pvc) = &v.persistent_volume_claim
            && pvc.claim_name.is_empty()
        {
            causes.push(field::required(
                &p.child("persistentVolumeClaim").child("claimName"),
                "",
            ));
        }
        if let Some(h) = &v.host_path
            && h.path.is_empty()
        {
            causes.push(field::required(&p.child("hostPath").child("path"), ""));
        }
    }
    (names_seen, causes)
}

fn validate_toleration(t: &Toleration, path: &Path) -> Vec<Cause> {
    let mut causes = Vec::new();
    let key = t.key.as_deref().unwrap_or_default();
    let op = t.operator.as_deref().unwrap_or_default();
    if !key.is_empty() {
        for problem in names::qualified_name(key) {
            causes.push(field::invalid(&path.child("key"), key, &problem));
        }
    }
    if key.is_empty() && op != "Exists" {
        causes.push(field::invalid(
            &path.child("operator"),
            op,
            "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
        ));
    }
    let effect = t.effect.as_deref().unwrap_or_default();
    if t.toleration_seconds.is_some() && effect != "NoExecute" {
        causes.push(field::invalid(
            &path.child("effect"),
            effect,
            "effect must be 'NoExecute' when `tolerationSeconds` is set",
        ));
    }
    let value = t.value.as_deref().unwrap_or_default();
    match op {
        "" | "Equal" => {
            let problems = names::label_value(value);
            if !problems.is_empty() {
                causes.push(field::invalid(
                    &path.child("operator"),
                    value,
                    &problems.join(";"),
                ));
            }
        }
        "Exists" if !value.is_empty() => causes.push(field::invalid(
            &path.child("operator"),
            value,
            "value must be empty when `operator` is 'Exists'",
        )),
        "Exists" => {}
        other => causes.push(field::not_supported(
            &path.child("operator"),
            other,
            &["Equal", "Exists"],
        )),
    }
    if !effect.is_empty() && !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
        causes.push(field::not_supported(
            &path.child("effect"),
            effect,
            &["NoSchedule", "PreferNoSchedule", "NoExecute"],
        ));
    }
    causes
}
