//! The few fields of Services, EndpointSlices and Pods that DNS answers depend on.
//!
//! The zone keeps these compact summaries instead of whole objects: a cluster with 150,000 pods
//! must not hold 150,000 pod specs in the DNS server. Conversion is lenient: a field that does not
//! parse (a malformed IP, say) is skipped with a debug log, never a panic, because the apiserver is
//! the validator and DNS must keep answering for everything else.

use std::net::IpAddr;

use hickory_proto::rr::Name;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// `namespace/name` of an object.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key of any namespaced object; `None` when it has no name.
    pub fn of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<Self> {
        let name = meta.name.as_deref().filter(|n| !n.is_empty())?;
        let namespace = meta.namespace.as_deref().unwrap_or("default");
        Some(Self::new(namespace, name))
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What a Service's name resolves to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceKind {
    /// A ClusterIP (also NodePort, LoadBalancer) Service: its cluster IPs, one per family.
    ClusterIp(Vec<IpAddr>),
    /// `clusterIP: None`: the name resolves to the ready endpoints.
    Headless,
    /// `type: ExternalName`: a CNAME to this name.
    ExternalName(Name),
    /// Not resolvable yet (no cluster IP allocated, or an ExternalName that is not a name).
    Unresolvable,
}

/// A port of a Service or an EndpointSlice, as SRV records need it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PortInfo {
    /// Only named ports get SRV records.
    pub name: Option<String>,
    /// `tcp`, `udp` or `sctp` (lowercase, as in `_http._tcp`).
    pub protocol: String,
    pub port: u16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceInfo {
    pub kind: ServiceKind,
    pub ports: Vec<PortInfo>,
    /// `spec.publishNotReadyAddresses`: headless answers include not-ready endpoints.
    pub publish_not_ready: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointInfo {
    pub addresses: Vec<IpAddr>,
    pub hostname: Option<String>,
    /// `conditions.ready`; a missing condition means ready, as Kubernetes defines it.
    pub ready: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceInfo {
    /// The Service this slice belongs to (its `kubernetes.io/service-name` label).
    pub service: String,
    pub ports: Vec<PortInfo>,
    pub endpoints: Vec<EndpointInfo>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInfo {
    pub ips: Vec<IpAddr>,
    /// Host-network pods share their node's IP: no PTR record points at them.
    pub host_network: bool,
}

fn parse_ip(s: &str, what: &str) -> Option<IpAddr> {
    match s.trim().parse() {
        Ok(ip) => Some(ip),
        Err(_) => {
            tracing::debug!(value = s, "{what}: not an IP address, skipped");
            None
        }
    }
}

fn port_info(
    name: Option<&String>,
    protocol: Option<&String>,
    port: Option<i32>,
) -> Option<PortInfo> {
    let port = u16::try_from(port?).ok().filter(|p| *p != 0)?;
    Some(PortInfo {
        name: name
            .filter(|n| !n.is_empty())
            .map(|n| n.to_ascii_lowercase()),
        protocol: protocol.map_or("tcp".to_string(), |p| p.to_ascii_lowercase()),
        port,
    })
}

impl ServiceInfo {
    pub fn from_service(svc: &Service) -> Self {
        let Some(spec) = svc.spec.as_ref() else {
            return Self {
                kind: ServiceKind::Unresolvable,
                ports: Vec::new(),
                publish_not_ready: false,
            };
        };
        let kind = if spec.type_.as_deref() == Some("ExternalName") {
            match spec
                .external_name
                .as_deref()
                .map(|n| Name::from_ascii(n.trim_end_matches('.')))
            {
                Some(Ok(mut name)) if !name.is_root() => {
                    name.set_fqdn(true);
                    ServiceKind::ExternalName(name)
                }
                _ => ServiceKind::Unresolvable,
            }
        } else if spec.cluster_ip.as_deref() == Some("None") {
            ServiceKind::Headless
        } else {
            let listed = spec.cluster_ips.as_deref().unwrap_or_default();
            let ips: Vec<IpAddr> = if listed.is_empty() {
                spec.cluster_ip
                    .iter()
                    .filter_map(|ip| parse_ip(ip, "spec.clusterIP"))
                    .collect()
            } else {
                listed
                    .iter()
                    .filter_map(|ip| parse_ip(ip, "spec.clusterIPs"))
                    .collect()
            };
            if ips.is_empty() {
                ServiceKind::Unresolvable
            } else {
                ServiceKind::ClusterIp(ips)
            }
        };
        let ports = spec
            .ports
            .iter()
            .flatten()
            .filter_map(|p| port_info(p.name.as_ref(), p.protocol.as_ref(), Some(p.port)))
            .collect();
        Self {
            kind,
            ports,
            publish_not_ready: spec.publish_not_ready_addresses.unwrap_or(false),
        }
    }
}

impl SliceInfo {
    /// `None` for a slice that names no Service (DNS has no use for it).
    pub fn from_slice(slice: &EndpointSlice) -> Option<Self> {
        let service = slice
            .metadata
            .labels
            .as_ref()?
            .get(SERVICE_NAME_LABEL)
            .filter(|s| !s.is_empty())?
            .clone();
        if slice.address_type == "FQDN" {
            // FQDN endpoints carry names, not addresses; CoreDNS ignores them too.
            return Some(Self {
                service,
                ports: Vec::new(),
                endpoints: Vec::new(),
            });
        }
        let ports = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| port_info(p.name.as_ref(), p.protocol.as_ref(), p.port))
            .collect();
        let endpoints = slice
            .endpoints
            .iter()
            .map(|e| EndpointInfo {
                addresses: e
                    .addresses
                    .iter()
                    .filter_map(|a| parse_ip(a, "endpoints.addresses"))
                    .collect(),
                hostname: e.hostname.clone().filter(|h| !h.is_empty()),
                ready: e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true),
            })
            .collect();
        Some(Self {
            service,
            ports,
            endpoints,
        })
    }
}

impl PodInfo {
    /// `None` for a pod that has no address or has finished (its IP may already be reused).
    pub fn from_pod(pod: &Pod) -> Option<Self> {
        let status = pod.status.as_ref()?;
        if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
            return None;
        }
        let mut ips: Vec<IpAddr> = status
            .pod_ips
            .iter()
            .flatten()
            .filter_map(|p| parse_ip(&p.ip, "status.podIPs"))
            .collect();
        if ips.is_empty() {
            ips.extend(
                status
                    .pod_ip
                    .iter()
                    .filter_map(|ip| parse_ip(ip, "status.podIP")),
            );
        }
        if ips.is_empty() {
            return None;
        }
        ips.dedup();
        Some(Self {
            ips,
            host_network: pod
                .spec
                .as_ref()
                .and_then(|s| s.host_network)
                .unwrap_or(false),
        })
    }
}
