//! The HTTP side: `/healthz`, `/livez`, `/readyz` (ready once every watched kind has been listed,
//! as CoreDNS's `ready` plugin waits for the `kubernetes` plugin) and Prometheus `/metrics`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::forward::Forwarder;
use crate::metrics::Metrics;
use crate::shared_zone::SharedZone;
use crate::sync::Synced;

#[derive(Clone)]
struct HttpState {
    zone: Arc<SharedZone>,
    forwarder: Arc<Forwarder>,
    synced: Arc<Synced>,
    metrics: Metrics,
}

pub fn router(
    zone: Arc<SharedZone>,
    forwarder: Arc<Forwarder>,
    synced: Arc<Synced>,
    metrics: Metrics,
) -> Router {
    Router::new()
        .route("/healthz", get(ok))
        .route("/livez", get(ok))
        .route("/health", get(ok))
        .route("/readyz", get(readyz))
        .route("/ready", get(readyz))
        .route("/metrics", get(metrics_handler))
        .with_state(HttpState {
            zone,
            forwarder,
            synced,
            metrics,
        })
}

async fn ok() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    if state.synced.is_ready() {
        (StatusCode::OK, "ok")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "waiting for the first list of Services, EndpointSlices and Pods",
        )
    }
}

async fn metrics_handler(State(state): State<HttpState>) -> impl IntoResponse {
    {
        let zone = state.zone.read();
        state
            .metrics
            .set_zone(zone.record_count(), zone.service_count());
    }
    state.forwarder.update_metrics();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
