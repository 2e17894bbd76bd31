//! `validateContainerCommon` and its parts: one container's name, image, ports, env, mounts,
//! resources and probes.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Container, ContainerPort, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::quantity::Quantity;
use crate::status::Cause;
use crate::validation::field::{self, Path};
use crate::validation::names;

const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const TERMINATION_MESSAGE_POLICIES: &[&str] = &["File", "FallbackToLogsOnError"];

pub(super) fn one_of(path: &Path, value: &str, allowed: &[&str]) -> Vec<Cause> {
    if value.is_empty() {
        vec![field::required(path, "")]
    } else if !allowed.contains(&value) {
        vec![field::not_supported(path, value, allowed)]
    } else {
        Vec::new()
    }
}

/// `validateContainerCommon`: name, image, termination message policy, ports, env, mounts, pull
/// policy, resources.
pub(super) fn validate_container(
    c: &Container,
    volumes: &BTreeSet<String>,
    path: &Path,
) -> Vec<Cause> {
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
pub(super) fn host_port_conflicts(containers: &[Container], path: &Path) -> Vec<Cause> {
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

pub(super) fn validate_probes(c: &Container, path: &Path) -> Vec<Cause> {
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
