//! Benchmark program (issue 8): node failure → all pods running elsewhere, for a node with 1,000
//! pods of a Deployment.
//!
//! ```sh
//! cargo build --release -p niwa-controller-manager --bin niwa-controller-manager --example node_failure_bench
//! target/release/examples/node_failure_bench [--pods 1000] [--nodes 10] [--grace-ms 2000] [--toleration 2]
//! ```
//!
//! The store, apiserver, scheduler and two sim kubelets run in this process: "victim" (one node,
//! room for all the pods) and "live" (`--nodes` nodes). The controller-manager (`--controllers
//! replicaset,deployment,nodelifecycle`, `--node-monitor-grace-period` `--grace-ms`,
//! `--node-monitor-period` 200 ms) runs as its own process. The Deployment's pods are
//! hostNetwork (a sim node hands out at most 253 pod IPs from its /24) and tolerate
//! `node.kubernetes.io/unreachable` for `--toleration` seconds. First the Deployment is made whole
//! on the victim alone; then the live nodes join; then the victim's kubelet is killed (its tasks
//! aborted: no more Lease renewals, no goodbye). Timed from the kill: the node Unknown and
//! tainted, every old pod evicted (deletionTimestamp; they stay Terminating while the kubelet is
//! away, as in Kubernetes), and the Deployment available again with every live pod Running on a
//! live node. The configured waits (grace period + tolerationSeconds) are printed apart from the
//! rest, which is the controllers' (and scheduler's, kubelet's) own time.

use std::time::{Duration, Instant};

use niwa_client::k8s::api::apps::v1::Deployment;
use niwa_client::k8s::api::core::v1::{Node, Pod};
use niwa_client::{Api, Client, ListParams};
use niwa_kubelet::config::{KubeletConfig, PodCidr, RuntimeKind};
use serde_json::json;
use tokio_util::sync::CancellationToken;

mod common;
use common::{arg, proc_usage};

fn kubelet_config(api_url: &str, name: &str, block: u8, nodes: usize, pods: u32) -> KubeletConfig {
    let mut k = KubeletConfig::new(api_url, RuntimeKind::Sim);
    k.node_name = name.to_string();
    k.node_ip = std::net::Ipv4Addr::new(127, block, 0, 1);
    k.pod_cidr = PodCidr {
        base: std::net::Ipv4Addr::new(127, block, 1, 0),
    };
    k.nodes = nodes;
    k.capacity.pods = pods;
    k.port = 0;
    k.health_port = 0;
    k.events = false;
    k.lease_interval = Duration::from_millis(300);
    k
}

/// (pods of the Deployment by state): old ones evicted, live ones Running and Ready on a node
/// other than `victim`.
struct Census {
    evicted_on_victim: usize,
    live_on_victim: usize,
    ready_elsewhere: usize,
}

async fn census(client: &Client, victim: &str) -> anyhow::Result<Census> {
    let pods: Api<Pod> = client.namespaced("default");
    let list = pods.list(&ListParams::default().labels("app=web")).await?;
    let mut c = Census {
        evicted_on_victim: 0,
        live_on_victim: 0,
        ready_elsewhere: 0,
    };
    for p in list.items {
        let node = p.spec.as_ref().and_then(|s| s.node_name.as_deref());
        let deleting = p.metadata.deletion_timestamp.is_some();
        let ready = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        match (node == Some(victim), deleting) {
            (true, true) => c.evicted_on_victim += 1,
            (true, false) => c.live_on_victim += 1,
            (false, false) if node.is_some() && ready => c.ready_elsewhere += 1,
            _ => {}
        }
    }
    Ok(c)
}

async fn node_tainted(client: &Client, name: &str) -> bool {
    let nodes: Api<Node> = client.cluster();
    let Ok(n) = nodes.get(name).await else {
        return false;
    };
    n.spec
        .and_then(|s| s.taints)
        .unwrap_or_default()
        .iter()
        .any(|t| t.key == "node.kubernetes.io/unreachable" && t.effect == "NoExecute")
}

