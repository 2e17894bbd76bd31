//! Services, Endpoints and EndpointSlices: defaults (type, session affinity, target ports, IP
//! family fields, traffic policies) and `ValidateService`/`ValidateEndpoints`/
//! `ValidateEndpointSlice`. ClusterIP and NodePort *allocation* is the apiserver's (it needs
//! state); what is checked here is what can be checked from the object alone.
//!
//! Kubernetes forbids loopback addresses in Endpoints; niwa gives every pod a 127.x address
//! (ARCHITECTURE.md §5), so that one rule is deliberately not applied.
//!
//! Service rules are here; Endpoints and EndpointSlices are in `endpoints`, the golden tests in
//! `tests`.

mod endpoints;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{
    ClientIPConfig, Endpoints, Service, ServicePort, ServiceSpec, SessionAffinityConfig,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Strategy, or, or_str, pod};
use crate::status::Cause;
use crate::validation::field::{self, Bad, Path};
use crate::validation::meta::validate_labels;
use crate::validation::names;

pub const SERVICE_TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
/// `MaxClientIPServiceAffinitySeconds` and the ClientIP affinity default (3 hours).
const MAX_AFFINITY_SECONDS: i32 = 86400;
const DEFAULT_AFFINITY_SECONDS: i32 = 10800;

/// Whether a Service of this spec gets a cluster IP (everything but ExternalName and headless).
pub fn needs_cluster_ip(spec: &ServiceSpec) -> bool {
    spec.type_.as_deref() != Some("ExternalName") && spec.cluster_ip.as_deref() != Some("None")
}

/// Whether its ports get node ports (NodePort, and LoadBalancer unless told not to).
pub fn needs_node_ports(spec: &ServiceSpec) -> bool {
    match spec.type_.as_deref() {
        Some("NodePort") => true,
        Some("LoadBalancer") => spec.allocate_load_balancer_node_ports != Some(false),
        _ => false,
    }
}

fn default_service_spec(spec: &mut ServiceSpec) {
    or_str(&mut spec.type_, "ClusterIP");
    or_str(&mut spec.session_affinity, "None");
    if spec.session_affinity.as_deref() == Some("ClientIP") {
        let cfg = spec
            .session_affinity_config
            .get_or_insert_with(SessionAffinityConfig::default);
        let ip = cfg.client_ip.get_or_insert_with(ClientIPConfig::default);
        or(&mut ip.timeout_seconds, DEFAULT_AFFINITY_SECONDS);
    }
    for p in spec.ports.iter_mut().flatten() {
        default_port(p);
    }
    let ty = spec.type_.clone().unwrap_or_default();
    if ty == "ExternalName" {
        return;
    }
    or_str(&mut spec.internal_traffic_policy, "Cluster");
    if ty == "NodePort" || ty == "LoadBalancer" {
        or_str(&mut spec.external_traffic_policy, "Cluster");
    }
    if ty == "LoadBalancer" {
        or(&mut spec.allocate_load_balancer_node_ports, true);
    }
    // The cluster is single-stack IPv4.
    or_str(&mut spec.ip_family_policy, "SingleStack");
    if spec.ip_families.as_ref().is_none_or(Vec::is_empty) {
        spec.ip_families = Some(vec!["IPv4".into()]);
    }
    match spec.cluster_ip.clone().filter(|ip| !ip.is_empty()) {
        Some(ip) if spec.cluster_ips.as_ref().is_none_or(Vec::is_empty) => {
            spec.cluster_ips = Some(vec![ip]);
        }
        None => {
            if let Some(first) = spec.cluster_ips.as_ref().and_then(|ips| ips.first()) {
                spec.cluster_ip = Some(first.clone());
            }
        }
        _ => {}
    }
}

fn default_port(p: &mut ServicePort) {
    or_str(&mut p.protocol, "TCP");
    let unset = match &p.target_port {
        None => true,
        Some(IntOrString::Int(0)) => true,
        Some(IntOrString::String(s)) => s.is_empty(),
        Some(_) => false,
    };
    if unset {
        p.target_port = Some(IntOrString::Int(p.port));
    }
}

fn render_port(p: &ServicePort) -> Bad {
    Bad::Raw(format!(
        "core.ServicePort{{Name:{}, Protocol:{}, Port:{}}}",
        field::go_quote(p.name.as_deref().unwrap_or_default()),
        field::go_quote(p.protocol.as_deref().unwrap_or_default()),
        p.port
    ))
}

