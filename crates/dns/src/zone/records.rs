//! Which records each object contributes (Kubernetes DNS-based service discovery, schema 1.1.0).
//!
//! These are pure functions of an object's summary: the zone recomputes an object's records before
//! and after a change and applies the difference, so no per-object record list is kept in memory.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use hickory_proto::rr::{LowerName, Name};

use super::objects::{ObjectKey, PodInfo, PortInfo, ServiceInfo, ServiceKind, SliceInfo};
use super::table::Data;

/// Builds the cluster's owner names under one domain (`cluster.local.`).
#[derive(Clone, Debug)]
pub struct Namer {
    domain: Name,
}

impl Namer {
    pub fn new(domain: Name) -> Self {
        Self { domain }
    }

    pub fn domain(&self) -> &Name {
        &self.domain
    }

    /// `labels` (most specific first) followed by the domain; `None` if a label is not a valid
    /// single DNS label (Kubernetes names never are, but DNS must not trust that).
    pub fn name(&self, labels: &[&str]) -> Option<Name> {
        if labels.iter().any(|l| l.is_empty() || l.contains('.')) {
            return None;
        }
        let relative = Name::from_labels(labels.iter().map(|l| l.as_bytes())).ok()?;
        relative.append_domain(&self.domain).ok()
    }

    /// `<svc>.<ns>.svc.<domain>`
    pub fn service(&self, key: &ObjectKey) -> Option<Name> {
        self.name(&[&key.name, &key.namespace, "svc"])
    }

    /// `<a-b-c-d>.<ns>.pod.<domain>`
    pub fn pod(&self, namespace: &str, ip: IpAddr) -> Option<Name> {
        self.name(&[&dashed(ip), namespace, "pod"])
    }

    /// `ns.dns.<domain>`: the name server of the zone (CoreDNS's convention).
    pub fn name_server(&self) -> Option<Name> {
        self.name(&["ns", "dns"])
    }
}

/// An IP in the dashed form of pod and endpoint names: `127-244-1-5`, `fd00--1`.
pub fn dashed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

/// The inverse of [`dashed`].
pub fn parse_dashed(label: &str) -> Option<IpAddr> {
    if label.bytes().filter(|b| *b == b'-').count() == 3
        && let Ok(ip) = label.replace('-', ".").parse::<std::net::Ipv4Addr>()
    {
        return Some(IpAddr::V4(ip));
    }
    label
        .replace('-', ":")
        .parse::<std::net::Ipv6Addr>()
        .ok()
        .map(IpAddr::V6)
}

fn address(ip: IpAddr) -> Data {
    match ip {
        IpAddr::V4(v4) => Data::A(v4),
        IpAddr::V6(v6) => Data::Aaaa(v6),
    }
}

fn reverse(ip: IpAddr) -> LowerName {
    LowerName::new(&Name::from(ip))
}

/// Records of one owner, deduplicated.
#[derive(Debug, Default)]
pub struct Records(HashSet<(LowerName, Data)>);

impl Records {
    fn push(&mut self, name: &Name, data: Data) {
        self.0.insert((LowerName::new(name), data));
    }

    fn push_lower(&mut self, name: LowerName, data: Data) {
        self.0.insert((name, data));
    }

    pub fn contains(&self, item: &(LowerName, Data)) -> bool {
        self.0.contains(item)
    }

    pub fn iter(&self) -> impl Iterator<Item = &(LowerName, Data)> {
        self.0.iter()
    }

    pub fn into_items(self) -> impl Iterator<Item = (LowerName, Data)> {
        self.0.into_iter()
    }
}

/// SRV records of one owner name share the weight equally, as CoreDNS does (100 / count).
struct SrvSet(HashMap<Name, Vec<(u16, Name)>>);

impl SrvSet {
    fn new() -> Self {
        Self(HashMap::new())
    }