async fn available(client: &Client) -> i32 {
    let deps: Api<Deployment> = client.namespaced("default");
    deps.get("web")
        .await
        .ok()
        .and_then(|d| d.status)
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let pods = arg("--pods", 1000);
    let live_nodes = arg("--nodes", 10);
    let grace_ms = arg("--grace-ms", 2000);
    let toleration = arg("--toleration", 2);
    let cp = niwa_testkit::ControlPlane::start().await;
    let client = cp.client();
    let stop = CancellationToken::new();

    let victim_cfg = kubelet_config(&cp.api_url(), "victim", 81, 1, pods as u32 + 10);
    let victim = niwa_kubelet::Kubelet::start(victim_cfg, stop.child_token()).await?;
    let sched = niwa_scheduler::runtime::SchedulerConfig::new(&cp.api_url());
    let token = stop.clone();
    tokio::spawn(async move {
        if let Err(e) = niwa_scheduler::runtime::run(sched, token).await {
            eprintln!("scheduler failed: {e}");
        }
    });
    let grace = format!("{grace_ms}ms");
    let mut cm = common::controller_manager(
        &cp.api_url(),
        &[
            "--controllers",
            "replicaset,deployment,nodelifecycle",
            "--node-monitor-grace-period",
            &grace,
            "--node-monitor-period",
            "200ms",
        ],
    )?;
    let cm_pid = cm.id().unwrap_or(0);

    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": pods,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "hostNetwork": true,
                    "containers": [{"name": "main", "image": "nginx:1"}],
                    "tolerations": [
                        {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                            "effect": "NoExecute", "tolerationSeconds": toleration},
                        {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                            "effect": "NoExecute", "tolerationSeconds": toleration}
                    ]
                }
            }
        }
    }))?;
    let deps: Api<Deployment> = client.namespaced("default");
    let t = Instant::now();
    deps.create(&d).await?;
    while available(&client).await < pods as i32 {
        if t.elapsed() > Duration::from_secs(600) {
            anyhow::bail!("the Deployment is not whole on the victim after 10 min");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!(
        "{pods} pods available on the victim node in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let live_cfg = kubelet_config(&cp.api_url(), "live", 82, live_nodes, 110);
    let _live = niwa_kubelet::Kubelet::start(live_cfg, stop.child_token()).await?;
    let nodes: Api<Node> = client.cluster();
    let t = Instant::now();
    while nodes.list(&ListParams::default()).await?.items.len() < live_nodes + 1 {
        if t.elapsed() > Duration::from_secs(120) {
            anyhow::bail!("the live nodes did not register");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let them post Ready and the scheduler see them.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (cpu0, _) = proc_usage(cm_pid);
    drop(victim);
    let killed = Instant::now();
    let (mut tainted, mut evicted, mut whole) = (None, None, None);
    while whole.is_none() {
        if killed.elapsed() > Duration::from_secs(900) {
            anyhow::bail!("not whole again after 15 min");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if tainted.is_none() {
            if node_tainted(&client, "victim").await {
                tainted = Some(killed.elapsed());
            }
            continue;
        }
        let c = census(&client, "victim").await?;
        if evicted.is_none() && c.live_on_victim == 0 && c.evicted_on_victim >= pods {
            evicted = Some(killed.elapsed());
        }
        if evicted.is_some() && c.ready_elsewhere >= pods && available(&client).await >= pods as i32
        {
            whole = Some(killed.elapsed());
        }
    }
    let (cpu1, rss) = proc_usage(cm_pid);
    let secs = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64());
    let waits = grace_ms as f64 / 1000.0 + toleration as f64;
    let total = secs(whole);
    println!(
        "kill → node Unknown + tainted {:.2} s (grace {:.1} s) → all {pods} evicted {:.2} s \
         (+ toleration {toleration} s) → all {pods} Running and Ready on {live_nodes} other nodes {:.2} s",
        secs(tainted),
        grace_ms as f64 / 1000.0,
        secs(evicted),
        total
    );
    println!(
        "configured waits {waits:.1} s, beyond them {:.2} s (taint {:.2} s after the grace period, \
         eviction {:.2} s after the toleration, replacements {:.2} s); controller-manager CPU {:.2} s, RSS {rss:.0} MiB",
        total - waits,
        secs(tainted) - grace_ms as f64 / 1000.0,
        secs(evicted) - secs(tainted) - toleration as f64,
        total - secs(evicted),
        cpu1 - cpu0
    );
    let _ = cm.start_kill();
    stop.cancel();
    Ok(())
}
