//! # niwa-kubelet
//!
//! niwa's node agent. It registers its node(s) with the apiserver, keeps their Lease and status
//! fresh, watches the pods bound to them and runs those pods on a runtime:
//!
//! * `sim` — kwok-style: no processes; containers start, run and exit on configurable delays and
//!   pod annotations ([`runtime::sim`]); thousands of nodes in one process.
//! * `process` — each container is a real OS process; each pod has its own IP from the node's
//!   podCIDR (127.244.N.x).
//!
//! Where to start reading:
//! * [`pod`] — the IO-free pod/container state machine (init containers, restart policy and
//!   CrashLoopBackOff, probes, graceful termination, the pod status Kubernetes reports).
//! * [`driver`] — the shell around it: watch → machines → runtime actions → status writes.
//! * [`node`] — registration, Lease heartbeats, node status.
//! * [`runtime`] — the runtimes; [`logs`] — CRI logs; [`server`] — the kubelet API and health.
//! * [`Kubelet::start`] wires it all together; `main.rs` only parses flags.

pub mod config;
pub mod driver;
pub mod grpc_health;
pub mod images;
pub mod logs;
pub mod metrics;
pub mod node;
pub mod pod;
pub mod runtime;
pub mod server;
pub mod time;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use niwa_client::Client;
use niwa_client::events::Recorder;
use niwa_client::runtime::watcher;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tracing::{info, warn};

use config::{ConfigError, NodeIdentity};
pub use config::{KubeletConfig, RuntimeKind};
use driver::{Driver, PodIndex, RECORD_QUEUE, Recording};
use metrics::{Metrics, NodeLabel};
use node::host::{HostInfo, real_capacity};
use node::manager::NodeManager;
use runtime::{EventSink, Runtime};

/// Why the kubelet could not start.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Listen(std::io::Error),
    #[error("apiserver {url}: {source}")]
    Client {
        url: String,
        #[source]
        source: niwa_client::Error,
    },
    #[error("runtime: {0}")]
    Runtime(String),
    #[error("stopped before the node was registered")]
    Cancelled,
}

/// How long stopping waits for tasks before abandoning them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A running kubelet (all its nodes).
pub struct Kubelet {
    /// The kubelet API port on every node address.
    pub api_port: u16,
    /// Where /healthz and /metrics are served (the first node's address).
    pub health_addr: SocketAddr,
    pub nodes: Vec<Arc<NodeIdentity>>,
    pub index: Arc<PodIndex>,
    pub metrics: Arc<Metrics>,
    tasks: JoinSet<()>,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Kubelet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubelet")
            .field("api_port", &self.api_port)
            .field("nodes", &self.nodes.len())
            .finish()
    }
}

fn make_runtime(
    config: &KubeletConfig,
    client: &Client,
    capacity: &config::Capacity,
) -> Result<Arc<dyn Runtime>, KubeletError> {
    match config.runtime {
        RuntimeKind::Sim => Ok(Arc::new(runtime::sim::SimRuntime::new(config.sim.clone()))),
        RuntimeKind::Process => {
            let exe = match &config.exe {
                Some(p) => p.clone(),
                None => std::env::current_exe().map_err(|e| {
                    KubeletError::Runtime(format!("cannot find this executable: {e}"))
                })?,
            };
            let host_resolv_conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            let process = runtime::process::ProcessConfig {
                root_dir: config.root_dir.clone(),
                exe,
                dns: runtime::process::dns::ClusterDns {
                    nameserver: config.cluster_dns.to_string(),
                    domain: config.cluster_domain.clone(),
                    host_resolv_conf,
                },
                rotation: logs::file::Rotation::default(),
                node_cpu: capacity.cpu.clone(),
                node_memory: capacity.memory.clone(),
                volume_resync: config.volume_resync,
                pod_net: runtime::process::podnet::PodNet::new(config.pod_ip_interface.clone()),
            };
            let rt = runtime::process::ProcessRuntime::new(process, client.clone())
                .map_err(KubeletError::Runtime)?;
            Ok(Arc::new(rt))
        }
    }
}

