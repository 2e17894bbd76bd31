//! Pods and pod templates: `SetDefaults_PodSpec`/`_Container`/`_Probe`/… and `ValidatePodSpec`
//! with its container, port, env, volume and probe rules. Templates (Deployments, Jobs, …) use
//! [`default_template`] and [`validate_template`]; Pods add their own create/update rules.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, HTTPGetAction, LifecycleHandler, Pod, PodSpec, PodStatus,
    PodTemplateSpec, Probe, ResourceRequirements, Toleration, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::{Strategy, or, or_str};
use crate::quantity::Quantity;
use crate::status::Cause;
use crate::validation::field::{self, Path};
use crate::validation::meta::validate_labels;
use crate::validation::names;

pub const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const TERMINATION_MESSAGE_POLICIES: &[&str] = &["File", "FallbackToLogsOnError"];
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
// Validation

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

fn one_of(path: &Path, value: &str, allowed: &[&str]) -> Vec<Cause> {
    if value.is_empty() {
        vec![field::required(path, "")]
    } else if !allowed.contains(&value) {
        vec![field::not_supported(path, value, allowed)]
    } else {
        Vec::new()
    }
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

/// `validateContainerCommon`: name, image, termination message policy, ports, env, mounts, pull
/// policy, resources.
fn validate_container(c: &Container, volumes: &BTreeSet<String>, path: &Path) -> Vec<Cause> {
    let mut causes = Vec::new();
    if c.name.is_empty() {
        causes.push(field::required(&path.child("name"), ""));
    } else {
        for problem in names::dns1123_label(&c.name) {
            causes.push(field::invalid(
                &path.child("name"),
                c.name.as_str(),
                &problem,
            ));
        }
    }
    match c.image.as_deref() {
        None | Some("") => causes.push(field::required(&path.child("image"), "")),
        Some(image) if image.trim() != image => causes.push(field::invalid(
            &path.child("image"),
            image,
            "must not have leading or trailing whitespace",
        )),
        Some(_) => {}
    }
    causes.extend(one_of(
        &path.child("terminationMessagePolicy"),
        c.termination_message_policy.as_deref().unwrap_or_default(),
        TERMINATION_MESSAGE_POLICIES,
    ));
    causes.extend(validate_ports(
        c.ports.as_deref().unwrap_or_default(),
        &path.child("ports"),
    ));
    for (i, e) in c.env.iter().flatten().enumerate() {
        let p = path.child("env").index(i);
        if e.name.is_empty() {
            causes.push(field::required(&p.child("name"), ""));
        } else {
            for problem in names::env_var_name(&e.name) {
                causes.push(field::invalid(&p.child("name"), e.name.as_str(), &problem));
            }
        }
        if let Some(from) = &e.value_from {
            let sources = [
                from.field_ref.is_some(),
                from.resource_field_ref.is_some(),
                from.config_map_key_ref.is_some(),
                from.secret_key_ref.is_some(),
            ]
            .iter()
            .filter(|s| **s)
            .count();
            let vp = p.child("valueFrom");
            if sources == 0 {
                causes.push(field::invalid(
                    &vp,
                    "",
                    "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
                ));
            } else if e.value.as_deref().is_some_and(|v| !v.is_empty()) {
                causes.push(field::invalid(
                    &vp,
                    "",
                    "may not be specified when `value` is not empty",
                ));
            } else if sources > 1 {
                causes.push(field::invalid(
                    &vp,
                    "",
                    "may not have more than one field specified at a time",
                ));
            }
            if let Some(f) = &from.field_ref
                && f.field_path.is_empty()
            {
                causes.push(field::required(
                    &vp.child("fieldRef").child("fieldPath"),
                    "",
                ));
            }
            for (name, key) in [
                (
                    "configMapKeyRef",
                    from.config_map_key_ref.as_ref().map(|r| &r.key),
                ),
                ("secretKeyRef", from.secret_key_ref.as_ref().map(|r| &r.key)),
            ] {
                if let Some(key) = key {
                    let kp = vp.child(name).child("key");
                    if key.is_empty() {
                        causes.push(field::required(&kp, ""));
                    } else {
                        for problem in names::config_map_key(key) {
                            causes.push(field::invalid(&kp, key.as_str(), &problem));
                        }
                    }
                }
            }
        }
    }
    for (i, e) in c.env_from.iter().flatten().enumerate() {
        let sources = usize::from(e.config_map_ref.is_some()) + usize::from(e.secret_ref.is_some());
        if sources == 0 {
            causes.push(field::invalid(
                &path.child("envFrom"),
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        } else if sources > 1 {
            causes.push(field::invalid(
                &path.child("envFrom"),
                "",
                "may not have more than one field specified at a time",
            ));
        }
        let p = path.child("envFrom").index(i);
        if e.config_map_ref.as_ref().is_some_and(|r| r.name.is_empty()) {
            causes.push(field::required(&p.child("configMapRef").child("name"), ""));
        }
        if e.secret_ref.as_ref().is_some_and(|r| r.name.is_empty()) {
            causes.push(field::required(&p.child("secretRef").child("name"), ""));
        }
    }
    let mut mount_paths = BTreeSet::new();
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let p = path.child("volumeMounts").index(i);
        if m.name.is_empty() {
            causes.push(field::required(&p.child("name"), ""));
        }
        if !volumes.contains(&m.name) {
            causes.push(field::not_found(&p.child("name"), m.name.as_str()));
        }
        if m.mount_path.is_empty() {
            causes.push(field::required(&p.child("mountPath"), ""));
        }
        if !mount_paths.insert(m.mount_path.clone()) {
            causes.push(field::invalid(
                &p.child("mountPath"),
                m.mount_path.as_str(),
                "must be unique",
            ));
        }
    }
    causes.extend(one_of(
        &path.child("imagePullPolicy"),
        c.image_pull_policy.as_deref().unwrap_or_default(),
        PULL_POLICIES,
    ));
    if let Some(res) = &c.resources {
        causes.extend(validate_resources(res, &path.child("resources")));
    }
    causes
}

/// `validateContainerPorts`: names are unique IANA service names, numbers in range, protocols known.
fn validate_ports(ports: &[ContainerPort], path: &Path) -> Vec<Cause> {
    let mut causes = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = path.index(i);
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            let problems = names::port_name(name);
            if !problems.is_empty() {
                for problem in problems {
                    causes.push(field::invalid(&p.child("name"), name, &problem));
                }
            } else if !seen.insert(name.to_string()) {
                causes.push(field::duplicate(&p.child("name"), name));
            }
        }
        if port.container_port == 0 {
            causes.push(field::required(&p.child("containerPort"), ""));
        } else {
            for problem in names::port_num(i64::from(port.container_port)) {
                causes.push(field::invalid(
                    &p.child("containerPort"),
                    port.container_port,
                    &problem,
                ));
            }
        }
        if let Some(hp) = port.host_port.filter(|h| *h != 0) {
            for problem in names::port_num(i64::from(hp)) {
                causes.push(field::invalid(&p.child("hostPort"), hp, &problem));
            }
        }
        match port.protocol.as_deref() {
            None | Some("") => causes.push(field::required(&p.child("protocol"), "")),
            Some(proto) if !PROTOCOLS.contains(&proto) => {
                causes.push(field::not_supported(&p.child("protocol"), proto, PROTOCOLS));
            }
            Some(_) => {}
        }
    }
    causes
}

