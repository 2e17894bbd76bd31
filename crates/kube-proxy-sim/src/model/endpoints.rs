//! EndpointSlices → the endpoints of one Service port, with the conditions kube-proxy filters on.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::Protocol;

/// The label an EndpointSlice carries naming its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// One endpoint of one Service port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    pub node_name: Option<String>,
}

/// The Service an EndpointSlice belongs to (`namespace`, `name`), from its label.
pub fn slice_service(slice: &EndpointSlice) -> Option<(String, String)> {
    let namespace = slice.metadata.namespace.clone()?;
    let name = slice
        .metadata
        .labels
        .as_ref()?
        .get(SERVICE_NAME_LABEL)?
        .clone();
    Some((namespace, name))
}

/// The endpoints of the Service port named `port_name` (empty for an unnamed port) and `protocol`
/// across all of the Service's slices. An address listed twice (slices overlap while the endpoint
/// controller moves endpoints between them) counts once, the first listing winning, unless a
/// later one is ready and the first is not.
pub fn endpoints_for_port<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    port_name: &str,
    protocol: Protocol,
) -> Vec<Endpoint> {
    let mut by_addr: BTreeMap<SocketAddr, Endpoint> = BTreeMap::new();
    for slice in slices {
        if slice.address_type != "IPv4" && slice.address_type != "IPv6" {
            continue; // FQDN slices are not proxied (kube-proxy ignores them too).
        }
        let Some(port) = slice.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or("") == port_name
                && Protocol::parse(p.protocol.as_deref()) == Some(protocol)
        }) else {
            continue;
        };
        let Some(port) = port
            .port
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
        else {
            continue;
        };
        for endpoint in &slice.endpoints {
            let conditions = endpoint.conditions.clone().unwrap_or_default();
            // Kubernetes: a nil `ready` means ready; nil `serving` means "same as ready";
            // nil `terminating` means not terminating.
            let ready = conditions.ready.unwrap_or(true);
            let serving = conditions.serving.unwrap_or(ready);
            let terminating = conditions.terminating.unwrap_or(false);
            // Kubernetes uses only the first address of an endpoint.
            let Some(ip) = endpoint
                .addresses
                .first()
                .and_then(|a| a.parse::<IpAddr>().ok())
            else {
                continue;
            };
            let candidate = Endpoint {
                addr: SocketAddr::new(ip, port),
                ready,
                serving,
                terminating,
                node_name: endpoint.node_name.clone(),
            };
            match by_addr.get(&candidate.addr) {
                Some(existing) if existing.ready || !candidate.ready => {}
                _ => {
                    by_addr.insert(candidate.addr, candidate);
                }
            }
        }
    }
    by_addr.into_values().collect()
}

/// Which endpoints take new connections, as kube-proxy's `CategorizeEndpoints` decides: the
/// ready ones; when none is ready, the serving-and-terminating ones (so that a rolling update
/// whose last pods are shutting down still answers). `local_only` keeps only this node's
/// endpoints (traffic policy `Local`). Sorted, without duplicates.
pub fn usable(
    endpoints: &[Endpoint],
    local_only: Option<&str>,
    family_v4: bool,
) -> Vec<SocketAddr> {
    let eligible = |e: &&Endpoint| {
        e.addr.is_ipv4() == family_v4
            && local_only.is_none_or(|node| e.node_name.as_deref() == Some(node))
    };
    let ready: Vec<SocketAddr> = endpoints
        .iter()
        .filter(eligible)
        .filter(|e| e.ready)
        .map(|e| e.addr)
        .collect();
    let mut chosen = if ready.is_empty() {
        endpoints
            .iter()
            .filter(eligible)
            .filter(|e| e.serving && e.terminating)
            .map(|e| e.addr)
            .collect()
    } else {
        ready
    };
    chosen.sort();
    chosen.dedup();
    chosen
}