/// `ValidateService`.
fn validate_service(svc: &Service) -> Vec<Cause> {
    let path = Path::new("spec");
    let Some(spec) = &svc.spec else {
        return vec![field::required(&path, "")];
    };
    let mut causes = Vec::new();
    let ty = spec.type_.as_deref().unwrap_or_default();
    let cluster_ip = spec.cluster_ip.as_deref().unwrap_or_default();
    let headless = cluster_ip == "None";
    let ports = spec.ports.as_deref().unwrap_or_default();
    if ports.is_empty() && !headless && ty != "ExternalName" {
        causes.push(field::required(&path.child("ports"), ""));
    }
    match ty {
        "LoadBalancer" | "NodePort" if headless => causes.push(field::invalid(
            &path.child("clusterIPs").index(0),
            "None",
            &format!("may not be set to 'None' for {ty} services"),
        )),
        "ExternalName" => {
            if !cluster_ip.is_empty() {
                causes.push(field::forbidden(
                    &path.child("clusterIPs"),
                    "may not be set for ExternalName services",
                ));
            }
            let name = spec.external_name.as_deref().unwrap_or_default();
            if name.is_empty() {
                causes.push(field::required(&path.child("externalName"), ""));
            } else {
                let trimmed = name.strip_suffix('.').unwrap_or(name);
                for problem in names::dns1123_subdomain(trimmed) {
                    causes.push(field::invalid(&path.child("externalName"), name, &problem));
                }
            }
        }
        _ => {}
    }
    let multi = ports.len() > 1;
    let mut port_names = BTreeSet::new();
    let mut port_keys = BTreeSet::new();
    let mut node_ports = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let pp = path.child("ports").index(i);
        let name = p.name.as_deref().unwrap_or_default();
        if multi && name.is_empty() {
            causes.push(field::required(&pp.child("name"), ""));
        } else if !name.is_empty() {
            for problem in names::dns1123_label(name) {
                causes.push(field::invalid(&pp.child("name"), name, &problem));
            }
            if !port_names.insert(name.to_string()) {
                causes.push(field::duplicate(&pp.child("name"), name));
            }
        }
        for problem in names::port_num(i64::from(p.port)) {
            causes.push(field::invalid(&pp.child("port"), p.port, &problem));
        }
        let proto = p.protocol.as_deref().unwrap_or_default();
        if proto.is_empty() {
            causes.push(field::required(&pp.child("protocol"), ""));
        } else if !PROTOCOLS.contains(&proto) {
            causes.push(field::not_supported(
                &pp.child("protocol"),
                proto,
                PROTOCOLS,
            ));
        }
        if let Some(tp) = &p.target_port {
            causes.extend(pod::port_num_or_name(tp, &pp.child("targetPort")));
        }
        if !port_keys.insert((proto.to_string(), p.port)) {
            causes.push(field::duplicate(&pp, render_port(p)));
        }
        if let Some(np) = p.node_port.filter(|n| *n != 0) {
            if ty == "ClusterIP" {
                causes.push(field::forbidden(
                    &pp.child("nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
            for problem in names::port_num(i64::from(np)) {
                causes.push(field::invalid(&pp.child("nodePort"), np, &problem));
            }
            if !node_ports.insert((proto.to_string(), np)) {
                causes.push(field::duplicate(&pp.child("nodePort"), np));
            }
        }
    }
    if let Some(sel) = &spec.selector {
        let json = serde_json::to_value(sel).unwrap_or_default();
        causes.extend(validate_labels(&json, path.child("selector").as_str()));
    }
    let affinity = spec.session_affinity.as_deref().unwrap_or_default();
    match affinity {
        "" => causes.push(field::required(&path.child("sessionAffinity"), "")),
        "None" => {
            if spec.session_affinity_config.is_some() {
                causes.push(field::forbidden(
                    &path.child("sessionAffinityConfig"),
                    "must not be set when session affinity is None",
                ));
            }
        }
        "ClientIP" => {
            let t = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds);
            if let Some(t) = t
                && (t <= 0 || t > MAX_AFFINITY_SECONDS)
            {
                causes.push(field::invalid(
                    &path
                        .child("sessionAffinityConfig")
                        .child("clientIP")
                        .child("timeoutSeconds"),
                    t,
                    &format!("must be greater than 0 and less than {MAX_AFFINITY_SECONDS}"),
                ));
            }
        }
        other => causes.push(field::not_supported(
            &path.child("sessionAffinity"),
            other,
            &["ClientIP", "None"],
        )),
    }
    if !cluster_ip.is_empty() && !headless && !names::ip(cluster_ip).is_empty() {
        causes.push(field::invalid(
            &path.child("clusterIPs").index(0),
            cluster_ip,
            "must be empty, 'None', or a valid IP address",
        ));
    }
    if let Some(ips) = &spec.cluster_ips
        && let Some(first) = ips.first()
        && !cluster_ip.is_empty()
        && first != cluster_ip
    {
        causes.push(field::invalid(
            &path.child("clusterIPs"),
            field::go_strings(ips),
            "first value must match `clusterIP`",
        ));
    }
    for (i, ip) in spec.external_ips.iter().flatten().enumerate() {
        for problem in names::ip(ip) {
            causes.push(field::invalid(
                &path.child("externalIPs").index(i),
                ip.as_str(),
                &problem,
            ));
        }
    }
    if ty.is_empty() {
        causes.push(field::required(&path.child("type"), ""));
    } else if !SERVICE_TYPES.contains(&ty) {
        causes.push(field::not_supported(&path.child("type"), ty, SERVICE_TYPES));
    }
    for (name, value, allowed) in [
        (
            "internalTrafficPolicy",
            spec.internal_traffic_policy.as_deref(),
            &["Cluster", "Local"],
        ),
        (
            "externalTrafficPolicy",
            spec.external_traffic_policy.as_deref(),
            &["Cluster", "Local"],
        ),
    ] {
        if let Some(v) = value.filter(|v| !v.is_empty())
            && !allowed.contains(&v)
        {
            causes.push(field::not_supported(&path.child(name), v, allowed));
        }
    }
    if spec
        .external_traffic_policy
        .as_deref()
        .is_some_and(|p| !p.is_empty())
        && ty != "NodePort"
        && ty != "LoadBalancer"
    {
        causes.push(field::invalid(
            &path.child("externalTrafficPolicy"),
            spec.external_traffic_policy.clone().unwrap_or_default(),
            "may only be set for externally-accessible services",
        ));
    }
    for (i, fam) in spec.ip_families.iter().flatten().enumerate() {
        if fam != "IPv4" && fam != "IPv6" {
            causes.push(field::not_supported(
                &path.child("ipFamilies").index(i),
                fam.as_str(),
                &["IPv4", "IPv6"],
            ));
        }
    }
    if let Some(p) = spec.ip_family_policy.as_deref()
        && !["SingleStack", "PreferDualStack", "RequireDualStack"].contains(&p)
    {
        causes.push(field::not_supported(
            &path.child("ipFamilyPolicy"),
            p,
            &["PreferDualStack", "RequireDualStack", "SingleStack"],
        ));
    }
    causes
}

impl Strategy for Service {
    fn default(&mut self) {
        default_service_spec(self.spec.get_or_insert_with(Default::default));
    }

    fn prepare_create(&mut self) {
        self.status = Some(k8s_openapi::api::core::v1::ServiceStatus {
            load_balancer: Some(Default::default()),
            conditions: None,
        });
    }

    /// `patchAllocatedValues`: a body without the allocated cluster IPs and node ports (kubectl
    /// replace of the original manifest) keeps the allocated ones.
    fn prepare_update(&mut self, old: &Self) {
        let (Some(new), Some(old)) = (self.spec.as_mut(), old.spec.as_ref()) else {
            return;
        };
        if needs_cluster_ip(old)
            && needs_cluster_ip(new)
            && new.cluster_ip.as_deref().is_none_or(str::is_empty)
        {
            new.cluster_ip.clone_from(&old.cluster_ip);
            new.cluster_ips.clone_from(&old.cluster_ips);
        }
        if needs_node_ports(old) && needs_node_ports(new) {
            for p in new.ports.iter_mut().flatten() {
                if p.node_port.unwrap_or(0) != 0 {
                    continue;
                }
                let same = old
                    .ports
                    .iter()
                    .flatten()
                    .find(|o| o.port == p.port && o.protocol == p.protocol);
                if let Some(o) = same {
                    p.node_port = o.node_port;
                }
            }
        }
        if new.health_check_node_port.unwrap_or(0) == 0 {
            new.health_check_node_port = old.health_check_node_port;
        }
    }

    fn validate(&self) -> Vec<Cause> {
        validate_service(self)
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = self.validate();
        let (Some(new), Some(old)) = (&self.spec, &old.spec) else {
            return causes;
        };
        // Allocated cluster IPs stay (the REST layer carries them over when a body omits them).
        let external = |s: &ServiceSpec| s.type_.as_deref() == Some("ExternalName");
        if !external(new) && !external(old) {
            let old_ips = old.cluster_ips.clone().unwrap_or_default();
            let new_ips = new.cluster_ips.clone().unwrap_or_default();
            for (i, ip) in old_ips.iter().enumerate() {
                if new_ips.get(i).is_some_and(|n| n != ip) || (i == 0 && new_ips.is_empty()) {
                    causes.push(field::invalid(
                        &Path::new("spec").child("clusterIPs").index(i),
                        field::go_strings(&new_ips),
                        "may not change once set",
                    ));
                }
            }
        }
        causes
    }

    fn validate_status(&self, _old: &Self) -> Vec<Cause> {
        let mut causes = Vec::new();
        let path = Path::new("status").child("loadBalancer").child("ingress");
        let ingress = self
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref());
        for (i, ing) in ingress.into_iter().flatten().enumerate() {
            if let Some(ip) = ing.ip.as_deref().filter(|s| !s.is_empty())
                && !names::ip(ip).is_empty()
            {
                causes.push(field::invalid(
                    &path.index(i).child("ip"),
                    ip,
                    "must be a valid IP address",
                ));
            }
        }
        causes
    }
}
