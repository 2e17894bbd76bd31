//! Wiring: connect to the store, bootstrap system namespaces, serve gRPC, one shutdown path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;

use crate::cache::{CacheConfig, Caches};
use crate::grpc::ResourcesService;
use crate::rest::Rest;
use crate::storage::Storage;

#[derive(Debug, Clone)]
pub struct ApiServerConfig {
    pub listen: SocketAddr,
    pub store_endpoints: Vec<String>,
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
            let rest = Rest::new(storage, caches);
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
    tonic::transport::Server::builder()
        .add_service(ResourcesService::server(rest, shutdown.clone()))
        .serve_with_incoming_shutdown(
            TcpListenerStream::new(listener),
            shutdown.clone().cancelled_owned(),
        )
        .await?;
    tracing::info!("niwa-apiserver stopped");
    Ok(())
}
