//! Wiring: binds the DNS sockets (UDP, one socket per core, and TCP on one address) and the HTTP
//! endpoint, starts the watchers that feed the zone, and serves UDP ([`crate::udp`]) and TCP
//! (hickory-server) until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::Server;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use niwa_client::Client;
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::forward::{ForwardConfig, Forwarder};
use crate::handler::Handler;
use crate::metrics::Metrics;
use crate::shared_zone::SharedZone;
use crate::sync::{self, Synced};
use crate::udp::{self, cache::AnswerCache};
use crate::zone::{PodRecords, Zone, ZoneConfig};

/// Idle time after which a TCP client connection is closed.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Responses queued per TCP connection before the connection applies backpressure.
const TCP_RESPONSE_BUFFER: usize = 32;
/// UDP sockets (and tasks draining them) at most, one per core below that.
const MAX_UDP_WORKERS: usize = 8;
/// Time given to in-flight requests after shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub struct DnsConfig {
    /// The apiserver (`http://127.0.0.1:6443`).
    pub apiserver: String,
    /// UDP and TCP address for DNS (port 0: any free port).
    pub listen: SocketAddr,
    /// Address for /healthz, /readyz, /livez, /metrics (`None`: not served).
    pub metrics_listen: Option<SocketAddr>,
    pub zone: ZoneConfig,
    pub forward: ForwardConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error(
        "cannot listen on {addr} ({proto}): {source}{hint}",
        hint = privileged_hint(*addr, source)
    )]
    Bind {
        addr: SocketAddr,
        proto: &'static str,
        source: std::io::Error,
    },
    #[error("invalid apiserver address: {0}")]
    Client(#[from] niwa_client::Error),
    #[error("the DNS server failed: {0}")]
    Server(String),
}

fn privileged_hint(addr: SocketAddr, err: &std::io::Error) -> &'static str {
    if addr.port() < 1024 && err.kind() == std::io::ErrorKind::PermissionDenied {
        " (ports under 1024 need root, CAP_NET_BIND_SERVICE, or \
         `sysctl net.ipv4.ip_unprivileged_port_start=0`)"
    } else {
        ""
    }
}

/// A started server: where it listens, and its task.
#[derive(Debug)]
pub struct Running {
    /// The DNS address (UDP and TCP).
    pub dns_addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    tasks: JoinSet<Result<(), DnsError>>,
    /// Stops every task; cancelled by the caller's shutdown or when a task fails.
    stop: CancellationToken,
}

impl Running {
    /// Waits until the server has stopped (after shutdown) or failed.
    pub async fn wait(mut self) -> Result<(), DnsError> {
        let mut result = Ok(());
        while let Some(joined) = self.tasks.join_next().await {
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "niwa-dns is stopping");
                    self.stop.cancel();
                    result = Err(e);
                }
                Err(e) => {
                    self.stop.cancel();
                    result = Err(DnsError::Server(e.to_string()));
                }
            }
        }
        result
    }
}

