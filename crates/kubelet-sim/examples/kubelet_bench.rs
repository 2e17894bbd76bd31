//! Benchmark program (issue 5): the sim kubelet at scale and the process runtime's pod start.
//!
//! ```sh
//! cargo build --release -p niwa-kubelet --bin niwa-kubelet --example kubelet_bench
//! target/release/examples/kubelet_bench [--nodes 1000] [--idle 30] [--pods 1000] [--rate 100] [--nginx 50]
//! ```
//!
//! The store and apiserver run in this process (niwa-testkit); each kubelet runs as its own process
//! (the `niwa-kubelet` binary next to this example), so its memory and CPU are measured alone.
//!
//! 1. RSS of a sim kubelet with 1 node and with `--nodes N`, after registration and an idle
//!    period: the per-node cost is the difference over N − 1.
//! 2. Heartbeat load of the N nodes while idle: Lease renewals and Node writes per second seen by
//!    a watcher, the largest gap between two renewals of one Lease (interval 10 s, as Kubernetes),
//!    and the kubelet's CPU.
//! 3. Pod startup in sim: pods created with `spec.nodeName` (spread over the N nodes) at `--rate`
//!    per second; latency = create sent → phase Running seen by a watcher; p50/p99/max.
//! 4. Process runtime: `--nginx` nginx pods at 10/s on one process-runtime kubelet; create sent →
//!    Ready=True seen by a watcher.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use niwa_client::runtime::watcher::{self, Event};
use niwa_client::{Api, Client, DeleteParams};
use niwa_testkit::bench::{arg, proc_usage};
use parking_lot::Mutex;
use serde_json::json;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

struct KubeletChild {
    child: tokio::process::Child,
    root: std::path::PathBuf,
}

impl KubeletChild {
    fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }
}

