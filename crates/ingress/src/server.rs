//! [`run`]: watches, the snapshot builder, the status writer, and the HTTP/HTTPS/metrics servers.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use niwa_client::runtime::watcher::{self, watcher};
use niwa_client::{Client, ObjectRef, Patch, Store, reflector};
use parking_lot::RwLock;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, warn};

use crate::class::{self, is_ours};
use crate::metrics::Metrics;
use crate::proxy::{ConnInfo, Proxy};
use crate::routing::ObjectKey;
use crate::snapshot::{Inputs, Snapshot};
use crate::tls::{SniResolver, server_config};

/// How long shutdown waits for open requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Changes arriving together are applied together, this long after the first.
const SYNC_DELAY: Duration = Duration::from_millis(10);

#[derive(Clone, Debug)]
pub struct IngressConfig {
    pub apiserver: String,
    /// Plain HTTP (HTTP/1.1 and h2 with prior knowledge).
    pub http_listen: SocketAddr,
    /// HTTPS (TLS from the Ingresses' Secrets; ALPN h2 and http/1.1).
    pub https_listen: Option<SocketAddr>,
    /// /healthz, /readyz, /livez, /metrics.
    pub metrics_listen: SocketAddr,
    /// The IngressClass served (created when missing).
    pub class_name: String,
    /// Mark the class created as the cluster default (Ingresses without a class are ours).
    pub default_class: bool,
    /// The address written to `status.loadBalancer.ingress[].ip` (default: the HTTP listen IP).
    pub publish_ip: Option<IpAddr>,
    /// Most open client connections; more are closed at once.
    pub max_connections: usize,
}

impl IngressConfig {
    pub fn new(apiserver: &str, http_listen: SocketAddr) -> IngressConfig {
        IngressConfig {
            apiserver: apiserver.to_string(),
            http_listen,
            https_listen: None,
            metrics_listen: SocketAddr::new(http_listen.ip(), 10254),
            class_name: class::DEFAULT_CLASS_NAME.to_string(),
            default_class: true,
            publish_ip: None,
            max_connections: 10_000,
        }
    }
}

/// Where the servers listen (useful when configured with port 0).
#[derive(Clone, Copy, Debug)]
pub struct Bound {
    pub http: SocketAddr,
    pub https: Option<SocketAddr>,
    pub metrics: SocketAddr,
}

#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    #[error("cannot connect to the apiserver {url}: {source}")]
    Connect {
        url: String,
        source: niwa_client::Error,
    },
    #[error(
        "cannot listen on {addr}: {source}{hint}",
        hint = if source.kind() == std::io::ErrorKind::PermissionDenied {
            " (ports below 1024 need root or `sysctl -w net.ipv4.ip_unprivileged_port_start=0`)"
        } else { "" }
    )]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
}

async fn listen(addr: SocketAddr) -> Result<TcpListener, IngressError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| IngressError::Listen { addr, source })
}

/// The watch caches.
#[derive(Clone)]
struct Stores {
    ingresses: Store<Ingress>,
    classes: Store<IngressClass>,
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    secrets: Store<Secret>,
}

/// Watches one kind into a store, nudging `changed` after every event.
fn watch_into<K: niwa_client::api::Object>(
    tasks: &mut JoinSet<()>,
    client: &Client,
    changed: mpsc::Sender<()>,
    shutdown: CancellationToken,
) -> Store<K> {
    let (store, writer) = niwa_client::store::<K>();
    let stream = reflector(
        writer,
        watcher(client.all::<K>(), watcher::Config::default()),
    );
    let kind = K::KIND;
    tasks.spawn(
        async move {
            tokio::pin!(stream);
            loop {
                let event = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    event = stream.next() => event,
                };
                match event {
                    Some(Ok(_)) => {
                        let _ = changed.try_send(());
                    }
                    Some(Err(e)) => warn!(kind, error = %e, "watch failed; retrying"),
                    None => return,
                }
            }
        }
        .instrument(tracing::info_span!("watch", kind)),
    );
    store
}

