//! Node lifecycle controller with niwa's scheduler and two sim kubelets in-process: killing one
//! kubelet makes its node Unknown and tainted, its pods are evicted after their toleration, and
//! the Deployment is whole again on the other node; the node comes back untainted.

mod support;

use std::time::{Duration, Instant};

use niwa_client::k8s::api::apps::v1::Deployment;
use niwa_client::k8s::api::core::v1::Node;
use niwa_client::{Api, Client};
use niwa_controller_manager::clock::Clock;
use niwa_kubelet::config::{KubeletConfig, PodCidr, RuntimeKind};
use niwa_testkit::ControlPlane;
use rand::Rng;
use support::*;
use tokio_util::sync::CancellationToken;

fn kubelet_config(cp: &ControlPlane, name: &str, block: u8) -> KubeletConfig {
    let mut k = KubeletConfig::new(&cp.api_url(), RuntimeKind::Sim);
    k.node_name = name.to_string();
    k.node_ip = std::net::Ipv4Addr::new(127, block, 0, 1);
    k.pod_cidr = PodCidr {
        base: std::net::Ipv4Addr::new(127, block, 1, 0),
    };
    k.port = 0;
    k.health_port = 0;
    k.events = false;
    k.lease_interval = Duration::from_millis(300);
    k
}

async fn start_kubelet(k: KubeletConfig) -> (niwa_kubelet::Kubelet, CancellationToken) {
    let token = CancellationToken::new();
    let kubelet = niwa_kubelet::Kubelet::start(k, token.clone())
        .await
        .expect("kubelet starts");
    (kubelet, token)
}

fn taint_keys(node: &Node) -> Vec<String> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .map(|t| {
            t.iter()
                .map(|t| format!("{}:{}", t.key, t.effect))
                .collect()
        })
        .unwrap_or_default()
}

async fn pods_by_node(client: &Client) -> Vec<String> {
    live_pods(client, "default", "app=web")
        .await
        .iter()
        .map(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_is_tainted_its_pods_move_and_it_comes_back() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    let (a, b) = loop {
        let a: u8 = rand::rng().random_range(2..=254);
        let b: u8 = rand::rng().random_range(2..=254);
        let reserved = [96, 200, 244, 245];
        if a != b && !reserved.contains(&a) && !reserved.contains(&b) {
            break (a, b);
        }
    };
    let (name_a, name_b) = (format!("nl-a{a}"), format!("nl-b{b}"));
    let config_a = kubelet_config(&cp, &name_a, a);
    let (kubelet_a, _token_a) = start_kubelet(config_a.clone()).await;
    let (_kubelet_b, token_b) = start_kubelet(kubelet_config(&cp, &name_b, b)).await;
    let stop = CancellationToken::new();
    let sched = niwa_scheduler::runtime::SchedulerConfig::new(&cp.api_url());
    let token = stop.clone();
    let scheduler = tokio::spawn(async move {
        let _ = niwa_scheduler::runtime::run(sched, token).await;
    });
    let cm = Manager::start_configured(
        &cp,
        "replicaset,deployment,node-lifecycle",
        Clock::system(),
        false,
        |c| {
            c.node_monitor_grace_period = Duration::from_secs(2);
            c.node_monitor_period = Duration::from_millis(200);
            c.default_unreachable_toleration_seconds = 2;
            c.default_not_ready_toleration_seconds = 2;
        },
    )
    .await;
    let deps: Api<Deployment> = client.namespaced("default");
    deps.create(&from_yaml(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 6
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: main, image: "nginx:1"}]
      # The apiserver gives every pod 300 s (Kubernetes' DefaultTolerationSeconds); tests wait 2 s.
      tolerations:
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 2}
      - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 2}
"#,
    ))
    .await
    .expect("create");
    eventually(
        Duration::from_secs(60),
        "6 available on both nodes",
        || async {
            let st = deps.get("web").await.ok()?.status?;
            let nodes = pods_by_node(&client).await;
            (st.available_replicas == Some(6) && nodes.contains(&name_a) && nodes.contains(&name_b))
                .then_some(())
        },
    )
    .await;

    // Kill node A's kubelet (no goodbye: its tasks are aborted).
    drop(kubelet_a);
    let killed = Instant::now();
    let nodes: Api<Node> = client.cluster();
    eventually(
        Duration::from_secs(20),
        "node A Unknown and tainted",
        || async {
            let n = nodes.get(&name_a).await.ok()?;
            let ready = n
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == "Ready")?
                .clone();
            let taints = taint_keys(&n);
            (ready.status == "Unknown"
                && ready.reason.as_deref() == Some("NodeStatusUnknown")
                && taints.contains(&"node.kubernetes.io/unreachable:NoExecute".to_string()))
            .then_some(())
        },
    )
    .await;
    let tainted = killed.elapsed();
    eventually(
        Duration::from_secs(30),
        "6 available, all on node B",
        || async {
            let st = deps.get("web").await.ok()?.status?;
            let on = pods_by_node(&client).await;
            (st.available_replicas == Some(6) && on.len() == 6 && on.iter().all(|n| *n == name_b))
                .then_some(())
        },
    )
    .await;
    eprintln!(
        "node tainted after {tainted:?}; deployment whole on the other node after {:?} (grace 2 s + toleration 2 s)",
        killed.elapsed()
    );

    // Node A comes back: the taints go.
    let (_kubelet_a2, token_a2) = start_kubelet(config_a).await;
    eventually(Duration::from_secs(20), "node A untainted", || async {
        let n = nodes.get(&name_a).await.ok()?;
        taint_keys(&n)
            .iter()
            .all(|t| !t.starts_with("node.kubernetes.io/"))
            .then_some(())
    })
    .await;
    cm.shutdown().await;
    stop.cancel();
    token_b.cancel();
    token_a2.cancel();
    let _ = scheduler.await;
}
