//! [`run`]: the whole proxy (sync loop, data plane, health and metrics server) until shutdown.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, warn};

use crate::cache::Cache;
use crate::dataplane::{DataPlane, Limits};
use crate::metrics::Metrics;
use crate::model::desired::Node;
use crate::model::nft::Balance;
use crate::plane::{Mode, Plane};

/// kube-proxy's metrics port.
pub const DEFAULT_METRICS_PORT: u16 = 10249;
/// How long shutdown waits for connections to drain before dropping them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Everything [`run`] needs.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// `http://host:port` of the apiserver.
    pub apiserver: String,
    pub node_name: String,
    /// The node's IP: NodePorts listen here.
    pub node_ip: IpAddr,
    /// /healthz, /readyz, /livez, /metrics (default: node IP, port 10249, as kube-proxy's).
    pub metrics_listen: Option<SocketAddr>,
    pub limits: Limits,
    /// Changes arriving together are applied together, at most this long after the first.
    pub min_sync_period: Duration,
    /// The data path: nftables (kernel DNAT), userspace (sockets, the default: see `--mode`), or
    /// auto (nftables if the table can be created).
    pub mode: Mode,
    /// nftables mode: how Services without affinity spread connections.
    pub balance: Balance,
}

impl ProxyConfig {
    pub fn new(apiserver: &str, node_name: &str, node_ip: IpAddr) -> ProxyConfig {
        ProxyConfig {
            apiserver: apiserver.to_string(),
            node_name: node_name.to_string(),
            node_ip,
            metrics_listen: None,
            limits: Limits::default(),
            min_sync_period: Duration::from_millis(10),
            mode: Mode::Userspace,
            balance: Balance::RoundRobin,
        }
    }
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot connect to the apiserver {url}: {source}")]
    Connect {
        url: String,
        source: niwa_client::Error,
    },
    #[error("nftables mode: {0}")]
    Nftables(#[from] crate::dataplane::nft::NftError),
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

#[derive(Clone)]
struct HttpState {
    metrics: Metrics,
    synced: Arc<AtomicBool>,
}

/// Runs the proxy until `shutdown` is cancelled. `ready`, if given, receives the address of the
/// metrics server once it listens.
pub async fn run(
    config: ProxyConfig,
    shutdown: CancellationToken,
    ready: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> Result<(), ProxyError> {
    let client = niwa_client::Client::connect(&config.apiserver)
        .await
        .map_err(|source| ProxyError::Connect {
            url: config.apiserver.clone(),
            source,
        })?;
    let metrics = Metrics::new();
    let synced = Arc::new(AtomicBool::new(false));
    let metrics_addr = config
        .metrics_listen
        .unwrap_or(SocketAddr::new(config.node_ip, DEFAULT_METRICS_PORT));
    let http = tokio::net::TcpListener::bind(metrics_addr)
        .await
        .map_err(|source| ProxyError::Metrics {
            addr: metrics_addr,
            source,
        })?;
    let metrics_addr = http.local_addr().unwrap_or(metrics_addr);
    info!(node = %config.node_name, node_ip = %config.node_ip, metrics = %metrics_addr, "niwa-proxy starting");

    let userspace = DataPlane::new(metrics.clone(), config.limits.clone(), shutdown.clone());
    let connection_tasks = userspace.tasks();
    let plane = Plane::start(
        config.mode,
        &config.node_name,
        config.balance,
        move || userspace,
        &metrics,
    )
    .await?;
    let cache = Cache::new(Node {
        name: config.node_name.clone(),
        ip: config.node_ip,
    });
    let mut tasks = JoinSet::new();
    tasks.spawn(
        crate::sync::run(
            client,
            cache,
            plane,
            metrics.clone(),
            config.min_sync_period,
            synced.clone(),
            shutdown.clone(),
        )
        .instrument(tracing::info_span!("sync")),
    );
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(healthz))
        .route("/metrics", get(metrics_text))
        .with_state(HttpState { metrics, synced });
    let http_shutdown = shutdown.clone();
    tasks.spawn(async move {
        let served = axum::serve(http, router)
            .with_graceful_shutdown(http_shutdown.cancelled_owned())
            .await;
        if let Err(e) = served {
            warn!(error = %e, "metrics server failed");
        }
    });
    if let Some(ready) = ready {
        let _ = ready.send(metrics_addr);
    }
    shutdown.cancelled().await;
    while tasks.join_next().await.is_some() {}
    connection_tasks.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, connection_tasks.wait())
        .await
        .is_err()
    {
        warn!("connections still open after the grace period; dropping them");
    }
    info!("niwa-proxy stopped");
    Ok(())
}

async fn healthz(State(state): State<HttpState>) -> (StatusCode, &'static str) {
    if state.synced.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not synced yet")
    }
}

async fn metrics_text(
    State(state): State<HttpState>,
) -> ([(&'static str, &'static str); 1], String) {
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.encode(),
    )
}
