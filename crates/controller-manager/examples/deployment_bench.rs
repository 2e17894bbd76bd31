//! Benchmark program (issue 7): a Deployment of 10,000 replicas on 1,000 sim nodes, with niwa's
//! scheduler and sim kubelet in the loop.
//!
//! ```sh
//! cargo build --release -p niwa-controller-manager --bin niwa-controller-manager --example deployment_bench
//! target/release/examples/deployment_bench [--replicas 10000] [--nodes 1000]
//! ```
//!
//! The store, apiserver, scheduler and sim kubelet run in this process; the controller-manager runs
//! as its own process (the release binary next to this example), so its CPU time and memory are
//! measured alone (from /proc). Phases: time from `create` to all replicas available; a rolling
//! update (new image, maxSurge 25 %, maxUnavailable 25 %) to all updated and available. Within each,
//! a watch of the pods reports when the last of the phase's pods was created, bound by the
//! scheduler and Ready (sim kubelet), and the CPU time of this process (store, apiserver,
//! scheduler, kubelet) next to the controller-manager's, so the slow stage shows.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use niwa_client::k8s::api::apps::v1::Deployment;
use niwa_client::k8s::api::core::v1::{Node, Pod};
use niwa_client::{Api, Client, Patch};
use tokio_util::sync::CancellationToken;

mod common;
use common::{arg, proc_usage};

/// The daemons this process stands in for (store, apiserver, scheduler, kubelet) all run on
/// mimalloc; under glibc malloc the bench process spent 18 % of its CPU in malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