impl Drop for KubeletChild {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        // Process-runtime containers outlive their kubelet by design: stop them too.
        let pods = self.root.join("pods");
        for pod in std::fs::read_dir(&pods).into_iter().flatten().flatten() {
            let containers = pod.path().join("containers");
            for c in std::fs::read_dir(containers)
                .into_iter()
                .flatten()
                .flatten()
            {
                for inst in std::fs::read_dir(c.path()).into_iter().flatten().flatten() {
                    let pid = std::fs::read_to_string(inst.path().join("pid"))
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
}

fn spawn_kubelet(
    api: &str,
    args: &[String],
    root: std::path::PathBuf,
) -> anyhow::Result<KubeletChild> {
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("niwa-kubelet"))
        .ok_or_else(|| anyhow::anyhow!("no niwa-kubelet next to {}", exe.display()))?;
    let child = tokio::process::Command::new(&bin)
        .arg("--apiserver")
        .arg(api)
        .arg("--root-dir")
        .arg(&root)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| anyhow::anyhow!("{}: {e}", bin.display()))?;
    Ok(KubeletChild { child, root })
}

/// Waits until `n` nodes named `<prefix>…` exist.
async fn wait_nodes(client: &Client, prefix: &str, n: usize) -> Duration {
    let nodes: Api<Node> = client.cluster();
    let start = Instant::now();
    loop {
        let count = nodes
            .list(&Default::default())
            .await
            .map(|l| {
                l.items
                    .iter()
                    .filter(|n| {
                        n.metadata
                            .name
                            .as_deref()
                            .is_some_and(|m| m.starts_with(prefix))
                    })
                    .count()
            })
            .unwrap_or(0);
        if count >= n {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Pod name → when its create was sent; the watcher fills `done` when `ready(pod)` first holds.
#[derive(Default)]
struct Timings {
    sent: HashMap<String, Instant>,
    done: HashMap<String, Duration>,
}

fn watch_pods(
    client: &Client,
    timings: Arc<Mutex<Timings>>,
    ready: fn(&Pod) -> bool,
) -> tokio::task::JoinHandle<()> {
    let pods: Api<Pod> = client.namespaced("default");
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(watcher::watcher(pods, watcher::Config::default()));
        while let Some(ev) = stream.next().await {
            let (Ok(Event::Apply(p)) | Ok(Event::InitApply(p))) = ev else {
                continue;
            };
            if !ready(&p) {
                continue;
            }
            let name = p.metadata.name.clone().unwrap_or_default();
            let mut t = timings.lock();
            if let Some(sent) = t.sent.get(&name).copied()
                && !t.done.contains_key(&name)
            {
                t.done.insert(name, sent.elapsed());
            }
        }
    })
}

fn running(p: &Pod) -> bool {
    p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Creates `count` pods from `make(i)` at `rate` per second; waits until all are done (or 120 s).
async fn pod_startup(
    client: &Client,
    count: usize,
    rate: usize,
    prefix: &str,
    make: impl Fn(usize) -> Pod,
    check: fn(&Pod) -> bool,
) -> Vec<Duration> {
    let timings = Arc::new(Mutex::new(Timings::default()));
    let watch = watch_pods(client, timings.clone(), check);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pods: Api<Pod> = client.namespaced("default");
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    for i in 0..count {
        tick.tick().await;
        let pod = make(i);
        let name = format!("{prefix}-{i}");
        timings.lock().sent.insert(name, Instant::now());
        let pods = pods.clone();
        tokio::spawn(async move {
            if let Err(e) = pods.create(&pod).await {
                eprintln!("create: {e}");
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while timings.lock().done.len() < count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    watch.abort();
    let mut out: Vec<Duration> = timings.lock().done.values().copied().collect();
    out.sort();
    out
}

fn pod(name: String, node: String, image: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "app", "image": image}]},
    }))
    .unwrap_or_default()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n = arg("--nodes", 1000);
    let idle = arg("--idle", 30) as u64;
    let pod_count = arg("--pods", 1000);
    let rate = arg("--rate", 100).max(1);
    let nginx = arg("--nginx", 50);
    let cp = niwa_testkit::ControlPlane::start().await;
    let api = format!("http://{}", cp.api_addr);
    let client = cp.client();
    let dir = tempfile::tempdir()?;
    let sim_args = |nodes: usize, name: &str, ip: &str, cidr: &str| -> Vec<String> {
        [
            "--runtime",
            "sim",
            "--nodes",
            &nodes.to_string(),
            "--node-name",
            name,
            "--node-ip",
            ip,
            "--pod-cidr",
            cidr,
            "--port",
            "0",
            "--healthz-port",
            "0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };

    // 1. One sim node: the baseline.
    let one = spawn_kubelet(
        &api,
        &sim_args(1, "base", "127.61.0.1", "127.62.0.0/24"),
        dir.path().join("base"),
    )?;
    wait_nodes(&client, "base", 1).await;
    tokio::time::sleep(Duration::from_secs(idle.min(10))).await;
    let (_, rss_one) = proc_usage(one.pid());
    drop(one);
    let nodes_api: Api<Node> = client.cluster();
    let _ = nodes_api.delete("base", &DeleteParams::default()).await;

    // 2. N sim nodes in one process: registration, idle RSS, heartbeats.
    let many = spawn_kubelet(
        &api,
        &sim_args(n, "sim", "127.63.0.1", "127.64.0.0/24"),
        dir.path().join("sim"),
    )?;
    let registered = wait_nodes(&client, "sim-", n).await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    let renewals: Arc<Mutex<HashMap<String, Vec<Instant>>>> = Arc::default();
    let node_writes = Arc::new(Mutex::new(0usize));
    let leases: Api<Lease> = client.namespaced("kube-node-lease");
    let r = renewals.clone();
    let lease_watch = tokio::spawn(async move {
        let mut s = std::pin::pin!(watcher::watcher(leases, watcher::Config::default()));
        let mut listed = false;
        while let Some(ev) = s.next().await {
            match ev {
                Ok(Event::InitDone) => listed = true,
                Ok(Event::Apply(l)) if listed => {
                    let name = l.metadata.name.clone().unwrap_or_default();
                    r.lock().entry(name).or_default().push(Instant::now());
                }
                _ => {}
            }
        }
    });
    let w = node_writes.clone();
    let nodes_watched: Api<Node> = client.cluster();
    let node_watch = tokio::spawn(async move {
        let mut s = std::pin::pin!(watcher::watcher(nodes_watched, watcher::Config::default()));
        let mut listed = false;
        while let Some(ev) = s.next().await {
            match ev {
                Ok(Event::InitDone) => listed = true,
                Ok(Event::Apply(_)) if listed => *w.lock() += 1,
                _ => {}
            }
        }
    });
    let (cpu0, _) = proc_usage(many.pid());
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(idle)).await;
    let (cpu1, rss_many) = proc_usage(many.pid());
    let secs = window.elapsed().as_secs_f64();
    lease_watch.abort();
    node_watch.abort();
    let renewals = std::mem::take(&mut *renewals.lock());
    let total: usize = renewals.values().map(Vec::len).sum();
    let mut gaps: Vec<Duration> = renewals
        .values()
        .flat_map(|v| v.windows(2).map(|w| w[1] - w[0]))
        .collect();
    gaps.sort();
    let per_node_kib = (rss_many - rss_one) * 1024.0 / (n.max(2) - 1) as f64;
    println!("## sim kubelet, {n} nodes in one process");
    println!("| measure | value |\n|---|---:|");
    println!(
        "| registration of {n} nodes [s] | {:.2} |",
        registered.as_secs_f64()
    );
    println!("| RSS, 1 node [MiB] | {rss_one:.1} |");
    println!("| RSS, {n} nodes, idle [MiB] | {rss_many:.1} |");
    println!("| RSS per extra node [KiB] | {per_node_kib:.1} |");
    println!(
        "| Lease renewals [/s] (expected {:.0}) | {:.1} |",
        n as f64 / 10.0,
        total as f64 / secs
    );
    println!(
        "| Leases renewed in the {secs:.0} s window | {} of {n} |",
        renewals.len()
    );
    println!(
        "| renewal gap p50 / p99 / max [s] (interval 10 s) | {:.2} / {:.2} / {:.2} |",
        percentile(&gaps, 0.5).as_secs_f64(),
        percentile(&gaps, 0.99).as_secs_f64(),
        gaps.last().copied().unwrap_or_default().as_secs_f64()
    );
    println!(
        "| Node object writes [/s] | {:.1} |",
        *node_writes.lock() as f64 / secs
    );
    println!(
        "| kubelet CPU while idle [% of one core] | {:.1} |",
        (cpu1 - cpu0) / secs * 100.0
    );

    // 3. Sim pod startup at `rate` per second.
    let names: Vec<String> = (1..=n).map(|i| format!("sim-{i}")).collect();
    // This process holds the store and the apiserver (and the watchers).
    let (cp_cpu0, _) = proc_usage(std::process::id());
    let burst = Instant::now();
    let lat = pod_startup(
        &client,
        pod_count,
        rate,
        "sim",
        |i| pod(format!("sim-{i}"), names[i % names.len()].clone(), "nginx"),
        running,
    )
    .await;
    let (cpu2, rss_pods) = proc_usage(many.pid());
    let (cp_cpu1, _) = proc_usage(std::process::id());
    let burst_secs = burst.elapsed().as_secs_f64();
    println!(
        "| pod startup at {rate}/s, {} of {pod_count} Running: p50 / p99 / max [ms] | {} / {} / {} |",
        lat.len(),
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        ms(lat.last().copied().unwrap_or_default())
    );
    println!("| RSS with {pod_count} pods [MiB] | {rss_pods:.1} |");
    println!("| kubelet CPU for the pod burst [s] | {:.2} |", cpu2 - cpu1);
    println!(
        "| CPU during the pod burst, kubelet / store+apiserver [% of one core] | {:.0} / {:.0} |",
        (cpu2 - cpu1) / burst_secs * 100.0,
        (cp_cpu1 - cp_cpu0) / burst_secs * 100.0
    );
    drop(many);

    // 4. Process runtime: nginx pods to Ready.
    if nginx > 0 {
        let args: Vec<String> = [
            "--runtime",
            "process",
            "--node-name",
            "proc",
            "--node-ip",
            "127.70.0.1",
            "--pod-cidr",
            "127.71.0.0/24",
            "--port",
            "0",
            "--healthz-port",
            "0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let proc = spawn_kubelet(&api, &args, dir.path().join("proc"))?;
        wait_nodes(&client, "proc", 1).await;
        let lat = pod_startup(
            &client,
            nginx,
            10,
            "web",
            |i| pod(format!("web-{i}"), "proc".into(), "nginx"),
            ready,
        )
        .await;
        let (_, rss_proc) = proc_usage(proc.pid());
        println!("\n## process kubelet, built-in nginx");
        println!("| measure | value |\n|---|---:|");
        println!(
            "| create → Ready at 10/s, {} of {nginx}: p50 / p99 / max [ms] | {} / {} / {} |",
            lat.len(),
            ms(percentile(&lat, 0.5)),
            ms(percentile(&lat, 0.99)),
            ms(lat.last().copied().unwrap_or_default())
        );
        println!("| kubelet RSS with {nginx} pods [MiB] | {rss_proc:.1} |");
        drop(proc);
    }
    Ok(())
}