/// `checkHostPortConflicts`: one host port per protocol and host IP across the containers.
fn host_port_conflicts(containers: &[Container], path: &Path) -> Vec<Cause> {
    let mut causes = Vec::new();
    let mut seen = BTreeSet::new();
    for (ci, c) in containers.iter().enumerate() {
        for (pi, port) in c.ports.iter().flatten().enumerate() {
            let Some(hp) = port.host_port.filter(|h| *h != 0) else {
                continue;
            };
            let key = format!(
                "{}/{}/{hp}",
                port.protocol.as_deref().unwrap_or("TCP"),
                port.host_ip.as_deref().unwrap_or_default()
            );
            if !seen.insert(key.clone()) {
                let p = path.index(ci).child("ports").index(pi).child("hostPort");
                causes.push(field::duplicate(&p, key));
            }
        }
    }
    causes
}

/// Resource names, quantities, and requests not above limits.
fn validate_resources(res: &ResourceRequirements, path: &Path) -> Vec<Cause> {
    let mut causes = Vec::new();
    let mut parsed = |kind: &str, map: &Option<BTreeMap<String, ApiQuantity>>| {
        let mut out = BTreeMap::new();
        for (name, q) in map.iter().flatten() {
            let p = path.child(kind).key(name);
            for problem in names::qualified_name(name) {
                causes.push(field::invalid(&p, name.as_str(), &problem));
            }
            match Quantity::parse(&q.0) {
                Ok(v) if v.is_negative() => {
                    causes.push(field::invalid(&p, q.0.as_str(), field::NEGATIVE));
                }
                Ok(v) => {
                    out.insert(name.clone(), (v, q.0.clone()));
                }
                Err(e) => causes.push(field::invalid(&p, q.0.as_str(), &e.to_string())),
            }
        }
        out
    };
    let limits = parsed("limits", &res.limits);
    let requests = parsed("requests", &res.requests);
    for (name, (req, req_text)) in &requests {
        if let Some((limit, limit_text)) = limits.get(name)
            && req > limit
        {
            causes.push(field::invalid(
                &path.child("requests").key(name),
                req_text.as_str(),
                &format!("must be less than or equal to {name} limit of {limit_text}"),
            ));
        }
    }
    causes
}

