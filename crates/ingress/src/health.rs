//! /healthz, /readyz, /livez and /metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::metrics::Metrics;

#[derive(Clone)]
struct HealthState {
    metrics: Metrics,
    synced: Arc<AtomicBool>,
}

pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    synced: Arc<AtomicBool>,
    shutdown: CancellationToken,
) {
    let router = Router::new()
        .route("/healthz", get(ready))
        .route("/readyz", get(ready))
        .route("/livez", get(|| async { "ok" }))
        .route("/metrics", get(metrics_text))
        .with_state(HealthState { metrics, synced });
    if let Err(e) = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
    {
        warn!(error = %e, "metrics server failed");
    }
}

async fn ready(State(state): State<HealthState>) -> (StatusCode, &'static str) {
    if state.synced.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not synced yet")
    }
}

async fn metrics_text(
    State(state): State<HealthState>,
) -> ([(&'static str, &'static str); 1], String) {
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.encode(),
    )
}
