//! Benchmark program (issue 8): endpoint propagation latency — a pod turning Ready → the
//! EndpointSlice of its Service saying so (as a watcher sees it) — with 1,000 Services × 10 pods.
//!
//! ```sh
//! cargo build --release -p niwa-controller-manager --bin niwa-controller-manager --example endpoints_bench
//! target/release/examples/endpoints_bench [--services 1000] [--pods 10] [--flips 2000] [--rate 200]
//! ```
//!
//! The store and apiserver run in this process; the controller-manager (endpointslice and
//! endpoints controllers) runs as its own process (the release binary next to this example).
//! Pods are written directly (no kubelet): created, given an IP and Ready=False, and once every
//! Service's slice lists its 10 not-ready endpoints, `--flips` pods are made Ready at `--rate` per
//! second; the latency of each is the time from just before its status write to the slice watch
//! event that shows it ready.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use niwa_client::k8s::api::core::v1::{Pod, PodCondition, PodStatus, Service};
use niwa_client::k8s::api::discovery::v1::EndpointSlice;
use niwa_client::runtime::watcher;
use niwa_client::{Api, ResourceExt};
use tokio_util::sync::CancellationToken;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn status(ip: &str, ready: bool) -> PodStatus {
    PodStatus {
        phase: Some("Running".into()),
        pod_ip: Some(ip.into()),
        conditions: Some(vec![PodCondition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let services = arg("--services", 1000);
    let per = arg("--pods", 10);
    let flips = arg("--flips", 2000).min(services * per);
    let rate = arg("--rate", 200).max(1);
    let cp = niwa_testkit::ControlPlane::start().await;
    let client = cp.client();
    let stop = CancellationToken::new();

    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("niwa-controller-manager"))
        .ok_or_else(|| anyhow::anyhow!("no binary dir"))?;
    let mut cm = tokio::process::Command::new(&bin)
        .args([
            "--apiserver",
            &cp.api_url(),
            "--leader-elect=false",
            "--metrics-listen",
            "127.0.0.1:0",
            "--controllers",
            "endpointslice,endpoint",
        ])
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", bin.display()))?;

    let t = Instant::now();
    let svcs: Api<Service> = client.namespaced("default");
    stream::iter(0..services)
        .map(|i| {
            let svcs = svcs.clone();
            async move {
                let s: Service = serde_json::from_value(serde_json::json!({
                    "apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": format!("s{i}"), "namespace": "default"},
                    "spec": {"selector": {"app": format!("s{i}")}, "ports": [{"port": 80, "targetPort": 8080}]}
                }))?;
                svcs.create(&s).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;
    let pods: Api<Pod> = client.namespaced("default");
    let created: Vec<Pod> = stream::iter(0..services * per)
        .map(|n| {
            let pods = pods.clone();
            async move {
                let (i, j) = (n / per, n % per);
                let p: Pod = serde_json::from_value(serde_json::json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": format!("s{i}-{j}"), "namespace": "default",
                        "labels": {"app": format!("s{i}")}},
                    "spec": {"containers": [{"name": "c", "image": "x"}]}
                }))?;
                let mut p = pods.create(&p).await?;
                p.status = Some(status(
                    &format!(
                        "127.{}.{}.{}",
                        100 + n / 62500,
                        (n / 250) % 250,
                        n % 250 + 1
                    ),
                    false,
                ));
                let p = pods.replace_status(&p).await?;
                anyhow::Ok(p)
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;
    println!(
        "{services} Services and {} pods written in {:.1} s",
        created.len(),
        t.elapsed().as_secs_f64()
    );

    // Watch slices: the first time a pending pod shows up ready, record its latency.
    let pending: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let not_ready_seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    {
        let (pending, latencies, seen) =
            (pending.clone(), latencies.clone(), not_ready_seen.clone());
        let api: Api<EndpointSlice> = client.namespaced("default");
        let token = stop.clone();
        tokio::spawn(async move {
            let mut events = std::pin::pin!(watcher::watcher(api, watcher::Config::default()));
            loop {
                let ev = tokio::select! {
                    _ = token.cancelled() => break,
                    ev = events.next() => ev,
                };
                let slice = match ev {
                    Some(Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s))) => s,
                    Some(_) => continue,
                    None => break,
                };
                let now = Instant::now();
                seen.lock()
                    .expect("lock")
                    .insert(slice.name_any(), slice.endpoints.len());
                let mut pending = pending.lock().expect("lock");
                for e in &slice.endpoints {
                    if e.conditions.as_ref().and_then(|c| c.ready) != Some(true) {
                        continue;
                    }
                    let Some(uid) = e.target_ref.as_ref().and_then(|r| r.uid.clone()) else {
                        continue;
                    };
                    if let Some(t0) = pending.remove(&uid) {
                        latencies.lock().expect("lock").push(now - t0);
                    }
                }
            }
        });
    }
    let t = Instant::now();
    loop {
        let total: usize = not_ready_seen.lock().expect("lock").values().sum();
        if total >= services * per {
            break;
        }
        if t.elapsed() > Duration::from_secs(600) {
            anyhow::bail!("only {total} endpoints in slices after 10 min");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "all {} endpoints in slices {:.1} s after the last pod write",
        services * per,
        t.elapsed().as_secs_f64()
    );

    // Flip pods to Ready at a steady rate, spread over the Services.
    let order: Vec<Pod> = (0..flips)
        .map(|k| created[(k % services) * per + (k / services) % per].clone())
        .collect();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let t = Instant::now();
    let mut writes = Vec::new();
    for (k, p) in order.into_iter().enumerate() {
        let due = t + interval * k as u32;
        tokio::time::sleep_until(due.into()).await;
        let (pods, pending) = (pods.clone(), pending.clone());
        writes.push(tokio::spawn(async move {
            let mut p = p;
            let ip = p
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.clone())
                .unwrap_or_default();
            p.status = Some(status(&ip, true));
            pending
                .lock()
                .expect("lock")
                .insert(p.uid().unwrap_or_default(), Instant::now());
            let _ = pods.replace_status(&p).await;
        }));
    }
    for w in writes {
        let _ = w.await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pending.lock().expect("lock").is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut l = latencies.lock().expect("lock").clone();
    l.sort();
    println!(
        "{} of {flips} pods Ready → slice updated at {rate}/s: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} never seen)",
        l.len(),
        percentile(&l, 0.5),
        percentile(&l, 0.9),
        percentile(&l, 0.99),
        percentile(&l, 1.0),
        pending.lock().expect("lock").len()
    );
    let _ = cm.start_kill();
    stop.cancel();
    Ok(())
}