pub async fn run(
    config: IngressConfig,
    shutdown: CancellationToken,
    ready: Option<tokio::sync::oneshot::Sender<Bound>>,
) -> Result<(), IngressError> {
    let client =
        Client::connect(&config.apiserver)
            .await
            .map_err(|source| IngressError::Connect {
                url: config.apiserver.clone(),
                source,
            })?;
    let metrics = Metrics::new();
    let http = listen(config.http_listen).await?;
    let https = match config.https_listen {
        Some(addr) => Some(listen(addr).await?),
        None => None,
    };
    let metrics_listener = listen(config.metrics_listen).await?;
    let bound = Bound {
        http: http.local_addr().unwrap_or(config.http_listen),
        https: https.as_ref().and_then(|l| l.local_addr().ok()),
        metrics: metrics_listener
            .local_addr()
            .unwrap_or(config.metrics_listen),
    };
    info!(http = %bound.http, https = ?bound.https, metrics = %bound.metrics, class = %config.class_name, "niwa-ingress starting");
    ensure_class(&client, &config).await;

    let snapshot = Arc::new(RwLock::new(Arc::new(Snapshot::default())));
    let synced = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = JoinSet::new();
    let (changed_tx, changed_rx) = mpsc::channel(1);
    let stores = Stores {
        ingresses: watch_into(&mut tasks, &client, changed_tx.clone(), shutdown.clone()),
        classes: watch_into(&mut tasks, &client, changed_tx.clone(), shutdown.clone()),
        services: watch_into(&mut tasks, &client, changed_tx.clone(), shutdown.clone()),
        slices: watch_into(&mut tasks, &client, changed_tx.clone(), shutdown.clone()),
        secrets: watch_into(&mut tasks, &client, changed_tx, shutdown.clone()),
    };
    let publish_ip = config.publish_ip.unwrap_or(bound.http.ip());
    tasks.spawn(
        sync_loop(
            client.clone(),
            stores,
            snapshot.clone(),
            config.class_name.clone(),
            publish_ip,
            metrics.clone(),
            synced.clone(),
            changed_rx,
            shutdown.clone(),
        )
        .instrument(tracing::info_span!("sync")),
    );

    // Requests and replies go out at once, not held back by Nagle while the previous segment
    // is unacknowledged (hyper's connector leaves TCP_NODELAY off by default).
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_nodelay(true);
    let proxy = Arc::new(Proxy {
        snapshot: snapshot.clone(),
        client: hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector),
        metrics: metrics.clone(),
    });
    let connections = TaskTracker::new();
    let limit = Arc::new(Semaphore::new(config.max_connections.max(1)));
    tasks.spawn(serve(
        http,
        None,
        proxy.clone(),
        connections.clone(),
        limit.clone(),
        shutdown.clone(),
    ));
    if let Some(https) = https {
        let resolver = Arc::new(SniResolver {
            snapshot: snapshot.clone(),
        });
        let tls = tokio_rustls::TlsAcceptor::from(Arc::new(server_config(resolver)?));
        tasks.spawn(serve(
            https,
            Some(tls),
            proxy.clone(),
            connections.clone(),
            limit,
            shutdown.clone(),
        ));
    }
    tasks.spawn(crate::health::serve(
        metrics_listener,
        metrics,
        synced,
        shutdown.clone(),
    ));
    if let Some(ready) = ready {
        let _ = ready.send(bound);
    }
    shutdown.cancelled().await;
    while tasks.join_next().await.is_some() {}
    connections.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, connections.wait())
        .await
        .is_err()
    {
        warn!("requests still open after the grace period; dropping them");
    }
    info!("niwa-ingress stopped");
    Ok(())
}

/// Creates our IngressClass when it does not exist (an existing one is left as the user set it).
async fn ensure_class(client: &Client, config: &IngressConfig) {
    let classes = client.cluster::<IngressClass>();
    match classes.get_opt(&config.class_name).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            let class = class::ingress_class(&config.class_name, config.default_class);
            match classes.create(&class).await {
                Ok(_) => {
                    info!(class = %config.class_name, default = config.default_class, "IngressClass created")
                }
                Err(e) if e.is_already_exists() => {}
                Err(e) => warn!(error = %e, "cannot create the IngressClass"),
            }
        }
        Err(e) => warn!(error = %e, "cannot read the IngressClass"),
    }
}

