//! The process runtime: every container is a real OS process.
//!
//! * Each pod gets its own IP from the node's podCIDR (127.244.N.x); built-in images bind it,
//!   other commands find it in `POD_IP` (a process that binds 0.0.0.0 shares the node's ports).
//! * A container instance runs under a [`shim`] (which outlives kubelet restarts, writes the CRI
//!   log and records the exit) through [`enter`] (which, as root, gives it a private root: an
//!   overlay of the host's `/` with the pod's volumes, resolv.conf, hosts and hostname).
//! * [`env`], [`volumes`], [`dns`]: the container's environment, volumes, DNS files.
//! * [`probe`] and [`exec`]: probes, hooks and `kubectl exec` inside the container.
//! * [`layout`]: where everything lives under `--root-dir`, which is also how a restarted kubelet
//!   adopts the pods it was running.

pub mod cgroup;
pub mod dns;
pub mod enter;
pub mod env;
pub mod exec;
pub mod layout;
pub mod podnet;
pub mod probe;
pub mod shim;
pub mod volumes;

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

    /// Keeps ConfigMap/Secret volumes current until `stop`.
    fn start_refresher(&self, pod: &PodHandle, ip: String, stop: CancellationToken) {
        let has_projected = pod
            .pod
            .spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .any(|v| {
                v.config_map.is_some()
                    || v.secret.is_some()
                    || v.projected.is_some()
                    || v.downward_api.is_some()
            });
        if !has_projected {
            return;
        }
        let this = self.clone();
        let pod = pod.clone();
        tokio::spawn(async move {
            let dir = this.pod_dir(&pod.uid).volumes();
            let host_ip = pod.node.ip.to_string();
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(this.inner.config.volume_resync) => {}
                }
                // The latest pod object is not needed: volume sources are immutable in a pod.
                volumes::refresh(&dir, &pod.pod, &this.volume_context(&ip, &host_ip)).await;
            }
        });
    }

    async fn setup_sandbox(
        &self,
        pod: &PodHandle,
        ip: Ipv4Addr,
    ) -> Result<(), (&'static str, String)> {
        let dir = self.pod_dir(&pod.uid);
        let io = |e: std::io::Error| ("FailedCreatePodSandBox", e.to_string());
        self.inner
            .config
            .pod_net
            .apply_async(podnet::Op::Add, ip)
            .await
            .map_err(|e| ("FailedCreatePodSandBox", e.to_string()))?;
        tokio::fs::create_dir_all(dir.etc()).await.map_err(io)?;
        let record = PodRecord {
            namespace: pod.namespace().to_string(),
            name: pod.name().to_string(),
            uid: pod.uid.clone(),
            ip: ip.to_string(),
        };
        tokio::fs::write(
            dir.record(),
            serde_json::to_vec(&record).unwrap_or_default(),
        )
        .await
        .map_err(io)?;
        let domain = &self.inner.config.dns.domain;
        tokio::fs::write(
            dir.etc().join("resolv.conf"),
            dns::resolv_conf(&pod.pod, &self.inner.config.dns),
        )
        .await
        .map_err(io)?;
        tokio::fs::write(
            dir.etc().join("hosts"),
            dns::hosts_file(&pod.pod, &ip.to_string(), domain),
        )
        .await
        .map_err(io)?;
        let (hostname, _) = dns::hostnames(&pod.pod, domain);
        tokio::fs::write(dir.etc().join("hostname"), format!("{hostname}\n"))
            .await
            .map_err(io)?;
        let host_ip = pod.node.ip.to_string();
        let ip_text = ip.to_string();
        let volumes = volumes::setup(
            &dir.volumes(),
            &pod.pod,
            &self.volume_context(&ip_text, &host_ip),
        )
        .await
        .map_err(|m| ("FailedMount", m))?;
        let refresher = CancellationToken::new();
        self.start_refresher(pod, ip_text.clone(), refresher.clone());
        let old = self.inner.pods.lock().insert(
            pod.uid.clone(),
            PodState {
                dir,
                ip: ip_text,
                volumes,
                refresher,
                instances: HashMap::new(),
            },
        );
        if let Some(old) = old {
            old.refresher.cancel();
        }
        Ok(())
    }

    /// The bind mounts of a container: its volumeMounts and the pod's DNS files.
    fn mounts(&self, pod: &PodHandle, c: &Container) -> Result<Vec<Mount>, String> {
        let pods = self.inner.pods.lock();
        let state = pods
            .get(&pod.uid)
            .ok_or_else(|| "the pod sandbox is gone".to_string())?;
        let mut out = Vec::new();
        for vm in c.volume_mounts.iter().flatten() {
            let hv = state
                .volumes
                .get(&vm.name)
                .ok_or_else(|| format!("volume {:?} not found", vm.name))?;
            let mut source = hv.path.clone();
            if let Some(sub) = vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
                if Path::new(sub)
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir))
                {
                    return Err(format!("subPath {sub:?} must not contain '..'"));
                }
                source = source.join(sub);
                if !source.exists() && !hv.projected {
                    std::fs::create_dir_all(&source)
                        .map_err(|e| format!("mkdir {}: {e}", source.display()))?;
                }
            }
            out.push(Mount {
                source,
                target: PathBuf::from(&vm.mount_path),
                read_only: vm.read_only.unwrap_or(false) || hv.read_only,
            });
        }
        if !self.inner.private_roots {
            if let Some(m) = out.first() {
                return Err(format!(
                    "volume mounts need root: niwa-kubelet is not running as root, so it cannot give container {:?} a private \
                     mount namespace to mount {} at {}; run the kubelet as root, or drop the volumeMounts",
                    c.name,
                    m.source.display(),
                    m.target.display()
                ));
            }
            return Ok(out);
        }
        for f in ["resolv.conf", "hosts", "hostname"] {
            out.push(Mount {
                source: state.dir.etc().join(f),
                target: PathBuf::from("/etc").join(f),
                read_only: false,
            });
        }
        Ok(out)
    }

    fn memory_limit(c: &Container) -> Option<u64> {
        let q = c.resources.as_ref()?.limits.as_ref()?.get("memory")?;
        let v = niwa_api::quantity::Quantity::parse(&q.0).ok()?.value();
        u64::try_from(v).ok().filter(|v| *v > 0)
    }

    /// Prepares and starts one container instance; reports Started/StartFailed, then Exited.
    async fn start(self, pod: PodHandle, name: String, sink: EventSink) {
        let fail = |error: StartError| Event::StartFailed {
            container: name.clone(),
            error,
        };
        let Some(c) = find_container(&pod.pod, &name).cloned() else {
            sink.send(
                &pod.uid,
                fail(StartError::Config(format!("container {name:?} not found"))),
            )
            .await;
            return;
        };
        let image = c.image.clone().unwrap_or_default();
        let command = c.command.clone().unwrap_or_default();
        let args = c.args.clone().unwrap_or_default();
        let argv = match catalog::plan(&image, &command, &args, &self.inner.config.exe) {
            catalog::Plan::Run(argv) => argv,
            catalog::Plan::Unavailable(m) => {
                sink.send(&pod.uid, fail(StartError::ImagePull(m))).await;
                return;
            }
        };
        let ip = self
            .inner
            .pods
            .lock()
            .get(&pod.uid)
            .map(|p| p.ip.clone())
            .unwrap_or_default();
        let ctx = env::EnvContext {
            pod: &pod.pod,
            container: &c,
            pod_ip: ip.clone(),
            host_ip: pod.node.ip.to_string(),
            node_cpu: &self.inner.config.node_cpu,
            node_memory: &self.inner.config.node_memory,
        };
        let env = match env::resolve(&ctx, &self.inner.client).await {
            Ok(e) => e,
            Err(m) => {
                sink.send(&pod.uid, fail(StartError::Config(m))).await;
                return;
            }
        };
        let argv: Vec<String> = argv
            .iter()
            .map(|a| catalog::expand(a, |k| env.get(k)))
            .collect();
        let mounts = match self.mounts(&pod, &c) {
            Ok(m) => m,
            Err(m) => {
                sink.send(&pod.uid, fail(StartError::Config(m))).await;
                return;
            }
        };
        let dir = self.pod_dir(&pod.uid);
        let n = dir.instances(&name).last().map_or(0, |n| n + 1);
        let inst = dir.instance(&name, n);
        let container_id = format!("niwa://{}", random_id());
        let cgroup = Self::memory_limit(&c).and_then(|limit| {
            let cg_name = format!("{}-{}-{n}", pod.uid, name);
            match self.inner.cgroups.create(&cg_name, limit) {
                Ok(p) => Some(p),
                Err(e) => {
                    debug!(error = %e, "memory limit not enforced");
                    None
                }
            }
        });
        let (hostname, _) = dns::hostnames(&pod.pod, &self.inner.config.dns.domain);
        let mut mounts = mounts;
        if self.inner.private_roots {
            // The termination message file (terminationMessagePath, /dev/termination-log).
            let file = inst.dir.join("termination-log");
            if std::fs::create_dir_all(&inst.dir)
                .and_then(|_| std::fs::write(&file, b""))
                .is_ok()
            {
                let target = c
                    .termination_message_path
                    .clone()
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| "/dev/termination-log".into());
                mounts.push(Mount {
                    source: file,
                    target: PathBuf::from(target),
                    read_only: false,
                });
            }
        }
        let launch = LaunchSpec {
            argv,
            env: env.into_vec(),
            working_dir: c.working_dir.clone().filter(|w| !w.is_empty()),
            hostname,
            root: self.inner.private_roots.then(|| PrivateRoot {
                upper: inst.upper(),
                work: inst.work(),
                merged: inst.merged(),
                mounts,
            }),
            log: inst.log.clone(),
            log_max_size: self.inner.config.rotation.max_size,
            log_max_files: self.inner.config.rotation.max_files,
            exit: inst.exit(),
            pid: inst.pid(),
            memory_cgroup: cgroup.clone(),
        };
        let prepared = (|| -> std::io::Result<()> {
            std::fs::create_dir_all(&inst.dir)?;
            std::fs::write(inst.id(), &container_id)?;
            std::fs::write(
                inst.launch(),
                serde_json::to_vec(&launch).map_err(std::io::Error::other)?,
            )
        })();
        if let Err(e) = prepared {
            sink.send(
                &pod.uid,
                fail(StartError::Run(format!(
                    "cannot prepare {}: {e}",
                    inst.dir.display()
                ))),
            )
            .await;
            return;
        }
        let shim_log = std::fs::File::create(inst.shim_log()).ok();
        let mut cmd = tokio::process::Command::new(&self.inner.config.exe);
        cmd.arg("shim")
            .arg(inst.launch())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped());
        match shim_log {
            Some(f) => cmd.stderr(f),
            None => cmd.stderr(std::process::Stdio::null()),
        };
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                sink.send(
                    &pod.uid,
                    fail(StartError::Run(format!("cannot start the shim: {e}"))),
                )
                .await;
                return;
            }
        };
        let report = match child.stdout.take() {
            Some(out) => {
                let mut line = String::new();
                let mut reader = tokio::io::BufReader::new(out);
                match tokio::time::timeout(Duration::from_secs(60), reader.read_line(&mut line))
                    .await
                {
                    Ok(Ok(_)) => ShimReport::parse(&line),
                    _ => None,
                }
            }
            None => None,
        };
        match report {
            Some(ShimReport::Started { pid, at }) => {
                let _ = std::fs::write(inst.started(), at.to_string());
                if let Some(p) = self.inner.pods.lock().get_mut(&pod.uid) {
                    p.instances.insert(
                        name.clone(),
                        InstanceState {
                            container_id: container_id.clone(),
                            pid: Some(pid),
                            cgroup: cgroup.clone(),
                        },
                    );
                }
                sink.send(
                    &pod.uid,
                    Event::Started {
                        container: name.clone(),
                        container_id: container_id.clone(),
                        image_id: images::image_id(&image),
                        at,
                    },
                )
                .await;
                let _ = child.wait().await;
                self.report_exit(
                    &pod,
                    &name,
                    &container_id,
                    &inst,
                    cgroup.as_deref(),
                    &c,
                    &sink,
                )
                .await;
            }
            Some(ShimReport::Failed(m)) => {
                let _ = child.wait().await;
                if let Some(cg) = &cgroup {
                    MemoryCgroups::remove(cg);
                }
                sink.send(&pod.uid, fail(StartError::Run(m))).await;
            }
            None => {
                let _ = child.kill().await;
                let m = std::fs::read_to_string(inst.shim_log()).unwrap_or_default();
                sink.send(
                    &pod.uid,
                    fail(StartError::Run(format!(
                        "the container shim failed: {}",
                        m.trim()
                    ))),
                )
                .await;
            }
        }
    }

    /// Reads how the instance ended and reports it.
    #[allow(clippy::too_many_arguments)]
    async fn report_exit(
        &self,
        pod: &PodHandle,
        name: &str,
        container_id: &str,
        inst: &InstanceDir,
        cgroup: Option<&Path>,
        c: &Container,
        sink: &EventSink,
    ) {
        let record: Option<ExitRecord> = std::fs::read(inst.exit())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let record = record.unwrap_or(ExitRecord {
            exit_code: 137,
            signal: None,
            reason: Some("ContainerStatusUnknown".into()),
            finished_at: Timestamp::now().to_string(),
            start_error: Some("the container's shim ended without recording the exit".into()),
        });
        if let Some(cg) = cgroup {
            MemoryCgroups::remove(cg);
        }
        let message = termination_message(c, inst, &record);
        sink.send(
            &pod.uid,
            Event::Exited {
                container: name.to_string(),
                container_id: container_id.to_string(),
                exit_code: record.exit_code,
                reason: record
                    .reason
                    .clone()
                    .or_else(|| record.start_error.as_ref().map(|_| "StartError".into())),
                message: message.or(record.start_error),
                signal: record.signal,
                at: record
                    .finished_at
                    .parse()
                    .unwrap_or_else(|_| Timestamp::now()),
            },
        )
        .await;
    }

    /// Follows an adopted instance (not our child any more) until it ends.
    fn watch_adopted(
        &self,
        pod: PodHandle,
        name: String,
        container_id: String,
        inst: InstanceDir,
        pid: u32,
        sink: EventSink,
    ) {
        let this = self.clone();
        tokio::spawn(async move {
            while !inst.exit().exists() && pid_alive(pid) {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            // The shim writes exit.json just before it ends.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let c = find_container(&pod.pod, &name).cloned().unwrap_or_default();
            this.report_exit(&pod, &name, &container_id, &inst, None, &c, &sink)
                .await;
        });
    }

    fn instance_pid(&self, uid: &str, name: &str, container_id: &str) -> Option<u32> {
        let pods = self.inner.pods.lock();
        let i = pods.get(uid)?.instances.get(name)?;
        (i.container_id == container_id).then_some(i.pid).flatten()
    }

    async fn run_handler(
        &self,
        pod: &PodHandle,
        c: &Container,
        pid: u32,
        h: Handler<'_>,
        timeout: Duration,
    ) -> probe::Outcome {
        let ip = self
            .inner
            .pods
            .lock()
            .get(&pod.uid)
            .map(|p| p.ip.clone())
            .unwrap_or_default();
        match h {
            Handler::Probe(p) => {
                if let Some(a) = &p.http_get {
                    probe::http_get(a, c, &ip, timeout).await
                } else if let Some(a) = &p.tcp_socket {
                    probe::tcp_socket(a, c, &ip, timeout).await
                } else if let Some(a) = &p.exec {
                    probe::exec(a, &self.inner.config.exe, pid, timeout).await
                } else if p.grpc.is_some() {
                    Err("gRPC probes are not supported by niwa".to_string())
                } else {
                    Err("the probe has no handler".to_string())
                }
            }
            Handler::Lifecycle(l) => {
                if let Some(a) = &l.exec {
                    probe::exec(a, &self.inner.config.exe, pid, timeout).await
                } else if let Some(a) = &l.http_get {
                    probe::http_get(a, c, &ip, timeout).await
                } else if let Some(s) = &l.sleep {
                    tokio::time::sleep(secs(s.seconds).min(timeout)).await;
                    Ok(())
                } else if let Some(a) = &l.tcp_socket {
                    probe::tcp_socket(a, c, &ip, timeout).await
                } else {
                    Ok(())
                }
            }
        }
    }
}

