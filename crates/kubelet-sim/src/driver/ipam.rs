//! Pod addresses of one node: hosts .2 to .254 of its podCIDR, one per pod sandbox.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::config::PodCidr;

#[derive(Debug)]
pub struct Ipam {
    cidr: PodCidr,
    used: [bool; 256],
    by_pod: HashMap<String, u8>,
    /// Where the next search starts, so a freed address is not reused at once.
    next: u8,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("failed to allocate for range 0: no IP addresses available in range set: {first}-{last}")]
pub struct Exhausted {
    first: Ipv4Addr,
    last: Ipv4Addr,
}

impl Ipam {
    pub fn new(cidr: PodCidr) -> Ipam {
        Ipam {
            cidr,
            used: [false; 256],
            by_pod: HashMap::new(),
            next: 2,
        }
    }

    pub fn cidr(&self) -> PodCidr {
        self.cidr
    }

    /// Follows a changed podCIDR (set by the controller-manager's IPAM). Addresses already given
    /// out stay with their pods.
    pub fn set_cidr(&mut self, cidr: PodCidr) {
        self.cidr = cidr;
    }

    /// The pod's address (the same one again if it has one).
    pub fn allocate(&mut self, uid: &str) -> Result<Ipv4Addr, Exhausted> {
        if let Some(n) = self.by_pod.get(uid) {
            return Ok(self.cidr.host(*n));
        }
        for i in 0..253u16 {
            let n = 2 + ((u16::from(self.next) - 2 + i) % 253) as u8;
            if !self.used[usize::from(n)] {
                self.used[usize::from(n)] = true;
                self.by_pod.insert(uid.to_string(), n);
                self.next = if n == 254 { 2 } else { n + 1 };
                return Ok(self.cidr.host(n));
            }
        }
        Err(Exhausted {
            first: self.cidr.host(2),
            last: self.cidr.host(254),
        })
    }

    /// Records an address a pod already has (adopted after a restart).
    pub fn claim(&mut self, uid: &str, ip: Ipv4Addr) {
        if self.cidr.contains(ip) {
            let n = ip.octets()[3];
            self.used[usize::from(n)] = true;
            self.by_pod.insert(uid.to_string(), n);
        }
    }

    pub fn release(&mut self, uid: &str) {
        if let Some(n) = self.by_pod.remove(uid) {
            self.used[usize::from(n)] = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_distinct_addresses_and_reuses_late() {
        let mut ipam = Ipam::new(PodCidr {
            base: Ipv4Addr::new(127, 244, 7, 0),
        });
        assert_eq!(ipam.allocate("a"), Ok(Ipv4Addr::new(127, 244, 7, 2)));
        assert_eq!(ipam.allocate("b"), Ok(Ipv4Addr::new(127, 244, 7, 3)));
        assert_eq!(
            ipam.allocate("a"),
            Ok(Ipv4Addr::new(127, 244, 7, 2)),
            "stable per pod"
        );
        ipam.release("a");
        assert_eq!(
            ipam.allocate("c"),
            Ok(Ipv4Addr::new(127, 244, 7, 4)),
            "freed address not reused at once"
        );
        ipam.claim("d", Ipv4Addr::new(127, 244, 7, 5));
        assert_eq!(ipam.allocate("e"), Ok(Ipv4Addr::new(127, 244, 7, 6)));
        for i in 0..249 {
            assert!(ipam.allocate(&format!("x{i}")).is_ok(), "{i}");
        }
        assert!(ipam.allocate("full").is_err());
    }
}
