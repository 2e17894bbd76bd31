//! Shared helpers of the kubelet's integration tests: a control plane, a kubelet in-process on its
//! own random 127.x block, and waiting for pod states.

#![allow(dead_code)]

pub mod process;
pub mod pty;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use niwa_client::{Api, Client};
use niwa_kubelet::Kubelet;
use niwa_kubelet::config::{KubeletConfig, PodCidr, RuntimeKind};
use niwa_testkit::ControlPlane;
use rand::Rng;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// A control plane and one kubelet, stopped on drop.
pub struct Cluster {
    pub cp: ControlPlane,
    pub kubelet: Option<Kubelet>,
    pub config: KubeletConfig,
    pub shutdown: CancellationToken,
    /// The test's own 127.B block.
    pub block: u8,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A random second octet for this test's addresses, avoiding the ones the cluster defaults use
/// (127.0/16, 127.1/16 nodes, 127.96/16 Services, 127.200/16 load balancers, 127.244/16 pods).
pub fn random_block() -> u8 {
    loop {
        let b: u8 = rand::rng().random_range(2..=254);
        if ![96, 200, 244, 245].contains(&b) {
            return b;
        }
    }
}

pub fn config(cp: &ControlPlane, runtime: RuntimeKind, block: u8) -> KubeletConfig {
    let mut c = KubeletConfig::new(&format!("http://{}", cp.api_addr), runtime);
    c.node_name = format!("node-b{block}");
    c.node_ip = Ipv4Addr::new(127, block, 0, 1);
    c.pod_cidr = PodCidr {
        base: Ipv4Addr::new(127, block, 1, 0),
    };
    c.port = 0;
    c.health_port = 0;
    c.status_workers = 4;
    c
}

impl Cluster {
    /// A control plane and a kubelet configured by `tweak`.
    pub async fn start(runtime: RuntimeKind, tweak: impl FnOnce(&mut KubeletConfig)) -> Cluster {
        let cp = ControlPlane::start().await;
        let block = random_block();
        let mut config = config(&cp, runtime, block);
        tweak(&mut config);
        let shutdown = CancellationToken::new();
        let kubelet = match Kubelet::start(config.clone(), shutdown.clone()).await {
            Ok(k) => k,
            Err(e) => panic!("kubelet did not start: {e}"),
        };
        Cluster {
            cp,
            kubelet: Some(kubelet),
            config,
            shutdown,
            block,
        }
    }

    pub fn client(&self) -> Client {
        self.cp.client()
    }

    pub fn pods(&self) -> Api<Pod> {
        self.cp.client().namespaced("default")
    }

    pub fn node_name(&self) -> String {
        self.config.node_identities()[0].name.clone()
    }

    /// Stops the kubelet (its pods keep running) and returns once it has stopped.
    pub async fn stop_kubelet(&mut self) {
        self.shutdown.cancel();
        if let Some(k) = self.kubelet.take() {
            k.wait().await;
        }
        self.shutdown = CancellationToken::new();
    }

    /// Starts the kubelet again with the same configuration.
    pub async fn restart_kubelet(&mut self) {
        let kubelet = match Kubelet::start(self.config.clone(), self.shutdown.clone()).await {
            Ok(k) => k,
            Err(e) => panic!("kubelet did not restart: {e}"),
        };
        self.kubelet = Some(kubelet);
    }

    /// Creates a pod (JSON) bound to the kubelet's node.
    pub async fn create_pod(&self, mut pod: Value) -> Pod {
        pod["apiVersion"] = "v1".into();
        pod["kind"] = "Pod".into();
        if pod["spec"]["nodeName"].is_null() {
            pod["spec"]["nodeName"] = self.node_name().into();
        }
        let pod: Pod = match serde_json::from_value(pod) {
            Ok(p) => p,
            Err(e) => panic!("bad pod: {e}"),
        };
        match self.pods().create(&pod).await {
            Ok(p) => p,
            Err(e) => panic!("create pod: {e}"),
        }
    }
}

/// Polls the pod until `check` is true (or panics after `timeout`, showing the last status).
pub async fn wait_pod(
    pods: &Api<Pod>,
    name: &str,
    timeout: Duration,
    check: impl Fn(&Pod) -> bool,
) -> Pod {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = None;
    loop {
        if let Ok(Some(p)) = pods.get_opt(name).await {
            if check(&p) {
                return p;
            }
            last = Some(p);
        }
        if tokio::time::Instant::now() > deadline {
            let status = last
                .and_then(|p| p.status)
                .map(|s| serde_json::to_string_pretty(&s).unwrap_or_default());
            panic!(
                "pod {name} did not reach the expected state in {timeout:?}; last status: {status:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the pod object is gone.
pub async fn wait_gone(pods: &Api<Pod>, name: &str, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match pods.get_opt(name).await {
            Ok(None) => return,
            _ if tokio::time::Instant::now() > deadline => {
                panic!("pod {name} still exists after {timeout:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

pub fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

pub fn condition(p: &Pod, type_: &str) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == type_))
        .map(|c| c.status.clone())
        .unwrap_or_default()
}

pub fn container(p: &Pod, name: &str) -> Value {
    let status = p.status.clone().unwrap_or_default();
    let all = status
        .init_container_statuses
        .into_iter()
        .flatten()
        .chain(status.container_statuses.into_iter().flatten());
    all.into_iter()
        .find(|c| c.name == name)
        .and_then(|c| serde_json::to_value(c).ok())
        .unwrap_or(Value::Null)
}

pub fn restarts(p: &Pod, name: &str) -> i64 {
    container(p, name)["restartCount"].as_i64().unwrap_or(0)
}

/// Kills the process group of every container instance under a process-runtime root dir (they
/// outlive the kubelet by design: their shims keep them so that a restarted kubelet adopts them).
pub fn kill_containers(root_dir: &Path) {
    let dirs = |p: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(p)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    for pod in dirs(&root_dir.join("pods")) {
        for c in dirs(&pod.join("containers")) {
            for inst in dirs(&c) {
                let pid = std::fs::read_to_string(inst.join("pid"))
                    .ok()
                    .and_then(|s| s.trim().parse::<i32>().ok());
                if let Some(pid) = pid.filter(|p| *p > 1) {
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
    }
}

/// A plain HTTP/1.0 GET (no client library: exactly what curl sends).
pub async fn http_get(addr: &str, path: &str) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .map_err(|_| "timeout".to_string())?
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}