fn validate_probes(c: &Container, path: &Path) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (name, probe) in [
        ("livenessProbe", &c.liveness_probe),
        ("readinessProbe", &c.readiness_probe),
        ("startupProbe", &c.startup_probe),
    ] {
        let Some(probe) = probe else { continue };
        let p = path.child(name);
        let handlers = [
            probe.exec.is_some(),
            probe.http_get.is_some(),
            probe.tcp_socket.is_some(),
            probe.grpc.is_some(),
        ]
        .iter()
        .filter(|h| **h)
        .count();
        if handlers == 0 {
            causes.push(field::required(&p, "must specify a handler type"));
        } else if handlers > 1 {
            causes.push(field::forbidden(
                &p,
                "may not specify more than 1 handler type",
            ));
        }
        if let Some(exec) = &probe.exec
            && exec.command.as_ref().is_none_or(Vec::is_empty)
        {
            causes.push(field::required(&p.child("exec").child("command"), ""));
        }
        if let Some(h) = &probe.http_get {
            causes.extend(port_num_or_name(&h.port, &p.child("httpGet").child("port")));
        }
        if let Some(t) = &probe.tcp_socket {
            causes.extend(port_num_or_name(
                &t.port,
                &p.child("tcpSocket").child("port"),
            ));
        }
        for (f, v) in [
            ("initialDelaySeconds", probe.initial_delay_seconds),
            ("timeoutSeconds", probe.timeout_seconds),
            ("periodSeconds", probe.period_seconds),
            ("successThreshold", probe.success_threshold),
            ("failureThreshold", probe.failure_threshold),
        ] {
            causes.extend(field::nonnegative(&p.child(f), v.map(i64::from)));
        }
        if name != "readinessProbe" && probe.success_threshold.is_some_and(|s| s != 1) {
            causes.push(field::invalid(
                &p.child("successThreshold"),
                probe.success_threshold.unwrap_or(0),
                "must be 1",
            ));
        }
    }
    causes
}

