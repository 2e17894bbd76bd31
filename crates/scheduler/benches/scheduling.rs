//! The scheduler benchmark program (Kubernetes' scheduler_perf workloads against niwa's real
//! apiserver + store, in one process): nodes are created directly as objects, then pods; it
//! reports pods/s from the first create to the last binding and per-pod latency (create → bound).
//!
//! `cargo bench -p niwa-scheduler --bench scheduling -- [basic-small|basic-large|anti-affinity|spread ...]`
//! (default: all four). Kubernetes' CI threshold for SchedulingBasic 5000 nodes is 270 pods/s.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use niwa_client::runtime::watcher::{self, Event};
use niwa_client::{Api, Client};
use niwa_scheduler::SchedulerConfig;
use niwa_scheduler::metrics::Metrics;
use niwa_testkit::ControlPlane;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// The allocator niwa-store's and niwa-scheduler's binaries use (one process hosts all three here;
/// niwa-apiserver's binary still uses glibc's malloc, so this flatters its share a little).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Concurrent creates in flight (the load generator's bound).
const CONCURRENCY: usize = 64;

struct Workload {
    name: &'static str,
    nodes: usize,
    pods: usize,
    pod_spec: fn(usize) -> (Value, Value),
}

fn basic(_: usize) -> (Value, Value) {
    (json!({"app": "basic"}), json!({}))
}

fn anti_affinity(i: usize) -> (Value, Value) {
    // Groups of 10 pods that refuse to share a node (scheduler_perf's SchedulingPodAntiAffinity shape).
    let group = format!("g{}", i / 10);
    (
        json!({"group": group}),
        json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"group": group}}, "topologyKey": "kubernetes.io/hostname"}]}}}),
    )
}

fn spread(_: usize) -> (Value, Value) {
    (
        json!({"app": "spread"}),
        json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "spread"}}}]}),
    )
}

fn workloads() -> Vec<Workload> {
    vec![
        Workload {
            name: "basic-small",
            nodes: 500,
            pods: 1000,
            pod_spec: basic,
        },
        Workload {
            name: "basic-large",
            nodes: 5000,
            pods: 10000,
            pod_spec: basic,
        },
        Workload {
            name: "anti-affinity",
            nodes: 500,
            pods: 1000,
            pod_spec: anti_affinity,
        },
        Workload {
            name: "spread",
            nodes: 500,
            pods: 1000,
            pod_spec: spread,
        },
    ]
}

async fn for_each_concurrent<F, Fut>(n: usize, f: F)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    futures::stream::iter(0..n)
        .for_each_concurrent(CONCURRENCY, f)
        .await;
}

async fn create_nodes(client: &Client, n: usize) {
    let nodes: Api<Node> = client.all();
    for_each_concurrent(n, |i| {
        let nodes = nodes.clone();
        async move {
            let name = format!("node-{i:05}");
            let node: Node = serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                    "topology.kubernetes.io/zone": format!("zone-{}", i % 3)}},
                "status": {"capacity": {"cpu": "4", "memory": "32Gi", "pods": "110"},
                    "allocatable": {"cpu": "4", "memory": "32Gi", "pods": "110"},
                    "conditions": [{"type": "Ready", "status": "True"}]}
            }))
            .expect("node json");
            if let Err(e) = nodes.create(&node).await {
                eprintln!("node create failed: {e}");
            }
        }
    })
    .await;
}

struct Outcome {
    pods_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    bound: usize,
    /// CPU time of the whole process (apiserver, store, scheduler and load generator) from the
    /// first create to the last binding, per pod: unlike pods/s, it barely moves with the load
    /// other processes put on the machine.
    cpu_us_per_pod: f64,
}

/// User + system CPU time this process has used, from `/proc/self/stat` (clock ticks, 100 Hz).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

async fn run(w: &Workload) -> Outcome {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    create_nodes(&client, w.nodes).await;

    let mut config = SchedulerConfig::new(&cp.api_url());
    config.algorithm.parallelism = 2;
    let stop = CancellationToken::new();
    let metrics = Metrics::new();
    let sched = tokio::spawn(niwa_scheduler::run_with_metrics(
        config,
        stop.clone(),
        metrics.clone(),
    ));
    while !metrics.ready.load(std::sync::atomic::Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let created: Arc<Mutex<HashMap<String, Instant>>> = Default::default();
    let bound: Arc<Mutex<HashMap<String, Instant>>> = Default::default();
    let done = CancellationToken::new();
    let watch = {
        let (bound, done) = (bound.clone(), done.clone());
        let stream = watcher::watcher(
            client.namespaced::<Pod>("default"),
            watcher::Config::default(),
        );
        tokio::spawn(async move {
            futures::pin_mut!(stream);
            loop {
                let ev =
                    tokio::select! { _ = done.cancelled() => return, ev = stream.next() => ev };
                let pod = match ev {
                    Some(Ok(Event::Apply(p))) | Some(Ok(Event::InitApply(p))) => p,
                    None => return,
                    _ => continue,
                };
                if pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_ref())
                    .is_some()
                {
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    bound.lock().entry(name).or_insert_with(Instant::now);
                }
            }
        })
    };

    let pods: Api<Pod> = client.namespaced("default");
    let start = Instant::now();
    let cpu_start = process_cpu();
    for_each_concurrent(w.pods, |i| {
        let (pods, created) = (pods.clone(), created.clone());
        let (labels, mut spec) = (w.pod_spec)(i);
        async move {
            let name = format!("pod-{i:05}");
            spec["containers"] = json!([{"name": "pause", "image": "registry.k8s.io/pause:3.10",
                "resources": {"requests": {"cpu": "100m", "memory": "500Mi"}}}]);
            let pod: Pod = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": "default", "labels": labels}, "spec": spec}))
            .expect("pod json");
            created.lock().insert(name, Instant::now());
            if let Err(e) = pods.create(&pod).await {
                eprintln!("pod create failed: {e}");
            }
        }
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(300);
    while bound.lock().len() < w.pods && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu = process_cpu().saturating_sub(cpu_start);
    done.cancel();
    let _ = watch.await;
    stop.cancel();
    let _ = sched.await;

    let created = created.lock();
    let bound = bound.lock();
    let last = bound.values().max().copied().unwrap_or(start);
    let mut lat: Vec<f64> = bound
        .iter()
        .filter_map(|(n, b)| {
            created
                .get(n)
                .map(|c| b.duration_since(*c).as_secs_f64() * 1000.0)
        })
        .collect();
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    Outcome {
        pods_per_sec: bound.len() as f64 / last.duration_since(start).as_secs_f64().max(1e-9),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        bound: bound.len(),
        cpu_us_per_pod: cpu.as_secs_f64() * 1e6 / bound.len().max(1) as f64,
    }
}

fn main() {
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "| workload | nodes | pods | bound | pods/s | p50 ms | p99 ms | CPU µs/pod | vs Kubernetes CI bar (270 pods/s) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for w in workloads() {
        if !wanted.is_empty() && !wanted.iter().any(|n| n == w.name) {
            continue;
        }
        let o = rt.block_on(run(&w));
        println!(
            "| {} | {} | {} | {} | {:.0} | {:.1} | {:.1} | {:.0} | {:.1}× |",
            w.name,
            w.nodes,
            w.pods,
            o.bound,
            o.pods_per_sec,
            o.p50_ms,
            o.p99_ms,
            o.cpu_us_per_pod,
            o.pods_per_sec / 270.0
        );
    }
}
