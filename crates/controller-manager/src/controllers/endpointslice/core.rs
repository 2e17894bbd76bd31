//! The EndpointSlice decisions, IO-free: the endpoints a Service's pods make (grouped by their
//! resolved ports and address type, Kubernetes' `podToEndpoint`), what the mirroring controller
//! makes of a user-written Endpoints object, and the reconciler that turns desired endpoints and
//! the existing slices into creates/updates/deletes with as little churn as Kubernetes' does:
//! endpoints stay in the slice they are in, changed slices are rewritten, new endpoints fill
//! slices with room before new slices (at most [`MAX_ENDPOINTS_PER_SLICE`] each) are created.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::controllers::endpoint::core::{self as ep, PortKey};
use crate::util::pod as podutil;

/// Kubernetes' `--max-endpoints-per-slice` default.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// Endpoints mirrored from one Endpoints object at most (Kubernetes' `--mirroring-max-endpoints-per-subset` is 1000).
pub const MAX_MIRRORED_ENDPOINTS: usize = 1000;
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub const SKIP_MIRROR_LABEL: &str = "endpointslice.kubernetes.io/skip-mirror";
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
pub const MIRRORING_CONTROLLER_NAME: &str = "endpointslicemirroring-controller.k8s.io";

/// The endpoints that share a port set and address type (one or more slices).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    pub address_type: String,
    pub ports: Vec<PortKey>,
    pub endpoints: Vec<Endpoint>,
}

type GroupKey = (String, Vec<PortKey>);

fn address_type(ip: &str) -> &'static str {
    if ip.contains(':') { "IPv6" } else { "IPv4" }
}

/// Kubernetes' `podToEndpoint`.
pub fn pod_endpoint(pod: &Pod, svc: &Service) -> Endpoint {
    Endpoint {
        addresses: vec![ep::pod_ip(pod).to_string()],
        conditions: Some(EndpointConditions {
            ready: Some(ep::is_ready_endpoint(pod, svc)),
            serving: Some(podutil::is_ready(pod)),
            terminating: Some(podutil::is_terminating(pod)),
        }),
        hostname: ep::hostname_for(pod, svc),
        node_name: ep::node_name(pod),
        target_ref: Some(ep::pod_reference(pod)),
        ..Default::default()
    }
}

/// The endpoints of a Service with a selector, from the pods it selects.
pub fn service_groups(svc: &Service, pods: &[&Pod]) -> Vec<Group> {
    let mut groups: BTreeMap<GroupKey, Vec<Endpoint>> = BTreeMap::new();
    let mut pods: Vec<&&Pod> = pods
        .iter()
        .filter(|p| ep::should_include(p, true))
        .collect();
    pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for pod in pods {
        let key = (
            address_type(ep::pod_ip(pod)).to_string(),
            ep::resolved_ports(svc, pod).into_iter().collect(),
        );
        groups.entry(key).or_default().push(pod_endpoint(pod, svc));
    }
    into_groups(groups)
}

fn into_groups(groups: BTreeMap<GroupKey, Vec<Endpoint>>) -> Vec<Group> {
    groups
        .into_iter()
        .map(|((address_type, ports), endpoints)| Group {
            address_type,
            ports,
            endpoints,
        })
        .collect()
}

/// What the mirroring controller makes of user-written Endpoints (ready addresses ready, the
/// others not), at most [`MAX_MIRRORED_ENDPOINTS`] per subset.
pub fn mirror_groups(endpoints: &Endpoints) -> Vec<Group> {
    let mut groups: BTreeMap<GroupKey, Vec<Endpoint>> = BTreeMap::new();
    for subset in endpoints.subsets.iter().flatten() {
        let ports: BTreeSet<PortKey> = subset
            .ports
            .iter()
            .flatten()
            .map(|p| PortKey {
                name: p.name.clone().unwrap_or_default(),
                port: p.port,
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                app_protocol: p.app_protocol.clone(),
            })
            .collect();
        let ports: Vec<PortKey> = ports.into_iter().collect();
        let ready = subset.addresses.iter().flatten().map(|a| (a, true));
        let not_ready = subset
            .not_ready_addresses
            .iter()
            .flatten()
            .map(|a| (a, false));
        for (a, is_ready) in ready.chain(not_ready).take(MAX_MIRRORED_ENDPOINTS) {
            let key = (address_type(&a.ip).to_string(), ports.clone());
            groups.entry(key).or_default().push(Endpoint {
                addresses: vec![a.ip.clone()],
                conditions: Some(EndpointConditions {
                    ready: Some(is_ready),
                    serving: Some(is_ready),
                    terminating: Some(false),
                }),
                hostname: a.hostname.clone(),
                node_name: a.node_name.clone(),
                target_ref: a.target_ref.clone(),
                ..Default::default()
            });
        }
    }
    into_groups(groups)
}

