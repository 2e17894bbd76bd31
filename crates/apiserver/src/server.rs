//! Wiring: connect to the store, bootstrap system namespaces, serve gRPC, one shutdown path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cache::{CacheConfig, Caches};
use crate::grpc::ResourcesService;
pub use crate::net::{Ipv4Net, PortRange};
use crate::rest::Rest;
use crate::storage::Storage;

/// Everything `run` needs. Build it with [`ApiServerConfig::new`] (every other field has the
/// Kubernetes-like default) and adjust fields afterwards; new fields only ever get defaults there.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ApiServerConfig {
    /// Address of the API (gRPC, and the Kubernetes REST API on the same port).
    pub listen: SocketAddr,
    /// etcd v3 endpoints of the store (niwa-store or a real etcd).
    pub store_endpoints: Vec<String>,
    /// The CIDR ClusterIPs are allocated from; its first address is the `kubernetes` Service's.
    pub service_cidr: Ipv4Net,
    /// The inclusive port range NodePorts are allocated from.
    pub service_node_port_range: PortRange,
    /// The address other hosts reach this apiserver on, published as the `kubernetes` Service's
    /// endpoint (default: the listen address; loopback when that is unspecified).
    pub advertise_address: Option<std::net::IpAddr>,
}

/// The Service CIDR of a local niwa cluster (ARCHITECTURE.md §5).
pub const DEFAULT_SERVICE_CIDR: Ipv4Net = Ipv4Net {
    addr: std::net::Ipv4Addr::new(127, 96, 0, 0),
    prefix: 16,
};
/// Kubernetes' default NodePort range.
pub const DEFAULT_NODE_PORT_RANGE: PortRange = PortRange {
    first: 30000,
    last: 32767,
};

impl ApiServerConfig {
    /// A configuration with defaults for everything but the listen address and the store.
    pub fn new(listen: SocketAddr, store_endpoints: Vec<String>) -> ApiServerConfig {
        ApiServerConfig {
            listen,
            store_endpoints,
            service_cidr: DEFAULT_SERVICE_CIDR,
            service_node_port_range: DEFAULT_NODE_PORT_RANGE,
            advertise_address: None,
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
    #[error("cannot reach the store at {endpoints:?}: {reason}")]
    Store {
        endpoints: Vec<String>,
        reason: String,
    },
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// How long start-up keeps trying to reach the store before giving up.
const STORE_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the apiserver until `shutdown` is cancelled. `ready` gets the bound address.
pub async fn run(
    config: ApiServerConfig,
    shutdown: CancellationToken,
    ready: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> Result<(), ServeError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
    let local = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: config.listen,
        source,
    })?;
    let store_err = |reason: String| ServeError::Store {
        endpoints: config.store_endpoints.clone(),
        reason,
    };
    let deadline = tokio::time::Instant::now() + STORE_CONNECT_TIMEOUT;
    let rest = loop {
        let attempt = async {
            let storage = Storage::connect(&config.store_endpoints)
                .await
                .map_err(|e| e.to_string())?;
            let caches = Arc::new(Caches::new(
                storage.clone(),
                CacheConfig::default(),
                shutdown.clone(),
            ));
            let rest = Rest::new(storage, caches).with_services(
                config.service_cidr,
                config.service_node_port_range,
                match config.advertise_address {
                    Some(ip) => SocketAddr::new(ip, local.port()),
                    None => local,
                },
            );
            rest.bootstrap().await.map_err(|e| e.to_string())?;
            Ok::<Rest, String>(rest)
        };
        match attempt.await {
            Ok(rest) => break rest,
            Err(reason) if tokio::time::Instant::now() >= deadline => {
                return Err(store_err(reason));
            }
            Err(reason) => {
                tracing::warn!(%reason, "store not ready yet; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = shutdown.cancelled() => return Ok(()),
                }
            }
        }
    };
    tracing::info!(listen = %local, store = ?config.store_endpoints, "niwa-apiserver ready");
    if let Some(ready) = ready {
        let _ = ready.send(local);
    }
    // gRPC and the Kubernetes REST API share the port, routed by content-type.
    let grpc =
        tonic::service::Routes::new(ResourcesService::server(rest.clone(), shutdown.clone()));
    let api = crate::http::HttpApi::new(rest, shutdown.clone());
    crate::http::serve::serve(listener, grpc, api, shutdown.clone()).await;
    tracing::info!("niwa-apiserver stopped");
    Ok(())
}
