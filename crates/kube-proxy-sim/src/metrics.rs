//! Prometheus metrics, named like kube-proxy's (`kubeproxy_sync_proxy_rules_*`) for the sync loop
//! and `niwa_proxy_*` for the userspace data path (kube-proxy has none: the kernel forwards).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// Labels of the per-Service-port data-path metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabels {
    /// `namespace/name:port`.
    pub service: String,
    pub protocol: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ByteLabels {
    pub service: String,
    pub protocol: String,
    /// `to_backend` or `to_client`.
    pub direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub service: String,
    pub protocol: String,
    /// `connect`, `limit`, `io`, `bind`, `no_backend`.
    pub reason: String,
}

/// Every metric of the proxy; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub connections: Family<ServiceLabels, Counter>,
    pub active: Family<ServiceLabels, Gauge>,
    pub bytes: Family<ByteLabels, Counter>,
    pub errors: Family<ErrorLabels, Counter>,
    pub sync_duration: Histogram,
    pub network_programming: Histogram,
    pub last_sync: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub listeners: Gauge,
    pub listener_failures: Gauge,
    pub service_changes: Counter,
    pub endpoint_changes: Counter,
    /// nftables mode: rules and map/set elements in this proxy's table, failed transactions.
    pub nft_rules: Gauge,
    pub nft_elements: Gauge,
    pub nft_sync_failures: Counter,
    /// 1 for the data path in use (`mode="nftables"` or `"userspace"`).
    pub mode: Family<ModeLabels, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabels {
    pub mode: String,
    /// nftables mode: this proxy's table (empty in userspace mode).
    pub table: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let connections = Family::<ServiceLabels, Counter>::default();
        registry.register(
            "niwa_proxy_connections",
            "TCP connections and UDP flows accepted, per Service port",
            connections.clone(),
        );
        let active = Family::<ServiceLabels, Gauge>::default();
        registry.register(
            "niwa_proxy_active_connections",
            "Open TCP connections and UDP flows, per Service port",
            active.clone(),
        );
        let bytes = Family::<ByteLabels, Counter>::default();
        registry.register(
            "niwa_proxy_bytes",
            "Bytes forwarded, per Service port and direction",
            bytes.clone(),
        );
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "niwa_proxy_errors",
            "Connections or flows that failed, per Service port and reason",
            errors.clone(),
        );
        let sync_duration = Histogram::new(exponential_buckets(0.0001, 2.0, 18));
        registry.register(
            "kubeproxy_sync_proxy_rules_duration_seconds",
            "How long one sync of the listeners took",
            sync_duration.clone(),
        );
        let network_programming = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "kubeproxy_network_programming_duration_seconds",
            "From a Service or EndpointSlice change being received to the data plane serving it",
            network_programming.clone(),
        );
        let last_sync = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
            "The last time the listeners were synced (Unix seconds)",
            last_sync.clone(),
        );
        let listeners = Gauge::default();
        registry.register(
            "niwa_proxy_listeners",
            "Sockets listening for Service traffic",
            listeners.clone(),
        );
        let listener_failures = Gauge::default();
        registry.register(
            "niwa_proxy_listener_failures",
            "Service addresses that could not be bound (see the log for why)",
            listener_failures.clone(),
        );
        let service_changes = Counter::default();
        registry.register(
            "kubeproxy_sync_proxy_rules_service_changes",
            "Service changes received",
            service_changes.clone(),
        );
        let endpoint_changes = Counter::default();
        registry.register(
            "kubeproxy_sync_proxy_rules_endpoint_changes",
            "EndpointSlice changes received",
            endpoint_changes.clone(),
        );
        let nft_rules = Gauge::default();
        registry.register(
            "niwa_proxy_nft_rules",
            "nftables mode: rules in this proxy's table",
            nft_rules.clone(),
        );
        let nft_elements = Gauge::default();
        registry.register(
            "niwa_proxy_nft_elements",
            "nftables mode: map and set elements in this proxy's table (about 1 + endpoints per Service address)",
            nft_elements.clone(),
        );
        let nft_sync_failures = Counter::default();
        registry.register(
            "niwa_proxy_nft_sync_failures",
            "nftables mode: transactions nft rejected (the next sync rebuilds the table)",
            nft_sync_failures.clone(),
        );
        let mode = Family::<ModeLabels, Gauge>::default();
        registry.register(
            "niwa_proxy_mode",
            "The data path in use: nftables (kernel DNAT) or userspace (sockets)",
            mode.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            nft_rules,
            nft_elements,
            nft_sync_failures,
            mode,
            connections,
            active,
            bytes,
            errors,
            sync_duration,
            network_programming,
            last_sync,
            listeners,
            listener_failures,
            service_changes,
            endpoint_changes,
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub fn error(&self, service: &ServiceLabels, reason: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                service: service.service.clone(),
                protocol: service.protocol.clone(),
                reason: reason.to_string(),
            })
            .inc();
    }

    pub fn bytes_counter(&self, service: &ServiceLabels, direction: &str) -> Counter {
        self.bytes
            .get_or_create(&ByteLabels {
                service: service.service.clone(),
                protocol: service.protocol.clone(),
                direction: direction.to_string(),
            })
            .clone()
    }
}