/// `ValidatePortNumOrName`.
pub fn port_num_or_name(port: &IntOrString, path: &Path) -> Vec<Cause> {
    match port {
        IntOrString::Int(n) => names::port_num(i64::from(*n))
            .into_iter()
            .map(|p| field::invalid(path, *n, &p))
            .collect(),
        IntOrString::String(s) => names::port_name(s)
            .into_iter()
            .map(|p| field::invalid(path, s.as_str(), &p))
            .collect(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: Value) -> Pod {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default"}, "spec": spec}))
        .unwrap_or_default()
    }

    fn lines(causes: &[Cause]) -> Vec<String> {
        causes.iter().map(Cause::to_line).collect()
    }

    #[test]
    fn defaults_match_kubernetes() {
        let mut p = pod(json!({"containers": [{"name": "web", "image": "nginx",
            "ports": [{"containerPort": 80}],
            "readinessProbe": {"httpGet": {"port": 80}},
            "resources": {"limits": {"cpu": "1"}}}],
            "volumes": [{"name": "data"}, {"name": "cfg", "configMap": {"name": "c"}}]}));
        p.default();
        p.prepare_create();
        let v = serde_json::to_value(&p).unwrap_or_default();
        let spec = &v["spec"];
        assert_eq!(spec["restartPolicy"], "Always");
        assert_eq!(spec["dnsPolicy"], "ClusterFirst");
        assert_eq!(spec["terminationGracePeriodSeconds"], 30);
        assert_eq!(spec["schedulerName"], "default-scheduler");
        assert_eq!(spec["serviceAccountName"], "default");
        assert_eq!(spec["enableServiceLinks"], true);
        assert_eq!(spec["securityContext"], json!({}));
        assert_eq!(spec["tolerations"].as_array().map(Vec::len), Some(2));
        let c = &spec["containers"][0];
        assert_eq!(c["imagePullPolicy"], "Always");
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c["terminationMessagePolicy"], "File");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/");
        assert_eq!(c["readinessProbe"]["httpGet"]["scheme"], "HTTP");
        assert_eq!(c["readinessProbe"]["periodSeconds"], 10);
        assert_eq!(c["resources"]["requests"]["cpu"], "1");
        assert_eq!(spec["volumes"][0]["emptyDir"], json!({}));
        assert_eq!(spec["volumes"][1]["configMap"]["defaultMode"], 420);
        assert_eq!(v["status"]["phase"], "Pending");
        assert_eq!(v["status"]["qosClass"], "Burstable");
        assert_eq!(pull_policy_for("nginx:1.27"), "IfNotPresent");
        assert_eq!(pull_policy_for("localhost:5000/app"), "Always");
        assert_eq!(pull_policy_for("app@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut p = pod(json!({"restartPolicy": "Sometimes", "containers": [
            {"name": "a", "image": "x", "ports": [
                {"name": "http", "containerPort": 70000},
                {"name": "http", "containerPort": 81, "protocol": "XTP"}]},
            {"name": "a", "volumeMounts": [{"name": "nope", "mountPath": "/x"}],
             "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}]}));
        p.default();
        assert_eq!(
            lines(&p.validate()),
            vec![
                "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.containers[0].ports[1].name: Duplicate value: \"http\"",
                "spec.containers[0].ports[1].protocol: Unsupported value: \"XTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                "spec.containers[1].image: Required value",
                "spec.containers[1].volumeMounts[0].name: Not found: \"nope\"",
                "spec.containers[1].resources.requests[cpu]: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
                "spec.containers[1].name: Duplicate value: \"a\"",
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
            ]
        );
        let mut empty = pod(json!({"containers": []}));
        empty.default();
        assert_eq!(
            lines(&empty.validate()),
            vec!["spec.containers: Required value"]
        );
    }

    #[test]
    fn pod_updates_only_change_images_and_deadlines() {
        let mut old = pod(json!({"containers": [{"name": "a", "image": "x:1"}]}));
        old.default();
        let mut new = old.clone();
        if let Some(c) = new.spec.as_mut().and_then(|s| s.containers.first_mut()) {
            c.image = Some("x:2".into());
        }
        assert!(new.validate_update(&old).is_empty());
        if let Some(s) = new.spec.as_mut() {
            s.restart_policy = Some("Never".into());
        }
        let causes = new.validate_update(&old);
        assert_eq!(causes.len(), 1);
        assert!(
            causes[0]
                .message
                .starts_with("Forbidden: pod updates may not change fields")
        );
    }
}