/// What every slice of one owner carries.
#[derive(Debug, Clone, PartialEq)]
pub struct SliceTemplate {
    pub namespace: String,
    /// `generateName` of new slices.
    pub generate_name: String,
    pub labels: BTreeMap<String, String>,
    pub owner: OwnerReference,
}

impl SliceTemplate {
    /// The template of the slices of a Service with a selector.
    pub fn for_service(svc: &Service, owner: OwnerReference) -> SliceTemplate {
        let name = svc.metadata.name.clone().unwrap_or_default();
        let mut labels = ep::derived_labels(svc);
        labels.insert(SERVICE_NAME_LABEL.into(), name.clone());
        labels.insert(MANAGED_BY_LABEL.into(), CONTROLLER_NAME.into());
        SliceTemplate {
            namespace: svc.metadata.namespace.clone().unwrap_or_default(),
            generate_name: prefix(&name),
            labels,
            owner,
        }
    }

    /// The template of the slices mirrored from user-written Endpoints.
    pub fn for_mirror(endpoints: &Endpoints, owner: OwnerReference) -> SliceTemplate {
        let name = endpoints.metadata.name.clone().unwrap_or_default();
        let mut labels = endpoints.metadata.labels.clone().unwrap_or_default();
        labels.remove(SKIP_MIRROR_LABEL);
        labels.insert(SERVICE_NAME_LABEL.into(), name.clone());
        labels.insert(MANAGED_BY_LABEL.into(), MIRRORING_CONTROLLER_NAME.into());
        SliceTemplate {
            namespace: endpoints.metadata.namespace.clone().unwrap_or_default(),
            generate_name: prefix(&name),
            labels,
            owner,
        }
    }

    fn new_slice(&self, group: &Group, endpoints: Vec<Endpoint>) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                generate_name: Some(self.generate_name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some(self.labels.clone()),
                owner_references: Some(vec![self.owner.clone()]),
                ..Default::default()
            },
            address_type: group.address_type.clone(),
            endpoints,
            ports: slice_ports(&group.ports),
        }
    }
}

/// Kubernetes' `getEndpointSlicePrefix`: the name, cut so that generated names stay valid.
fn prefix(name: &str) -> String {
    let cut: String = name.chars().take(57).collect();
    format!("{}-", cut.trim_end_matches('-'))
}

fn slice_ports(ports: &[PortKey]) -> Option<Vec<EndpointPort>> {
    Some(
        ports
            .iter()
            .map(|p| EndpointPort {
                name: Some(p.name.clone()),
                port: Some(p.port),
                protocol: Some(p.protocol.clone()),
                app_protocol: p.app_protocol.clone(),
            })
            .collect(),
    )
}

fn ports_of(slice: &EndpointSlice) -> Vec<PortKey> {
    let mut ports: Vec<PortKey> = slice
        .ports
        .iter()
        .flatten()
        .map(|p| PortKey {
            name: p.name.clone().unwrap_or_default(),
            port: p.port.unwrap_or(0),
            protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            app_protocol: p.app_protocol.clone(),
        })
        .collect();
    ports.sort();
    ports
}

/// Identity of an endpoint across syncs: its pod (or, mirrored, its first address).
fn endpoint_key(e: &Endpoint) -> String {
    match e.target_ref.as_ref().and_then(|r| r.uid.as_deref()) {
        Some(uid) if !uid.is_empty() => format!("{uid}/{}", e.addresses.join(",")),
        _ => e.addresses.join(","),
    }
}

/// The writes that make the existing slices say what the groups say.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SlicePlan {
    /// New slices (with `generateName`).
    pub create: Vec<EndpointSlice>,
    /// Existing slices, rewritten (they keep name and resourceVersion).
    pub update: Vec<EndpointSlice>,
    /// Names of slices to delete.
    pub delete: Vec<String>,
}

