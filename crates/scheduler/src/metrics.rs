//! Prometheus metrics named as kube-scheduler's, and the HTTP side: `/healthz`, `/readyz`,
//! `/livez`, `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    pub result: &'static str,
    pub profile: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub queue: &'static str,
}

/// The scheduler's metrics. Cheap to clone (shared).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub schedule_attempts: Family<AttemptLabels, Counter>,
    pub attempt_duration: Family<AttemptLabels, Histogram>,
    pub pending_pods: Family<QueueLabels, Gauge>,
    pub e2e_duration: Histogram,
    pub preemption_victims: Counter,
    pub leader: Gauge,
    pub ready: Arc<AtomicBool>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut r = Registry::default();
        let schedule_attempts = Family::<AttemptLabels, Counter>::default();
        r.register(
            "scheduler_schedule_attempts",
            "Number of attempts to schedule pods, by the result",
            schedule_attempts.clone(),
        );
        let attempt_duration = Family::<AttemptLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.00001, 2.0, 20))
        });
        r.register(
            "scheduler_scheduling_attempt_duration_seconds",
            "Scheduling attempt latency in seconds (scheduling algorithm + binding)",
            attempt_duration.clone(),
        );
        let pending_pods = Family::<QueueLabels, Gauge>::default();
        r.register(
            "scheduler_pending_pods",
            "Number of pending pods, by the queue type",
            pending_pods.clone(),
        );
        let e2e_duration = Histogram::new(exponential_buckets(0.001, 2.0, 20));
        r.register(
            "scheduler_pod_scheduling_sli_duration_seconds",
            "E2e latency for a pod being scheduled, from the time the pod enters the queue",
            e2e_duration.clone(),
        );
        let preemption_victims = Counter::default();
        r.register(
            "scheduler_preemption_victims",
            "Number of selected preemption victims",
            preemption_victims.clone(),
        );
        let leader = Gauge::default();
        r.register(
            "leader_election_master_status",
            "1 while this replica is the leader",
            leader.clone(),
        );
        Metrics {
            registry: Arc::new(r),
            schedule_attempts,
            attempt_duration,
            pending_pods,
            e2e_duration,
            preemption_victims,
            leader,
            ready: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn attempt(&self, result: &'static str, profile: &str, seconds: f64) {
        let l = AttemptLabels {
            result,
            profile: profile.to_string(),
        };
        self.schedule_attempts.get_or_create(&l).inc();
        self.attempt_duration.get_or_create(&l).observe(seconds);
    }

    pub fn set_pending(&self, active: usize, backoff: usize, unschedulable: usize) {
        for (queue, n) in [
            ("active", active),
            ("backoff", backoff),
            ("unschedulable", unschedulable),
            ("gated", 0),
        ] {
            self.pending_pods
                .get_or_create(&QueueLabels { queue })
                .set(n as i64);
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Total attempts with this result (tests, benchmarks).
    pub fn attempts(&self, result: &'static str, profile: &str) -> u64 {
        self.schedule_attempts
            .get_or_create(&AttemptLabels {
                result,
                profile: profile.to_string(),
            })
            .get()
    }
}

pub fn router(metrics: Metrics) -> Router {
    Router::new()
        .route("/healthz", get(live))
        .route("/livez", get(live))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics_handler))
        .with_state(metrics)
}

async fn live() -> impl IntoResponse {
    (StatusCode::OK, "ok")
}

/// Ready once the informers have listed nodes and pods.
async fn ready(State(m): State<Metrics>) -> impl IntoResponse {
    if m.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "informers not synced")
    }
}

async fn metrics_handler(State(m): State<Metrics>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.render(),
    )
}
