//! Service address allocation: ClusterIPs from `--service-cidr` and NodePorts from
//! `--service-node-port-range`, and the `kubernetes` Service with its Endpoints.
//!
//! Allocation state lives in memory ([`alloc`]) for speed, rebuilt from the store at start, and
//! every allocated IP and port is also a *reservation key* in the store
//! (`/registry/niwa/serviceips/<ip>`, `/registry/niwa/servicenodeports/<port>`), written in the
//! same transaction as the Service. So two apiservers, or an apiserver that restarted, can never
//! hand out the same address twice: a transaction that finds the key taken fails, and the
//! allocation is retried with another address.

pub mod alloc;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use k8s_openapi::api::core::v1::ServiceSpec;
use niwa_api::kinds::service::{needs_cluster_ip, needs_node_ports};
use niwa_api::validation::field::{self, Path};
use niwa_api::{ApiError, Cause, ResourceInfo};
use parking_lot::Mutex;
use serde_json::{Value, json};

use self::alloc::{IpAllocator, PortAllocator};
use crate::net::{Ipv4Net, PortRange};
use crate::storage::{Storage, StorageError};

const IP_KEYS: &str = "/registry/niwa/serviceips/";
const PORT_KEYS: &str = "/registry/niwa/servicenodeports/";

pub fn ip_key(ip: &str) -> String {
    format!("{IP_KEYS}{ip}")
}

pub fn port_key(port: i64) -> String {
    format!("{PORT_KEYS}{port}")
}

/// Whether `info` is the core Service resource.
pub fn is_service(info: &ResourceInfo) -> bool {
    info.group.is_empty() && info.kind == "Service"
}

fn spec_of(svc: &Value) -> ServiceSpec {
    serde_json::from_value(svc["spec"].clone()).unwrap_or_default()
}

/// The reservation keys a stored Service holds.
pub fn reservations(svc: &Value) -> BTreeSet<String> {
    let spec = spec_of(svc);
    let mut keys = BTreeSet::new();
    if needs_cluster_ip(&spec) {
        for ip in spec.cluster_ips.iter().flatten() {
            if ip.parse::<IpAddr>().is_ok() {
                keys.insert(ip_key(ip));
            }
        }
    }
    for p in spec.ports.iter().flatten() {
        if let Some(np) = p.node_port.filter(|n| *n > 0) {
            keys.insert(port_key(i64::from(np)));
        }
    }
    keys
}

/// What one write allocates and frees.
#[derive(Debug, Default)]
pub struct Allocation {
    /// Keys to create with the write (must not exist).
    pub reserve: Vec<String>,
    /// Keys to delete with the write.
    pub release: Vec<String>,
    ips: Vec<String>,
    ports: Vec<i64>,
}

struct State {
    ips: IpAllocator,
    ports: PortAllocator,
}

pub struct ServiceAllocator {
    state: Mutex<State>,
}

impl std::fmt::Debug for ServiceAllocator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceAllocator")
    }
}

impl ServiceAllocator {
    pub fn new(cidr: Ipv4Net, ports: PortRange) -> ServiceAllocator {
        ServiceAllocator {
            state: Mutex::new(State {
                ips: IpAllocator::new(cidr),
                ports: PortAllocator::new(ports),
            }),
        }
    }

    /// The `kubernetes` Service's address.
    pub fn first_ip(&self) -> Ipv4Addr {
        self.state.lock().ips.first()
    }

    /// Marks every reserved address and port of the store as taken.
    pub async fn rebuild(&self, storage: &Storage) -> Result<(), StorageError> {
        let ips = storage.keys(IP_KEYS).await?;
        let ports = storage.keys(PORT_KEYS).await?;
        let mut state = self.state.lock();
        for k in ips {
            if let Some(ip) = k.strip_prefix(IP_KEYS) {
                state.ips.mark(ip);
            }
        }
        for k in ports {
            if let Some(p) = k.strip_prefix(PORT_KEYS).and_then(|p| p.parse().ok()) {
                state.ports.mark(p);
            }
        }
        tracing::info!(
            cluster_ips = state.ips.used(),
            "service allocations rebuilt from the store"
        );
        Ok(())
    }

    /// Marks a key another apiserver reserved (found when a transaction failed on it).
    pub fn mark_taken(&self, key: &str) {
        let mut state = self.state.lock();
        if let Some(ip) = key.strip_prefix(IP_KEYS) {
            state.ips.mark(ip);
        } else if let Some(p) = key.strip_prefix(PORT_KEYS).and_then(|p| p.parse().ok()) {
            state.ports.mark(p);
        }
    }

