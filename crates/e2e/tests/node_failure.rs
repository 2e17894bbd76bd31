//! Test group "node failure" (one 3-node cluster):
//! * nodes 1 and 2: their daemons killed with SIGKILL — the supervisor restarts them (and `niwa
//!   status` shows the restart), the node stays Ready, and its pods keep running and serving
//!   throughout, adopted by the new kubelet;
//! * node 3: its kubelet frozen with SIGSTOP (it stops heartbeating without exiting) — the node
//!   becomes NotReady and tainted unreachable, its pods are evicted after their tolerationSeconds
//!   and replaced on live nodes; thawed, the node is Ready and untainted again.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use niwa_cluster::Phase;
use niwa_e2e::{Cluster, eventually, http, run_all, scenario, served_by};

const MIN: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_failure() {
    let c = Cluster::up(3).expect("cluster up");
    run_all(vec![
        scenario("kubelet and proxy killed", daemons_killed(&c)),
        scenario("node unreachable", node_unreachable(&c)),
    ])
    .await;
}

/// Waits until the supervisor restarted `component` (restarts ≥ 1, running under a new pid).
async fn restarted(c: &Cluster, component: &str, old_pid: u32) -> Result<()> {
    eventually(&format!("{component} restarted"), MIN, || async {
        let state = c.state()?;
        let s = state
            .components
            .iter()
            .find(|s| s.name == component)
            .context("component gone from the state")?;
        ensure!(
            s.restarts >= 1 && s.phase == Phase::Running && s.pid != Some(old_pid),
            "{component}: {:?}, restarts {}, pid {:?}",
            s.phase,
            s.restarts,
            s.pid
        );
        Ok(())
    })
    .await
}

async fn daemons_killed(c: &Cluster) -> Result<()> {
    let ns = "nodes";
    c.namespace(ns).await?;
    // One pod pinned to each node, and a NodePort Service over both.
    let mut yaml = String::new();
    for n in 1..=2 {
        yaml.push_str(&format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: web-{n}, labels: {{app: web}}}}
spec:
  nodeName: node-{n}
  containers:
  - {{name: nginx, image: nginx, readinessProbe: {{httpGet: {{path: /, port: 80}}, periodSeconds: 1}}}}
---
"#
        ));
    }
    c.apply(ns, &yaml).await?;
    for n in 1..=2 {
        c.wait_pod_ready(ns, &format!("web-{n}"), MIN).await?;
    }
    c.kubectl(&[
        "expose",
        "pod",
        "web-1",
        "--name=web",
        "--type=NodePort",
        "--port=80",
        "--selector=app=web",
        "-n",
        ns,
    ])
    .await?;
    let port = c
        .jsonpath(ns, &["svc", "web"], "{.spec.ports[0].nodePort}")
        .await?;
    let ip1 = c.jsonpath(ns, &["pod", "web-1"], "{.status.podIP}").await?;
    let pid1 = c.container_pid(ns, "web-1", "nginx").await?;

    // The kubelet of node-1 dies.
    let old = c.kill_component("kubelet-node-1")?;
    // Its pod does not: the container outlives the kubelet and keeps serving.
    let page = http::get_ok(&format!("{ip1}:80"), "/").await?;
    ensure!(served_by(&page) == "web-1", "web-1's IP: {page}");
    restarted(c, "kubelet-node-1", old).await?;
    let status = c.niwa(&["status"]).await?;
    let line = status
        .lines()
        .find(|l| l.starts_with("kubelet-node-1 "))
        .with_context(|| format!("niwa status has no kubelet-node-1 line:\n{status}"))?;
    let cols: Vec<&str> = line.split_whitespace().collect();
    ensure!(
        cols.get(1) == Some(&"running") && cols.get(3).is_some_and(|r| *r != "0"),
        "niwa status shows the restart: {line}"
    );
    ensure!(
        line.contains("SIGKILL") || line.contains("signal"),
        "last exit: {line}"
    );
    // The node stays (or is again) Ready; the new kubelet adopted the pod: same process, no restart.
    eventually("node-1 Ready", MIN, || async {
        let ready = c
            .kubectl(&[
                "get",
                "node",
                "node-1",
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ])
            .await?;
        ensure!(ready.trim() == "True", "Ready={ready:?}");
        Ok(())
    })
    .await?;
    c.wait_pod_ready(ns, "web-1", MIN).await?;
    let restarts = c
        .jsonpath(
            ns,
            &["pod", "web-1"],
            "{.status.containerStatuses[0].restartCount}",
        )
        .await?;
    ensure!(
        restarts == "0",
        "web-1 restartCount {restarts} after the kubelet restart"
    );
    let pid = c.container_pid(ns, "web-1", "nginx").await?;
    ensure!(
        pid == pid1,
        "web-1's container pid {pid1} → {pid}: not adopted"
    );
    // The restarted kubelet still manages its pods: a deleted pod goes away.
    c.apply(
        ns,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: after}\nspec:\n  nodeName: node-1\n  containers: [{name: c, image: pause}]\n",
    )
    .await?;
    c.wait_pod_ready(ns, "after", MIN).await?;

    // The proxy of node-2 dies: the NodePort on node-2 answers again once it is back.
    let old = c.kill_component("proxy-node-2")?;
    restarted(c, "proxy-node-2", old).await?;
    let addr = format!("{}:{port}", c.node_ip(2));
    let page = eventually(
        &format!("NodePort {addr} after the proxy restart"),
        MIN,
        || http::get_ok(&addr, "/"),
    )
    .await?;
    ensure!(served_by(&page).starts_with("web-"), "{addr}: {page}");
    Ok(())
}

