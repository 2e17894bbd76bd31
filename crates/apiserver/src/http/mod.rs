//! The Kubernetes REST API (what `kubectl`, client-go and the official client libraries speak),
//! served beside the gRPC API on the same port and calling the same [`crate::rest::Rest`] registry.
//!
//! Where to start reading:
//! * [`router`] — the routes; [`resource`] — every verb on every resource (the dispatcher);
//!   [`path`] — URL → resource coordinates.
//! * [`media`] — content negotiation; [`decode`] / [`protobuf`] — request bodies (JSON, YAML, the
//!   Kubernetes protobuf envelope); [`respond`] — responses and the one `ApiError` → HTTP mapping.
//! * [`discovery`], [`openapi`], [`version`] — what clients read before they act.
//! * [`table`] — server-side printing (`kubectl get` columns); [`watch`] — watch streams;
//!   [`validate`] — `fieldValidation` (unknown and duplicate fields).
//! * [`logs`], [`exec`], [`attach`], [`portforward`] — `pods/log`, `pods/exec` and `pods/attach`
//!   (WebSocket) and
//!   `pods/portforward` (SPDY, or SPDY tunnelled over WebSocket: [`spdy`]), proxied to the kubelet
//!   that runs the pod; [`kubeconfig`] — writing a kubeconfig for a cluster; [`serve`] — one listener
//!   for gRPC and REST (routed by content-type).

pub mod attach;
pub mod decode;
pub mod discovery;
pub mod exec;
mod kinds;
pub mod kubeconfig;
pub mod logs;
pub mod media;
pub mod metrics;
pub mod openapi;
pub mod params;
pub mod path;
pub mod portforward;
pub mod protobuf;
pub mod resource;
pub mod respond;
pub mod serve;
pub mod spdy;
pub mod table;
pub mod validate;
pub mod version;
pub mod watch;
pub mod write;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::routing::{any, get};
use tokio_util::sync::CancellationToken;

use crate::rest::Rest;

/// Shared state of the REST surface.
#[derive(Clone)]
pub struct HttpApi {
    inner: Arc<Inner>,
}

struct Inner {
    rest: Rest,
    shutdown: CancellationToken,
    metrics: metrics::Metrics,
    logs: logs::LogProxy,
    started: Instant,
}

impl std::fmt::Debug for HttpApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpApi")
    }
}

impl HttpApi {
    pub fn new(rest: Rest, shutdown: CancellationToken) -> HttpApi {
        HttpApi {
            inner: Arc::new(Inner {
                logs: logs::LogProxy::new(rest.clone()),
                rest,
                shutdown,
                metrics: metrics::Metrics::new(),
                started: Instant::now(),
            }),
        }
    }

    pub fn rest(&self) -> &Rest {
        &self.inner.rest
    }

    pub fn shutdown(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    pub fn metrics(&self) -> &metrics::Metrics {
        &self.inner.metrics
    }

    pub fn logs(&self) -> &logs::LogProxy {
        &self.inner.logs
    }

    pub fn uptime(&self) -> std::time::Duration {
        self.inner.started.elapsed()
    }
}

/// Every REST route. Unknown paths answer a Kubernetes `NotFound` Status.
pub fn router(api: HttpApi) -> Router {
    Router::new()
        .route("/version", get(version::version))
        .route("/version/", get(version::version))
        .route("/healthz", get(version::healthz))
        .route("/livez", get(version::livez))
        .route("/readyz", get(version::readyz))
        .route("/healthz/{*check}", get(version::healthz))
        .route("/livez/{*check}", get(version::livez))
        .route("/readyz/{*check}", get(version::readyz))
        .route("/metrics", get(version::metrics))
        .route("/openapi/v3", get(version::openapi_root))
        .route("/openapi/v3/", get(version::openapi_root))
        .route("/openapi/v3/{*path}", get(version::openapi_document))
        .route("/api", any(resource::dispatch))
        .route("/api/", any(resource::dispatch))
        .route("/api/{*rest}", any(resource::dispatch))
        .route("/apis", any(resource::dispatch))
        .route("/apis/", any(resource::dispatch))
        .route("/apis/{*rest}", any(resource::dispatch))
        .fallback(respond::not_found)
        .with_state(api)
}