    /// Fills in the Service's cluster IP and node ports (keeping those `old` already holds),
    /// and says which reservation keys the write must create and delete. Every address problem
    /// is a field cause, worded as Kubernetes words it.
    pub fn allocate(
        &self,
        info: &ResourceInfo,
        svc: &mut Value,
        old: Option<&Value>,
    ) -> Result<Allocation, ApiError> {
        let mut spec = spec_of(svc);
        let old_keys = old.map(reservations).unwrap_or_default();
        let mut out = Allocation::default();
        let mut causes: Vec<Cause> = Vec::new();
        let mut state = self.state.lock();
        if needs_cluster_ip(&spec) {
            let requested = spec.cluster_ip.clone().unwrap_or_default();
            if requested.is_empty() {
                match state.ips.allocate_next() {
                    Ok(ip) => {
                        let ip = ip.to_string();
                        out.ips.push(ip.clone());
                        spec.cluster_ip = Some(ip.clone());
                        spec.cluster_ips = Some(vec![ip]);
                    }
                    Err(e) => causes.push(field::invalid(
                        &Path::new("spec").child("clusterIPs"),
                        field::go_strings(&[]),
                        &format!("failed to allocate a serviceIP: {e}"),
                    )),
                }
            } else if !old_keys.contains(&ip_key(&requested)) {
                match state.ips.allocate(&requested) {
                    Ok(_) => out.ips.push(requested.clone()),
                    Err(e) => causes.push(field::invalid(
                        &Path::new("spec").child("clusterIPs"),
                        field::go_strings(std::slice::from_ref(&requested)),
                        &format!("failed to allocate IP {requested}: {e}"),
                    )),
                }
                if spec.cluster_ips.as_ref().is_none_or(Vec::is_empty) {
                    spec.cluster_ips = Some(vec![requested]);
                }
            }
        }
        if needs_node_ports(&spec) {
            let mut assigned: BTreeSet<i64> = BTreeSet::new();
            for (i, p) in spec.ports.iter_mut().flatten().enumerate() {
                let np = i64::from(p.node_port.unwrap_or(0));
                if np == 0 {
                    match state.ports.allocate_next() {
                        Ok(port) => {
                            out.ports.push(i64::from(port));
                            assigned.insert(i64::from(port));
                            p.node_port = Some(i32::from(port));
                        }
                        Err(e) => causes.push(field::invalid(
                            &Path::new("spec").child("ports").index(i).child("nodePort"),
                            0i64,
                            &format!("failed to allocate a nodePort: {e}"),
                        )),
                    }
                } else if old_keys.contains(&port_key(np)) || assigned.contains(&np) {
                    assigned.insert(np);
                } else {
                    match state.ports.allocate(np) {
                        Ok(_) => {
                            out.ports.push(np);
                            assigned.insert(np);
                        }
                        Err(e) => causes.push(field::invalid(
                            &Path::new("spec").child("ports").index(i).child("nodePort"),
                            np,
                            &e.to_string(),
                        )),
                    }
                }
            }
        }
        if !causes.is_empty() {
            release_in(&mut state, &out);
            let name = svc["metadata"]["name"].as_str().unwrap_or_default();
            return Err(ApiError::invalid(info, name, causes));
        }
        drop(state);
        match serde_json::to_value(&spec) {
            Ok(v) => svc["spec"] = v,
            Err(e) => {
                self.rollback(&out);
                return Err(ApiError::internal(format!("encoding a Service spec: {e}")));
            }
        }
        let new_keys = reservations(svc);
        out.reserve = new_keys.difference(&old_keys).cloned().collect();
        out.release = old_keys.difference(&new_keys).cloned().collect();
        Ok(out)
    }

    /// Undoes the in-memory part of an allocation whose write failed.
    pub fn rollback(&self, a: &Allocation) {
        release_in(&mut self.state.lock(), a);
    }

    /// Frees keys a successful write deleted.
    pub fn release(&self, keys: &[String]) {
        let mut state = self.state.lock();
        for k in keys {
            if let Some(ip) = k.strip_prefix(IP_KEYS) {
                state.ips.release(ip);
            } else if let Some(p) = k.strip_prefix(PORT_KEYS).and_then(|p| p.parse().ok()) {
                state.ports.release(p);
            }
        }
    }
}

fn release_in(state: &mut State, a: &Allocation) {
    for ip in &a.ips {
        state.ips.release(ip);
    }
    for p in &a.ports {
        state.ports.release(*p);
    }
}

/// The `kubernetes` Service in `default`: the first IP of the range, port 443 to the apiserver.
pub fn kubernetes_service(cluster_ip: Ipv4Addr, apiserver: SocketAddr) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": cluster_ip.to_string(),
            "sessionAffinity": "None",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                "targetPort": apiserver.port()}]}})
}

/// The address clients reach the apiserver on (an unspecified listen address means loopback).
pub fn advertise_ip(apiserver: SocketAddr) -> IpAddr {
    if apiserver.ip().is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        apiserver.ip()
    }
}

/// The `kubernetes` Endpoints: the apiserver itself.
pub fn kubernetes_endpoints(apiserver: SocketAddr) -> Value {
    json!({"apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": advertise_ip(apiserver).to_string()}],
            "ports": [{"name": "https", "port": apiserver.port(), "protocol": "TCP"}]}]})
}

/// The `kubernetes` EndpointSlice.
pub fn kubernetes_endpoint_slice(apiserver: SocketAddr) -> Value {
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"kubernetes.io/service-name": "kubernetes",
                "endpointslice.kubernetes.io/managed-by": "niwa-apiserver"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [advertise_ip(apiserver).to_string()],
            "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": apiserver.port(), "protocol": "TCP"}]})
}