    fn add(&mut self, port: &PortInfo, service: &Name, target: Name) {
        let Some(port_name) = &port.name else {
            return; // unnamed ports have no SRV record
        };
        let srv_label = format!("_{port_name}");
        let proto_label = format!("_{}", port.protocol);
        let Ok(relative) = Name::from_labels([srv_label.as_bytes(), proto_label.as_bytes()]) else {
            return;
        };
        let Ok(owner) = relative.append_domain(service) else {
            return;
        };
        let targets = self.0.entry(owner).or_default();
        if !targets.iter().any(|(p, t)| *p == port.port && *t == target) {
            targets.push((port.port, target));
        }
    }

    fn emit(self, out: &mut Records) {
        for (owner, targets) in self.0 {
            let weight = u16::try_from((100 / targets.len()).max(1)).unwrap_or(1);
            for (port, target) in targets {
                out.push(
                    &owner,
                    Data::Srv {
                        priority: 0,
                        weight,
                        port,
                        target,
                    },
                );
            }
        }
    }
}

/// What a Service (with its EndpointSlices, for headless Services) puts in the zone.
pub fn service_records(
    namer: &Namer,
    key: &ObjectKey,
    info: &ServiceInfo,
    slices: &[&SliceInfo],
    is_dns_service: bool,
) -> Records {
    let mut out = Records::default();
    let Some(base) = namer.service(key) else {
        return out;
    };
    match &info.kind {
        ServiceKind::ClusterIp(ips) => {
            for ip in ips {
                out.push(&base, address(*ip));
                out.push_lower(reverse(*ip), Data::Ptr(base.clone()));
                if is_dns_service && let Some(ns) = namer.name_server() {
                    out.push(&ns, address(*ip));
                }
            }
            let mut srv = SrvSet::new();
            for port in &info.ports {
                srv.add(port, &base, base.clone());
            }
            srv.emit(&mut out);
        }
        ServiceKind::Headless => {
            let mut srv = SrvSet::new();
            for slice in slices {
                for endpoint in &slice.endpoints {
                    if !(endpoint.ready || info.publish_not_ready) {
                        continue;
                    }
                    for ip in &endpoint.addresses {
                        // Endpoints without a hostname are named by their dashed IP (CoreDNS).
                        let host = endpoint.hostname.clone().unwrap_or_else(|| dashed(*ip));
                        let Some(host_name) =
                            namer.name(&[&host, &key.name, &key.namespace, "svc"])
                        else {
                            continue;
                        };
                        out.push(&base, address(*ip));
                        out.push(&host_name, address(*ip));
                        out.push_lower(reverse(*ip), Data::Ptr(host_name.clone()));
                        for port in &slice.ports {
                            srv.add(port, &base, host_name.clone());
                        }
                    }
                }
            }
            srv.emit(&mut out);
        }
        ServiceKind::ExternalName(target) => out.push(&base, Data::Cname(target.clone())),
        ServiceKind::Unresolvable => {}
    }
    out
}

/// What a Pod puts in the zone: its `<a-b-c-d>.<ns>.pod.<domain>` address records (when pod records
/// are verified against pods) and the PTR records of its IPs.
pub fn pod_records(
    namer: &Namer,
    namespace: &str,
    info: &PodInfo,
    address_records: bool,
) -> Records {
    let mut out = Records::default();
    for ip in &info.ips {
        let Some(name) = namer.pod(namespace, *ip) else {
            continue;
        };
        if address_records {
            out.push(&name, address(*ip));
        }
        if !info.host_network {
            out.push_lower(reverse(*ip), Data::Ptr(name));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashed_ips_round_trip() {
        for ip in ["127.244.1.5", "fd00::1", "2001:db8:0:0:1::"] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert_eq!(parse_dashed(&dashed(ip)), Some(ip), "{ip}");
        }
        assert_eq!(dashed("127.244.1.5".parse().expect("ip")), "127-244-1-5");
        assert_eq!(dashed("fd00::1".parse().expect("ip")), "fd00--1");
        assert_eq!(parse_dashed("web-0"), None);
        assert_eq!(parse_dashed("1-2-3"), None);
    }
}