impl SlicePlan {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// Reconcile `existing` (this owner's slices) towards `groups`. A Service with no endpoints at
/// all keeps one empty slice (Kubernetes' placeholder), so consumers can tell "no endpoints"
/// from "not synced yet".
pub fn reconcile(
    template: &SliceTemplate,
    groups: &[Group],
    existing: &[EndpointSlice],
) -> SlicePlan {
    let mut plan = SlicePlan::default();
    let mut groups: Vec<Group> = groups
        .iter()
        .filter(|g| !g.endpoints.is_empty())
        .cloned()
        .collect();
    if groups.is_empty() {
        groups.push(Group {
            address_type: "IPv4".into(),
            ports: Vec::new(),
            endpoints: Vec::new(),
        });
    }
    let mut existing: Vec<&EndpointSlice> = existing.iter().collect();
    existing.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut by_group: HashMap<GroupKey, Vec<EndpointSlice>> = HashMap::new();
    for s in existing {
        by_group
            .entry((s.address_type.clone(), ports_of(s)))
            .or_default()
            .push(s.clone());
    }
    for group in &groups {
        let key = (group.address_type.clone(), group.ports.clone());
        let slices = by_group.remove(&key).unwrap_or_default();
        reconcile_group(template, group, slices, &mut plan);
    }
    // Slices whose port set or address type no longer occurs.
    let mut stale: Vec<String> = by_group
        .into_values()
        .flatten()
        .filter_map(|s| s.metadata.name)
        .collect();
    stale.sort();
    plan.delete.extend(stale);
    plan
}

fn reconcile_group(
    template: &SliceTemplate,
    group: &Group,
    slices: Vec<EndpointSlice>,
    plan: &mut SlicePlan,
) {
    let mut wanted: BTreeMap<String, &Endpoint> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for e in &group.endpoints {
        let k = endpoint_key(e);
        if wanted.insert(k.clone(), e).is_none() {
            order.push(k);
        }
    }
    // (slice, dirty)
    let mut kept: Vec<(EndpointSlice, bool)> = Vec::new();
    let mut overflow: Vec<Endpoint> = Vec::new();
    for mut slice in slices {
        let mut dirty = !labels_match(&slice, template) || !owned_by(&slice, template);
        let before = std::mem::take(&mut slice.endpoints);
        for e in before {
            match wanted.remove(&endpoint_key(&e)) {
                Some(want) => {
                    dirty |= &e != want;
                    slice.endpoints.push(want.clone());
                }
                None => dirty = true,
            }
        }
        if slice.endpoints.len() > MAX_ENDPOINTS_PER_SLICE {
            // Written by someone else with more than we allow: the extras move elsewhere.
            overflow.extend(slice.endpoints.split_off(MAX_ENDPOINTS_PER_SLICE));
            dirty = true;
        }
        kept.push((slice, dirty));
    }
    let mut fresh: Vec<Endpoint> = overflow;
    fresh.extend(
        order
            .iter()
            .filter_map(|k| wanted.get(k).map(|e| (*e).clone())),
    );
    let mut fresh = std::collections::VecDeque::from(fresh);
    // Fill slices that are being rewritten anyway first, then the others with room.
    kept.sort_by_key(|(_, dirty)| !*dirty);
    for (slice, dirty) in kept.iter_mut() {
        while slice.endpoints.len() < MAX_ENDPOINTS_PER_SLICE {
            let Some(e) = fresh.pop_front() else { break };
            slice.endpoints.push(e);
            *dirty = true;
        }
    }
    let fresh: Vec<Endpoint> = fresh.into();
    for chunk in fresh.chunks(MAX_ENDPOINTS_PER_SLICE) {
        plan.create.push(template.new_slice(group, chunk.to_vec()));
    }
    let mut placeholder_kept = false;
    for (slice, dirty) in kept {
        if slice.endpoints.is_empty() {
            // Only the placeholder of an endpoint-less owner may stay empty.
            if group.endpoints.is_empty() && !placeholder_kept && plan.create.is_empty() {
                placeholder_kept = true;
                if dirty {
                    plan.update.push(rewrite(template, group, slice));
                }
            } else if let Some(name) = slice.metadata.name {
                plan.delete.push(name);
            }
        } else if dirty {
            plan.update.push(rewrite(template, group, slice));
        }
    }
    if group.endpoints.is_empty() && !placeholder_kept && plan.create.is_empty() {
        plan.create.push(template.new_slice(group, Vec::new()));
    }
}

fn labels_match(slice: &EndpointSlice, template: &SliceTemplate) -> bool {
    slice.metadata.labels.as_ref() == Some(&template.labels)
}

fn owned_by(slice: &EndpointSlice, template: &SliceTemplate) -> bool {
    slice
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == template.owner.uid)
}

fn rewrite(template: &SliceTemplate, group: &Group, mut slice: EndpointSlice) -> EndpointSlice {
    slice.metadata.labels = Some(template.labels.clone());
    slice.metadata.owner_references = Some(vec![template.owner.clone()]);
    slice.ports = slice_ports(&group.ports);
    slice
}

#[cfg(test)]
#[path = "core/tests.rs"]
mod tests;
