//! The process runtime: every container is a real OS process.
//!
//! * Each pod gets its own IP from the node's podCIDR (127.244.N.x); built-in images bind it,
//!   other commands find it in `POD_IP` (a process that binds 0.0.0.0 shares the node's ports).
//! * A container instance runs under a [`shim`] (which outlives kubelet restarts, writes the CRI
//!   log and records the exit) through [`enter`] (which, as root, gives it a private root: an
//!   overlay of the host's `/` with the pod's volumes, resolv.conf, hosts and hostname).
//! * [`env`], [`volumes`], [`dns`]: the container's environment, volumes, DNS files.
//! * [`probe`] and [`exec`]: probes, hooks and `kubectl exec` inside the container; [`attach`]:
//!   `kubectl attach` to its main process (served by the shim, which holds its stdio).
//! * [`layout`]: where everything lives under `--root-dir`, which is also how a restarted kubelet
//!   adopts the pods it was running.

pub mod attach;
pub mod cgroup;
pub mod dns;
pub mod enter;
pub mod env;
pub mod exec;
pub mod identity;
pub mod layout;
pub mod podnet;
pub mod probe;
pub mod shim;
pub mod volumes;

mod launch;
mod runtime_impl;
mod sandbox;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod, Probe};
use niwa_api::proto::kubelet::{ExecInput, ExecStart};

use niwa_client::Client;
use nix::sys::signal::{Signal as NixSignal, killpg};
use nix::unistd::Pid;
use parking_lot::Mutex;
use tokio::io::AsyncBufReadExt;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{Adopted, EventSink, ExecStream, PodHandle, Runtime, Scheduled};
use crate::config::RuntimeKind;
use crate::images::{self, catalog};
use crate::logs::file::{FileLog, Rotation};
use crate::logs::{InstanceLog, LogError, LogRequest, LogStream};
use crate::pod::{Event, ProbeKind, Running, Signal, StartError, Terminated};
use crate::time::{Timestamp, secs};
use cgroup::MemoryCgroups;
use dns::ClusterDns;
use layout::{ExitRecord, InstanceDir, LaunchSpec, Mount, PodDir, PodRecord, PrivateRoot};
use shim::ShimReport;
use volumes::{HostVolume, VolumeContext};

/// Settings of the process runtime.
#[derive(Clone, Debug)]
pub struct ProcessConfig {
    pub root_dir: PathBuf,
    /// The niwa-kubelet binary (shim, enter helper, built-in images).
    pub exe: PathBuf,
    pub dns: ClusterDns,
    pub rotation: Rotation,
    /// Node allocatable, for resourceFieldRef of unset limits.
    pub node_cpu: String,
    pub node_memory: String,
    /// How often ConfigMap/Secret volumes are re-read.
    pub volume_resync: Duration,
    /// Where pod addresses are added (`--pod-ip-interface`; none on loopback).
    pub pod_net: podnet::PodNet,
}

#[derive(Debug)]
struct InstanceState {
    container_id: String,
    pid: Option<u32>,
    cgroup: Option<PathBuf>,
}

#[derive(Debug)]
struct PodState {
    dir: PodDir,
    ip: String,
    volumes: HashMap<String, HostVolume>,
    refresher: CancellationToken,
    instances: HashMap<String, InstanceState>,
}

struct Inner {
    config: ProcessConfig,
    client: Client,
    private_roots: bool,
    cgroups: MemoryCgroups,
    pods: Mutex<HashMap<String, PodState>>,
}

/// The process runtime (cheap to share).
#[derive(Clone)]
pub struct ProcessRuntime {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ProcessRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessRuntime")
            .field("root_dir", &self.inner.config.root_dir)
            .finish_non_exhaustive()
    }
}

fn random_id() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..4)
        .map(|_| format!("{:016x}", rng.random::<u64>()))
        .collect()
}

fn find_container<'a>(pod: &'a Pod, name: &str) -> Option<&'a Container> {
    pod.spec
        .as_ref()?
        .init_containers
        .iter()
        .flatten()
        .chain(pod.spec.as_ref()?.containers.iter())
        .find(|c| c.name == name)
}

fn pid_alive(pid: u32) -> bool {
    // A zombie has exited; only the reaping is left.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

impl ProcessRuntime {
    pub fn new(config: ProcessConfig, client: Client) -> Result<ProcessRuntime, String> {
        std::fs::create_dir_all(config.root_dir.join("pods"))
            .map_err(|e| format!("cannot create {}: {e}", config.root_dir.display()))?;
        if !config.exe.exists() {
            return Err(format!(
                "the niwa-kubelet binary {} does not exist",
                config.exe.display()
            ));
        }
        let private_roots = nix::unistd::geteuid().is_root();
        if !private_roots {
            warn!(
                "not running as root: containers share the host's root and DNS settings, and pods with volume mounts fail"
            );
        }
        let cgroups = if private_roots {
            MemoryCgroups::detect()
        } else {
            MemoryCgroups::Unavailable("not root".into())
        };
        if let MemoryCgroups::Unavailable(why) = &cgroups {
            info!(reason = %why, "memory limits are not enforced");
        }
        Ok(ProcessRuntime {
            inner: Arc::new(Inner {
                config,
                client,
                private_roots,
                cgroups,
                pods: Mutex::default(),
            }),
        })
    }

    /// Adds or deletes a pod address in the background (a failure is logged: the pod's own
    /// status shows the consequence).
    fn pod_address(&self, op: podnet::Op, ip: &str) {
        let (net, ip_text) = (self.inner.config.pod_net.clone(), ip.to_string());
        if net.interface.is_none() {
            return;
        }
        let Ok(ip) = ip_text.parse() else {
            return;
        };
        tokio::spawn(async move {
            if let Err(e) = net.apply_async(op, ip).await {
                warn!(ip = %ip_text, error = %e, "pod address");
            }
        });
    }

    /// The pod IP of a pod whose sandbox this runtime made ("" when it has none).
    fn sandbox_ip(&self, uid: &str) -> String {
        self.inner
            .pods
            .lock()
            .get(uid)
            .map(|p| p.ip.clone())
            .unwrap_or_default()
    }

    fn pod_dir(&self, uid: &str) -> PodDir {
        PodDir::new(&self.inner.config.root_dir, uid)
    }

    fn volume_context<'a>(&'a self, ip: &'a str, host_ip: &'a str) -> VolumeContext<'a> {
        VolumeContext {
            client: &self.inner.client,
            pod_ip: ip,
            host_ip,
            node_cpu: &self.inner.config.node_cpu,
            node_memory: &self.inner.config.node_memory,
        }
    }
}
