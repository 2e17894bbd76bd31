//! Wiring: open the engine, serve the etcd gRPC API and the HTTP endpoints, expire leases, and shut
//! everything down through one cancellation token.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;

use crate::engine::{Engine, EngineConfig, WriteOp};
use crate::error::StoreError;
use crate::grpc::{Ctx, Services};
use crate::header::Header;
use crate::metrics::Metrics;
use crate::watch::stream::StreamOptions;

/// How often lease expiry is checked (etcd checks every 500 ms).
const LEASE_CHECK_INTERVAL: Duration = Duration::from_millis(500);
/// How long in-flight work gets after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub metrics_listen: Option<SocketAddr>,
    pub name: String,
    pub max_request_bytes: usize,
    pub lease_min_ttl: i64,
    pub watch_progress_interval: Duration,
}

impl StoreConfig {
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> StoreConfig {
        StoreConfig {
            listen,
            data_dir,
            metrics_listen: None,
            name: "default".into(),
            max_request_bytes: 1536 * 1024,
            lease_min_ttl: 2,
            watch_progress_interval: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("opening the data dir failed: {0}")]
    Open(#[from] StoreError),
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Runs the store until `shutdown` is cancelled.
pub async fn run(config: StoreConfig, shutdown: CancellationToken) -> Result<(), ServeError> {
    let listener = bind(config.listen).await?;
    let metrics_listener = match config.metrics_listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let (engine, writer) = Engine::open(&EngineConfig {
        data_dir: config.data_dir.clone(),
        lease_min_ttl: config.lease_min_ttl,
    })?;
    let local = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: config.listen,
        source,
    })?;
    tracing::info!(
        listen = %local,
        data_dir = %config.data_dir.display(),
        revision = engine.committed(),
        "niwa-store ready"
    );

    let metrics = Metrics::new();
    let ctx = Ctx {
        engine: engine.clone(),
        header: Header {
            cluster_id: engine.cluster_id,
            member_id: engine.member_id,
        },
        max_request_bytes: config.max_request_bytes,
        client_url: format!("http://{local}"),
        name: config.name.clone(),
        watch: StreamOptions {
            progress_interval: config.watch_progress_interval,
        },
        metrics: metrics.clone(),
        shutdown: shutdown.clone(),
    };

    let mut tasks = JoinSet::new();
    if let Some(listener) = metrics_listener {
        let router = crate::http::router(engine.clone(), metrics.clone());
        let token = shutdown.clone();
        tasks.spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(token.cancelled_owned())
                .await;
            if let Err(err) = served {
                tracing::error!(%err, "metrics server failed");
            }
        });
    }
    tasks.spawn(expire_leases(engine.clone(), shutdown.clone()));

    let services = Services::new(ctx);
    let grpc = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .add_service(services.kv)
        .add_service(services.watch)
        .add_service(services.lease)
        .add_service(services.maintenance)
        .add_service(services.cluster)
        .serve_with_incoming_shutdown(
            // TCP_NODELAY on every accepted connection. `serve_with_incoming*` ignores the
            // builder's `tcp_nodelay` (on by default only for `serve(addr)`), and with Nagle on,
            // small responses wait for the client's delayed ACK: ~40 ms p50 for gets at c=64 and
            // 40 ms put p99 in docs/BENCHMARKS.md before this line. etcd (Go) sets it by default.
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown.clone().cancelled_owned(),
        );
    let result = grpc.await;
    shutdown.cancel();
    if tokio::time::timeout(DRAIN_TIMEOUT, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::warn!("background tasks did not stop in time");
        tasks.abort_all();
    }
    // The writer thread ends once the last engine handle is gone; wait for its last commit.
    drop(engine);
    let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    tracing::info!("niwa-store stopped");
    result.map_err(ServeError::from)
}

/// Revokes expired leases (and deletes their keys) through the writer.
async fn expire_leases(engine: Engine, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(LEASE_CHECK_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let due = engine.read(|s, _| !s.leases.expired(Instant::now(), 1).is_empty());
        if due && let Err(err) = engine.write(WriteOp::ExpireLeases).await {
            tracing::warn!(%err, "lease expiry failed");
        }
    }
}
