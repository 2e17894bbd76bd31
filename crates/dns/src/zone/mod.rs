//! The cluster zone: an IO-free, in-memory index of Services, EndpointSlices and Pods that answers
//! every query for `<domain>` (and for the reverse names of cluster IPs and pod IPs).
//!
//! * [`Zone::apply_service`] / [`Zone::apply_endpoint_slice`] / [`Zone::apply_pod`] (and the
//!   `delete_*` and `retain_*` forms for watch events and re-lists) keep the index current; each
//!   recomputes the changed object's records ([`records`]) and applies the difference to the
//!   [`table`], so a change costs time proportional to that object, never to the zone.
//! * [`Zone::answer`] answers one question: records, NXDOMAIN versus NODATA (with the SOA for
//!   negative caching), REFUSED for wildcards, or "not ours" for names to forward upstream.
//!
//! Nothing here does IO or reads a clock: the golden tests in `tests.rs` drive it directly.

mod answer;
pub mod objects;
pub mod records;
pub mod table;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::str::FromStr;

use hickory_proto::rr::{LowerName, Name};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

pub use answer::{Answer, Outcome};
pub use objects::ObjectKey;
use objects::{PodInfo, ServiceInfo, ServiceKind, SliceInfo};
use records::{Namer, Records};
use table::{Data, Table};

/// The DNS schema version served at `dns-version.<domain>` (Kubernetes DNS specification).
pub const SCHEMA_VERSION: &str = "1.1.0";

/// How `<a-b-c-d>.<ns>.pod.<domain>` names are answered (CoreDNS's `pods` option).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PodRecords {
    /// Any well-formed name resolves to the IP it spells, pod or not (kube-dns compatible; the
    /// default of kubeadm's CoreDNS configuration and what the DNS specification requires).
    #[default]
    Insecure,
    /// Only if a running pod with that IP exists in that namespace.
    Verified,
    /// No pod records and no pod PTR records.
    Disabled,
}

