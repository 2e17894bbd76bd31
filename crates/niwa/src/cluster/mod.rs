//! The local cluster's commands: `niwa up`, `niwa down`, `niwa status`. They drive
//! [`niwa_cluster`]'s supervisor and read its state file; they need no apiserver client to start.

pub mod down;
pub mod status;
pub mod up;

use std::path::PathBuf;

use clap::Args;

/// Where a cluster keeps its data, logs, kubeconfig and state file.
#[derive(Debug, Clone, Args)]
pub struct DataDirArgs {
    /// The cluster's directory (store data, logs, kubeconfig, cluster.json).
    #[arg(long, env = "NIWA_DATA_DIR", default_value_os_t = default_data_dir())]
    pub data_dir: PathBuf,
}

/// `$HOME/.niwa`, or `.niwa` when there is no home.
pub fn default_data_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".niwa"))
        .unwrap_or_else(|| PathBuf::from(".niwa"))
}