enum Handler<'a> {
    Probe(&'a Probe),
    Lifecycle(&'a LifecycleHandler),
}

/// `terminated.message`: the termination message file, or (FallbackToLogsOnError) the last log
/// lines of a failed container; at most 4096 bytes, as the kubelet.
fn termination_message(c: &Container, inst: &InstanceDir, record: &ExitRecord) -> Option<String> {
    let from_file = std::fs::read(inst.dir.join("termination-log"))
        .ok()
        .filter(|b| !b.is_empty());
    let text = match from_file {
        Some(b) => String::from_utf8_lossy(&b).into_owned(),
        None if c.termination_message_policy.as_deref() == Some("FallbackToLogsOnError")
            && record.exit_code != 0 =>
        {
            let log = std::fs::read_to_string(&inst.log).unwrap_or_default();
            let lines: Vec<&str> = log
                .lines()
                .filter_map(|l| crate::logs::LogLine::parse(l).map(|l| l.text))
                .collect();
            let tail = &lines[lines.len().saturating_sub(80)..];
            tail.join("\n")
        }
        None => return None,
    };
    let mut text = text;
    if text.len() > 4096 {
        let cut = text.len() - 4096;
        let boundary = (cut..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len());
        text = text[boundary..].to_string();
    }
    Some(text)
}

impl Runtime for ProcessRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Process
    }

    fn create_sandbox(&self, pod: &PodHandle, ip: Ipv4Addr, sink: &EventSink) -> Vec<Scheduled> {
        let this = self.clone();
        let pod = pod.clone();
        let sink = sink.clone();
        tokio::spawn(async move {
            let event = match this.setup_sandbox(&pod, ip).await {
                Ok(()) => Event::SandboxReady {
                    pod_ip: Some(ip.to_string()),
                },
                Err((reason, message)) => Event::SandboxFailed { reason, message },
            };
            sink.send(&pod.uid, event).await;
        });
        Vec::new()
    }

    fn start_container(
        &self,
        pod: &PodHandle,
        container: &str,
        sink: &EventSink,
    ) -> Vec<Scheduled> {
        tokio::spawn(
            self.clone()
                .start(pod.clone(), container.to_string(), sink.clone()),
        );
        Vec::new()
    }

    fn probe(
        &self,
        pod: &PodHandle,
        container: &str,
        container_id: &str,
        kind: ProbeKind,
        sink: &EventSink,
    ) -> Vec<Scheduled> {
        let this = self.clone();
        let pod = pod.clone();
        let sink = sink.clone();
        let (name, id) = (container.to_string(), container_id.to_string());
        tokio::spawn(async move {
            let c = find_container(&pod.pod, &name).cloned().unwrap_or_default();
            let spec = match kind {
                ProbeKind::Startup => c.startup_probe.clone(),
                ProbeKind::Liveness => c.liveness_probe.clone(),
                ProbeKind::Readiness => c.readiness_probe.clone(),
            };
            let outcome = match (spec, this.instance_pid(&pod.uid, &name, &id)) {
                (Some(p), Some(pid)) => {
                    let timeout = crate::pod::probe::ProbeTiming::of(&p).timeout;
                    this.run_handler(&pod, &c, pid, Handler::Probe(&p), timeout)
                        .await
                }
                _ => Err("the container is not running".to_string()),
            };
            let (success, message) = match outcome {
                Ok(()) => (true, String::new()),
                Err(m) => (false, m),
            };
            sink.send(
                &pod.uid,
                Event::Probed {
                    container: name,
                    container_id: id,
                    kind,
                    success,
                    message,
                },
            )
            .await;
        });
        Vec::new()
    }

    fn pre_stop(
        &self,
        pod: &PodHandle,
        container: &str,
        container_id: &str,
        timeout: Duration,
        sink: &EventSink,
    ) -> Vec<Scheduled> {
        let this = self.clone();
        let pod = pod.clone();
        let sink = sink.clone();
        let (name, id) = (container.to_string(), container_id.to_string());
        tokio::spawn(async move {
            let c = find_container(&pod.pod, &name).cloned().unwrap_or_default();
            let hook = c.lifecycle.as_ref().and_then(|l| l.pre_stop.clone());
            if let (Some(h), Some(pid)) = (hook, this.instance_pid(&pod.uid, &name, &id))
                && let Err(m) = this
                    .run_handler(&pod, &c, pid, Handler::Lifecycle(&h), timeout)
                    .await
            {
                warn!(pod = pod.name(), container = %name, error = %m, "preStop hook failed");
            }
            sink.send(
                &pod.uid,
                Event::PreStopDone {
                    container: name,
                    container_id: id,
                },
            )
            .await;
        });
        Vec::new()
    }

    fn signal(
        &self,
        pod: &PodHandle,
        container: &str,
        container_id: &str,
        signal: Signal,
        _sink: &EventSink,
    ) -> Vec<Scheduled> {
        if let Some(pid) = self.instance_pid(&pod.uid, container, container_id) {
            let sig = match signal {
                Signal::Term => NixSignal::SIGTERM,
                Signal::Kill => NixSignal::SIGKILL,
            };
            let pid = Pid::from_raw(i32::try_from(pid).unwrap_or(0));
            if let Err(e) = killpg(pid, sig) {
                debug!(container, error = %e, "signal not delivered (already gone?)");
            }
        }
        Vec::new()
    }

    fn kill_sandbox(&self, pod: &PodHandle, _sink: &EventSink) -> Vec<Scheduled> {
        if let Some(state) = self.inner.pods.lock().get_mut(&pod.uid) {
            state.refresher.cancel();
            // The driver releases the address now too; its allocator hands a freed address out
            // again only after the other 252, so this deletion does not race the next owner's.
            self.pod_address(podnet::Op::Del, &state.ip);
            for i in state.instances.values() {
                if let Some(pid) = i.pid.filter(|p| pid_alive(*p)) {
                    let _ = killpg(
                        Pid::from_raw(i32::try_from(pid).unwrap_or(0)),
                        NixSignal::SIGKILL,
                    );
                }
                if let Some(cg) = &i.cgroup {
                    MemoryCgroups::remove(cg);
                }
            }
        }
        vec![Scheduled::now(Event::SandboxKilled)]
    }

    fn adopt(&self, pod: &PodHandle, sink: &EventSink) -> Option<Adopted> {
        let dir = self.pod_dir(&pod.uid);
        let record: PodRecord = serde_json::from_slice(&std::fs::read(dir.record()).ok()?).ok()?;
        let image_of = |name: &str| {
            find_container(&pod.pod, name)
                .and_then(|c| c.image.clone())
                .unwrap_or_default()
        };
        let mut running = Vec::new();
        let mut exited = Vec::new();
        let mut instances = HashMap::new();
        let names: Vec<String> = pod
            .pod
            .spec
            .iter()
            .flat_map(|s| {
                s.init_containers
                    .iter()
                    .flatten()
                    .chain(s.containers.iter())
            })
            .map(|c| c.name.clone())
            .collect();
        for name in names {
            let Some(n) = dir.instances(&name).last().copied() else {
                continue;
            };
            let inst = dir.instance(&name, n);
            let Ok(container_id) = std::fs::read_to_string(inst.id()) else {
                continue;
            };
            let started: Option<Timestamp> = std::fs::read_to_string(inst.started())
                .ok()
                .and_then(|s| s.trim().parse().ok());
            let pid: Option<u32> = std::fs::read_to_string(inst.pid())
                .ok()
                .and_then(|s| s.trim().parse().ok());
            let exit: Option<ExitRecord> = std::fs::read(inst.exit())
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            match (exit, pid, started) {
                (None, Some(pid), Some(started_at)) if pid_alive(pid) => {
                    running.push((
                        name.clone(),
                        Running {
                            container_id: container_id.clone(),
                            image_id: images::image_id(&image_of(&name)),
                            started_at,
                        },
                    ));
                    instances.insert(
                        name.clone(),
                        InstanceState {
                            container_id: container_id.clone(),
                            pid: Some(pid),
                            cgroup: None,
                        },
                    );
                    self.watch_adopted(
                        pod.clone(),
                        name.clone(),
                        container_id,
                        inst,
                        pid,
                        sink.clone(),
                    );
                }
                (Some(e), _, started) if e.start_error.is_none() => exited.push((
                    name.clone(),
                    Terminated {
                        exit_code: e.exit_code,
                        reason: e
                            .reason
                            .clone()
                            .unwrap_or_else(|| Terminated::reason_for(e.exit_code).to_string()),
                        message: None,
                        signal: e.signal,
                        started_at: started,
                        finished_at: e.finished_at.parse().unwrap_or_else(|_| Timestamp::now()),
                        container_id,
                        image_id: images::image_id(&image_of(&name)),
                    },
                )),
                _ => {}
            }
        }
        let volumes = self.volumes_after_restart(pod, &dir);
        let refresher = CancellationToken::new();
        self.start_refresher(pod, record.ip.clone(), refresher.clone());
        // The node (container) may have lost its addresses with a restart.
        self.pod_address(podnet::Op::Add, &record.ip);
        self.inner.pods.lock().insert(
            pod.uid.clone(),
            PodState {
                dir,
                ip: record.ip.clone(),
                volumes,
                refresher,
                instances,
            },
        );
        Some(Adopted {
            pod_ip: record.ip.parse().ok(),
            running,
            exited,
        })
    }

    fn forget(&self, uid: &str) {
        if let Some(state) = self.inner.pods.lock().remove(uid) {
            state.refresher.cancel();
        }
        let dir = self.pod_dir(uid).root;
        tokio::task::spawn_blocking(move || {
            if let Err(e) = std::fs::remove_dir_all(&dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                warn!(dir = %dir.display(), error = %e, "cannot remove pod directory");
            }
        });
    }

    fn logs(&self, pod: &PodHandle, request: &LogRequest) -> Result<LogStream, LogError> {
        let dir = self.pod_dir(&pod.uid);
        let instances = dir.instances(&request.container);
        let n = if request.previous {
            instances.len().checked_sub(2).map(|i| instances[i])
        } else {
            instances.last().copied()
        };
        let Some(n) = n else {
            return Err(LogError::NoPrevious {
                container: request.container.clone(),
                pod: pod.name().to_string(),
            });
        };
        let inst = dir.instance(&request.container, n);
        let log = FileLog::new(&inst.log, &inst.exit(), self.inner.config.rotation);
        Ok(InstanceLog::File(Arc::new(log)).read(request))
    }

    fn exec(
        &self,
        pod: &PodHandle,
        container: &str,
        start: ExecStart,
        input: tonic::Streaming<ExecInput>,
    ) -> Result<ExecStream, tonic::Status> {
        let pid = {
            let pods = self.inner.pods.lock();
            pods.get(&pod.uid)
                .and_then(|p| p.instances.get(container))
                .and_then(|i| i.pid)
        };
        let Some(pid) = pid.filter(|p| pid_alive(*p)) else {
            return Err(niwa_api::ApiError::bad_request(format!(
                "container {container:?} is not running"
            ))
            .to_grpc());
        };
        exec::session(self.inner.config.exe.clone(), pid, start, input)
    }
}

