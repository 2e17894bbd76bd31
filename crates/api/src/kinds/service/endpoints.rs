//! Endpoints and EndpointSlices: `ValidateEndpoints` and `ValidateEndpointSlice`, and the
//! port rules they share.

use super::*;

fn validate_endpoint_ports<'a>(
    ports: impl Iterator<Item = (Option<&'a str>, Option<i32>, Option<&'a str>)>,
    path: &Path,
    multi: bool,
) -> Vec<Cause> {
    let mut causes = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, (name, port, proto)) in ports.enumerate() {
        let p = path.index(i);
        let name = name.unwrap_or_default();
        if multi && name.is_empty() {
            causes.push(field::required(&p.child("name"), ""));
        } else if !name.is_empty() {
            for problem in names::dns1123_label(name) {
                causes.push(field::invalid(&p.child("name"), name, &problem));
            }
            if !seen.insert(name.to_string()) {
                causes.push(field::duplicate(&p.child("name"), name));
            }
        }
        if let Some(port) = port {
            for problem in names::port_num(i64::from(port)) {
                causes.push(field::invalid(&p.child("port"), port, &problem));
            }
        }
        match proto {
            None | Some("") => causes.push(field::required(&p.child("protocol"), "")),
            Some(pr) if !PROTOCOLS.contains(&pr) => {
                causes.push(field::not_supported(&p.child("protocol"), pr, PROTOCOLS));
            }
            Some(_) => {}
        }
    }
    causes
}

impl Strategy for Endpoints {
    fn default(&mut self) {
        for subset in self.subsets.iter_mut().flatten() {
            for p in subset.ports.iter_mut().flatten() {
                or_str(&mut p.protocol, "TCP");
            }
        }
    }

    fn validate(&self) -> Vec<Cause> {
        let mut causes = Vec::new();
        for (i, subset) in self.subsets.iter().flatten().enumerate() {
            let sp = Path::new("subsets").index(i);
            let addresses = subset.addresses.as_deref().unwrap_or_default();
            let not_ready = subset.not_ready_addresses.as_deref().unwrap_or_default();
            if addresses.is_empty() && not_ready.is_empty() {
                causes.push(field::required(
                    &sp,
                    "must specify `addresses` or `notReadyAddresses`",
                ));
            }
            for (list, items) in [("addresses", addresses), ("notReadyAddresses", not_ready)] {
                for (j, a) in items.iter().enumerate() {
                    for problem in names::ip(&a.ip) {
                        causes.push(field::invalid(
                            &sp.child(list).index(j).child("ip"),
                            a.ip.as_str(),
                            &problem,
                        ));
                    }
                }
            }
            let ports = subset.ports.as_deref().unwrap_or_default();
            causes.extend(validate_endpoint_ports(
                ports
                    .iter()
                    .map(|p| (p.name.as_deref(), Some(p.port), p.protocol.as_deref())),
                &sp.child("ports"),
                ports.len() > 1,
            ));
        }
        causes
    }
}

const ADDRESS_TYPES: &[&str] = &["IPv4", "IPv6", "FQDN"];
const MAX_SLICE_ADDRESSES: usize = 100;

impl Strategy for EndpointSlice {
    fn default(&mut self) {
        for p in self.ports.iter_mut().flatten() {
            or_str(&mut p.protocol, "TCP");
            or_str(&mut p.name, "");
        }
    }

    fn validate(&self) -> Vec<Cause> {
        let mut causes = Vec::new();
        let ty = self.address_type.as_str();
        if ty.is_empty() {
            causes.push(field::required(&Path::new("addressType"), ""));
        } else if !ADDRESS_TYPES.contains(&ty) {
            causes.push(field::not_supported(
                &Path::new("addressType"),
                ty,
                ADDRESS_TYPES,
            ));
        }
        for (i, ep) in self.endpoints.iter().enumerate() {
            let p = Path::new("endpoints").index(i).child("addresses");
            if ep.addresses.is_empty() {
                causes.push(field::required(&p, "must contain at least 1 address"));
            } else if ep.addresses.len() > MAX_SLICE_ADDRESSES {
                causes.push(field::too_many(&p, ep.addresses.len(), MAX_SLICE_ADDRESSES));
            }
            for (j, a) in ep.addresses.iter().enumerate() {
                let problems = match ty {
                    "IPv4" | "IPv6" => names::ip(a),
                    "FQDN" => names::dns1123_subdomain(a),
                    _ => Vec::new(),
                };
                for problem in problems {
                    causes.push(field::invalid(&p.index(j), a.as_str(), &problem));
                }
            }
        }
        let ports = self.ports.as_deref().unwrap_or_default();
        causes.extend(validate_endpoint_ports(
            ports
                .iter()
                .map(|p| (p.name.as_deref(), p.port, p.protocol.as_deref())),
            &Path::new("ports"),
            false,
        ));
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = self.validate();
        if self.address_type != old.address_type {
            causes.push(field::invalid(
                &Path::new("addressType"),
                self.address_type.as_str(),
                field::IMMUTABLE,
            ));
        }
        causes
    }
}