impl FromStr for PodRecords {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "insecure" => Ok(Self::Insecure),
            "verified" => Ok(Self::Verified),
            "disabled" => Ok(Self::Disabled),
            other => Err(format!(
                "pod records mode must be insecure, verified or disabled, not {other:?}"
            )),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ZoneConfig {
    /// The cluster domain, e.g. `cluster.local`.
    pub domain: Name,
    /// TTL of every answer, and the negative-caching TTL (SOA minimum).
    pub ttl: u32,
    pub pod_records: PodRecords,
    /// The Service whose cluster IPs answer for the zone's name server, `ns.dns.<domain>`.
    pub dns_service: ObjectKey,
    /// The first SOA serial; every change to the zone increments it.
    pub initial_serial: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    #[error("cluster domain {domain:?} is not a valid DNS name: {reason}")]
    InvalidDomain { domain: String, reason: String },
}

impl ZoneConfig {
    /// `cluster.local`-style domain, 5 s TTL, kube-system/kube-dns, insecure pod records.
    pub fn new(domain: &str) -> Result<Self, ZoneError> {
        Ok(Self {
            domain: parse_domain(domain)?,
            ttl: 5,
            pod_records: PodRecords::default(),
            dns_service: ObjectKey::new("kube-system", "kube-dns"),
            initial_serial: 1,
        })
    }
}

/// A domain as the zone's apex: lowercase, fully qualified, not the root.
pub fn parse_domain(domain: &str) -> Result<Name, ZoneError> {
    let invalid = |reason: &str| ZoneError::InvalidDomain {
        domain: domain.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = domain.trim().trim_end_matches('.');
    if trimmed.is_empty() {
        return Err(invalid("the root cannot be the cluster domain"));
    }
    let mut name = Name::from_ascii(trimmed).map_err(|e| invalid(&e.to_string()))?;
    name.set_fqdn(true);
    Ok(name.to_lowercase())
}

/// Names every answer needs, built once.
#[derive(Debug)]
struct FixedNames {
    /// `in-addr.arpa.` and `ip6.arpa.`
    reverse_zones: [LowerName; 2],
    /// `ns.dns.<domain>`
    soa_mname: Name,
    /// `hostmaster.<domain>`
    soa_rname: Name,
}

impl FixedNames {
    fn new(namer: &Namer) -> Self {
        let arpa = |s: &str| LowerName::new(&Name::from_ascii(s).unwrap_or_default());
        let domain = namer.domain().clone();
        Self {
            reverse_zones: [arpa("in-addr.arpa."), arpa("ip6.arpa.")],
            soa_mname: namer.name_server().unwrap_or_else(|| domain.clone()),
            soa_rname: namer.name(&["hostmaster"]).unwrap_or(domain),
        }
    }
}

/// Services, EndpointSlices and Pods (their DNS-relevant summaries) and the records they produce.
#[derive(Debug)]
pub struct Zone {
    config: ZoneConfig,
    namer: Namer,
    names: FixedNames,
    apex: LowerName,
    table: Table,
    services: HashMap<ObjectKey, ServiceInfo>,
    slices: HashMap<ObjectKey, SliceInfo>,
    /// Service key → names of its EndpointSlices.
    slices_by_service: HashMap<ObjectKey, BTreeSet<String>>,
    pods: HashMap<ObjectKey, PodInfo>,
    serial: u32,
}

impl Zone {
    pub fn new(config: ZoneConfig) -> Self {
        let domain = config.domain.to_lowercase();
        let apex = LowerName::new(&domain);
        let namer = Namer::new(domain);
        let mut table = Table::new(apex.clone());
        if let Some(version) = namer.name(&["dns-version"]) {
            table.add(
                LowerName::new(&version),
                Data::Txt(SCHEMA_VERSION.to_string()),
            );
        }
        Self {
            serial: config.initial_serial,
            config,
            names: FixedNames::new(&namer),
            namer,
            apex,
            table,
            services: HashMap::new(),
            slices: HashMap::new(),
            slices_by_service: HashMap::new(),
            pods: HashMap::new(),
        }
    }

    pub fn config(&self) -> &ZoneConfig {
        &self.config
    }

    /// The SOA serial: changes whenever an answer may have changed.
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// Distinct records served (for metrics and memory accounting).
    pub fn record_count(&self) -> usize {
        self.table.record_count()
    }

    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    fn apply_diff(&mut self, old: Records, new: Records) {
        let mut changed = false;
        for item in old.iter() {
            if !new.contains(item) {
                self.table.remove(&item.0, &item.1);
                changed = true;
            }
        }
        for item in new.into_items() {
            if !old.contains(&item) {
                self.table.add(item.0, item.1);
                changed = true;
            }
        }
        if changed {
            self.serial = self.serial.wrapping_add(1);
        }
    }

    fn service_records(&self, key: &ObjectKey) -> Records {
        let Some(info) = self.services.get(key) else {
            return Records::default();
        };
        let slices: Vec<&SliceInfo> = if info.kind == ServiceKind::Headless {
            self.slices_by_service
                .get(key)
                .into_iter()
                .flatten()
                .filter_map(|slice| {
                    self.slices
                        .get(&ObjectKey::new(key.namespace.clone(), slice.clone()))
                })
                .collect()
        } else {
            Vec::new()
        };
        records::service_records(
            &self.namer,
            key,
            info,
            &slices,
            *key == self.config.dns_service,
        )
    }

    fn pod_records(&self, key: &ObjectKey) -> Records {
        match self.pods.get(key) {
            Some(info) => records::pod_records(
                &self.namer,
                &key.namespace,
                info,
                self.config.pod_records == PodRecords::Verified,
            ),
            None => Records::default(),
        }
    }

    fn is_headless(&self, key: &ObjectKey) -> bool {
        self.services
            .get(key)
            .is_some_and(|s| s.kind == ServiceKind::Headless)
    }

    /// A Service was added or changed.
    pub fn apply_service(&mut self, service: &Service) {
        let Some(key) = ObjectKey::of(&service.metadata) else {
            return;
        };
        let info = ServiceInfo::from_service(service);
        if self.services.get(&key) == Some(&info) {
            return;
        }
        let old = self.service_records(&key);
        self.services.insert(key.clone(), info);
        let new = self.service_records(&key);
        self.apply_diff(old, new);
    }

    pub fn delete_service(&mut self, key: &ObjectKey) {
        let old = self.service_records(key);
        if self.services.remove(key).is_some() {
            self.apply_diff(old, Records::default());
        }
    }

    /// An EndpointSlice was added or changed.
    pub fn apply_endpoint_slice(&mut self, slice: &EndpointSlice) {
        let Some(key) = ObjectKey::of(&slice.metadata) else {
            return;
        };
        let info = SliceInfo::from_slice(slice);
        if self.slices.get(&key) == info.as_ref() {
            return;
        }
        self.set_slice(key, info);
    }

    pub fn delete_endpoint_slice(&mut self, key: &ObjectKey) {
        if self.slices.contains_key(key) {
            self.set_slice(key.clone(), None);
        }
    }

    fn set_slice(&mut self, key: ObjectKey, info: Option<SliceInfo>) {
        let service_of = |s: &SliceInfo| ObjectKey::new(key.namespace.clone(), s.service.clone());
        let mut affected: Vec<ObjectKey> = Vec::with_capacity(2);
        affected.extend(self.slices.get(&key).map(service_of));
        affected.extend(info.as_ref().map(service_of));
        affected.dedup();
        affected.retain(|s| self.is_headless(s));

        let old: Vec<Records> = affected.iter().map(|s| self.service_records(s)).collect();
        if let Some(previous) = self.slices.remove(&key) {
            let service = service_of(&previous);
            if let Some(names) = self.slices_by_service.get_mut(&service) {
                names.remove(&key.name);
                if names.is_empty() {
                    self.slices_by_service.remove(&service);
                }
            }
        }
        if let Some(info) = info {
            self.slices_by_service
                .entry(service_of(&info))
                .or_default()
                .insert(key.name.clone());
            self.slices.insert(key, info);
        }
        for (service, old) in affected.iter().zip(old) {
            let new = self.service_records(service);
            self.apply_diff(old, new);
        }
    }

    /// A Pod was added or changed.
    pub fn apply_pod(&mut self, pod: &Pod) {
        if self.config.pod_records == PodRecords::Disabled {
            return;
        }
        let Some(key) = ObjectKey::of(&pod.metadata) else {
            return;
        };
        let info = PodInfo::from_pod(pod);
        if self.pods.get(&key) == info.as_ref() {
            return;
        }
        let old = self.pod_records(&key);
        match info {
            Some(info) => self.pods.insert(key.clone(), info),
            None => self.pods.remove(&key),
        };
        let new = self.pod_records(&key);
        self.apply_diff(old, new);
    }

    pub fn delete_pod(&mut self, key: &ObjectKey) {
        let old = self.pod_records(key);
        if self.pods.remove(key).is_some() {
            self.apply_diff(old, Records::default());
        }
    }

    /// After a re-list: deletes the Services not in `keep` (the re-list applied the others).
    pub fn retain_services(&mut self, keep: &HashSet<ObjectKey>) {
        let gone: Vec<ObjectKey> = self
            .services
            .keys()
            .filter(|k| !keep.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            self.delete_service(&key);
        }
    }

    /// After a re-list: deletes the EndpointSlices not in `keep`.
    pub fn retain_endpoint_slices(&mut self, keep: &HashSet<ObjectKey>) {
        let gone: Vec<ObjectKey> = self
            .slices
            .keys()
            .filter(|k| !keep.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            self.delete_endpoint_slice(&key);
        }
    }

    /// After a re-list: deletes the Pods not in `keep`.
    pub fn retain_pods(&mut self, keep: &HashSet<ObjectKey>) {
        let gone: Vec<ObjectKey> = self
            .pods
            .keys()
            .filter(|k| !keep.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            self.delete_pod(&key);
        }
    }
}
