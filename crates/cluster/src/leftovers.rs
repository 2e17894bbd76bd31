//! Containers outlive their kubelet on purpose (the process runtime's shims start sessions of
//! their own, so a kubelet restart does not take pods down). Stopping the whole cluster must stop
//! them too: this finds every shim of the cluster's data dir and its session's processes in
//! /proc, and stops them — SIGTERM, a grace period, SIGKILL — as a node shutdown would.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::state::pid_alive;

/// A process as /proc shows it: its id and its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Proc {
    pid: i32,
    session: i32,
}

/// The session id from `/proc/<pid>/stat`: the field after the command (which may hold spaces
/// and parentheses, so parse from the last `)`): state, ppid, pgrp, session.
fn session_of(stat: &str) -> Option<i32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(3)?.parse().ok()
}

fn processes() -> Vec<(Proc, Vec<u8>)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        Some((
            Proc {
                pid,
                session: session_of(&stat)?,
            },
            cmdline,
        ))
    })
    .collect()
}

/// Stops every container process of the cluster in `data_dir`; answers how many were running.
pub async fn stop_containers(data_dir: &Path, grace: Duration) -> usize {
    let marker = data_dir.join("nodes");
    let marker = marker.to_string_lossy();
    let all = processes();
    let shims: Vec<i32> = all
        .iter()
        .filter(|(_, cmd)| {
            let cmd = String::from_utf8_lossy(cmd);
            cmd.contains("niwa-kubelet") && cmd.contains("\0shim\0") && cmd.contains(&*marker)
        })
        .map(|(p, _)| p.pid)
        .collect();
    if shims.is_empty() {
        return 0;
    }
    let containers: Vec<i32> = all
        .iter()
        .filter(|(p, _)| shims.contains(&p.session) && !shims.contains(&p.pid))
        .map(|(p, _)| p.pid)
        .collect();
    for pid in &containers {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGTERM);
    }
    let started = Instant::now();
    let alive = |pids: &[i32]| pids.iter().any(|p| pid_alive(*p as u32));
    while alive(&containers) && started.elapsed() < grace {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for pid in containers.iter().chain(&shims) {
        if pid_alive(*pid as u32) && started.elapsed() >= grace {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
    }
    // The shims record each exit and end by themselves; give them a moment.
    let started = Instant::now();
    while alive(&shims) && started.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for pid in &shims {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    containers.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_is_read_after_the_command() {
        assert_eq!(
            session_of("4242 (my (odd) cmd) S 1 4242 4240 0 -1 4194560 90"),
            Some(4240)
        );
        assert_eq!(session_of("garbage"), None);
    }
}
