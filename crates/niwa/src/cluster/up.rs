//! `niwa up`: start every component of a local cluster and keep it running.
//!
//! In the foreground it runs the supervisor itself and stops the cluster on Ctrl-C or SIGTERM
//! (which is what `niwa down` sends). With `--detach` it starts that same foreground command in
//! a process group of its own, its output in `<data-dir>/logs/supervisor.log`, and follows the state
//! file until the cluster is ready, so the user gets the same progress and their shell back.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use niwa_cluster::supervisor::Progress;
use niwa_cluster::{ClusterPlan, ClusterState, Network, NodeRuntime, Phase, Supervisor};
use tokio_util::sync::CancellationToken;

use super::DataDirArgs;
use crate::CliError;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RuntimeArg {
    /// Containers are real processes on this machine.
    Process,
    /// Simulated pods: no processes (kwok-style).
    Sim,
}

#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub dir: DataDirArgs,
    /// Nodes, each with its own kubelet and proxy process.
    #[arg(long, default_value_t = 1)]
    pub nodes: u32,
    /// Extra simulated nodes, all served by one kubelet process.
    #[arg(long, default_value_t = 0)]
    pub sim_nodes: u32,
    /// The runtime of the (non-simulated) nodes.
    #[arg(long, value_enum, default_value_t = RuntimeArg::Process)]
    pub runtime: RuntimeArg,
    /// Return once the cluster is ready and leave it running in the background.
    #[arg(long, short = 'd')]
    pub detach: bool,
    /// Use the private address block 127.B.0.0/16 instead of the standard layout, so that
    /// several clusters run side by side (B: 2–254, not 96, 200 or 244).
    #[arg(long)]
    pub block: Option<u8>,
    /// Where the component binaries are (default: beside this `niwa` binary).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
}

impl UpArgs {
    pub fn plan(&self) -> Result<ClusterPlan, CliError> {
        let bin_dir = match &self.bin_dir {
            Some(d) => d.clone(),
            None => std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(|d| d.to_path_buf()))
                .ok_or_else(|| {
                    CliError::Usage("cannot tell where niwa's binaries are; pass --bin-dir".into())
                })?,
        };
        let network = match self.block {
            None => Network::standard(),
            Some(b) => Network::block(b).ok_or_else(|| {
                CliError::Usage(format!(
                    "--block {b}: use 2–254 except 96, 200 and 244 (those overlap the standard layout)"
                ))
            })?,
        };
        if self.nodes == 0 && self.sim_nodes == 0 {
            return Err(CliError::Usage(
                "a cluster needs a node: --nodes 1 or more, or --sim-nodes".into(),
            ));
        }
        if self.nodes > 100 {
            return Err(CliError::Usage(format!(
                "--nodes {}: at most 100 process nodes; use --sim-nodes for more",
                self.nodes
            )));
        }
        let mut plan = ClusterPlan::new(absolute(&self.dir.data_dir), bin_dir);
        plan.network = network;
        plan.nodes = self.nodes;
        plan.sim_nodes = self.sim_nodes;
        plan.runtime = match self.runtime {
            RuntimeArg::Process => NodeRuntime::Process,
            RuntimeArg::Sim => NodeRuntime::Sim,
        };
        Ok(plan)
    }
}

fn absolute(p: &std::path::Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|c| c.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

pub async fn run(args: UpArgs, out: &mut dyn std::io::Write) -> Result<(), CliError> {
    let plan = args.plan()?;
    let supervisor = Supervisor::new(plan.clone());
    supervisor
        .preflight()
        .map_err(|e| CliError::Usage(e.to_string()))?;
    if args.detach {
        return detach(&args, &plan, out).await;
    }
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());
    let started = Instant::now();
    let kubeconfig = plan.kubeconfig_path();
    let result = supervisor
        .run(shutdown, move |p| {
            // Progress goes to stdout as it happens (the supervisor calls from its own tasks).
            match p {
                Progress::Starting(name) => println!("  starting {name}"),
                Progress::Healthy { component, after } => {
                    println!("  ✓ {component} ready ({:.1} s)", after.as_secs_f64())
                }
                Progress::Ready => {
                    println!(
                        "cluster ready in {:.1} s\n\n{}",
                        started.elapsed().as_secs_f64(),
                        usage(&kubeconfig)
                    );
                }
            }
        })
        .await;
    let _ = out.flush();
    result.map_err(|e| CliError::Failed(format!("error: {e}")))
}