#[allow(clippy::too_many_arguments)]
async fn sync_loop(
    client: Client,
    stores: Stores,
    snapshot: Arc<RwLock<Arc<Snapshot>>>,
    class_name: String,
    publish_ip: IpAddr,
    metrics: Metrics,
    synced: Arc<std::sync::atomic::AtomicBool>,
    mut changed: mpsc::Receiver<()>,
    shutdown: CancellationToken,
) {
    tokio::select! {
        _ = shutdown.cancelled() => return,
        _ = async {
            stores.ingresses.wait_until_ready().await;
            stores.classes.wait_until_ready().await;
            stores.services.wait_until_ready().await;
            stores.slices.wait_until_ready().await;
            stores.secrets.wait_until_ready().await;
        } => {}
    }
    let mut last_problems = Vec::new();
    loop {
        let ours_is_default = stores
            .classes
            .get(&ObjectRef::new(&class_name))
            .is_some_and(|c| {
                class::is_default(&c)
                    && c.spec.as_ref().and_then(|s| s.controller.as_deref())
                        == Some(class::CONTROLLER_NAME)
            });
        let ingresses: Vec<Arc<Ingress>> = stores
            .ingresses
            .state()
            .into_iter()
            .filter(|i| is_ours(i, &class_name, ours_is_default))
            .collect();
        let services = |key: &ObjectKey| {
            stores
                .services
                .get(&ObjectRef::new(&key.name).within(&key.namespace))
        };
        let slices = |key: &ObjectKey| {
            stores.slices.filter(|s| {
                s.metadata.namespace.as_deref() == Some(key.namespace.as_str())
                    && s.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("kubernetes.io/service-name"))
                        == Some(&key.name)
            })
        };
        let secrets = |key: &ObjectKey| {
            stores
                .secrets
                .get(&ObjectRef::new(&key.name).within(&key.namespace))
        };
        let next = Snapshot::build(Inputs {
            ingresses: ingresses.iter().map(|i| i.as_ref()).collect(),
            services: &services,
            slices: &slices,
            secrets: &secrets,
        });
        let mut problems = next.routes.problems.clone();
        problems.extend(next.cert_problems.iter().cloned());
        if problems != last_problems {
            for p in &problems {
                warn!("{p}");
            }
            last_problems = problems;
        }
        {
            let mut current = snapshot.write();
            next.inherit_cursors(&current);
            *current = Arc::new(next);
        }
        metrics.syncs.inc();
        metrics.ingresses.set(ingresses.len() as i64);
        synced.store(true, std::sync::atomic::Ordering::Relaxed);
        publish_status(&client, &ingresses, publish_ip).await;

        tokio::select! {
            _ = shutdown.cancelled() => return,
            got = changed.recv() => if got.is_none() { return },
        }
        tokio::time::sleep(SYNC_DELAY).await;
        while changed.try_recv().is_ok() {}
    }
}

/// Writes `status.loadBalancer.ingress: [{ip}]` on each of our Ingresses that lacks it.
async fn publish_status(client: &Client, ingresses: &[Arc<Ingress>], ip: IpAddr) {
    let want = json!([{"ip": ip.to_string()}]);
    for ingress in ingresses {
        let current = ingress
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .map(|i| serde_json::to_value(i).unwrap_or_default())
            .unwrap_or_default();
        if current == want {
            continue;
        }
        let (Some(namespace), Some(name)) = (&ingress.metadata.namespace, &ingress.metadata.name)
        else {
            continue;
        };
        let api = client.namespaced::<Ingress>(namespace);
        let patch = Patch::Merge(json!({"status": {"loadBalancer": {"ingress": want}}}));
        match api.patch_status(name, &patch).await {
            Ok(_) => debug!(ingress = %format!("{namespace}/{name}"), %ip, "status published"),
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                warn!(ingress = %format!("{namespace}/{name}"), error = %e, "cannot publish status")
            }
        }
    }
}

/// Accepts connections (TLS when `tls` is set) and serves HTTP/1.1 and h2 on each.
async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    proxy: Arc<Proxy>,
    connections: TaskTracker,
    limit: Arc<Semaphore>,
    shutdown: CancellationToken,
) {
    let local = listener.local_addr().ok();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            proxy.metrics.rejected.inc();
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = ConnInfo {
            peer,
            local: local.unwrap_or(peer),
            tls: tls.is_some(),
        };
        let (proxy, tls, shutdown) = (proxy.clone(), tls.clone(), shutdown.clone());
        connections.spawn(async move {
            proxy.metrics.connections.inc();
            let service = service_fn(move |req| {
                let proxy = proxy.clone();
                async move { Ok::<_, std::convert::Infallible>(proxy.handle(req, conn).await) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let result = match tls {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(stream) => {
                        serve_conn(&builder, TokioIo::new(stream), service, &shutdown).await
                    }
                    Err(e) => {
                        debug!(%peer, error = %e, "TLS handshake failed");
                        Ok(())
                    }
                },
                None => serve_conn(&builder, TokioIo::new(stream), service, &shutdown).await,
            };
            if let Err(e) = result {
                debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
}

async fn serve_conn<I, S>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    service: S,
    shutdown: &CancellationToken,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<crate::proxy::Body>,
            Error = std::convert::Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    }
}
