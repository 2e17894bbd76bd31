//! The state file of a running cluster, `<data-dir>/cluster.json`: written by the supervisor after
//! every change (atomically, by rename), read by `niwa status` and `niwa down`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where a component is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Waiting for an earlier stage to be healthy.
    Pending,
    /// Started; not answering /healthz yet.
    Starting,
    /// Answering /healthz.
    Running,
    /// Exited; restarting after a delay.
    Backoff,
    /// Stopped by the supervisor.
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentState {
    pub name: String,
    pub phase: Phase,
    pub pid: Option<u32>,
    pub restarts: u32,
    /// The last exit, as `exit status: 1` or `signal: 9 (SIGKILL)`.
    pub last_exit: Option<String>,
    pub health: String,
    pub log: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// The supervisor's process; `niwa down` sends it SIGTERM.
    pub supervisor_pid: u32,
    pub apiserver: String,
    pub kubeconfig: PathBuf,
    /// RFC 3339.
    pub started: String,
    /// True once every component has been healthy at least once.
    pub ready: bool,
    pub components: Vec<ComponentState>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("no cluster state at {0} (is a cluster running with this data dir?)")]
    Missing(PathBuf),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a cluster state file: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

impl ClusterState {
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("cluster.json")
    }

    pub fn load(data_dir: &Path) -> Result<ClusterState, StateError> {
        let path = Self::path(data_dir);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StateError::Missing(path));
            }
            Err(source) => return Err(StateError::Read { path, source }),
        };
        serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
            path,
            reason: e.to_string(),
        })
    }

    /// Writes the file next to its final name and renames it, so readers never see half a file.
    pub fn save(&self, data_dir: &Path) -> Result<(), StateError> {
        let path = Self::path(data_dir);
        let tmp = data_dir.join(".cluster.json.tmp");
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| StateError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|source| StateError::Write { path, source })
    }

    /// Whether the supervisor that wrote this file is still alive.
    pub fn supervisor_alive(&self) -> bool {
        pid_alive(self.supervisor_pid)
    }
}

/// Whether a process with this pid exists (signal 0 probes without delivering anything).
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_a_missing_file_says_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            ClusterState::load(dir.path()),
            Err(StateError::Missing(_))
        ));
        let state = ClusterState {
            supervisor_pid: std::process::id(),
            apiserver: "http://127.0.0.1:6443".into(),
            kubeconfig: dir.path().join("kubeconfig"),
            started: "2026-01-01T00:00:00Z".into(),
            ready: true,
            components: vec![ComponentState {
                name: "store".into(),
                phase: Phase::Running,
                pid: Some(42),
                restarts: 1,
                last_exit: Some("signal: 9 (SIGKILL)".into()),
                health: "http://127.0.0.1:2381/healthz".into(),
                log: dir.path().join("logs/store.log"),
            }],
        };
        state.save(dir.path()).expect("save");
        assert_eq!(ClusterState::load(dir.path()).expect("load"), state);
        assert!(state.supervisor_alive());
    }
}