/// Binds UDP (one socket per worker) and TCP on the same address; with port 0, on the same free
/// port.
async fn bind_dns(
    addr: SocketAddr,
    workers: usize,
) -> Result<(Vec<std::net::UdpSocket>, TcpListener), DnsError> {
    let bind_err = |proto, source| DnsError::Bind {
        addr,
        proto,
        source,
    };
    if addr.port() != 0 {
        let udp = udp::bind(addr, workers).map_err(|e| bind_err("udp", e))?;
        let tcp = TcpListener::bind(addr)
            .await
            .map_err(|e| bind_err("tcp", e))?;
        return Ok((udp, tcp));
    }
    let mut last = None;
    for _ in 0..10 {
        // A port nobody holds (an SO_REUSEPORT bind to port 0 could pick a port that another
        // SO_REUSEPORT socket of this user holds, and share its traffic).
        let free = std::net::UdpSocket::bind(addr)
            .and_then(|s| s.local_addr())
            .map_err(|e| bind_err("udp", e))?;
        let udp = match udp::bind(free, workers) {
            Ok(udp) => udp,
            // Taken in the meantime: try another.
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        match TcpListener::bind(free).await {
            Ok(tcp) => return Ok((udp, tcp)),
            // Someone holds that TCP port: try another free UDP port.
            Err(e) => last = Some(e),
        }
    }
    Err(bind_err(
        "tcp",
        last.unwrap_or_else(|| std::io::Error::other("no free port")),
    ))
}

/// Starts everything; returns once the sockets are bound (answers come once the zone is synced;
/// see `/readyz`).
pub async fn start(config: DnsConfig, shutdown: CancellationToken) -> Result<Running, DnsError> {
    let shutdown = shutdown.child_token();
    let client = Client::connect_lazy(&config.apiserver)?;
    let metrics = Metrics::new();
    let zone = Arc::new(SharedZone::new(Zone::new(config.zone.clone())));
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let (udp_sockets, tcp) = bind_dns(config.listen, workers.min(MAX_UDP_WORKERS)).await?;
    let dns_addr = tcp.local_addr().map_err(|e| DnsError::Bind {
        addr: config.listen,
        proto: "tcp",
        source: e,
    })?;

    let mut forward = config.forward.clone();
    // A resolver that points at this server would loop forever (CoreDNS's `loop` plugin case).
    forward.upstreams.retain(|u| {
        let looping = *u == dns_addr;
        if looping {
            tracing::warn!(upstream = %u, "ignoring an upstream that is this server");
        }
        !looping
    });
    if forward.upstreams.is_empty() {
        tracing::warn!("no upstream resolvers: non-cluster names will get SERVFAIL");
    }
    let forwarder = Arc::new(Forwarder::new(forward, metrics.clone()));
    let synced = Arc::new(Synced::default());

    let mut tasks = JoinSet::new();
    let watch_pods = config.zone.pod_records != PodRecords::Disabled;
    synced.expect(if watch_pods { 3 } else { 2 });
    tasks.spawn(watch(sync::run(
        client.all::<Service>(),
        zone.clone(),
        synced.clone(),
        shutdown.clone(),
    )));
    tasks.spawn(watch(sync::run(
        client.all::<EndpointSlice>(),
        zone.clone(),
        synced.clone(),
        shutdown.clone(),
    )));
    if watch_pods {
        tasks.spawn(watch(sync::run(
            client.all::<Pod>(),
            zone.clone(),
            synced.clone(),
            shutdown.clone(),
        )));
    }

    let metrics_addr = match config.metrics_listen {
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| DnsError::Bind {
                    addr,
                    proto: "tcp",
                    source,
                })?;
            let bound = listener.local_addr().ok();
            let app = crate::http::router(
                zone.clone(),
                forwarder.clone(),
                synced.clone(),
                metrics.clone(),
            );
            let token = shutdown.clone();
            tasks.spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(token.cancelled_owned())
                    .await
                    .map_err(|e| DnsError::Server(format!("metrics endpoint: {e}")))
            });
            bound
        }
        None => None,
    };

    let handler = Handler::new(zone.clone(), forwarder, metrics);
    let udp_context = Arc::new(udp::Context {
        handler: handler.clone(),
        zone,
        cache: AnswerCache::new(udp::ANSWER_CACHE_BYTES),
        upstream_tasks: TaskTracker::new(),
    });
    for socket in udp_sockets {
        let socket = UdpSocket::from_std(socket).map_err(|e| DnsError::Bind {
            addr: dns_addr,
            proto: "udp",
            source: e,
        })?;
        let (cx, token) = (udp_context.clone(), shutdown.clone());
        tasks.spawn(async move {
            udp::serve(socket, cx.clone(), token)
                .await
                .map_err(|e| DnsError::Server(format!("the UDP socket failed: {e}")))?;
            // In-flight upstream answers get the same grace as TCP's.
            cx.upstream_tasks.close();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, cx.upstream_tasks.wait()).await;
            Ok(())
        });
    }
    let mut server = Server::new(handler);
    server.register_listener(tcp, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);
    let token = shutdown.clone();
    tasks.spawn(async move {
        tokio::select! {
            result = server.block_until_done() => {
                // Only a socket failure ends the server before shutdown.
                result.map_err(|e| DnsError::Server(e.to_string()))?;
                Err(DnsError::Server("the DNS sockets closed".to_string()))
            }
            _ = token.cancelled() => {
                match tokio::time::timeout(SHUTDOWN_GRACE, server.shutdown_gracefully()).await {
                    Ok(result) => result.map_err(|e| DnsError::Server(e.to_string())),
                    Err(_) => Ok(()),
                }
            }
        }
    });
    tracing::info!(%dns_addr, ?metrics_addr, domain = %config.zone.domain, "niwa-dns serving");
    Ok(Running {
        dns_addr,
        metrics_addr,
        tasks,
        stop: shutdown,
    })
}

async fn watch(task: impl Future<Output = ()>) -> Result<(), DnsError> {
    task.await;
    Ok(())
}

/// Runs niwa-dns until `shutdown` is cancelled.
pub async fn run(config: DnsConfig, shutdown: CancellationToken) -> Result<(), DnsError> {
    start(config, shutdown).await?.wait().await
}
