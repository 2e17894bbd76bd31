//! Where the process runtime keeps things (under `--root-dir`):
//!
//! ```text
//! pods/<uid>/pod.json                       namespace, name, uid, IP (for adoption)
//! pods/<uid>/etc/{resolv.conf,hosts,hostname}
//! pods/<uid>/volumes/<volume>/              emptyDir, configMap, secret, projected contents
//! pods/<uid>/containers/<name>/<n>/         instance n of a container:
//!     launch.json  what to run (written by the kubelet, read by the shim and the enter helper)
//!     id           container ID
//!     pid          the container's process (also its process group)
//!     started      start time (RFC 3339)
//!     exit.json    how it ended (written by the shim)
//!     shim.log     the shim's own diagnostics
//!     attach       the shim's attach socket (`kubectl attach`), while the instance runs
//!     upper/ work/ merged/   the instance's private root (overlay over the host's /)
//! pods/<uid>/logs/<name>/<n>.log            CRI log of instance n (rotated: .log.1, ...)
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A pod's directory tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodDir {
    pub root: PathBuf,
}

/// What `pod.json` records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRecord {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub ip: String,
}

impl PodDir {
    pub fn new(root_dir: &Path, uid: &str) -> PodDir {
        PodDir {
            root: root_dir.join("pods").join(uid),
        }
    }

    pub fn record(&self) -> PathBuf {
        self.root.join("pod.json")
    }

    pub fn etc(&self) -> PathBuf {
        self.root.join("etc")
    }

    pub fn volumes(&self) -> PathBuf {
        self.root.join("volumes")
    }

    pub fn volume(&self, name: &str) -> PathBuf {
        self.volumes().join(name)
    }

    pub fn container(&self, name: &str) -> PathBuf {
        self.root.join("containers").join(name)
    }

    pub fn instance(&self, name: &str, n: u32) -> InstanceDir {
        InstanceDir {
            dir: self.container(name).join(n.to_string()),
            log: self.root.join("logs").join(name).join(format!("{n}.log")),
            n,
        }
    }

    /// Instance numbers of a container, oldest first.
    pub fn instances(&self, name: &str) -> Vec<u32> {
        let mut out: Vec<u32> = std::fs::read_dir(self.container(name))
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        out.sort_unstable();
        out
    }
}

/// One container instance's directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceDir {
    pub dir: PathBuf,
    pub log: PathBuf,
    pub n: u32,
}

impl InstanceDir {
    pub fn launch(&self) -> PathBuf {
        self.dir.join("launch.json")
    }
    pub fn id(&self) -> PathBuf {
        self.dir.join("id")
    }
    pub fn pid(&self) -> PathBuf {
        self.dir.join("pid")
    }
    pub fn started(&self) -> PathBuf {
        self.dir.join("started")
    }
    pub fn exit(&self) -> PathBuf {
        self.dir.join("exit.json")
    }
    pub fn shim_log(&self) -> PathBuf {
        self.dir.join("shim.log")
    }
    pub fn attach(&self) -> PathBuf {
        self.dir.join("attach")
    }
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    pub fn merged(&self) -> PathBuf {
        self.dir.join("merged")
    }
}

/// How a container instance ended (`exit.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// The exit code; 128 + n when killed by signal n (as container runtimes report it).
    pub exit_code: i32,
    pub signal: Option<i32>,
    /// `OOMKilled` when the memory limit killed it.
    pub reason: Option<String>,
    /// RFC 3339.
    pub finished_at: String,
    /// Set when the process could not be started at all.
    pub start_error: Option<String>,
}

/// A bind mount into the container's root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub source: PathBuf,
    pub target: PathBuf,
    pub read_only: bool,
}

/// What the shim and the enter helper need to start a container (`launch.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchSpec {
    /// argv; argv[0] is looked up in the container's PATH.
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    pub hostname: String,
    /// Give the container a private root (overlay over /) with these mounts; `None`: run in the
    /// host's root (no root privileges, or nothing to mount).
    pub root: Option<PrivateRoot>,
    pub log: PathBuf,
    pub log_max_size: u64,
    pub log_max_files: usize,
    pub exit: PathBuf,
    pub pid: PathBuf,
    /// The cgroup (v1 memory controller) to run in, when a memory limit applies.
    pub memory_cgroup: Option<PathBuf>,
    /// Run as this user and these groups (the securityContext); `None`: as the runtime's user.
    /// Absent in the launch files of older kubelets.
    #[serde(default)]
    pub user: Option<super::identity::ProcessUser>,
    /// The container's `stdin`, `stdinOnce` and `tty` (absent: none, as older kubelets ran all).
    #[serde(default)]
    pub stdio: Stdio,
    /// Where the shim serves attach sessions (absent in the launch files of older kubelets).
    #[serde(default)]
    pub attach: Option<PathBuf>,
}

/// How a container's stdio is set up: `stdin` keeps a pipe (or with `tty` a terminal) open on
/// its stdin for attach sessions; `stdin_once` closes it after the first session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stdio {
    pub stdin: bool,
    pub stdin_once: bool,
    pub tty: bool,
}

/// A private root: an overlay over the host's `/` plus bind mounts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateRoot {
    pub upper: PathBuf,
    pub work: PathBuf,
    pub merged: PathBuf,
    pub mounts: Vec<Mount>,
}
