//! Node IPAM decisions, IO-free (Kubernetes' range allocator): every node gets a `/mask` of the
//! cluster CIDR as `spec.podCIDR(s)`; a node that already has one keeps it; a deleted node's
//! subnet is free again because the taken set is derived from the nodes that exist.
//!
//! The first subnet (`127.244.0.0/24`) is handed out last, so that node N of a local cluster gets
//! `127.244.N.0/24` as the address plan in ARCHITECTURE.md has it.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Node;

use crate::util::cidr::{CidrError, Ipv4Cidr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocator {
    cidr: Ipv4Cidr,
    mask: u8,
    count: u32,
}

/// What to do about one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// It has a podCIDR already.
    Keep,
    Assign(Ipv4Cidr),
    /// No subnet is free.
    Exhausted,
}

impl Allocator {
    pub fn new(cluster_cidr: &str, mask: u8) -> Result<Allocator, CidrError> {
        let cidr = Ipv4Cidr::parse(cluster_cidr)?;
        let count = cidr.subnet_count(mask)?;
        Ok(Allocator { cidr, mask, count })
    }

    /// The subnet index a node's podCIDR holds, if it is one of ours.
    pub fn index_of(&self, node: &Node) -> Option<u32> {
        let cidr = pod_cidr(node)?;
        self.cidr
            .subnet_index(self.mask, &Ipv4Cidr::parse(cidr).ok()?)
    }

    pub fn index_of_cidr(&self, cidr: &Ipv4Cidr) -> Option<u32> {
        self.cidr.subnet_index(self.mask, cidr)
    }

    pub fn subnet(&self, i: u32) -> Ipv4Cidr {
        self.cidr.subnet(self.mask, i)
    }

    /// The decision for `node`, given the subnet indexes other nodes hold.
    pub fn decide(&self, node: &Node, taken: &BTreeSet<u32>) -> Decision {
        if pod_cidr(node).is_some() {
            return Decision::Keep;
        }
        (1..self.count)
            .chain(std::iter::once(0))
            .find(|i| !taken.contains(i))
            .map_or(Decision::Exhausted, |i| Decision::Assign(self.subnet(i)))
    }
}

pub fn pod_cidr(node: &Node) -> Option<&str> {
    node.spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_deref())
        .filter(|c| !c.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(cidr: Option<&str>) -> Node {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "n"},
            "spec": {"podCIDR": cidr}}))
        .expect("node")
    }

    #[test]
    fn assigns_the_lowest_free_subnet_and_keeps_existing_ones() {
        let a = Allocator::new("127.244.0.0/16", 24).expect("allocator");
        assert_eq!(
            a.decide(&node(None), &BTreeSet::new()),
            Decision::Assign(Ipv4Cidr::parse("127.244.1.0/24").expect("cidr"))
        );
        assert_eq!(
            a.decide(&node(None), &BTreeSet::from([1, 2])),
            Decision::Assign(Ipv4Cidr::parse("127.244.3.0/24").expect("cidr"))
        );
        assert_eq!(
            a.decide(&node(Some("10.0.0.0/24")), &BTreeSet::new()),
            Decision::Keep
        );
        assert_eq!(a.index_of(&node(Some("127.244.7.0/24"))), Some(7));
        assert_eq!(a.index_of(&node(Some("10.0.0.0/24"))), None);
        let tiny = Allocator::new("127.244.0.0/23", 24).expect("allocator");
        assert_eq!(
            tiny.decide(&node(None), &BTreeSet::from([1])),
            Decision::Assign(Ipv4Cidr::parse("127.244.0.0/24").expect("cidr"))
        );
        assert_eq!(
            tiny.decide(&node(None), &BTreeSet::from([0, 1])),
            Decision::Exhausted
        );
        assert!(Allocator::new("127.244.0.0/16", 8).is_err());
    }
}
