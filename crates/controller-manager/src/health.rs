//! `/healthz`, `/readyz`, `/livez` and Prometheus `/metrics`, with Kubernetes' metric names
//! (`leader_election_master_status`, `workqueue_depth`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The daemon's health and metrics.
#[derive(Clone)]
pub struct Health {
    /// The informers have synced and the controllers run (or we are a standby).
    pub ready: Arc<AtomicBool>,
    leader: Family<Vec<(String, String)>, Gauge>,
    registry: Arc<Registry>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("ready", &self.ready)
            .finish()
    }
}

impl Default for Health {
    fn default() -> Self {
        let mut registry = Registry::default();
        let leader = Family::<Vec<(String, String)>, Gauge>::default();
        registry.register(
            "leader_election_master_status",
            "Whether this replica is the leader (1) or not (0)",
            leader.clone(),
        );
        Health {
            ready: Arc::default(),
            leader,
            registry: Arc::new(registry),
        }
    }
}

impl Health {
    pub fn set_leader(&self, name: &str, leading: bool) {
        self.leader
            .get_or_create(&vec![("name".to_string(), name.to_string())])
            .set(i64::from(leading));
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/healthz", get(ok))
            .route("/livez", get(ok))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .with_state(self.clone())
    }
}

async fn ok() -> &'static str {
    "ok"
}

async fn readyz(State(h): State<Health>) -> impl IntoResponse {
    if h.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "informers not synced")
    }
}

async fn metrics(State(h): State<Health>) -> impl IntoResponse {
    let mut out = String::new();
    if encode(&mut out, &h.registry).is_err() {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            String::new(),
        );
    }
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
}
