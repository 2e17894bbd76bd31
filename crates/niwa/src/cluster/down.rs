//! `niwa down`: stop a running cluster. Its data stays, so `niwa up` resumes it.
//!
//! The supervisor gets SIGTERM and stops the components in reverse order. If the supervisor is
//! gone (killed with -9), its components are stopped here, one by one, from the state file.

use std::time::{Duration, Instant};

use clap::Args;
use niwa_cluster::ClusterState;
use niwa_cluster::state::pid_alive;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::DataDirArgs;
use crate::CliError;

#[derive(Debug, Clone, Args)]
pub struct DownArgs {
    #[command(flatten)]
    pub dir: DataDirArgs,
}

/// The supervisor's own deadline is 10 s per stage of components; allow for four stages.
const WAIT: Duration = Duration::from_secs(60);

pub async fn run(args: DownArgs, out: &mut dyn std::io::Write) -> Result<(), CliError> {
    let dir = &args.dir.data_dir;
    let state = ClusterState::load(dir).map_err(|e| CliError::Failed(format!("error: {e}")))?;
    if state.supervisor_alive() {
        let _ = writeln!(
            out,
            "stopping the cluster (supervisor pid {})…",
            state.supervisor_pid
        );
        signal(state.supervisor_pid, Signal::SIGTERM);
        let started = Instant::now();
        while pid_alive(state.supervisor_pid) {
            if started.elapsed() > WAIT {
                let _ = writeln!(
                    out,
                    "the supervisor did not stop in {} s; killing it",
                    WAIT.as_secs()
                );
                signal(state.supervisor_pid, Signal::SIGKILL);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    } else {
        let _ = writeln!(
            out,
            "the supervisor (pid {}) is gone; stopping what it left",
            state.supervisor_pid
        );
    }
    // Whatever is still running (the supervisor was killed): stop it here, last stage first.
    for c in state.components.iter().rev() {
        let Some(pid) = c.pid else { continue };
        if !owned_alive(pid) {
            continue;
        }
        signal(pid, Signal::SIGTERM);
        let started = Instant::now();
        while pid_alive(pid) && started.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if pid_alive(pid) {
            signal(pid, Signal::SIGKILL);
        }
        let _ = writeln!(out, "  stopped {}", c.name);
    }
    let containers = niwa_cluster::leftovers::stop_containers(dir, Duration::from_secs(10)).await;
    if containers > 0 {
        let _ = writeln!(out, "  stopped {containers} container processes");
    }
    let _ = writeln!(
        out,
        "cluster stopped; its data is kept in {} (`niwa up` resumes it)",
        dir.display()
    );
    Ok(())
}

fn signal(pid: u32, sig: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = kill(Pid::from_raw(pid), sig);
    }
}

/// Alive and still a niwa daemon: a recycled pid must not be killed.
fn owned_alive(pid: u32) -> bool {
    pid_alive(pid)
        && std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).contains("niwa-"))
            .unwrap_or(false)
}
