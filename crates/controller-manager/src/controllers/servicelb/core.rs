//! LoadBalancer address decisions, IO-free (what MetalLB's or k3s ServiceLB's allocator does): a
//! Service of type LoadBalancer without a `loadBalancerClass` gets an address of the pool
//! (`spec.loadBalancerIP` when it asks for a free one in the pool, else the lowest free; the
//! pool's network and broadcast addresses are never handed out) in
//! `status.loadBalancer.ingress[0].ip`. An address is held by the Service whose status shows it,
//! so deleting the Service releases it; a Service that stops being a LoadBalancer has it cleared.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, Service};

use crate::util::cidr::{CidrError, Ipv4Cidr};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Nothing,
    Assign(Ipv4Addr),
    /// No longer a LoadBalancer (or no longer ours): clear the status, releasing the address.
    Clear,
    Exhausted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    cidr: Ipv4Cidr,
}

/// Whether the Service is a LoadBalancer this controller serves.
pub fn wants_address(svc: &Service) -> bool {
    let Some(spec) = svc.spec.as_ref() else {
        return false;
    };
    spec.type_.as_deref() == Some("LoadBalancer")
        && spec
            .load_balancer_class
            .as_deref()
            .is_none_or(str::is_empty)
        && svc.metadata.deletion_timestamp.is_none()
}

/// The address the Service's status shows, if any.
pub fn status_ip(svc: &Service) -> Option<Ipv4Addr> {
    svc.status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .as_ref()?
        .iter()
        .find_map(|i| i.ip.as_deref()?.parse().ok())
}

/// The status that announces `ip`.
pub fn status_for(ip: Ipv4Addr) -> LoadBalancerStatus {
    LoadBalancerStatus {
        ingress: Some(vec![LoadBalancerIngress {
            ip: Some(ip.to_string()),
            ip_mode: Some("VIP".into()),
            ..Default::default()
        }]),
    }
}

impl Pool {
    pub fn new(cidr: &str) -> Result<Pool, CidrError> {
        Ok(Pool {
            cidr: Ipv4Cidr::parse(cidr)?,
        })
    }

    /// The pool offset of an address held by a Service, if it is in the pool.
    pub fn held(&self, svc: &Service) -> Option<u32> {
        if !wants_address(svc) {
            return None;
        }
        self.cidr.offset(status_ip(svc)?)
    }

    /// Usable offsets: all but network and broadcast in pools of 4 addresses or more.
    fn usable(&self) -> impl Iterator<Item = u32> {
        let size = self.cidr.size().min(u64::from(u32::MAX)) as u32;
        if size >= 4 { 1..size - 1 } else { 0..size }
    }

    /// The decision for `svc`, given the offsets other Services hold.
    pub fn decide(&self, svc: &Service, taken: &BTreeSet<u32>) -> Decision {
        if !wants_address(svc) {
            return match status_ip(svc) {
                Some(ip) if self.cidr.contains(ip) => Decision::Clear,
                _ => Decision::Nothing,
            };
        }
        if let Some(off) = status_ip(svc).and_then(|ip| self.cidr.offset(ip))
            && !taken.contains(&off)
        {
            return Decision::Nothing;
        }
        let requested = svc
            .spec
            .as_ref()
            .and_then(|s| s.load_balancer_ip.as_deref())
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
            .and_then(|ip| self.cidr.offset(ip))
            .filter(|off| !taken.contains(off));
        match requested.or_else(|| self.usable().find(|o| !taken.contains(o))) {
            Some(off) => Decision::Assign(self.cidr.host(off)),
            None => Decision::Exhausted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(v: serde_json::Value) -> Service {
        serde_json::from_value(v).expect("service")
    }

    #[test]
    fn addresses_from_the_pool() {
        let pool = Pool::new("127.200.0.0/24").expect("pool");
        let lb = svc(json!({"metadata": {"name": "a"}, "spec": {"type": "LoadBalancer"}}));
        assert_eq!(
            pool.decide(&lb, &BTreeSet::new()),
            Decision::Assign(Ipv4Addr::new(127, 200, 0, 1))
        );
        assert_eq!(
            pool.decide(&lb, &BTreeSet::from([1, 2])),
            Decision::Assign(Ipv4Addr::new(127, 200, 0, 3))
        );
        let asks = svc(json!({"metadata": {"name": "b"},
            "spec": {"type": "LoadBalancer", "loadBalancerIP": "127.200.0.77"}}));
        assert_eq!(
            pool.decide(&asks, &BTreeSet::new()),
            Decision::Assign(Ipv4Addr::new(127, 200, 0, 77))
        );
        let has = svc(
            json!({"metadata": {"name": "c"}, "spec": {"type": "LoadBalancer"},
            "status": {"loadBalancer": {"ingress": [{"ip": "127.200.0.5"}]}}}),
        );
        assert_eq!(pool.held(&has), Some(5));
        assert_eq!(pool.decide(&has, &BTreeSet::new()), Decision::Nothing);
        // Someone else holds it (a duplicate): move.
        assert_eq!(
            pool.decide(&has, &BTreeSet::from([5])),
            Decision::Assign(Ipv4Addr::new(127, 200, 0, 1))
        );
        let was = svc(
            json!({"metadata": {"name": "d"}, "spec": {"type": "ClusterIP"},
            "status": {"loadBalancer": {"ingress": [{"ip": "127.200.0.5"}]}}}),
        );
        assert_eq!(pool.decide(&was, &BTreeSet::new()), Decision::Clear);
        assert_eq!(pool.held(&was), None);
        let other_class = svc(json!({"metadata": {"name": "e"},
            "spec": {"type": "LoadBalancer", "loadBalancerClass": "example.com/lb"}}));
        assert_eq!(
            pool.decide(&other_class, &BTreeSet::new()),
            Decision::Nothing
        );
        let full: BTreeSet<u32> = (1..255).collect();
        assert_eq!(pool.decide(&lb, &full), Decision::Exhausted);
    }
}
