//! Prometheus metrics, named as the kubelet names them where it has one.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabel {
    pub node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    pub code: String,
}

/// Every metric of the process (all its nodes together).
#[derive(Debug)]
pub struct Metrics {
    pub registry: Registry,
    /// `kubelet_node_name{node}` = 1 for each node served.
    pub node_name: Family<NodeLabel, Gauge>,
    pub running_pods: Gauge,
    pub running_containers: Gauge,
    pub started_pods: Counter,
    pub started_containers: Counter,
    pub started_containers_errors: Family<CodeLabel, Counter>,
    /// From the kubelet seeing a pod to all its containers running (`kubelet_pod_start_duration_seconds`).
    pub pod_start_duration: Histogram,
    /// One sync of a pod's state machine (`kubelet_pod_worker_duration_seconds`).
    pub pod_worker_duration: Histogram,
    pub lease_renewals: Counter,
    pub lease_renewal_errors: Counter,
    /// How late a Lease renewal was against its schedule.
    pub lease_renewal_lateness: Histogram,
    pub node_status_updates: Counter,
    pub status_write_errors: Counter,
    pub evictions: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            node_name: Family::default(),
            running_pods: Gauge::default(),
            running_containers: Gauge::default(),
            started_pods: Counter::default(),
            started_containers: Counter::default(),
            started_containers_errors: Family::default(),
            pod_start_duration: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            pod_worker_duration: Histogram::new(exponential_buckets(0.00001, 4.0, 12)),
            lease_renewals: Counter::default(),
            lease_renewal_errors: Counter::default(),
            lease_renewal_lateness: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            node_status_updates: Counter::default(),
            status_write_errors: Counter::default(),
            evictions: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "kubelet_node_name",
            "The node's name; the value is always 1",
            m.node_name.clone(),
        );
        registry.register(
            "kubelet_running_pods",
            "Number of pods that have a running pod sandbox",
            m.running_pods.clone(),
        );
        registry.register(
            "kubelet_running_containers",
            "Number of containers currently running",
            m.running_containers.clone(),
        );
        registry.register(
            "kubelet_started_pods",
            "Cumulative number of pods started",
            m.started_pods.clone(),
        );
        registry.register(
            "kubelet_started_containers",
            "Cumulative number of containers started",
            m.started_containers.clone(),
        );
        registry.register(
            "kubelet_started_containers_errors",
            "Cumulative number of errors when starting containers",
            m.started_containers_errors.clone(),
        );
        registry.register(
            "kubelet_pod_start_duration_seconds",
            "Duration in seconds from kubelet seeing a pod for the first time to the pod starting to run",
            m.pod_start_duration.clone(),
        );
        registry.register(
            "kubelet_pod_worker_duration_seconds",
            "Duration in seconds to sync a single pod",
            m.pod_worker_duration.clone(),
        );
        registry.register(
            "kubelet_node_lease_renewals",
            "Node Lease renewals",
            m.lease_renewals.clone(),
        );
        registry.register(
            "kubelet_node_lease_renewal_errors",
            "Failed node Lease renewals",
            m.lease_renewal_errors.clone(),
        );
        registry.register(
            "kubelet_node_lease_renewal_lateness_seconds",
            "How late node Lease renewals were against their schedule",
            m.lease_renewal_lateness.clone(),
        );
        registry.register(
            "kubelet_node_status_updates",
            "Node status updates posted",
            m.node_status_updates.clone(),
        );
        registry.register(
            "kubelet_pod_status_write_errors",
            "Failed pod status writes (retried)",
            m.status_write_errors.clone(),
        );
        registry.register("kubelet_evictions", "Pods evicted", m.evictions.clone());
        Metrics { registry, ..m }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
