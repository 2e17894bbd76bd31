//! # niwa-testkit
//!
//! Test support for every niwa component: [`ControlPlane::start`] runs a niwa-store and a
//! niwa-apiserver inside the test's tokio runtime, on free 127.0.0.1 ports, with a temporary data
//! directory; dropping it stops both and removes the directory. Use it as a dev-dependency:
//!
//! ```no_run
//! # async fn demo() -> Result<(), niwa_client::Error> {
//! use niwa_client::Api;
//! use niwa_client::k8s::api::core::v1::ConfigMap;
//!
//! let cp = niwa_testkit::ControlPlane::start().await;
//! let cms: Api<ConfigMap> = cp.client().namespaced("default");
//! let list = cms.list(&Default::default()).await?;
//! assert!(list.items.is_empty());
//! # Ok(()) }
//! ```
//!
//! Tests run in parallel: nothing here uses a fixed port. A test that needs the apiserver to go
//! away and come back (watch resumption) calls [`ControlPlane::restart_apiserver`]; one that needs
//! history compacted calls [`ControlPlane::compact`]. Benchmark programs share [`bench`]'s flag
//! and /proc helpers; tests that drive the real `kubectl` run it through [`kubectl::run`].

pub mod bench;
pub mod kubectl;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use niwa_apiserver::ApiServerConfig;
use niwa_client::Client;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Why a control plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    #[error("cannot create a temporary directory: {0}")]
    TempDir(#[source] std::io::Error),
    #[error("cannot find a free loopback port: {0}")]
    Port(#[source] std::io::Error),
    #[error("niwa-store did not start: {0}")]
    Store(String),
    #[error("niwa-apiserver did not start: {0}")]
    ApiServer(String),
    #[error("cannot connect a client: {0}")]
    Client(#[from] niwa_client::Error),
    #[error("store request failed: {0}")]
    Etcd(#[from] etcd_client::Error),
}

/// How long start-up waits for each daemon.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts at finding a store port nobody else took in the meantime.
const PORT_ATTEMPTS: usize = 5;

/// A niwa-store and a niwa-apiserver running in-process. Dropped → both stop.
pub struct ControlPlane {
    /// The apiserver's gRPC address (`http://{api_addr}` for clients).
    pub api_addr: SocketAddr,
    /// The store's etcd v3 address.
    pub store_addr: SocketAddr,
    client: Client,
    store_stop: CancellationToken,
    api_stop: CancellationToken,
    store_task: JoinHandle<()>,
    api_task: Option<JoinHandle<()>>,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("api_addr", &self.api_addr)
            .field("store_addr", &self.store_addr)
            .finish()
    }
}

impl ControlPlane {
    /// Starts a store and an apiserver; panics (failing the test) with the reason if they cannot
    /// start.
    pub async fn start() -> ControlPlane {
        match ControlPlane::try_start().await {
            Ok(cp) => cp,
            Err(err) => panic!("the test control plane did not start: {err}"),
        }
    }

    /// Like [`ControlPlane::start`], returning the failure.
    pub async fn try_start() -> Result<ControlPlane, TestkitError> {
        init_tracing();
        let dir = tempfile::tempdir().map_err(TestkitError::TempDir)?;
        let store_stop = CancellationToken::new();
        let (store_addr, store_task) = start_store(dir.path(), &store_stop).await?;
        let api_stop = CancellationToken::new();
        let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
        let (api_addr, api_task) = start_apiserver(loopback, store_addr, &api_stop).await?;
        let client = Client::connect(&format!("http://{api_addr}")).await?;
        Ok(ControlPlane {
            api_addr,
            store_addr,
            client,
            store_stop,
            api_stop,
            store_task,
            api_task: Some(api_task),
            dir,
        })
    }

    /// Writes a kubeconfig at `path` that points the real `kubectl` at this apiserver
    /// (namespace `default`, no credentials), the same file `niwa up` writes.
    pub fn write_kubeconfig(&self, path: &std::path::Path) -> std::io::Result<()> {
        niwa_apiserver::http::kubeconfig::Kubeconfig::for_address(self.api_addr).write(path)
    }

    /// A client of the apiserver (cheap to clone; all clones share one HTTP/2 connection).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// `http://127.0.0.1:PORT`, what `--server` flags and `Client::connect` take.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.api_addr)
    }

    /// The temporary directory holding the store's data.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the apiserver (its watch streams end, requests fail) and waits until it is gone.
    pub async fn stop_apiserver(&mut self) {
        self.api_stop.cancel();
        if let Some(task) = self.api_task.take() {
            let _ = task.await;
        }
    }

    /// Starts the apiserver again on the same address, after [`ControlPlane::stop_apiserver`].
    /// Existing clients reconnect by themselves.
    pub async fn start_apiserver(&mut self) -> Result<(), TestkitError> {
        if self.api_task.is_some() {
            return Ok(());
        }
        self.api_stop = CancellationToken::new();
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            match start_apiserver(self.api_addr, self.store_addr, &self.api_stop).await {
                Ok((_, task)) => {
                    self.api_task = Some(task);
                    return Ok(());
                }
                // The old listener's port may take a moment to be free again.
                Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Stops and starts the apiserver: every watch stream ends and clients reconnect.
    pub async fn restart_apiserver(&mut self) {
        self.stop_apiserver().await;
        if let Err(err) = self.start_apiserver().await {
            panic!("the apiserver did not restart: {err}");
        }
    }

    /// A raw etcd v3 client of the store, for tests that look under the apiserver.
    pub async fn etcd(&self) -> Result<etcd_client::Client, TestkitError> {
        Ok(etcd_client::Client::connect([self.store_addr.to_string()], None).await?)
    }

    /// The store's current revision (the newest resourceVersion).
    pub async fn store_revision(&self) -> Result<i64, TestkitError> {
        let mut etcd = self.etcd().await?;
        let resp = etcd.get("/", None).await?;
        Ok(resp.header().map(|h| h.revision()).unwrap_or(0))
    }

    /// Compacts the store's history up to `revision`: watches and lists from older
    /// resourceVersions then get 410 Expired.
    pub async fn compact(&self, revision: i64) -> Result<(), TestkitError> {
        let mut etcd = self.etcd().await?;
        etcd.compact(revision, None).await?;
        Ok(())
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.api_stop.cancel();
        self.store_stop.cancel();
        if let Some(task) = &self.api_task {
            task.abort();
        }
        self.store_task.abort();
    }
}

/// Logs to the test's output when `RUST_LOG` is set (idempotent).
pub fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

fn free_port() -> Result<SocketAddr, TestkitError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(TestkitError::Port)?;
    listener.local_addr().map_err(TestkitError::Port)
}

/// Starts the store on a free port. The store binds its own listener, so a port found free can
/// be taken by a parallel test in between: such a start is retried on another port.
async fn start_store(
    dir: &Path,
    stop: &CancellationToken,
) -> Result<(SocketAddr, JoinHandle<()>), TestkitError> {
    let mut last_error = String::from("no attempt made");
    for _ in 0..PORT_ATTEMPTS {
        let addr = free_port()?;
        let config = niwa_store::StoreConfig::new(addr, dir.join("store"));
        let token = stop.child_token();
        let (failed_tx, mut failed_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            if let Err(err) = niwa_store::run(config, token).await {
                tracing::error!(%err, "test store stopped");
                let _ = failed_tx.send(err.to_string());
            }
        });
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok((addr, task));
            }
            if let Ok(reason) = failed_rx.try_recv() {
                last_error = reason;
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                task.abort();
                return Err(TestkitError::Store(format!("not listening on {addr}")));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    Err(TestkitError::Store(last_error))
}

async fn start_apiserver(
    listen: SocketAddr,
    store: SocketAddr,
    stop: &CancellationToken,
) -> Result<(SocketAddr, JoinHandle<()>), TestkitError> {
    let config = ApiServerConfig::new(listen, vec![store.to_string()]);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel();
    let token = stop.clone();
    let task = tokio::spawn(async move {
        if let Err(err) = niwa_apiserver::run(config, token, Some(ready_tx)).await {
            tracing::error!(%err, "test apiserver stopped");
            let _ = failed_tx.send(err.to_string());
        }
    });
    let started = tokio::time::timeout(START_TIMEOUT, async {
        match ready_rx.await {
            Ok(addr) => Ok(addr),
            // `run` returned before it was ready: its error follows on `failed_rx`.
            Err(_) => Err(failed_rx
                .await
                .unwrap_or_else(|_| "it stopped before it was ready".into())),
        }
    })
    .await;
    match started {
        Ok(Ok(addr)) => Ok((addr, task)),
        Ok(Err(reason)) => {
            task.abort();
            Err(TestkitError::ApiServer(reason))
        }
        Err(_) => {
            task.abort();
            Err(TestkitError::ApiServer(format!(
                "not ready within {START_TIMEOUT:?}"
            )))
        }
    }
}
