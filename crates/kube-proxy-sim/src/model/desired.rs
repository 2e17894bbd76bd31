//! Services + EndpointSlices → the listeners one node's proxy should have.
//!
//! Kubernetes semantics, as kube-proxy implements them:
//! * headless (`clusterIP: None`) and `ExternalName` Services, and Services labelled
//!   `service.kubernetes.io/service-proxy-name` (owned by another proxy), get nothing;
//! * every port listens on each ClusterIP; `NodePort`/`LoadBalancer` ports with a `nodePort` on the
//!   node IP; `LoadBalancer` ports on each `status.loadBalancer.ingress[].ip` (unless its `ipMode`
//!   is `Proxy`: the load balancer then sends to node ports itself); every port on each
//!   `spec.externalIPs`;
//! * `internalTrafficPolicy: Local` limits ClusterIP traffic, `externalTrafficPolicy: Local`
//!   limits NodePort/LoadBalancer/externalIP traffic, to endpoints on this node;
//! * two Services claiming one address: the first in namespace/name order keeps it, the other is
//!   reported as a conflict.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::endpoints::{endpoints_for_port, usable};
use super::{ListenerKey, ListenerKind, ListenerSpec, Protocol, ServicePortName};

/// A Service with this label is handled by another proxy (kube-proxy skips it too).
pub const SERVICE_PROXY_NAME_LABEL: &str = "service.kubernetes.io/service-proxy-name";
/// Kubernetes' default `sessionAffinityConfig.clientIP.timeoutSeconds` (3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT: Duration = Duration::from_secs(10_800);

/// The node this proxy runs on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub ip: IpAddr,
}

/// What one Service asks of this node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceListeners {
    pub listeners: Vec<(ListenerKey, ListenerSpec)>,
    /// Ports or addresses that cannot be proxied, with the reason (logged and counted).
    pub problems: Vec<String>,
}

/// Two Services wanting one address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub key: ListenerKey,
    pub kept: ServicePortName,
    pub dropped: ServicePortName,
}

/// The whole node's listeners.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    pub listeners: BTreeMap<ListenerKey, ListenerSpec>,
    pub conflicts: Vec<Conflict>,
}

/// The listeners of one Service, given its EndpointSlices.
pub fn service_listeners<'a>(
    service: &Service,
    slices: impl IntoIterator<Item = &'a EndpointSlice> + Clone,
    node: &Node,
) -> ServiceListeners {
    let mut out = ServiceListeners::default();
    let meta = &service.metadata;
    let (Some(namespace), Some(name)) = (meta.namespace.as_deref(), meta.name.as_deref()) else {
        return out;
    };
    if meta
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(SERVICE_PROXY_NAME_LABEL))
    {
        return out;
    }
    let Some(spec) = service.spec.as_ref() else {
        return out;
    };
    let service_type = spec.type_.as_deref().unwrap_or("ClusterIP");
    if service_type == "ExternalName" {
        return out;
    }
    let mut cluster_ips: Vec<&str> = match spec.cluster_ips.as_deref() {
        Some(ips) if !ips.is_empty() => ips.iter().map(String::as_str).collect(),
        _ => spec.cluster_ip.as_deref().into_iter().collect(),
    };
    if cluster_ips.contains(&"None") {
        return out; // headless: DNS answers with the pods themselves.
    }
    cluster_ips.retain(|ip| !ip.is_empty());

    let affinity = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|s| u64::try_from(s).ok())
            .filter(|s| *s > 0)
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_AFFINITY_TIMEOUT)
    });
    let internal_local = spec.internal_traffic_policy.as_deref() == Some("Local");
    let external_local = spec.external_traffic_policy.as_deref() == Some("Local");
    let is_lb = service_type == "LoadBalancer";
    let lb_ips: Vec<&str> = if is_lb {
        service
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .into_iter()
            .flatten()
            .filter(|i| i.ip_mode.as_deref() != Some("Proxy"))
            .filter_map(|i| i.ip.as_deref())
            .collect()
    } else {
        Vec::new()
    };
    let external_ips: Vec<&str> = spec
        .external_ips
        .iter()
        .flatten()
        .map(String::as_str)
        .collect();

    for port in spec.ports.iter().flatten() {
        let port_name = port.name.clone().unwrap_or_default();
        let service_port = ServicePortName {
            namespace: namespace.to_string(),
            name: name.to_string(),
            port: port_name.clone(),
        };
        let Some(protocol) = Protocol::parse(port.protocol.as_deref()) else {
            out.problems.push(format!(
                "{service_port}: protocol {} is not proxied (TCP and UDP are)",
                port.protocol.as_deref().unwrap_or("")
            ));
            continue;
        };
        let Some(number) = u16::try_from(port.port).ok().filter(|p| *p != 0) else {
            out.problems.push(format!(
                "{service_port}: spec.ports.port {} is out of range",
                port.port
            ));
            continue;
        };
        let endpoints = endpoints_for_port(slices.clone(), &port_name, protocol);
        let mut add = |kind: ListenerKind, ip_text: &str, listen_port: u16| {
            let Ok(ip) = ip_text.parse::<IpAddr>() else {
                out.problems.push(format!(
                    "{service_port}: {} address {ip_text:?} is not an IP address",
                    kind.as_str()
                ));
                return;
            };
            let local = if kind.is_external() {
                external_local
            } else {
                internal_local
            };
            let backends = usable(
                &endpoints,
                local.then_some(node.name.as_str()),
                ip.is_ipv4(),
            );
            out.listeners.push((
                ListenerKey {
                    ip,
                    port: listen_port,
                    protocol,
                },
                ListenerSpec {
                    service: service_port.clone(),
                    kind,
                    backends: Arc::from(backends),
                    affinity,
                },
            ));
        };
        for ip in &cluster_ips {
            add(ListenerKind::ClusterIp, ip, number);
        }
        let node_port = port
            .node_port
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0);
        if let (true, Some(node_port)) = (service_type == "NodePort" || is_lb, node_port) {
            add(ListenerKind::NodePort, &node.ip.to_string(), node_port);
        }
        for ip in &lb_ips {
            add(ListenerKind::LoadBalancer, ip, number);
        }
        for ip in &external_ips {
            add(ListenerKind::ExternalIp, ip, number);
        }
    }
    out
}

/// Merges every Service's listeners (given in namespace/name order) into the node's set.
pub fn merge<'a>(services: impl IntoIterator<Item = &'a ServiceListeners>) -> Desired {
    let mut desired = Desired::default();
    for service in services {
        for (key, spec) in &service.listeners {
            match desired.listeners.get(key) {
                Some(kept) => {
                    if kept.service != spec.service {
                        desired.conflicts.push(Conflict {
                            key: *key,
                            kept: kept.service.clone(),
                            dropped: spec.service.clone(),
                        });
                    }
                }
                None => {
                    desired.listeners.insert(*key, spec.clone());
                }
            }
        }
    }
    desired
}
