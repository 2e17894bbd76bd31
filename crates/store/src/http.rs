//! The HTTP side: `/healthz`, `/readyz`, `/livez`, etcd's `/health`, and Prometheus `/metrics`.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::engine::Engine;
use crate::metrics::Metrics;

#[derive(Clone)]
struct HttpState {
    engine: Engine,
    metrics: Metrics,
}

pub fn router(engine: Engine, metrics: Metrics) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(healthz))
        .route("/livez", get(healthz))
        .route("/health", get(health))
        .route("/metrics", get(metrics_handler))
        .with_state(HttpState { engine, metrics })
}

/// Healthy while the writer accepts writes (a failed disk makes the store unhealthy).
fn healthy(state: &HttpState) -> bool {
    !state.engine.has_failed()
}

async fn healthz(State(state): State<HttpState>) -> impl IntoResponse {
    if healthy(&state) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "storage failed")
    }
}

async fn health(State(state): State<HttpState>) -> impl IntoResponse {
    let ok = healthy(&state);
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{{\"health\":\"{ok}\"}}"),
    )
}

async fn metrics_handler(State(state): State<HttpState>) -> impl IntoResponse {
    let m = &state.metrics;
    m.revision.set(state.engine.committed());
    m.db_bytes.set(state.engine.disk_bytes());
    m.keys
        .set(state.engine.read(|s, _| s.mvcc.key_count()) as i64);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.render(),
    )
}
