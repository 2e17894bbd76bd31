//! Address ranges the apiserver hands out from: the Service CIDR (`--service-cidr`) and the NodePort
//! range (`--service-node-port-range`), parsed the way kube-apiserver parses its flags.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 network such as `127.96.0.0/16` (host bits are cleared on parse).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("invalid CIDR {0:?}: expected an IPv4 network such as 127.96.0.0/16")]
    Cidr(String),
    #[error("the service CIDR {0} is too small: it needs a prefix of /30 or shorter")]
    CidrTooSmall(String),
    #[error("invalid port range {0:?}: expected FIRST-LAST such as 30000-32767")]
    Ports(String),
}

impl Ipv4Net {
    fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    /// The number of addresses in the network.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }

    /// The address at `offset` from the network address.
    pub fn nth(&self, offset: u64) -> Option<Ipv4Addr> {
        (offset < self.size()).then(|| Ipv4Addr::from(u32::from(self.addr) + offset as u32))
    }

    /// The offset of `ip` in the network.
    pub fn offset(&self, ip: Ipv4Addr) -> Option<u64> {
        self.contains(ip)
            .then(|| u64::from(u32::from(ip) - u32::from(self.addr)))
    }
}

impl FromStr for Ipv4Net {
    type Err = RangeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || RangeError::Cidr(s.to_string());
        let (addr, prefix) = s.trim().split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        let mut net = Ipv4Net { addr, prefix };
        net.addr = Ipv4Addr::from(u32::from(addr) & net.mask());
        if prefix > 30 {
            return Err(RangeError::CidrTooSmall(s.to_string()));
        }
        Ok(net)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// An inclusive port range such as `30000-32767` (a single port `N` means `N-N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn contains(&self, port: i64) -> bool {
        port >= i64::from(self.first) && port <= i64::from(self.last)
    }

    pub fn size(&self) -> usize {
        usize::from(self.last - self.first) + 1
    }
}

impl FromStr for PortRange {
    type Err = RangeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || RangeError::Ports(s.to_string());
        let (first, last) = match s.trim().split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (s.trim(), s.trim()),
        };
        let first: u16 = first.parse().map_err(|_| bad())?;
        let last: u16 = last.parse().map_err(|_| bad())?;
        if first == 0 || last < first {
            return Err(bad());
        }
        Ok(PortRange { first, last })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags_like_kube_apiserver() {
        let net: Ipv4Net = "127.96.3.4/16".parse().expect("cidr");
        assert_eq!(net.to_string(), "127.96.0.0/16");
        assert_eq!(net.size(), 65536);
        assert_eq!(net.nth(1), Some(Ipv4Addr::new(127, 96, 0, 1)));
        assert_eq!(net.offset(Ipv4Addr::new(127, 96, 1, 0)), Some(256));
        assert!(!net.contains(Ipv4Addr::new(127, 97, 0, 1)));
        assert!("127.96.0.0".parse::<Ipv4Net>().is_err());
        assert!("127.96.0.0/31".parse::<Ipv4Net>().is_err());
        let ports: PortRange = "30000-32767".parse().expect("range");
        assert_eq!(ports.size(), 2768);
        assert!(ports.contains(30000) && ports.contains(32767) && !ports.contains(32768));
        assert_eq!("8080".parse::<PortRange>().map(|p| p.size()), Ok(1));
        assert!("5-3".parse::<PortRange>().is_err());
    }
}
