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
//!
//! Where the time goes: a second watcher on pods times the same writes to the pod watch event
//! that shows them Ready (the apiserver's part: write, store, watch fan-out), so slice latency
//! minus pod-event latency is the controller-manager's part (its informer, queue, sync and slice
//! write); and the CPU seconds of the controller-manager process and of this one (store and
//! apiserver) during the flips.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use niwa_client::k8s::api::core::v1::{Pod, PodCondition, PodStatus, Service};
use niwa_client::k8s::api::discovery::v1::EndpointSlice;
use niwa_client::{Api, ResourceExt};
use tokio_util::sync::CancellationToken;

mod common;
use common::{arg, proc_usage, summary};

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

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let services = arg("--services", 1000);
    let per = arg("--pods", 10);
    let flips = arg("--flips", 2000).min(services * per);
    let rate = arg("--rate", 200).max(1);
    let cp = niwa_testkit::ControlPlane::start().await;
    let client = cp.client();
    let stop = CancellationToken::new();

    let mut cm =
        common::controller_manager(&cp.api_url(), &["--controllers", "endpointslice,endpoint"])?;
    let cm_pid = cm.id().unwrap_or(0);

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
        common::watch_objects(api, stop.clone(), move |slice: EndpointSlice| {
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
        });
    }
    // Watch pods: the first time a pending pod shows up Ready, record the apiserver's part.
    let pod_pending: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let pod_latencies: Arc<Mutex<Vec<Duration>>> = Arc::default();
    {
        let (pending, latencies) = (pod_pending.clone(), pod_latencies.clone());
        let api: Api<Pod> = client.namespaced("default");
        common::watch_objects(api, stop.clone(), move |pod: Pod| {
            let now = Instant::now();
            let ready = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            if !ready {
                return;
            }
            let uid = pod.uid().unwrap_or_default();
            if let Some(t0) = pending.lock().expect("lock").remove(&uid) {
                latencies.lock().expect("lock").push(now - t0);
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
    let (cm_cpu0, _) = proc_usage(cm_pid);
    let (own_cpu0, _) = proc_usage(std::process::id());
    let t = Instant::now();
    let mut writes = Vec::new();
    for (k, p) in order.into_iter().enumerate() {
        let due = t + interval * k as u32;
        tokio::time::sleep_until(due.into()).await;
        let (pods, pending, pod_pending) = (pods.clone(), pending.clone(), pod_pending.clone());
        writes.push(tokio::spawn(async move {
            let mut p = p;
            let ip = p
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.clone())
                .unwrap_or_default();
            p.status = Some(status(&ip, true));
            let (uid, now) = (p.uid().unwrap_or_default(), Instant::now());
            pod_pending.lock().expect("lock").insert(uid.clone(), now);
            pending.lock().expect("lock").insert(uid, now);
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
    let (cm_cpu1, cm_rss) = proc_usage(cm_pid);
    let (own_cpu1, _) = proc_usage(std::process::id());
    let span = t.elapsed().as_secs_f64();
    let l = latencies.lock().expect("lock").clone();
    println!(
        "{} of {flips} pods Ready → slice updated at {rate}/s: {} ({} never seen)",
        l.len(),
        summary(&l),
        pending.lock().expect("lock").len()
    );
    let pl = pod_latencies.lock().expect("lock").clone();
    println!(
        "  of which write → pod watch event (apiserver): {}",
        summary(&pl)
    );
    println!(
        "  CPU over the {span:.1} s of flips: controller-manager {:.2} s ({:.0} %, RSS {cm_rss:.0} MiB), \
         store + apiserver + watchers (this process) {:.2} s",
        cm_cpu1 - cm_cpu0,
        (cm_cpu1 - cm_cpu0) / span * 100.0,
        own_cpu1 - own_cpu0
    );
    let _ = cm.start_kill();
    stop.cancel();
    Ok(())
}
