//! Benchmark program (issue 8): namespace deletion time — `DELETE namespace` → the namespace is
//! gone — for a namespace holding 10,000 objects of ten kinds.
//!
//! ```sh
//! cargo build --release -p niwa-controller-manager --bin niwa-controller-manager --example namespace_bench
//! target/release/examples/namespace_bench [--objects 10000]
//! ```
//!
//! The store and apiserver run in this process; the controller-manager (`--controllers
//! namespace,garbagecollector`) runs as its own process (the release binary next to this example),
//! so its CPU time is measured alone. The objects: ConfigMaps and Secrets (20 % each), Services,
//! ServiceAccounts, unscheduled Pods and Endpoints (10 % each), PersistentVolumeClaims, Events,
//! ControllerRevisions and suspended Jobs (5 % each). The namespace's deletion is timed to the
//! moment a GET says NotFound (polled every 20 ms), with the time until its content is gone
//! (lists every 100 ms) on the way.

use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use niwa_client::k8s::api::core::v1::Namespace;
use niwa_client::{Api, ListParams};
use serde_json::{Value, json};

mod common;
use common::{arg, proc_usage};

/// (group, version, plural, share of the objects in ‰, object body by index).
type Kind = (
    &'static str,
    &'static str,
    &'static str,
    usize,
    fn(usize) -> Value,
);

const KINDS: &[Kind] = &[
    ("", "v1", "configmaps", 200, |i| {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i}")},
            "data": {"key": "value"}})
    }),
    ("", "v1", "secrets", 200, |i| {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("secret-{i}")},
            "stringData": {"password": "hunter2"}})
    }),
    ("", "v1", "services", 100, |i| {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": format!("svc-{i}")},
            "spec": {"ports": [{"port": 80}]}})
    }),
    ("", "v1", "serviceaccounts", 100, |i| {
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": format!("sa-{i}")}})
    }),
    ("", "v1", "pods", 100, |i| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("pod-{i}")},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
    }),
    ("", "v1", "endpoints", 100, |i| {
        json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": format!("ep-{i}")},
            "subsets": [{"addresses": [{"ip": "127.244.1.2"}], "ports": [{"port": 80}]}]})
    }),
    ("", "v1", "persistentvolumeclaims", 50, |i| {
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": format!("pvc-{i}")},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    }),
    ("", "v1", "events", 50, |i| {
        json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": format!("ev-{i}")},
            "involvedObject": {"kind": "Pod", "name": format!("pod-{i}")},
            "reason": "Bench", "message": "m", "type": "Normal"})
    }),
    ("apps", "v1", "controllerrevisions", 50, |i| {
        json!({"apiVersion": "apps/v1", "kind": "ControllerRevision",
            "metadata": {"name": format!("rev-{i}")}, "data": {"spec": {}}, "revision": 1})
    }),
    ("batch", "v1", "jobs", 50, |i| {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": format!("job-{i}")},
            "spec": {"suspend": true, "template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox"}]}}}})
    }),
];

/// How many objects the namespace still holds (of the bench's kinds).
async fn count(client: &niwa_client::Client, ns: &str) -> usize {
    let mut n = 0;
    for (group, version, plural, _, _) in KINDS {
        let api = client.dynamic(group, version, plural, Some(ns));
        n += api
            .list(&ListParams::default())
            .await
            .map(|l| l.items.len())
            .unwrap_or(0);
    }
    n
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let objects = arg("--objects", 10_000);
    let cp = niwa_testkit::ControlPlane::start().await;
    let client = cp.client();
    let mut cm = common::controller_manager(
        &cp.api_url(),
        &["--controllers", "namespace,garbagecollector"],
    )?;
    let cm_pid = cm.id().unwrap_or(0);

    let ns = "bench";
    let namespaces: Api<Namespace> = client.cluster();
    namespaces
        .create(&serde_json::from_value(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )?)
        .await?;
    let mut work = Vec::new();
    for (group, version, plural, share, body) in KINDS {
        for i in 0..objects * share / 1000 {
            work.push((client.dynamic(group, version, plural, Some(ns)), body(i)));
        }
    }
    let t = Instant::now();
    let failed = stream::iter(work)
        .map(|(api, body)| async move { api.create(&body).await.err() })
        .buffer_unordered(32)
        .filter_map(|e| async move { e })
        .collect::<Vec<_>>()
        .await;
    if let Some(e) = failed.first() {
        anyhow::bail!("{} creates failed, the first: {e}", failed.len());
    }
    let present = count(&client, ns).await;
    println!(
        "{present} objects of {} kinds created in {:.1} s",
        KINDS.len(),
        t.elapsed().as_secs_f64()
    );

    let (cpu0, _) = proc_usage(cm_pid);
    let t = Instant::now();
    namespaces.delete(ns, &Default::default()).await?;
    let mut emptied = None;
    let mut last_count = Instant::now();
    let gone = loop {
        if namespaces.get_opt(ns).await?.is_none() {
            break t.elapsed();
        }
        if emptied.is_none() && last_count.elapsed() >= Duration::from_millis(100) {
            last_count = Instant::now();
            if count(&client, ns).await == 0 {
                emptied = Some(t.elapsed());
            }
        }
        if t.elapsed() > Duration::from_secs(900) {
            anyhow::bail!("namespace not gone after 15 min");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (cpu1, rss) = proc_usage(cm_pid);
    println!(
        "delete namespace with {present} objects → gone: {:.2} s ({:.0} objects/s; empty after {}); \
         controller-manager CPU {:.2} s, RSS {rss:.0} MiB",
        gone.as_secs_f64(),
        present as f64 / gone.as_secs_f64(),
        emptied.map_or("?".to_string(), |e| format!("{:.2} s", e.as_secs_f64())),
        cpu1 - cpu0
    );
    let _ = cm.start_kill();
    Ok(())
}