async fn wait_done(
    client: &Client,
    name: &str,
    replicas: i32,
    revision: &str,
    timeout: Duration,
) -> Result<Duration, String> {
    let api: Api<Deployment> = client.namespaced("default");
    let start = Instant::now();
    loop {
        if let Ok(d) = api.get(name).await {
            let rev = d
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("deployment.kubernetes.io/revision"))
                .cloned();
            // observedGeneration: right after the template patch the revision annotation can
            // read "2" while the status still counts the old ReplicaSet's pods as updated (seen
            // under load: a 0.1 s "rolling update").
            if let Some(st) = d.status
                && st.observed_generation.is_some()
                && st.observed_generation == d.metadata.generation
                && st.available_replicas == Some(replicas)
                && st.updated_replicas == Some(replicas)
                && st.replicas == Some(replicas)
                && rev.as_deref() == Some(revision)
            {
                return Ok(start.elapsed());
            }
        }
        if start.elapsed() > timeout {
            return Err(format!("{name} not done after {timeout:?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Per image: the pods seen, bound and Ready, and when each set first reached the target.
#[derive(Default)]
struct Phases {
    target: usize,
    sets: HashMap<(String, usize), HashSet<String>>,
    reached: HashMap<(String, usize), Instant>,
}

const STAGES: [&str; 3] = ["created", "bound", "Ready"];

impl Phases {
    fn observe(&mut self, pod: &Pod) {
        let Some(name) = pod.metadata.name.clone() else {
            return;
        };
        let image = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        let bound = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .is_some();
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        for (stage, yes) in [true, bound, ready].into_iter().enumerate() {
            if !yes {
                continue;
            }
            let key = (image.clone(), stage);
            let set = self.sets.entry(key.clone()).or_default();
            set.insert(name.clone());
            if set.len() >= self.target {
                self.reached.entry(key).or_insert_with(Instant::now);
            }
        }
    }

    fn report(&self, image: &str, since: Instant) -> String {
        STAGES
            .iter()
            .enumerate()
            .map(
                |(i, stage)| match self.reached.get(&(image.to_string(), i)) {
                    Some(t) => format!("{stage} {:.1} s", t.duration_since(since).as_secs_f64()),
                    None => format!("{stage} —"),
                },
            )
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_string()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let replicas = arg("--replicas", 10_000) as i32;
    let nodes = arg("--nodes", 1_000);
    let cp = niwa_testkit::ControlPlane::start().await;
    let client = cp.client();
    let stop = CancellationToken::new();

    // Sim kubelet: `nodes` nodes in this process, on 127.77.x addresses.
    let mut k = niwa_kubelet::config::KubeletConfig::new(
        &cp.api_url(),
        niwa_kubelet::config::RuntimeKind::Sim,
    );
    k.node_name = "bench".into();
    k.node_ip = std::net::Ipv4Addr::new(127, 77, 0, 1);
    k.pod_cidr = niwa_kubelet::config::PodCidr {
        base: std::net::Ipv4Addr::new(127, 78, 0, 0),
    };
    k.nodes = nodes;
    k.port = 0;
    k.health_port = 0;
    k.events = false;
    let token = stop.clone();
    tokio::spawn(async move {
        if let Err(e) = niwa_kubelet::run(k, token).await {
            eprintln!("sim kubelet failed: {e}");
        }
    });
    let sched = niwa_scheduler::runtime::SchedulerConfig::new(&cp.api_url());
    let token = stop.clone();
    tokio::spawn(async move {
        if let Err(e) = niwa_scheduler::runtime::run(sched, token).await {
            eprintln!("scheduler failed: {e}");
        }
    });
    let nodes_api: Api<Node> = client.all();
    let t = Instant::now();
    loop {
        let ready = nodes_api
            .list(&Default::default())
            .await
            .map(|l| l.items.len())
            .unwrap_or(0);
        if ready >= nodes {
            break;
        }
        if t.elapsed() > Duration::from_secs(300) {
            anyhow::bail!("only {ready} of {nodes} nodes registered");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "{nodes} sim nodes registered in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // The controller-manager as its own process.
    let mut cm = common::controller_manager(&cp.api_url(), &[])?;
    let pid = cm.id().unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (cpu0, _) = proc_usage(pid);

    let d: Deployment = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "bench", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "bench"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "bench"}},
                "spec": {"containers": [{"name": "main", "image": "nginx:1"}]}
            }
        }
    }))?;
    let phases = Arc::new(Mutex::new(Phases {
        target: replicas as usize,
        ..Default::default()
    }));
    {
        let phases = phases.clone();
        common::watch_objects(
            client.namespaced::<Pod>("default"),
            stop.clone(),
            move |p| phases.lock().unwrap_or_else(|e| e.into_inner()).observe(&p),
        );
    }
    let me = std::process::id();
    let deployments: Api<Deployment> = client.namespaced("default");
    let (bench0, _) = proc_usage(me);
    let load0 = loadavg();
    let t = Instant::now();
    deployments.create(&d).await?;
    let up = wait_done(&client, "bench", replicas, "1", Duration::from_secs(900)).await;
    let (cpu1, rss1) = proc_usage(pid);
    let (bench1, _) = proc_usage(me);
    match &up {
        Ok(_) => println!(
            "create → {replicas} available: {:.1} s   (controller-manager CPU {:.1} s, RSS {:.0} MiB)",
            t.elapsed().as_secs_f64(),
            cpu1 - cpu0,
            rss1
        ),
        Err(e) => println!("create: {e}"),
    }
    println!(
        "  last pod {}; bench process CPU {:.1} s; load {load0} → {}",
        phases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .report("nginx:1", t),
        bench1 - bench0,
        loadavg()
    );
    if up.is_ok() {
        let load1 = loadavg();
        let t = Instant::now();
        let patch = serde_json::json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "nginx:2"}]}}}});
        deployments.patch("bench", &Patch::Merge(patch)).await?;
        let rolled = wait_done(&client, "bench", replicas, "2", Duration::from_secs(1800)).await;
        let (cpu2, rss2) = proc_usage(pid);
        let (bench2, _) = proc_usage(me);
        match rolled {
            Ok(_) => println!(
                "rolling update of {replicas} (25%/25%): {:.1} s   (controller-manager CPU {:.1} s, RSS {:.0} MiB)",
                t.elapsed().as_secs_f64(),
                cpu2 - cpu1,
                rss2
            ),
            Err(e) => println!("rolling update: {e}"),
        }
        println!(
            "  last new pod {}; bench process CPU {:.1} s; load {load1} → {}",
            phases
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .report("nginx:2", t),
            bench2 - bench1,
            loadavg()
        );
    }
    let _ = cm.start_kill();
    stop.cancel();
    Ok(())
}
