//! Test helpers: a control plane, schedulers in-process, nodes created directly as objects.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use niwa_client::{Api, Client, ListParams};
use niwa_scheduler::SchedulerConfig;
use niwa_scheduler::metrics::Metrics;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use niwa_testkit::ControlPlane;

/// A scheduler running in-process; stopped when dropped.
pub struct RunningScheduler {
    pub stop: CancellationToken,
    pub metrics: Metrics,
    pub task: JoinHandle<()>,
}

impl Drop for RunningScheduler {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub fn start_scheduler(cp: &ControlPlane, mut config: SchedulerConfig) -> RunningScheduler {
    config.apiserver = cp.api_url();
    let stop = CancellationToken::new();
    let metrics = Metrics::new();
    let (s, m) = (stop.clone(), metrics.clone());
    let task = tokio::spawn(async move {
        if let Err(e) = niwa_scheduler::run_with_metrics(config, s, m).await {
            panic!("scheduler failed: {e}");
        }
    });
    RunningScheduler {
        stop,
        metrics,
        task,
    }
}

pub fn config() -> SchedulerConfig {
    let mut c = SchedulerConfig::new("");
    c.algorithm.seed = 1;
    c
}

/// A Ready node with this allocatable cpu, memory and pods, extra labels and spec.
pub async fn create_node(
    client: &Client,
    name: &str,
    cpu: &str,
    pods: u32,
    labels: Value,
    spec: Value,
) {
    let mut l = json!({"kubernetes.io/hostname": name});
    if let (Some(l), Some(extra)) = (l.as_object_mut(), labels.as_object()) {
        l.extend(extra.clone());
    }
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": l},
        "spec": spec,
        "status": {
            "capacity": {"cpu": cpu, "memory": "32Gi", "pods": pods.to_string()},
            "allocatable": {"cpu": cpu, "memory": "32Gi", "pods": pods.to_string()},
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    }))
    .expect("node json");
    let nodes: Api<Node> = client.all();
    let created = nodes.create(&node).await.expect("create node");
    if created
        .status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref())
        .is_none()
    {
        let mut with_status = created.clone();
        with_status.status = node.status.clone();
        nodes
            .replace_status(&with_status)
            .await
            .expect("node status");
    }
}

/// A pod from a spec fragment (a single container requesting `cpu` unless the spec has containers).
pub async fn create_pod(client: &Client, name: &str, labels: Value, cpu: &str, spec: Value) -> Pod {
    let mut spec = spec;
    if spec.get("containers").is_none() {
        spec["containers"] = json!([{"name": "c", "image": "busybox",
            "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}]);
    }
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": spec,
    }))
    .expect("pod json");
    client
        .namespaced::<Pod>("default")
        .create(&pod)
        .await
        .expect("create pod")
}

pub async fn node_of(client: &Client, pod: &str) -> Option<String> {
    let p = client
        .namespaced::<Pod>("default")
        .get(pod)
        .await
        .expect("get pod");
    p.spec.and_then(|s| s.node_name)
}

/// Waits until every named pod is bound; returns their nodes.
pub async fn wait_bound(client: &Client, pods: &[&str], timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut nodes = Vec::new();
        for p in pods {
            match node_of(client, p).await {
                Some(n) => nodes.push(n),
                None => break,
            }
        }
        if nodes.len() == pods.len() {
            return nodes;
        }
        assert!(
            Instant::now() < deadline,
            "pods not bound in time: {pods:?}, bound so far {nodes:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for the pod's PodScheduled=False condition and returns its message.
pub async fn wait_unschedulable(client: &Client, pod: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let p = client
            .namespaced::<Pod>("default")
            .get(pod)
            .await
            .expect("get pod");
        let cond = p
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False");
        if let Some(c) = cond {
            assert_eq!(c.reason.as_deref(), Some("Unschedulable"));
            return c.message.unwrap_or_default();
        }
        assert!(
            Instant::now() < deadline,
            "pod {pod} never marked unschedulable"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Messages of the events with this reason about the pod.
pub async fn events_for(client: &Client, pod: &str, reason: &str) -> Vec<String> {
    let events: Api<Event> = client.namespaced("default");
    let list = events
        .list(&ListParams::default())
        .await
        .expect("list events");
    list.items
        .into_iter()
        .filter(|e| {
            e.involved_object.name.as_deref() == Some(pod) && e.reason.as_deref() == Some(reason)
        })
        .filter_map(|e| e.message)
        .collect()
}

/// Waits for at least one event with this reason about the pod; returns the messages.
pub async fn wait_events(
    client: &Client,
    pod: &str,
    reason: &str,
    timeout: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let found = events_for(client, pod, reason).await;
        if !found.is_empty() {
            return found;
        }
        assert!(Instant::now() < deadline, "no {reason} event for {pod}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
