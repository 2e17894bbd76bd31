//! Pods and pod templates: `SetDefaults_PodSpec`/`_Container`/`_Probe`/… and `ValidatePodSpec`
//! with its container, port, env, volume and probe rules. Templates (Deployments, Jobs, …) use
//! [`default_template`] and [`validate_template`]; Pods add their own create/update rules.
//!
//! Start with [`default_spec`]; validation lives in `validate` (the spec, volumes, tolerations) and
//! `container` (one container: ports, env, resources, probes).

mod container;
#[cfg(test)]
mod tests;
mod validate;

pub use container::port_num_or_name;
pub use validate::{validate_spec, validate_template};

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, HTTPGetAction, LifecycleHandler, Pod, PodSpec, PodStatus,
    PodTemplateSpec, Probe, ResourceRequirements, Toleration, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use super::{Strategy, or, or_str};
use crate::quantity::Quantity;
use crate::status::Cause;
use crate::validation::field::{self, Path};
use crate::validation::names;

pub const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
/// Mode 0644, the default of configMap, secret, downwardAPI and projected volumes.
const DEFAULT_FILE_MODE: i32 = 0o644;

// ---------------------------------------------------------------------------------------------
// Defaults

/// `SetDefaults_PodSpec` and everything nested in it.
pub fn default_spec(spec: &mut PodSpec) {
    or_str(&mut spec.dns_policy, "ClusterFirst");
    or_str(&mut spec.restart_policy, "Always");
    or(&mut spec.termination_grace_period_seconds, 30);
    or(&mut spec.security_context, Default::default());
    or_str(&mut spec.scheduler_name, "default-scheduler");
    or(&mut spec.enable_service_links, true);
    let host_network = spec.host_network == Some(true);
    for c in spec.containers.iter_mut() {
        default_container(c, host_network);
    }
    for c in spec.init_containers.iter_mut().flatten() {
        default_container(c, host_network);
    }
    for v in spec.volumes.iter_mut().flatten() {
        default_volume(v);
    }
    // A service account named only the deprecated way is the same account.
    if spec
        .service_account_name
        .as_deref()
        .is_none_or(str::is_empty)
        && let Some(sa) = spec.service_account.clone().filter(|s| !s.is_empty())
    {
        spec.service_account_name = Some(sa);
    }
}

/// Defaults of an embedded pod template (`SetDefaults_PodTemplateSpec`).
pub fn default_template(template: &mut PodTemplateSpec) {
    if let Some(spec) = template.spec.as_mut() {
        default_spec(spec);
    }
}

/// `SetDefaults_Container`: pull policy from the image tag, termination message, ports, probes,
/// handlers, downward API field references.
pub fn default_container(c: &mut Container, host_network: bool) {
    if c.image_pull_policy.as_deref().is_none_or(str::is_empty) {
        let policy = pull_policy_for(c.image.as_deref().unwrap_or_default());
        c.image_pull_policy = Some(policy.into());
    }
    or_str(&mut c.termination_message_path, "/dev/termination-log");
    or_str(&mut c.termination_message_policy, "File");
    for p in c.ports.iter_mut().flatten() {
        default_port(p, host_network);
    }
    for probe in [
        &mut c.liveness_probe,
        &mut c.readiness_probe,
        &mut c.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        default_probe(probe);
    }
    if let Some(lc) = c.lifecycle.as_mut() {
        for h in [&mut lc.post_start, &mut lc.pre_stop].into_iter().flatten() {
            default_handler(h);
        }
    }
    for e in c.env.iter_mut().flatten() {
        default_env(e);
    }
    // Limits without requests request the limit (`SetDefaults_Pod`, applied to templates too
    // so that what a controller creates matches what a Pod gets).
    if let Some(res) = c.resources.as_mut() {
        default_requests(res);
    }
}

fn default_requests(res: &mut ResourceRequirements) {
    let Some(limits) = res.limits.clone().filter(|l| !l.is_empty()) else {
        return;
    };
    let requests = res.requests.get_or_insert_with(BTreeMap::new);
    for (name, q) in limits {
        requests.entry(name).or_insert(q);
    }
}

/// `Always` for `:latest` or untagged images, `IfNotPresent` otherwise (digests included).
pub fn pull_policy_for(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, tag)) if tag != "latest" => "IfNotPresent",
        _ => "Always",
    }
}

