//! The IO-free core: from Services and EndpointSlices to the set of listeners this node should
//! have ([`desired`]), and how each listener picks a backend ([`balancer`]).
//!
//! Nothing here touches a socket or a clock of its own: the sync loop feeds objects in and applies
//! the result; golden tests pin the Kubernetes semantics.

pub mod balancer;
pub mod desired;
pub mod endpoints;
pub mod nft;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Transport protocol of a Service port. SCTP is not proxied (no userspace SCTP in tokio).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// Kubernetes' spelling ("TCP" when absent, as the API defaults it); `None` for SCTP or junk.
    pub fn parse(value: Option<&str>) -> Option<Protocol> {
        match value.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }
}

/// One address the proxy listens on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerKey {
    pub ip: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
}

impl fmt::Display for ListenerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            SocketAddr::new(self.ip, self.port),
            self.protocol.as_str()
        )
    }
}

/// Why the proxy listens on an address: decides which traffic policy applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ListenerKind {
    ClusterIp,
    NodePort,
    LoadBalancer,
    ExternalIp,
}

impl ListenerKind {
    /// Traffic from outside the cluster: governed by `externalTrafficPolicy`.
    pub fn is_external(self) -> bool {
        !matches!(self, ListenerKind::ClusterIp)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ListenerKind::ClusterIp => "ClusterIP",
            ListenerKind::NodePort => "NodePort",
            ListenerKind::LoadBalancer => "LoadBalancer",
            ListenerKind::ExternalIp => "ExternalIP",
        }
    }
}

/// `namespace/name:port-name`, as kube-proxy names a Service port in logs and metrics.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServicePortName {
    pub namespace: String,
    pub name: String,
    pub port: String,
}

impl fmt::Display for ServicePortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.port.is_empty() {
            write!(f, "{}/{}", self.namespace, self.name)
        } else {
            write!(f, "{}/{}:{}", self.namespace, self.name, self.port)
        }
    }
}

/// What one listener does: which Service port it fronts and where it sends traffic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerSpec {
    pub service: ServicePortName,
    pub kind: ListenerKind,
    /// Usable backends, sorted and without duplicates. Empty: connections are refused, as
    /// kube-proxy's REJECT rule does (the data plane then keeps no socket open).
    pub backends: Arc<[SocketAddr]>,
    /// `sessionAffinity: ClientIP` with its timeout.
    pub affinity: Option<Duration>,
}

#[cfg(test)]
mod tests;
