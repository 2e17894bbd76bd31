//! Wiring: open the engine, serve the etcd gRPC API and the HTTP endpoints, expire leases, and shut
//! everything down through one cancellation token.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::coalesce::Coalescing;
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
/// Accepted connections waiting for their server thread to pick them up.
const ACCEPT_QUEUE: usize = 64;
/// Pause after a failed accept (e.g. out of file descriptors) before the next try.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub metrics_listen: Option<SocketAddr>,
    pub name: String,
    pub max_request_bytes: usize,
    pub lease_min_ttl: i64,
    pub watch_progress_interval: Duration,
    /// Threads serving the gRPC API, each a single-threaded runtime with its share of the
    /// connections (0: one per core). See [`run`].
    pub io_threads: usize,
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
            io_threads: 0,
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
    #[error("server thread failed: {0}")]
    Thread(std::io::Error),
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
    let metrics = Metrics::new();
    let (engine, writer) = Engine::open(&EngineConfig {
        data_dir: config.data_dir.clone(),
        lease_min_ttl: config.lease_min_ttl,
        commit_metrics: metrics.commit.clone(),
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

    // The gRPC API is served by `io_threads` single-threaded runtimes, each a reply lane of the
    // engine (engine/lanes.rs): a group commit's replies reach each of them in one message and
    // leave in one write per connection. Connections are dealt out round-robin.
    let threads = match config.io_threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let mut inboxes = Vec::with_capacity(threads);
    let mut lanes = FuturesUnordered::new();
    for i in 0..threads {
        let (tx, rx) = mpsc::channel(ACCEPT_QUEUE);
        let (done_tx, done_rx) = oneshot::channel();
        let services = Services::new(ctx.clone());
        let (engine, token) = (engine.clone(), shutdown.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("niwa-store-io-{i}"))
            .spawn(move || {
                let _ = done_tx.send(serve_lane(engine, services, rx, token));
            });
        if let Err(err) = spawned {
            shutdown.cancel();
            return Err(ServeError::Thread(err));
        }
        inboxes.push(tx);
        lanes.push(async move {
            done_rx.await.unwrap_or_else(|_| {
                Err(ServeError::Thread(std::io::Error::other(
                    "server thread panicked",
                )))
            })
        });
    }
    drop(ctx);
    let mut result = tokio::select! {
        () = accept(listener, inboxes, shutdown.clone()) => Ok(()),
        Some(early) = lanes.next() => early,
    };
    // A server thread that stopped early (an error) stops the others and the background tasks.
    shutdown.cancel();
    while let Some(lane) = lanes.next().await {
        if result.is_ok() {
            result = lane;
        }
    }
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
    result
}

/// Deals accepted connections out to the server threads until shutdown.
async fn accept(
    listener: TcpListener,
    inboxes: Vec<mpsc::Sender<std::net::TcpStream>>,
    shutdown: CancellationToken,
) {
    let mut next = 0;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => return,
        };
        // TCP_NODELAY on every connection: with Nagle on, small responses wait for the client's
        // delayed ACK (~40 ms p50 for gets at c=64 and 40 ms put p99 in docs/BENCHMARKS.md before
        // it was set). etcd (Go) sets it by default.
        let stream = accepted.and_then(|(stream, _)| {
            stream.set_nodelay(true)?;
            stream.into_std()
        });
        match stream {
            Ok(stream) => {
                if inboxes[next].send(stream).await.is_err() {
                    return;
                }
                next = (next + 1) % inboxes.len();
            }
            Err(err) => {
                tracing::warn!(%err, "accepting a connection failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// One server thread: a current-thread runtime serving the connections it is handed.
fn serve_lane(
    engine: Engine,
    services: Services,
    conns: mpsc::Receiver<std::net::TcpStream>,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ServeError::Thread)?;
    runtime.block_on(async move {
        tokio::spawn(engine.reply_lane());
        drop(engine);
        let incoming = ReceiverStream::new(conns).filter_map(|stream| async move {
            match TcpStream::from_std(stream) {
                Ok(stream) => Some(Ok::<_, std::io::Error>(Coalescing::new(stream))),
                Err(err) => {
                    tracing::warn!(%err, "registering a connection failed");
                    None
                }
            }
        });
        tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .add_service(services.kv)
            .add_service(services.watch)
            .add_service(services.lease)
            .add_service(services.maintenance)
            .add_service(services.cluster)
            .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
            .await
    })?;
    Ok(())
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
