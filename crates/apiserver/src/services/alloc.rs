//! The IO-free allocators behind Service ClusterIPs and NodePorts: which addresses and ports are
//! taken, and which to hand out next.
//!
//! As in Kubernetes, a ClusterIP range is split into a small static band at the bottom (for IPs
//! users ask for, like `kube-dns`'s 127.96.0.10) and a dynamic band above it that automatic
//! allocation uses first, so that a requested low address is rarely already taken. The network
//! address (offset 0) is never handed out, nor the broadcast address; offset 1 is the
//! `kubernetes` Service's.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use crate::net::{Ipv4Net, PortRange};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    #[error("the provided IP ({ip}) is not in the valid range. The range of valid IPs is {range}")]
    IpNotInRange { ip: String, range: String },
    #[error("provided IP is already allocated")]
    IpAllocated,
    #[error("range is full")]
    IpsFull,
    #[error("provided port is not in the valid range. The range of valid ports is {range}")]
    PortNotInRange { range: String },
    #[error("provided port is already allocated")]
    PortAllocated,
    #[error("range is full")]
    PortsFull,
}

/// ClusterIPs of one Service CIDR.
#[derive(Debug, Clone)]
pub struct IpAllocator {
    net: Ipv4Net,
    used: BTreeSet<u64>,
    /// Where the next dynamic search starts (round robin through the dynamic band).
    cursor: u64,
}

impl IpAllocator {
    pub fn new(net: Ipv4Net) -> IpAllocator {
        let mut a = IpAllocator {
            net,
            used: BTreeSet::new(),
            cursor: 0,
        };
        a.cursor = a.static_band();
        a
    }

    /// Size of the static band: 1/16 of the range, at least 16 and at most 256 addresses.
    fn static_band(&self) -> u64 {
        (self.net.size() / 16)
            .clamp(16, 256)
            .min(self.last_offset())
    }

    fn last_offset(&self) -> u64 {
        // The broadcast address is not used.
        self.net.size().saturating_sub(2)
    }

    /// The address of the `kubernetes` Service (the first usable one).
    pub fn first(&self) -> Ipv4Addr {
        self.net.nth(1).unwrap_or(self.net.addr)
    }

    pub fn range(&self) -> Ipv4Net {
        self.net
    }

    pub fn is_allocated(&self, ip: Ipv4Addr) -> bool {
        self.net.offset(ip).is_some_and(|o| self.used.contains(&o))
    }

    /// Reserves a requested address.
    pub fn allocate(&mut self, ip: &str) -> Result<Ipv4Addr, AllocError> {
        let not_in_range = || AllocError::IpNotInRange {
            ip: ip.to_string(),
            range: self.net.to_string(),
        };
        let addr: Ipv4Addr = ip.parse().map_err(|_| not_in_range())?;
        let offset = self.net.offset(addr).ok_or_else(not_in_range)?;
        if offset == 0 || offset > self.last_offset() {
            return Err(not_in_range());
        }
        if !self.used.insert(offset) {
            return Err(AllocError::IpAllocated);
        }
        Ok(addr)
    }

    /// Hands out a free address: the dynamic band first, then the static band.
    pub fn allocate_next(&mut self) -> Result<Ipv4Addr, AllocError> {
        let last = self.last_offset();
        let band = self.static_band();
        let lo = band + 1;
        let cursor = if (lo..=last).contains(&self.cursor) {
            self.cursor
        } else {
            lo
        };
        let pick = (cursor..=last)
            .chain(lo..cursor)
            .find(|o| !self.used.contains(o))
            .or_else(|| (2..=band).find(|o| !self.used.contains(o)));
        let offset = pick.ok_or(AllocError::IpsFull)?;
        self.used.insert(offset);
        self.cursor = offset + 1;
        self.net.nth(offset).ok_or(AllocError::IpsFull)
    }

    /// Marks an address taken without checks (rebuilding from the store).
    pub fn mark(&mut self, ip: &str) {
        if let Some(o) = ip.parse().ok().and_then(|a| self.net.offset(a)) {
            self.used.insert(o);
        }
    }

