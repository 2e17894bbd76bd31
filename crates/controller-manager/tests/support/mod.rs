//! Test support: a controller-manager in-process against testkit's control plane, a tiny fake
//! kubelet that moves pods to Running/Ready (or Succeeded/Failed) through the status subresource,
//! and polling helpers.

#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use niwa_client::k8s::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStatus, Pod, PodCondition, PodStatus,
};
use niwa_client::k8s::apimachinery::pkg::apis::meta::v1::Time;
use niwa_client::runtime::watcher;
use niwa_client::{Api, Client, ResourceExt};
use niwa_controller_manager::Config;
use niwa_controller_manager::clock::Clock;
use niwa_testkit::ControlPlane;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A controller-manager running in the test's runtime.
pub struct Manager {
    pub stop: CancellationToken,
    pub task: JoinHandle<()>,
    pub clock: Clock,
}

impl Manager {
    pub async fn start(cp: &ControlPlane, controllers: &str) -> Manager {
        Manager::start_with(cp, controllers, Clock::system(), false).await
    }

    pub async fn start_with(
        cp: &ControlPlane,
        controllers: &str,
        clock: Clock,
        leader_elect: bool,
    ) -> Manager {
        Manager::start_configured(cp, controllers, clock, leader_elect, |_| {}).await
    }

    /// Like [`Manager::start_with`], with a last say on the configuration.
    pub async fn start_configured(
        cp: &ControlPlane,
        controllers: &str,
        clock: Clock,
        leader_elect: bool,
        tweak: impl FnOnce(&mut Config),
    ) -> Manager {
        let mut config = Config::new(&cp.api_url());
        config.controllers = controllers.split(',').map(String::from).collect();
        config.leader_election.enabled = leader_elect;
        config.leader_election.lease_duration = Duration::from_secs(3);
        config.leader_election.renew_deadline = Duration::from_secs(2);
        config.leader_election.retry_period = Duration::from_millis(300);
        config.clock = clock.clone();
        tweak(&mut config);
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            if let Err(err) = niwa_controller_manager::run(config, token).await {
                panic!("controller-manager failed: {err}");
            }
        });
        Manager { stop, task, clock }
    }

    /// Stop gracefully and wait.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }

    /// Stop abruptly (as kill -9 would: no graceful drain).
    pub fn kill(self) {
        self.task.abort();
        self.stop.cancel();
    }
}

/// What the fake kubelet does with a pod it has not handled yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Running and Ready.
    Ready,
    /// Running, never Ready (a failing readiness probe).
    NotReady,
    /// Runs to completion (exit 0).
    Succeed,
    /// Fails (exit 1).
    Fail,
    /// Leave it alone for now (e.g. not bound to a node yet).
    Skip,
}

/// A fake kubelet for every pod in the cluster; `decide` picks the behaviour per pod.
pub struct FakeKubelet {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        self.stop.cancel();
        self.task.abort();
    }
}

impl FakeKubelet {
    pub fn start(
        client: Client,
        decide: impl Fn(&Pod) -> Behaviour + Send + Sync + 'static,
    ) -> FakeKubelet {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let decide = Arc::new(decide);
        let task = tokio::spawn(async move {
            let pods: Api<Pod> = client.all();
            let mut events = std::pin::pin!(watcher::watcher(pods, watcher::Config::default()));
            loop {
                let ev = tokio::select! {
                    _ = token.cancelled() => break,
                    ev = events.next() => ev,
                };
                let pod = match ev {
                    None => break,
                    Some(Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p))) => p,
                    _ => continue,
                };
                let phase = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.phase.clone())
                    .unwrap_or_default();
                if pod.metadata.deletion_timestamp.is_some()
                    || !(phase.is_empty() || phase == "Pending")
                {
                    continue;
                }
                let behaviour = decide(&pod);
                if behaviour == Behaviour::Skip {
                    continue;
                }
                let mut status = status_for(behaviour);
                // Each pod its own address (the endpoints controllers need one).
                let n = NEXT_POD_IP.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                status.pod_ip = Some(format!("127.250.{}.{}", (n / 250) % 250, n % 250 + 1));
                let mut updated = pod.clone();
                updated.status = Some(status);
                let api: Api<Pod> = client.namespaced(&pod.namespace().unwrap_or_default());
                let _ = api.replace_status(&updated).await;
            }
        });
        FakeKubelet { stop, task }
    }
}

