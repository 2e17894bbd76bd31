//! IPv4 CIDR arithmetic for node IPAM and the LoadBalancer pool (`127.244.0.0/16` split into
//! `/24`s, hosts of `127.200.0.0/24`). IPv4 only, as niwa's addresses are all in 127.0.0.0/8.

use std::net::Ipv4Addr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("{0:?} is not an IPv4 CIDR (a.b.c.d/n)")]
    Syntax(String),
    #[error(
        "{cidr}: a /{mask} per node does not fit (it must be at least /{prefix} and at most /30)"
    )]
    Mask { cidr: String, mask: u8, prefix: u8 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Cidr {
    base: u32,
    prefix: u8,
}

impl std::fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

impl Ipv4Cidr {
    /// Parse `a.b.c.d/n` (host bits are cleared, as Go's `net.ParseCIDR` does).
    pub fn parse(s: &str) -> Result<Ipv4Cidr, CidrError> {
        let bad = || CidrError::Syntax(s.to_string());
        let (ip, prefix) = s.trim().split_once('/').ok_or_else(bad)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        let base = u32::from(ip) & mask(prefix);
        Ok(Ipv4Cidr { base, prefix })
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == self.base
    }

    /// Whether `other` lies entirely inside this range.
    pub fn contains_cidr(&self, other: &Ipv4Cidr) -> bool {
        other.prefix >= self.prefix && self.contains(Ipv4Addr::from(other.base))
    }

    /// How many `/mask` subnets the range holds.
    pub fn subnet_count(&self, mask_size: u8) -> Result<u32, CidrError> {
        if mask_size < self.prefix || mask_size > 30 {
            return Err(CidrError::Mask {
                cidr: self.to_string(),
                mask: mask_size,
                prefix: self.prefix,
            });
        }
        Ok(1u32 << (mask_size - self.prefix).min(31))
    }

    /// The `i`-th `/mask` subnet.
    pub fn subnet(&self, mask_size: u8, i: u32) -> Ipv4Cidr {
        let step = 1u64 << (32 - u32::from(mask_size));
        let base = (u64::from(self.base) + u64::from(i) * step) as u32;
        Ipv4Cidr {
            base,
            prefix: mask_size,
        }
    }

    /// Index of `sub` among the `/mask` subnets, if it is one of them.
    pub fn subnet_index(&self, mask_size: u8, sub: &Ipv4Cidr) -> Option<u32> {
        (sub.prefix == mask_size && self.contains_cidr(sub))
            .then(|| (sub.base - self.base) >> (32 - u32::from(mask_size)))
    }

    /// Number of addresses.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// The `i`-th address.
    pub fn host(&self, i: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.base.wrapping_add(i))
    }

    /// Offset of `ip` in the range, if it is in it.
    pub fn offset(&self, ip: Ipv4Addr) -> Option<u32> {
        self.contains(ip).then(|| u32::from(ip) - self.base)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_split() {
        let c = Ipv4Cidr::parse("127.244.3.7/16").expect("parse");
        assert_eq!(c.to_string(), "127.244.0.0/16");
        assert_eq!(c.subnet_count(24), Ok(256));
        assert_eq!(c.subnet(24, 5).to_string(), "127.244.5.0/24");
        let sub = Ipv4Cidr::parse("127.244.9.0/24").expect("parse");
        assert_eq!(c.subnet_index(24, &sub), Some(9));
        assert_eq!(c.subnet_index(25, &sub), None);
        assert_eq!(
            c.subnet_index(24, &Ipv4Cidr::parse("127.1.9.0/24").expect("parse")),
            None
        );
        assert!(c.subnet_count(8).is_err());
        assert!(Ipv4Cidr::parse("127.0.0.1").is_err());
        assert!(Ipv4Cidr::parse("::1/64").is_err());
        let pool = Ipv4Cidr::parse("127.200.0.0/24").expect("parse");
        assert_eq!(pool.size(), 256);
        assert_eq!(pool.host(1), Ipv4Addr::new(127, 200, 0, 1));
        assert_eq!(pool.offset(Ipv4Addr::new(127, 200, 0, 9)), Some(9));
        assert_eq!(pool.offset(Ipv4Addr::new(127, 201, 0, 9)), None);
    }
}