    pub fn release(&mut self, ip: &str) {
        if let Some(o) = ip.parse().ok().and_then(|a| self.net.offset(a)) {
            self.used.remove(&o);
        }
    }

    pub fn used(&self) -> usize {
        self.used.len()
    }
}

/// NodePorts of one port range.
#[derive(Debug, Clone)]
pub struct PortAllocator {
    range: PortRange,
    used: BTreeSet<u16>,
    cursor: u16,
}

impl PortAllocator {
    pub fn new(range: PortRange) -> PortAllocator {
        PortAllocator {
            range,
            used: BTreeSet::new(),
            cursor: range.first,
        }
    }

    pub fn range(&self) -> PortRange {
        self.range
    }

    pub fn allocate(&mut self, port: i64) -> Result<u16, AllocError> {
        if !self.range.contains(port) {
            return Err(AllocError::PortNotInRange {
                range: self.range.to_string(),
            });
        }
        let port = port as u16;
        if !self.used.insert(port) {
            return Err(AllocError::PortAllocated);
        }
        Ok(port)
    }

    pub fn allocate_next(&mut self) -> Result<u16, AllocError> {
        let PortRange { first, last } = self.range;
        let from_cursor = (self.cursor..=last).chain(first..self.cursor);
        let port = from_cursor
            .into_iter()
            .find(|p| !self.used.contains(p))
            .ok_or(AllocError::PortsFull)?;
        self.used.insert(port);
        self.cursor = if port == last { first } else { port + 1 };
        Ok(port)
    }

    pub fn mark(&mut self, port: i64) {
        if self.range.contains(port) {
            self.used.insert(port as u16);
        }
    }

    pub fn release(&mut self, port: i64) {
        if let Ok(p) = u16::try_from(port) {
            self.used.remove(&p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ips() {
        let net: Ipv4Net = "127.96.0.0/16".parse().expect("cidr");
        let mut a = IpAllocator::new(net);
        assert_eq!(a.first(), Ipv4Addr::new(127, 96, 0, 1));
        assert_eq!(a.allocate("127.96.0.1"), Ok(Ipv4Addr::new(127, 96, 0, 1)));
        assert_eq!(a.allocate("127.96.0.1"), Err(AllocError::IpAllocated));
        assert_eq!(
            a.allocate("10.0.0.1").map_err(|e| e.to_string()),
            Err("the provided IP (10.0.0.1) is not in the valid range. The range of valid IPs is 127.96.0.0/16".into())
        );
        assert!(a.allocate("127.96.0.0").is_err(), "network address");
        // Dynamic allocation starts above the static band (256 addresses for a /16).
        let ip = a.allocate_next().expect("next");
        assert!(
            u32::from(ip) > u32::from(Ipv4Addr::new(127, 96, 1, 0)),
            "{ip}"
        );
        a.release(&ip.to_string());
        assert!(!a.is_allocated(ip));

        let small: Ipv4Net = "127.96.0.0/29".parse().expect("cidr");
        let mut s = IpAllocator::new(small);
        let mut got = Vec::new();
        while let Ok(ip) = s.allocate_next() {
            got.push(ip);
        }
        // 8 addresses: network, broadcast and .1 (kubernetes) are never handed out dynamically.
        assert_eq!(got.len(), 5);
        assert!(!got.contains(&Ipv4Addr::new(127, 96, 0, 1)));
    }

    #[test]
    fn node_ports() {
        let mut p = PortAllocator::new(PortRange {
            first: 30000,
            last: 30002,
        });
        assert_eq!(p.allocate(30001), Ok(30001));
        assert_eq!(p.allocate(30001), Err(AllocError::PortAllocated));
        assert_eq!(
            p.allocate(80).map_err(|e| e.to_string()),
            Err(
                "provided port is not in the valid range. The range of valid ports is 30000-30002"
                    .into()
            )
        );
        assert_eq!(p.allocate_next(), Ok(30000));
        assert_eq!(p.allocate_next(), Ok(30002));
        assert_eq!(p.allocate_next(), Err(AllocError::PortsFull));
        p.release(30000);
        assert_eq!(p.allocate_next(), Ok(30000));
    }
}