impl ProcessRuntime {
    /// Volume locations of an adopted pod (and a background re-set-up for claims and projections).
    fn volumes_after_restart(&self, pod: &PodHandle, dir: &PodDir) -> HashMap<String, HostVolume> {
        let mut out = HashMap::new();
        for v in pod.pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            let hv = if let Some(h) = &v.host_path {
                HostVolume {
                    path: PathBuf::from(&h.path),
                    read_only: false,
                    projected: false,
                }
            } else if v.empty_dir.is_some() {
                HostVolume {
                    path: dir.volume(&v.name),
                    read_only: false,
                    projected: false,
                }
            } else if v.persistent_volume_claim.is_some() {
                continue;
            } else {
                HostVolume {
                    path: dir.volume(&v.name),
                    read_only: true,
                    projected: true,
                }
            };
            out.insert(v.name.clone(), hv);
        }
        let this = self.clone();
        let pod = pod.clone();
        let volumes_dir = dir.volumes();
        tokio::spawn(async move {
            let ip = this
                .inner
                .pods
                .lock()
                .get(&pod.uid)
                .map(|p| p.ip.clone())
                .unwrap_or_default();
            let host_ip = pod.node.ip.to_string();
            if let Ok(v) =
                volumes::setup(&volumes_dir, &pod.pod, &this.volume_context(&ip, &host_ip)).await
                && let Some(p) = this.inner.pods.lock().get_mut(&pod.uid)
            {
                p.volumes = v;
            }
        });
        out
    }
}
