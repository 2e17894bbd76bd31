//! What the Endpoints and EndpointSlice controllers share about pods and Services, IO-free:
//! which pods belong in a Service's endpoints (`ShouldPodBeInEndpoints`), named targetPorts
//! resolved per pod (`FindPort`), hostnames (`ShouldSetHostname`), and the Endpoints object's
//! subsets (Kubernetes' `syncService` + `RepackSubsets`).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
    ServicePort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::util::pod as podutil;

/// Label on Endpoints/EndpointSlices of a headless Service.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// The Service's selector, or None for a selector-less Service (an empty selector counts as none,
/// as it does after Kubernetes' protobuf round trip).
pub fn service_selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    svc.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .filter(|s| !s.is_empty())
}

/// Whether the pod's labels match a Service selector (every key=value present).
pub fn selects(selector: &BTreeMap<String, String>, pod: &Pod) -> bool {
    let labels = pod.metadata.labels.as_ref();
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

pub fn is_headless(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

pub fn publish_not_ready(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false)
}

pub fn service_ports(svc: &Service) -> &[ServicePort] {
    svc.spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default()
}

/// The pod's IP (empty before the kubelet reported one).
pub fn pod_ip(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .unwrap_or("")
}

/// Kubernetes' `ShouldPodBeInEndpoints`: the pod has an IP, is not finished for good, and is not
/// terminating unless `include_terminating`.
pub fn should_include(pod: &Pod, include_terminating: bool) -> bool {
    if pod_ip(pod).is_empty() {
        return false;
    }
    if !include_terminating && podutil::is_terminating(pod) {
        return false;
    }
    let restart = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    let phase = podutil::phase(pod);
    match restart {
        "Never" => phase != "Failed" && phase != "Succeeded",
        "OnFailure" => phase != "Succeeded",
        _ => true,
    }
}

/// Kubernetes' `FindPort`: the container port a Service port targets on this pod. A named
/// targetPort is looked up among the pod's container ports (same name and protocol); None when
/// the pod has no such port.
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    match port.target_port.as_ref() {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            if let Ok(n) = name.parse::<i32>() {
                return Some(n);
            }
            let protocol = port.protocol.as_deref().unwrap_or("TCP");
            pod.spec
                .as_ref()?
                .containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find(|cp| {
                    cp.name.as_deref() == Some(name.as_str())
                        && cp.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .map(|cp| cp.container_port)
        }
    }
}

/// The ports the pod serves the Service's ports on ([`find_port`] of each; a port the pod does
/// not have is left out).
pub fn resolved_ports(svc: &Service, pod: &Pod) -> BTreeSet<PortKey> {
    service_ports(svc)
        .iter()
        .filter_map(|sp| find_port(pod, sp).map(|n| PortKey::of(sp, n)))
        .collect()
}

/// The node the pod runs on (none before it is bound).
pub fn node_name(pod: &Pod) -> Option<String> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty())
}

/// Whether the pod's endpoint counts as ready: Ready and not terminating, or always with
/// `publishNotReadyAddresses`.
pub fn is_ready_endpoint(pod: &Pod, svc: &Service) -> bool {
    publish_not_ready(svc) || (podutil::is_ready(pod) && !podutil::is_terminating(pod))
}

/// Kubernetes' `ShouldSetHostname`: the pod names a hostname and this Service as its subdomain.
pub fn hostname_for(pod: &Pod, svc: &Service) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let hostname = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    (spec.subdomain.is_some()
        && spec.subdomain == svc.metadata.name
        && pod.metadata.namespace == svc.metadata.namespace)
        .then(|| hostname.to_string())
}

/// The targetRef every endpoint carries to its pod.
pub fn pod_reference(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

/// Labels of the Endpoints/EndpointSlices: the Service's own, plus the headless marker.
pub fn derived_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    if is_headless(svc) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    } else {
        labels.remove(HEADLESS_LABEL);
    }
    labels
}

/// The Endpoints object Kubernetes' endpoints controller writes for a Service with a selector,
/// from the pods it selects (already filtered by namespace and selector).
pub fn desired_endpoints(svc: &Service, pods: &[&Pod]) -> Endpoints {
    let tolerate_unready = publish_not_ready(svc);
    // (address key) → (address, ready, ports)
    let mut by_address: BTreeMap<(String, String), (EndpointAddress, bool, BTreeSet<PortKey>)> =
        BTreeMap::new();
    for pod in pods {
        if !should_include(pod, tolerate_unready) {
            continue;
        }
        let ports = service_ports(svc);
        if ports.is_empty() && !is_headless(svc) {
            continue;
        }
        let resolved = resolved_ports(svc, pod);
        if !ports.is_empty() && resolved.is_empty() {
            continue;
        }
        let address = EndpointAddress {
            ip: pod_ip(pod).to_string(),
            hostname: hostname_for(pod, svc),
            node_name: node_name(pod),
            target_ref: Some(pod_reference(pod)),
        };
        let ready = is_ready_endpoint(pod, svc);
        let key = (
            address.ip.clone(),
            pod.metadata.uid.clone().unwrap_or_default(),
        );
        by_address.insert(key, (address, ready, resolved));
    }
    // Repack: addresses with the same port set share a subset (RepackSubsets).
    let mut subsets: BTreeMap<BTreeSet<PortKey>, (Vec<EndpointAddress>, Vec<EndpointAddress>)> =
        BTreeMap::new();
    for (_, (address, ready, ports)) in by_address {
        let entry = subsets.entry(ports).or_default();
        if ready {
            entry.0.push(address);
        } else {
            entry.1.push(address);
        }
    }
    let subsets: Vec<EndpointSubset> = subsets
        .into_iter()
        .map(|(ports, (ready, not_ready))| EndpointSubset {
            addresses: (!ready.is_empty()).then_some(ready),
            not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
            ports: (!ports.is_empty()).then(|| ports.into_iter().map(PortKey::into_port).collect()),
        })
        .collect();
    let labels = derived_labels(svc);
    Endpoints {
        metadata: ObjectMeta {
            name: svc.metadata.name.clone(),
            namespace: svc.metadata.namespace.clone(),
            labels: (!labels.is_empty()).then_some(labels),
            ..Default::default()
        },
        subsets: (!subsets.is_empty()).then_some(subsets),
    }
}

/// Whether the stored Endpoints already say what `desired` says (subsets and labels).
pub fn endpoints_equal(current: &Endpoints, desired: &Endpoints) -> bool {
    let norm = |s: &Option<Vec<EndpointSubset>>| s.clone().unwrap_or_default();
    norm(&current.subsets) == norm(&desired.subsets)
        && current.metadata.labels.clone().unwrap_or_default()
            == desired.metadata.labels.clone().unwrap_or_default()
}

/// A resolved port, ordered so that subsets and slices come out deterministic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortKey {
    pub name: String,
    pub port: i32,
    pub protocol: String,
    pub app_protocol: Option<String>,
}

impl PortKey {
    pub fn of(sp: &ServicePort, port: i32) -> PortKey {
        PortKey {
            name: sp.name.clone().unwrap_or_default(),
            port,
            protocol: sp.protocol.clone().unwrap_or_else(|| "TCP".into()),
            app_protocol: sp.app_protocol.clone(),
        }
    }

    pub fn into_port(self) -> EndpointPort {
        EndpointPort {
            name: (!self.name.is_empty()).then_some(self.name),
            port: self.port,
            protocol: Some(self.protocol),
            app_protocol: self.app_protocol,
        }
    }
}

#[cfg(test)]
#[path = "core/tests.rs"]
pub(crate) mod tests;