fn default_port(p: &mut ContainerPort, host_network: bool) {
    or_str(&mut p.protocol, "TCP");
    if host_network && p.host_port.unwrap_or(0) == 0 {
        p.host_port = Some(p.container_port);
    }
}

fn default_http_get(h: &mut HTTPGetAction) {
    or_str(&mut h.path, "/");
    or_str(&mut h.scheme, "HTTP");
}

fn default_probe(p: &mut Probe) {
    or(&mut p.timeout_seconds, 1);
    or(&mut p.period_seconds, 10);
    or(&mut p.success_threshold, 1);
    or(&mut p.failure_threshold, 3);
    if let Some(h) = p.http_get.as_mut() {
        default_http_get(h);
    }
}

fn default_handler(h: &mut LifecycleHandler) {
    if let Some(g) = h.http_get.as_mut() {
        default_http_get(g);
    }
}

fn default_env(e: &mut EnvVar) {
    if let Some(f) = e.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
        or_str(&mut f.api_version, "v1");
    }
}

/// `SetDefaults_Volume` and the sources' defaults: a volume without a source is an emptyDir.
fn default_volume(v: &mut Volume) {
    let as_json = serde_json::to_value(&*v).unwrap_or_default();
    let has_source = as_json
        .as_object()
        .is_some_and(|m| m.keys().any(|k| k != "name"));
    if !has_source {
        v.empty_dir = Some(Default::default());
    }
    if let Some(s) = v.secret.as_mut() {
        or(&mut s.default_mode, DEFAULT_FILE_MODE);
    }
    if let Some(s) = v.config_map.as_mut() {
        or(&mut s.default_mode, DEFAULT_FILE_MODE);
    }
    if let Some(s) = v.downward_api.as_mut() {
        or(&mut s.default_mode, DEFAULT_FILE_MODE);
        for item in s.items.iter_mut().flatten() {
            if let Some(f) = item.field_ref.as_mut() {
                or_str(&mut f.api_version, "v1");
            }
        }
    }
    if let Some(s) = v.projected.as_mut() {
        or(&mut s.default_mode, DEFAULT_FILE_MODE);
        for src in s.sources.iter_mut().flatten() {
            if let Some(t) = src.service_account_token.as_mut() {
                or(&mut t.expiration_seconds, 3600);
            }
        }
    }
    if let Some(h) = v.host_path.as_mut() {
        or_str(&mut h.type_, "");
    }
}

/// What admission plugins add to every new Pod: the `default` service account
/// (ServiceAccount), priority 0 (Priority) and the not-ready/unreachable tolerations
/// (DefaultTolerationSeconds).
fn admit_pod(spec: &mut PodSpec) {
    or_str(&mut spec.service_account_name, "default");
    let sa = spec.service_account_name.clone();
    spec.service_account = sa;
    if spec
        .priority_class_name
        .as_deref()
        .is_none_or(str::is_empty)
    {
        or(&mut spec.priority, 0);
    }
    or_str(&mut spec.preemption_policy, "PreemptLowerPriority");
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let present = tolerations.iter().any(|t| {
            (t.key.as_deref() == Some(key) || t.key.as_deref().is_none_or(str::is_empty))
                && t.effect
                    .as_deref()
                    .is_none_or(|e| e.is_empty() || e == "NoExecute")
        });
        if !present {
            tolerations.push(Toleration {
                key: Some(key.into()),
                operator: Some("Exists".into()),
                effect: Some("NoExecute".into()),
                toleration_seconds: Some(300),
                value: None,
            });
        }
    }
}

