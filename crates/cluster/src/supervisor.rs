//! The supervisor: runs every component of a [`ClusterPlan`] as a child process, stage by stage,
//! keeps them running, and stops them in reverse order.
//!
//! * Start: each stage's components are started together; the next stage starts once all of them
//!   answer `/healthz`. A stage that does not get healthy in time fails the start, naming the
//!   component and the end of its log.
//! * Keep: a component that exits is restarted after a backoff (1 s doubling to 30 s, back to 1 s
//!   after a minute of running), and its restarts are counted in the state file.
//! * Stop: on shutdown, the stages stop from the last to the first: SIGTERM, a grace period, then
//!   SIGKILL. One [`CancellationToken`] drives it all.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::plan::{ClusterPlan, ComponentSpec, Stage};
use crate::state::{ClusterState, ComponentState, Phase, StateError};

/// How long a stage gets to become healthy.
const STAGE_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a component gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A component that ran this long before exiting restarts without delay growth.
const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(60);
const HEALTH_POLL: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error(
        "a cluster is already running with data dir {dir} (supervisor pid {pid}); \
         stop it with `niwa down --data-dir {dir}`"
    )]
    AlreadyRunning { dir: String, pid: u32 },
    #[error(
        "cannot find {binary} in {dir}; build it first: cargo build --release --workspace --bins"
    )]
    MissingBinary { binary: String, dir: PathBuf },
    #[error(
        "{component} cannot listen on {addr}: the address is already in use (another cluster or program holds it)"
    )]
    PortTaken { component: String, addr: SocketAddr },
    #[error(
        "{component} needs port {port} on {addr}, and ports below 1024 need root here; run as \
         root, or allow unprivileged low ports: sudo sysctl -w net.ipv4.ip_unprivileged_port_start=0"
    )]
    PrivilegedPort {
        component: String,
        addr: SocketAddr,
        port: u16,
    },
    #[error(
        "{component} did not become healthy within {seconds} s (health: {health}); last log lines of {log}:\n{tail}"
    )]
    Unhealthy {
        component: String,
        seconds: u64,
        health: String,
        log: String,
        tail: String,
    },
    #[error(transparent)]
    Bootstrap(#[from] crate::bootstrap::BootstrapError),
    #[error("cannot start {component}: {source}")]
    Spawn {
        component: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    State(#[from] StateError),
}

/// What the supervisor reports while it starts the cluster (for `niwa up`'s progress lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Starting(String),
    Healthy { component: String, after: Duration },
    Ready,
}

/// The shared view of every component, from which the state file is written.
struct Shared {
    state: Mutex<ClusterState>,
    changed: Notify,
}

impl Shared {
    fn update(&self, name: &str, f: impl FnOnce(&mut ComponentState)) {
        if let Ok(mut state) = self.state.lock()
            && let Some(c) = state.components.iter_mut().find(|c| c.name == name)
        {
            f(c);
        }
        self.changed.notify_one();
    }

    fn snapshot(&self) -> Option<ClusterState> {
        self.state.lock().ok().map(|s| s.clone())
    }
}

pub struct Supervisor {
    plan: ClusterPlan,
}

impl Supervisor {
    pub fn new(plan: ClusterPlan) -> Supervisor {
        Supervisor { plan }
    }

    pub fn plan(&self) -> &ClusterPlan {
        &self.plan
    }

    /// Checks what can be checked before anything starts: no live cluster on this data dir, the
    /// binaries exist, every address is free and bindable.
    pub fn preflight(&self) -> Result<(), SupervisorError> {
        let dir = &self.plan.data_dir;
        if let Ok(state) = ClusterState::load(dir)
            && state.supervisor_alive()
            && state.supervisor_pid != std::process::id()
        {
            return Err(SupervisorError::AlreadyRunning {
                dir: dir.display().to_string(),
                pid: state.supervisor_pid,
            });
        }
        for c in self.plan.components() {
            let bin = self.plan.bin_dir.join(c.binary);
            if !bin.is_file() {
                return Err(SupervisorError::MissingBinary {
                    binary: c.binary.into(),
                    dir: self.plan.bin_dir.clone(),
                });
            }
            for addr in listen_addrs(&c) {
                check_bindable(&c.name, addr)?;
            }
        }
        Ok(())
    }

    /// Starts the cluster and keeps it running until `shutdown`, then stops it. `progress` hears
    /// about each component as it becomes healthy, and `Ready` once all are.
    pub async fn run(
        self,
        shutdown: CancellationToken,
        progress: impl Fn(Progress) + Send + Sync + 'static,
    ) -> Result<(), SupervisorError> {
        self.preflight()?;
        let plan = Arc::new(self.plan);
        for dir in [plan.data_dir.clone(), plan.logs_dir()] {
            std::fs::create_dir_all(&dir).map_err(|source| SupervisorError::Io {
                path: dir.clone(),
                source,
            })?;
        }
        let components = plan.components();
        let shared = Arc::new(Shared {
            state: Mutex::new(initial_state(&plan, &components)),
            changed: Notify::new(),
        });
        let writer = tokio::spawn(write_state(plan.data_dir.clone(), shared.clone()));

        let mut by_stage: BTreeMap<Stage, Vec<ComponentSpec>> = BTreeMap::new();
        for c in components {
            by_stage.entry(c.stage).or_default().push(c);
        }
        let progress = Arc::new(progress);
        // Each stage has its own token and task set, so that stages stop in reverse order.
        let mut running: Vec<(CancellationToken, JoinSet<()>)> = Vec::new();
        let mut result = Ok(());
        for specs in by_stage.values() {
            let stop = CancellationToken::new();
            let mut tasks = JoinSet::new();
            for spec in specs {
                progress(Progress::Starting(spec.name.clone()));
                tasks.spawn(keep_running(
                    plan.clone(),
                    spec.clone(),
                    shared.clone(),
                    stop.clone(),
                ));
            }
            running.push((stop, tasks));
            let started = Instant::now();
            let waited = tokio::select! {
                r = wait_healthy(&plan, specs, &progress, started) => r,
                _ = shutdown.cancelled() => Ok(()),
            };
            if let Err(e) = waited {
                result = Err(e);
                break;
            }
            if shutdown.is_cancelled() {
                break;
            }
            if specs.first().map(|c| c.stage) == Some(Stage::ApiServer)
                && let Err(e) = crate::bootstrap::after_apiserver(&plan).await
            {
                result = Err(e.into());
                break;
            }
        }
        if result.is_ok() && !shutdown.is_cancelled() {
            let kubeconfig = niwa_apiserver::http::kubeconfig::Kubeconfig::for_address(
                plan.network.apiserver_addr(),
            );
            let path = plan.kubeconfig_path();
            kubeconfig
                .write(&path)
                .map_err(|source| SupervisorError::Io { path, source })?;
            if let Ok(mut state) = shared.state.lock() {
                state.ready = true;
            }
            shared.changed.notify_one();
            progress(Progress::Ready);
            shutdown.cancelled().await;
        }
        for (stop, mut tasks) in running.into_iter().rev() {
            stop.cancel();
            while tasks.join_next().await.is_some() {}
        }
        crate::leftovers::stop_containers(&plan.data_dir, STOP_GRACE).await;
        writer.abort();
        if let Some(state) = shared.snapshot() {
            state.save(&plan.data_dir)?;
        }
        result
    }
}

fn initial_state(plan: &ClusterPlan, components: &[ComponentSpec]) -> ClusterState {
    ClusterState {
        supervisor_pid: std::process::id(),
        apiserver: plan.network.apiserver_url(),
        kubeconfig: plan.kubeconfig_path(),
        started: jiff::Timestamp::now().to_string(),
        ready: false,
        components: components
            .iter()
            .map(|c| ComponentState {
                name: c.name.clone(),
                phase: Phase::Pending,
                pid: None,
                restarts: 0,
                last_exit: None,
                health: format!("http://{}/healthz", c.health),
                log: plan.log_path(&c.name),
            })
            .collect(),
    }
}

/// Saves the state file whenever something changed (coalescing bursts of changes).
async fn write_state(data_dir: PathBuf, shared: Arc<Shared>) {
    loop {
        if let Some(state) = shared.snapshot()
            && let Err(e) = state.save(&data_dir)
        {
            tracing::warn!(error = %e, "cannot write the cluster state file");
        }
        shared.changed.notified().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The addresses a component listens on that preflight can check: its health address and any
/// `--listen` flag.
fn listen_addrs(c: &ComponentSpec) -> Vec<SocketAddr> {
    let mut out = vec![c.health];
    for pair in c.args.windows(2) {
        if pair[0] == "--listen"
            && let Ok(addr) = pair[1].parse::<SocketAddr>()
            && !out.contains(&addr)
        {
            out.push(addr);
        }
    }
    out
}

fn check_bindable(component: &str, addr: SocketAddr) -> Result<(), SupervisorError> {
    match TcpListener::bind(addr) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(SupervisorError::PortTaken {
            component: component.into(),
            addr,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied && addr.port() < 1024 => {
            Err(SupervisorError::PrivilegedPort {
                component: component.into(),
                addr,
                port: addr.port(),
            })
        }
        Err(source) => Err(SupervisorError::Io {
            path: PathBuf::from(addr.to_string()),
            source,
        }),
    }
}

/// Waits until every component of a stage answers /healthz.
async fn wait_healthy(
    plan: &ClusterPlan,
    specs: &[ComponentSpec],
    progress: &Arc<impl Fn(Progress) + Send + Sync>,
    started: Instant,
) -> Result<(), SupervisorError> {
    let mut pending: Vec<&ComponentSpec> = specs.iter().collect();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for spec in pending {
            if healthz(spec.health).await {
                progress(Progress::Healthy {
                    component: spec.name.clone(),
                    after: started.elapsed(),
                });
            } else {
                still.push(spec);
            }
        }
        pending = still;
        if let Some(spec) = pending.first()
            && started.elapsed() > STAGE_TIMEOUT
        {
            let log = plan.log_path(&spec.name);
            return Err(SupervisorError::Unhealthy {
                component: spec.name.clone(),
                seconds: STAGE_TIMEOUT.as_secs(),
                health: format!("http://{}/healthz", spec.health),
                tail: log_tail(&log, 15),
                log: log.display().to_string(),
            });
        }
        if !pending.is_empty() {
            tokio::time::sleep(HEALTH_POLL).await;
        }
    }
    Ok(())
}

/// `GET /healthz` answered 200, over a plain TCP connection (no HTTP client needed for this).
pub async fn healthz(addr: SocketAddr) -> bool {
    let probe = async {
        let mut conn = tokio::net::TcpStream::connect(addr).await.ok()?;
        let req = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        conn.write_all(req.as_bytes()).await.ok()?;
        let mut buf = [0u8; 32];
        let n = conn.read(&mut buf).await.ok()?;
        let head = String::from_utf8_lossy(&buf[..n]).into_owned();
        Some(head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), probe).await,
        Ok(Some(true))
    )
}

/// The last `lines` lines of a log file, for error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs one component until `stop`, restarting it with backoff whenever it exits.
async fn keep_running(
    plan: Arc<ClusterPlan>,
    spec: ComponentSpec,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let mut backoff = BACKOFF_START;
    loop {
        let started = Instant::now();
        let mut child = match spawn(&plan, &spec) {
            Ok(child) => child,
            Err(e) => {
                tracing::error!(component = %spec.name, error = %e, "cannot start");
                shared.update(&spec.name, |c| {
                    c.phase = Phase::Backoff;
                    c.last_exit = Some(e.to_string());
                });
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.cancelled() => return,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        let pid = child.id();
        shared.update(&spec.name, |c| {
            c.phase = Phase::Starting;
            c.pid = pid;
        });
        let health = spec.health;
        let watch_health = {
            let shared = shared.clone();
            let name = spec.name.clone();
            async move {
                while !healthz(health).await {
                    tokio::time::sleep(HEALTH_POLL * 5).await;
                }
                shared.update(&name, |c| c.phase = Phase::Running);
                std::future::pending::<()>().await;
            }
        };
        let exit = tokio::select! {
            status = child.wait() => status,
            _ = watch_health => unreachable_exit(),
            _ = stop.cancelled() => {
                terminate(&mut child, &spec.name).await;
                shared.update(&spec.name, |c| {
                    c.phase = Phase::Stopped;
                    c.pid = None;
                });
                return;
            }
        };
        let exit = match exit {
            Ok(status) => status.to_string(),
            Err(e) => e.to_string(),
        };
        tracing::warn!(component = %spec.name, %exit, "component exited; restarting");
        if started.elapsed() > BACKOFF_RESET_AFTER {
            backoff = BACKOFF_START;
        }
        shared.update(&spec.name, |c| {
            c.phase = Phase::Backoff;
            c.pid = None;
            c.restarts += 1;
            c.last_exit = Some(exit);
        });
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.cancelled() => {
                shared.update(&spec.name, |c| c.phase = Phase::Stopped);
                return;
            }
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// `watch_health` never completes; this only satisfies the select's types.
fn unreachable_exit() -> std::io::Result<std::process::ExitStatus> {
    Err(std::io::Error::other("health watcher ended"))
}

fn spawn(plan: &ClusterPlan, spec: &ComponentSpec) -> std::io::Result<Child> {
    let log_path = plan.log_path(&spec.name);
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
    let program = plan.bin_dir.join(spec.binary);
    writeln!(
        log,
        "=== {} niwa-cluster: starting {} {}",
        jiff::Timestamp::now(),
        program.display(),
        spec.args.join(" ")
    )?;
    let err = log.try_clone()?;
    Command::new(&program)
        .args(&spec.args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(err))
        // A child left behind by a crashed supervisor is found by `niwa down` through the state
        // file; one still owned by a dropped Child is killed.
        .kill_on_drop(true)
        .spawn()
}

/// SIGTERM, then SIGKILL after the grace period.
async fn terminate(child: &mut Child, name: &str) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if tokio::time::timeout(STOP_GRACE, child.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            component = name,
            "did not stop within the grace period; killing"
        );
        let _ = child.kill().await;
    }
}
