//! The record table: every owner name the zone serves, its record data, and which names exist only
//! because names below them do (empty non-terminals).
//!
//! Records are counted, not stored once: two owners may contribute the same record (two pods of
//! one namespace on the host network share an address, two EndpointSlices may list the same
//! address). A record disappears when its last contributor removes it. Answers therefore never
//! hold duplicates, and a change costs time proportional to what changed, not to the zone.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::rdata::{A, AAAA, CNAME, PTR, SRV, TXT};
use hickory_proto::rr::{LowerName, Name, RData, RecordType};

/// Record data as the zone stores it: only the kinds cluster DNS serves.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Data {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(Name),
    Ptr(Name),
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: Name,
    },
    Txt(String),
}

impl Data {
    pub fn record_type(&self) -> RecordType {
        match self {
            Data::A(_) => RecordType::A,
            Data::Aaaa(_) => RecordType::AAAA,
            Data::Cname(_) => RecordType::CNAME,
            Data::Ptr(_) => RecordType::PTR,
            Data::Srv { .. } => RecordType::SRV,
            Data::Txt(_) => RecordType::TXT,
        }
    }

    pub fn to_rdata(&self) -> RData {
        match self {
            Data::A(ip) => RData::A(A(*ip)),
            Data::Aaaa(ip) => RData::AAAA(AAAA(*ip)),
            Data::Cname(n) => RData::CNAME(CNAME(n.clone())),
            Data::Ptr(n) => RData::PTR(PTR(n.clone())),
            Data::Srv {
                priority,
                weight,
                port,
                target,
            } => RData::SRV(SRV::new(*priority, *weight, *port, target.clone())),
            Data::Txt(t) => RData::TXT(TXT::new(vec![t.clone()])),
        }
    }
}

#[derive(Debug, Default)]
pub struct Entry {
    /// Each distinct record with the number of owners contributing it.
    records: Vec<(Data, u32)>,
    /// Records at names strictly below this one (non-zero makes the name exist).
    descendants: u32,
}

impl Entry {
    pub fn records(&self) -> impl Iterator<Item = &Data> {
        self.records.iter().map(|(d, _)| d)
    }

    pub fn is_empty_non_terminal(&self) -> bool {
        self.records.is_empty()
    }
}

/// Owner name → records, with empty non-terminals tracked below `apex`.
#[derive(Debug)]
pub struct Table {
    entries: HashMap<LowerName, Entry>,
    /// Names strictly below the apex count as ancestors; names elsewhere (reverse zones) do not,
    /// since the zone only answers for reverse names that carry records.
    apex: LowerName,
    records: usize,
}

impl Table {
    pub fn new(apex: LowerName) -> Self {
        Self {
            entries: HashMap::new(),
            apex,
            records: 0,
        }
    }

    pub fn get(&self, name: &LowerName) -> Option<&Entry> {
        self.entries.get(name)
    }

    /// Distinct records in the table.
    pub fn record_count(&self) -> usize {
        self.records
    }

    /// Proper ancestors of `name` strictly below the apex.
    fn for_each_ancestor(apex: &LowerName, name: &LowerName, mut f: impl FnMut(LowerName)) {
        if !apex.zone_of(name) || name == apex {
            return;
        }
        let mut current = name.base_name();
        while current != *apex && current.num_labels() > apex.num_labels() {
            let next = current.base_name();
            f(current);
            current = next;
        }
    }

    pub fn add(&mut self, name: LowerName, data: Data) {
        let entry = self.entries.entry(name.clone()).or_default();
        if let Some((_, count)) = entry.records.iter_mut().find(|(d, _)| *d == data) {
            *count += 1;
        } else {
            entry.records.push((data, 1));
            self.records += 1;
        }
        let entries = &mut self.entries;
        Self::for_each_ancestor(&self.apex, &name, |ancestor| {
            entries.entry(ancestor).or_default().descendants += 1;
        });
    }

    pub fn remove(&mut self, name: &LowerName, data: &Data) {
        let Some(entry) = self.entries.get_mut(name) else {
            debug_assert!(false, "removing a record that was never added: {name}");
            return;
        };
        let Some(pos) = entry.records.iter().position(|(d, _)| d == data) else {
            debug_assert!(
                false,
                "removing a record that was never added: {name} {data:?}"
            );
            return;
        };
        entry.records[pos].1 -= 1;
        if entry.records[pos].1 == 0 {
            entry.records.swap_remove(pos);
            self.records -= 1;
        }
        if entry.records.is_empty() && entry.descendants == 0 {
            self.entries.remove(name);
        }
        let entries = &mut self.entries;
        Self::for_each_ancestor(&self.apex, name, |ancestor| {
            if let Some(e) = entries.get_mut(&ancestor) {
                e.descendants -= 1;
                if e.descendants == 0 && e.records.is_empty() {
                    entries.remove(&ancestor);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> LowerName {
        LowerName::new(&Name::from_ascii(s).expect("name"))
    }

    #[test]
    fn counts_contributors_and_tracks_empty_non_terminals() {
        let mut t = Table::new(n("cluster.local."));
        let ip = Data::A(Ipv4Addr::new(127, 244, 1, 5));
        t.add(n("a.ns.svc.cluster.local."), ip.clone());
        t.add(n("a.ns.svc.cluster.local."), ip.clone());
        assert_eq!(t.record_count(), 1);
        assert!(
            t.get(&n("ns.svc.cluster.local."))
                .is_some_and(|e| e.is_empty_non_terminal())
        );
        assert!(t.get(&n("svc.cluster.local.")).is_some());
        assert!(
            t.get(&n("cluster.local.")).is_none(),
            "the apex is not tracked"
        );

        t.remove(&n("a.ns.svc.cluster.local."), &ip);
        assert_eq!(
            t.get(&n("a.ns.svc.cluster.local."))
                .map(|e| e.records().count()),
            Some(1)
        );
        t.remove(&n("a.ns.svc.cluster.local."), &ip);
        assert!(t.get(&n("a.ns.svc.cluster.local.")).is_none());
        assert!(t.get(&n("ns.svc.cluster.local.")).is_none());
        assert!(t.get(&n("svc.cluster.local.")).is_none());
        assert_eq!(t.record_count(), 0);
    }

    #[test]
    fn names_outside_the_apex_have_no_ancestors() {
        let mut t = Table::new(n("cluster.local."));
        let ptr = Data::Ptr(Name::from_ascii("a.ns.svc.cluster.local.").expect("name"));
        t.add(n("5.1.244.127.in-addr.arpa."), ptr.clone());
        assert!(t.get(&n("1.244.127.in-addr.arpa.")).is_none());
        t.remove(&n("5.1.244.127.in-addr.arpa."), &ptr);
        assert!(t.get(&n("5.1.244.127.in-addr.arpa.")).is_none());
    }
}
