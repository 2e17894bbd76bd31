//! Prometheus metrics, after ingress-nginx's `nginx_ingress_controller_requests`.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub namespace: String,
    pub ingress: String,
    pub service: String,
    pub status: String,
}

#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub requests: Family<RequestLabels, Counter>,
    pub duration: Histogram,
    pub connections: Gauge,
    pub rejected: Counter,
    pub syncs: Counter,
    pub ingresses: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "niwa_ingress_requests",
            "HTTP requests answered, by Ingress, backend Service and status",
            requests.clone(),
        );
        let duration = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register(
            "niwa_ingress_request_duration_seconds",
            "Time from request to response headers",
            duration.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "niwa_ingress_connections",
            "Open client connections",
            connections.clone(),
        );
        let rejected = Counter::default();
        registry.register(
            "niwa_ingress_rejected_connections",
            "Client connections refused because the connection limit was reached",
            rejected.clone(),
        );
        let syncs = Counter::default();
        registry.register("niwa_ingress_syncs", "Route table rebuilds", syncs.clone());
        let ingresses = Gauge::default();
        registry.register(
            "niwa_ingress_ingresses",
            "Ingresses of our class being served",
            ingresses.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            requests,
            duration,
            connections,
            rejected,
            syncs,
            ingresses,
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