/// What to tell the user once the cluster is up.
pub fn usage(kubeconfig: &std::path::Path) -> String {
    format!(
        "  export KUBECONFIG={}\n  kubectl get nodes\n\nStop it with `niwa down`; `niwa status` shows every component.",
        kubeconfig.display()
    )
}

fn spawn_signal_handler(shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("stopping the cluster…");
        shutdown.cancel();
    });
}

/// Starts `niwa up` (without --detach) in a process group of its own and follows its progress through
/// the state file until every component is healthy.
async fn detach(
    args: &UpArgs,
    plan: &ClusterPlan,
    out: &mut dyn std::io::Write,
) -> Result<(), CliError> {
    use std::os::unix::process::CommandExt;
    let logs = plan.logs_dir();
    std::fs::create_dir_all(&logs)
        .map_err(|e| CliError::Failed(format!("error: cannot create {}: {e}", logs.display())))?;
    let log_path = logs.join("supervisor.log");
    let log = std::fs::File::create(&log_path).map_err(|e| {
        CliError::Failed(format!("error: cannot create {}: {e}", log_path.display()))
    })?;
    let exe = std::env::current_exe().map_err(|e| CliError::Failed(format!("error: {e}")))?;
    // A stale state file from a cluster that was killed would look like progress: start clean.
    let _ = std::fs::remove_file(ClusterState::path(&plan.data_dir));
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("up")
        .arg("--data-dir")
        .arg(&plan.data_dir)
        .arg("--nodes")
        .arg(plan.nodes.to_string())
        .arg("--sim-nodes")
        .arg(plan.sim_nodes.to_string())
        .arg("--runtime")
        .arg(plan.runtime.as_str())
        .arg("--bin-dir")
        .arg(&plan.bin_dir);
    if let Some(b) = args.block {
        cmd.arg("--block").arg(b.to_string());
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(
            log.try_clone()
                .map_err(|e| CliError::Failed(format!("error: {e}")))?,
        )
        .stderr(log)
        // A process group of its own: the user's Ctrl-C (or closing the terminal) in this
        // shell does not reach the cluster.
        .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| CliError::Failed(format!("error: cannot start the supervisor: {e}")))?;
    let started = Instant::now();
    let mut shown: std::collections::HashSet<String> = Default::default();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(CliError::Failed(format!(
                "error: the cluster did not start ({status}); its log ({}):\n{}",
                log_path.display(),
                niwa_cluster::supervisor::log_tail(&log_path, 20)
            )));
        }
        if let Ok(state) = ClusterState::load(&plan.data_dir) {
            for c in &state.components {
                if (c.phase == Phase::Running || state.ready) && shown.insert(c.name.clone()) {
                    let _ = writeln!(out, "  ✓ {} ready", c.name);
                }
            }
            if state.ready {
                let _ = writeln!(
                    out,
                    "cluster ready in {:.1} s (supervisor pid {}, logs in {})\n\n{}",
                    started.elapsed().as_secs_f64(),
                    state.supervisor_pid,
                    logs.display(),
                    usage(&state.kubeconfig)
                );
                return Ok(());
            }
        }
        if started.elapsed() > Duration::from_secs(300) {
            return Err(CliError::Failed(format!(
                "error: the cluster is not ready after 300 s; see {}",
                log_path.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