impl Kubelet {
    /// Binds its ports, registers the nodes (retrying until the apiserver answers or `shutdown`),
    /// and starts the heartbeats, the pod driver and the servers.
    pub async fn start(
        config: KubeletConfig,
        shutdown: CancellationToken,
    ) -> Result<Kubelet, KubeletError> {
        config.validate()?;
        let nodes: Vec<Arc<NodeIdentity>> =
            config.node_identities().into_iter().map(Arc::new).collect();
        let ips: Vec<_> = nodes.iter().map(|n| n.ip).collect();
        let (api_listeners, api_port) = server::bind_all(&ips, config.port)
            .await
            .map_err(KubeletError::Listen)?;
        let (mut health_listeners, _) = server::bind_all(&ips[..1], config.health_port)
            .await
            .map_err(KubeletError::Listen)?;
        let health_listener = health_listeners.remove(0);
        let health_addr = health_listener.local_addr().map_err(KubeletError::Listen)?;

        let client =
            Client::connect_lazy(&config.apiserver).map_err(|source| KubeletError::Client {
                url: config.apiserver.clone(),
                source,
            })?;
        let metrics = Arc::new(Metrics::new());
        for n in &nodes {
            metrics
                .node_name
                .get_or_create(&NodeLabel {
                    node: n.name.clone(),
                })
                .set(1);
        }
        let index = Arc::new(PodIndex::default());
        let ready = Arc::new(AtomicBool::new(false));
        let host = HostInfo::detect();
        let capacity = match config.runtime {
            RuntimeKind::Process if config.capacity == config::Capacity::default() => {
                real_capacity(&config.root_dir, config.capacity.pods)
            }
            _ => config.capacity.clone(),
        };
        let runtime = make_runtime(&config, &client, &capacity)?;
        let config = Arc::new(config);
        let mut tasks = JoinSet::new();

        // Health first, so a supervisor sees the process alive while it registers.
        let router = server::health::router(server::health::HealthState {
            metrics: metrics.clone(),
            ready: ready.clone(),
        });
        let token = shutdown.clone();
        tasks.spawn(async move {
            if let Err(e) = axum::serve(health_listener, router)
                .with_graceful_shutdown(token.cancelled_owned())
                .await
            {
                warn!(error = %e, "health server failed");
            }
        });

        let (commands_tx, commands_rx) = mpsc::channel(nodes.len().max(16));
        let mut manager = NodeManager::new(
            client.clone(),
            config.clone(),
            &nodes,
            host,
            capacity,
            api_port,
            runtime.clone(),
            metrics.clone(),
            commands_tx,
        );
        let mut delay = Duration::from_millis(200);
        loop {
            match manager.register_all().await {
                Ok(()) => break,
                Err(e) => {
                    warn!(error = %e, apiserver = %config.apiserver, "cannot register the node(s) yet; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => {
                            tasks.shutdown().await;
                            return Err(KubeletError::Cancelled);
                        }
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        tasks.spawn(manager.run(shutdown.clone()));

        let records = if config.events {
            let (tx, rx) = mpsc::channel::<Recording>(RECORD_QUEUE);
            let host = nodes.first().map(|n| n.name.clone());
            let recorder = Recorder::new(client.clone(), "kubelet", host.as_deref());
            tasks.spawn(publish_events(recorder, rx, shutdown.clone()));
            Some(tx)
        } else {
            None
        };
        let writer = driver::writer::StatusWriter::start(
            &client,
            config.status_workers,
            metrics.clone(),
            &mut tasks,
            &shutdown,
        );
        let (sink, reports) = EventSink::channel();
        let driver = Driver::new(
            &nodes,
            runtime.clone(),
            sink,
            writer,
            records,
            config.machine.clone(),
            index.clone(),
            metrics.clone(),
        );
        let selector = driver::pod_selector(&nodes);
        let pods = watcher(
            client.all::<Pod>(),
            watcher::Config::default().fields(&selector),
        );
        tasks.spawn(driver.run(pods, reports, commands_rx, shutdown.clone()));

        let service = server::api::KubeletService {
            index: index.clone(),
            runtime: runtime.clone(),
        };
        let incoming = futures::stream::select_all(
            api_listeners
                .into_iter()
                .map(|l| Box::pin(TcpIncoming::from(l).with_nodelay(Some(true)))),
        );
        let token = shutdown.clone();
        tasks.spawn(async move {
            let served = tonic::transport::Server::builder()
                .add_service(niwa_api::proto::kubelet::kubelet_server::KubeletServer::new(service))
                .serve_with_incoming_shutdown(incoming, token.cancelled_owned())
                .await;
            if let Err(e) = served {
                warn!(error = %e, "kubelet API server failed");
            }
        });
        ready.store(true, Ordering::Relaxed);
        info!(
            nodes = nodes.len(),
            runtime = config.runtime.as_str(),
            api_port,
            health = %health_addr,
            "kubelet running"
        );
        Ok(Kubelet {
            api_port,
            health_addr,
            nodes,
            index,
            metrics,
            tasks,
            shutdown,
        })
    }

    /// Waits for shutdown, then for the tasks to drain.
    pub async fn wait(mut self) {
        self.shutdown.cancelled().await;
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            warn!("kubelet tasks did not stop in time");
            self.tasks.abort_all();
        }
        info!("kubelet stopped");
    }
}

/// Runs a kubelet until `shutdown`.
pub async fn run(config: KubeletConfig, shutdown: CancellationToken) -> Result<(), KubeletError> {
    Kubelet::start(config, shutdown).await?.wait().await;
    Ok(())
}

async fn publish_events(
    recorder: Recorder,
    mut rx: mpsc::Receiver<Recording>,
    shutdown: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => return,
            next = rx.recv() => next,
        };
        let Some((reference, type_, reason, message)) = next else {
            return;
        };
        let type_ = match type_ {
            pod::EventType::Normal => niwa_client::EventType::Normal,
            pod::EventType::Warning => niwa_client::EventType::Warning,
        };
        if let Err(e) = recorder.publish(&reference, type_, reason, &message).await {
            tracing::debug!(error = %e, "event not published");
        }
    }
}