/// The Ready condition of a node and its taints' keys.
async fn node_health(c: &Cluster, node: &str) -> Result<(String, String)> {
    let ready = c
        .kubectl(&[
            "get",
            "node",
            node,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ])
        .await?;
    let taints = c
        .kubectl(&["get", "node", node, "-o", "jsonpath={.spec.taints[*].key}"])
        .await?;
    Ok((ready.trim().to_string(), taints.trim().to_string()))
}

/// Whether the cluster's controller-manager runs the node lifecycle controller (it landed after
/// this suite): its log names the controllers it starts.
async fn has_node_lifecycle(c: &Cluster) -> bool {
    let log = c.data_dir().join("logs").join("controller-manager.log");
    eventually(
        "controller-manager started its controllers",
        Duration::from_secs(10),
        || async {
            let text = std::fs::read_to_string(&log)?;
            ensure!(text.contains("starting controllers"), "not yet");
            Ok(text.contains("\"node-lifecycle-controller\""))
        },
    )
    .await
    .unwrap_or(false)
}

async fn node_unreachable(c: &Cluster) -> Result<()> {
    if !has_node_lifecycle(c).await {
        eprintln!("e2e: NOTE node unreachable skipped: no node lifecycle controller in this build");
        return Ok(());
    }
    let ns = "unreachable";
    c.namespace(ns).await?;
    // Three replicas, one per node, that tolerate an unreachable node for 5 s (instead of the
    // default 300 s). Tainted nodes leave the spread (nodeTaintsPolicy Honor), so the
    // replacement of node-3's replica fits on the others.
    c.apply(
        ns,
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, nodeTaintsPolicy: Honor, labelSelector: {matchLabels: {app: web}}}
      tolerations:
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 5}
      - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 5}
      containers:
      - {name: nginx, image: nginx}
"#,
    )
    .await?;
    c.rollout_status(ns, "web").await?;
    let on_node3 = c
        .jsonpath(
            ns,
            &[
                "pods",
                "-l",
                "app=web",
                "--field-selector=spec.nodeName=node-3",
            ],
            "{.items[*].metadata.name}",
        )
        .await?;
    ensure!(!on_node3.is_empty(), "no replica on node-3");

    let frozen = c.freeze_component("kubelet-node-3")?;
    // node-monitor-grace-period is 40 s.
    eventually(
        "node-3 NotReady and tainted unreachable",
        Duration::from_secs(90),
        || async {
            let (ready, taints) = node_health(c, "node-3").await?;
            ensure!(
                ready != "True" && taints.contains("node.kubernetes.io/unreachable"),
                "Ready={ready:?}, taints {taints:?}"
            );
            Ok(())
        },
    )
    .await?;
    // Evicted after 5 s and replaced: both replicas Ready, none on node-3.
    eventually(
        "node-3's pod evicted and replaced",
        Duration::from_secs(60),
        || async {
            // name@node@deletionTimestamp: an evicted pod on a silent node stays Terminating
            // (its kubelet cannot confirm), as in Kubernetes; it no longer counts.
            let pods = c
                .jsonpath(
                    ns,
                    &["pods", "-l", "app=web"],
                    "{range .items[*]}{.metadata.name}@{.spec.nodeName}@{.metadata.deletionTimestamp} {end}",
                )
                .await?;
            let live: Vec<&str> = pods.split_whitespace().filter(|p| p.ends_with('@')).collect();
            let ready = c
                .jsonpath(ns, &["deployment", "web"], "{.status.readyReplicas}")
                .await?;
            ensure!(
                live.len() == 3
                    && live.iter().all(|p| !p.contains("@node-3@"))
                    && !live.iter().any(|p| p.starts_with(&format!("{on_node3}@")))
                    && ready == "3",
                "pods {pods:?}, ready {ready:?}"
            );
            Ok(())
        },
    )
    .await?;
    frozen.thaw();
    // Back: the controller sees its Lease renewed and lifts the taints, so pods schedule there
    // again.
    eventually("node-3 untainted", Duration::from_secs(60), || async {
        let (_, taints) = node_health(c, "node-3").await?;
        ensure!(!taints.contains("unreachable"), "taints {taints:?}");
        Ok(())
    })
    .await?;
    // A kubelet that was away posts its status as soon as its Lease renews again.
    eventually("node-3 Ready", Duration::from_secs(20), || async {
        let (ready, _) = node_health(c, "node-3").await?;
        ensure!(ready == "True", "Ready={ready:?}");
        Ok(())
    })
    .await?;
    Ok(())
}