static NEXT_POD_IP: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn status_for(b: Behaviour) -> PodStatus {
    let now = Time(jiff::Timestamp::now());
    let cond = |t: &str, s: &str| PodCondition {
        type_: t.into(),
        status: s.into(),
        last_transition_time: Some(now.clone()),
        ..Default::default()
    };
    let terminated = |code: i32| ContainerStatus {
        name: "main".into(),
        state: Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: code,
                finished_at: Some(now.clone()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    match b {
        Behaviour::Ready => PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![cond("Ready", "True")]),
            ..Default::default()
        },
        Behaviour::NotReady => PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![cond("Ready", "False")]),
            ..Default::default()
        },
        Behaviour::Succeed => PodStatus {
            phase: Some("Succeeded".into()),
            conditions: Some(vec![cond("Ready", "False")]),
            container_statuses: Some(vec![terminated(0)]),
            ..Default::default()
        },
        Behaviour::Fail | Behaviour::Skip => PodStatus {
            phase: Some("Failed".into()),
            conditions: Some(vec![cond("Ready", "False")]),
            container_statuses: Some(vec![terminated(1)]),
            ..Default::default()
        },
    }
}

/// Poll `check` every 100 ms until it returns `Some`, or panic after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The live (not terminating) pods of a namespace with a label selector.
pub async fn live_pods(client: &Client, ns: &str, selector: &str) -> Vec<Pod> {
    let api: Api<Pod> = client.namespaced(ns);
    api.list(&niwa_client::ListParams::default().labels(selector))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

pub fn from_yaml<T: serde::de::DeserializeOwned>(yaml: &str) -> T {
    match serde_yaml_ng::from_str(yaml) {
        Ok(v) => v,
        Err(e) => panic!("bad test YAML: {e}"),
    }
}

/// The real `kubectl` against a control plane (its own kubeconfig and cache in a temp dir).
pub struct Kubectl {
    dir: tempfile::TempDir,
    kubeconfig: std::path::PathBuf,
}

impl Kubectl {
    pub fn new(cp: &ControlPlane) -> Kubectl {
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = dir.path().join("kubeconfig");
        niwa_apiserver::http::kubeconfig::Kubeconfig::for_address(cp.api_addr)
            .write(&kubeconfig)
            .expect("write kubeconfig");
        Kubectl { dir, kubeconfig }
    }

    /// Run `kubectl <args>`; panics unless it succeeds within 90 s; returns stdout.
    pub async fn run(&self, args: &[&str]) -> String {
        let timeout = Duration::from_secs(90);
        let home = self.dir.path();
        let out = niwa_testkit::kubectl::try_run(&self.kubeconfig, home, args, None, &[], timeout)
            .await
            .unwrap_or_else(|err| panic!("kubectl {args:?}: {err}"));
        assert!(
            out.code == 0,
            "kubectl {args:?} failed: {}\n{}",
            out.stdout,
            out.stderr
        );
        out.stdout
    }
}

/// niwa's scheduler and sim kubelet (`nodes` simulated nodes in one task), in-process, on their
/// own random 127.x block.
pub struct SimCluster {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for SimCluster {
    fn drop(&mut self) {
        self.stop.cancel();
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl SimCluster {
    pub async fn start(cp: &ControlPlane, nodes: usize) -> SimCluster {
        use niwa_kubelet::config::{KubeletConfig, PodCidr, RuntimeKind};
        use rand::Rng;
        let stop = CancellationToken::new();
        let block: u8 = loop {
            let b: u8 = rand::rng().random_range(2..=254);
            if ![96, 200, 244, 245].contains(&b) {
                break b;
            }
        };
        let mut k = KubeletConfig::new(&cp.api_url(), RuntimeKind::Sim);
        k.node_name = format!("sim-b{block}");
        k.node_ip = std::net::Ipv4Addr::new(127, block, 0, 1);
        k.pod_cidr = PodCidr {
            base: std::net::Ipv4Addr::new(127, block, 1, 0),
        };
        k.nodes = nodes;
        k.port = 0;
        k.health_port = 0;
        k.events = false;
        let token = stop.clone();
        let kubelet = tokio::spawn(async move {
            if let Err(e) = niwa_kubelet::run(k, token).await {
                panic!("sim kubelet failed: {e}");
            }
        });
        let sched = niwa_scheduler::runtime::SchedulerConfig::new(&cp.api_url());
        let token = stop.clone();
        let scheduler = tokio::spawn(async move {
            if let Err(e) = niwa_scheduler::runtime::run(sched, token).await {
                panic!("scheduler failed: {e}");
            }
        });
        // Wait for the nodes to register and be Ready.
        let client = cp.client();
        eventually(Duration::from_secs(60), "sim nodes Ready", || async {
            let nodes_api: Api<niwa_client::k8s::api::core::v1::Node> = client.all();
            let list = nodes_api.list(&Default::default()).await.ok()?.items;
            let ready = list
                .iter()
                .filter(|n| {
                    n.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                })
                .count();
            (ready >= nodes).then_some(())
        })
        .await;
        SimCluster {
            stop,
            tasks: vec![kubelet, scheduler],
        }
    }
}