/// The Pod's QoS class (`GetPodQOS`): Guaranteed when every container limits cpu and memory at
/// its requests, BestEffort when nothing is requested or limited, Burstable otherwise.
pub fn qos_class(spec: &PodSpec) -> &'static str {
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    let mut any = false;
    let mut guaranteed = true;
    for c in containers {
        let res = c.resources.clone().unwrap_or_default();
        let requests = res.requests.unwrap_or_default();
        let limits = res.limits.unwrap_or_default();
        let counts = |m: &BTreeMap<String, ApiQuantity>| {
            m.iter().any(|(k, q)| {
                (k == "cpu" || k == "memory")
                    && Quantity::parse(&q.0).is_ok_and(|q| q != Quantity::ZERO)
            })
        };
        if counts(&requests) || counts(&limits) {
            any = true;
        }
        for r in ["cpu", "memory"] {
            let limit = limits.get(r).and_then(|q| Quantity::parse(&q.0).ok());
            let request = requests
                .get(r)
                .and_then(|q| Quantity::parse(&q.0).ok())
                .or(limit);
            if limit.is_none() || limit != request {
                guaranteed = false;
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}
// ---------------------------------------------------------------------------------------------
// The Pod kind

const POD_UPDATE_FORBIDDEN: &str = "pod updates may not change fields other than \
    `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,\
    `spec.tolerations` (only additions to existing tolerations),\
    `spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

impl Strategy for Pod {
    fn default(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        default_spec(spec);
        admit_pod(spec);
    }

    fn prepare_create(&mut self) {
        let qos = self.spec.as_ref().map(qos_class).unwrap_or("BestEffort");
        self.status = Some(PodStatus {
            phase: Some("Pending".into()),
            qos_class: Some(qos.into()),
            ..Default::default()
        });
    }

    fn validate(&self) -> Vec<Cause> {
        let spec_path = Path::new("spec");
        let Some(spec) = &self.spec else {
            return vec![field::required(&spec_path.child("containers"), "")];
        };
        validate_spec(spec, &spec_path)
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = self.validate();
        let (Some(new_spec), Some(old_spec)) = (&self.spec, &old.spec) else {
            return causes;
        };
        // Everything but the mutable fields must be as it was.
        let mut comparable = new_spec.clone();
        for (c, o) in comparable.containers.iter_mut().zip(&old_spec.containers) {
            c.image.clone_from(&o.image);
        }
        for (c, o) in comparable
            .init_containers
            .iter_mut()
            .flatten()
            .zip(old_spec.init_containers.iter().flatten())
        {
            c.image.clone_from(&o.image);
        }
        comparable.active_deadline_seconds = old_spec.active_deadline_seconds;
        let old_tolerations = old_spec.tolerations.clone().unwrap_or_default();
        let new_tolerations = new_spec.tolerations.clone().unwrap_or_default();
        let only_added = old_tolerations.iter().all(|t| new_tolerations.contains(t));
        if only_added {
            comparable.tolerations.clone_from(&old_spec.tolerations);
        }
        if old_spec
            .termination_grace_period_seconds
            .is_some_and(|g| g < 0)
            && new_spec.termination_grace_period_seconds == Some(1)
        {
            comparable.termination_grace_period_seconds = old_spec.termination_grace_period_seconds;
        }
        if comparable != *old_spec {
            causes.push(field::forbidden(&Path::new("spec"), POD_UPDATE_FORBIDDEN));
        }
        if let (Some(new_ads), Some(old_ads)) = (
            new_spec.active_deadline_seconds,
            old_spec.active_deadline_seconds,
        ) && new_ads > old_ads
        {
            causes.push(field::invalid(
                &Path::new("spec").child("activeDeadlineSeconds"),
                new_ads,
                "must be less than or equal to previous value",
            ));
        }
        causes
    }

    fn validate_status(&self, _old: &Self) -> Vec<Cause> {
        let mut causes = Vec::new();
        let Some(status) = &self.status else {
            return causes;
        };
        let path = Path::new("status");
        for (i, ip) in status.pod_ips.iter().flatten().enumerate() {
            for problem in names::ip(&ip.ip) {
                causes.push(field::invalid(
                    &path.child("podIPs").index(i),
                    ip.ip.as_str(),
                    &problem,
                ));
            }
        }
        if let Some(ip) = status.pod_ip.as_deref().filter(|s| !s.is_empty()) {
            for problem in names::ip(ip) {
                causes.push(field::invalid(&path.child("podIP"), ip, &problem));
            }
        }
        if let Some(n) = status
            .nominated_node_name
            .as_deref()
            .filter(|s| !s.is_empty())
        {
            for problem in names::dns1123_subdomain(n) {
                causes.push(field::invalid(
                    &path.child("nominatedNodeName"),
                    n,
                    &problem,
                ));
            }
        }
        causes
    }
}

impl Strategy for k8s_openapi::api::core::v1::PodTemplate {
    fn default(&mut self) {
        if let Some(t) = self.template.as_mut() {
            default_template(t);
        }
    }
    fn validate(&self) -> Vec<Cause> {
        match &self.template {
            Some(t) => validate_template(t, &Path::new("template")),
            None => vec![field::required(&Path::new("template"), "")],
        }
    }
}
