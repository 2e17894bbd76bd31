//! Test group "node failure" (one 2-node cluster): a node's daemons killed with SIGKILL — the
//! supervisor restarts them (and `niwa status` shows the restart), the node comes back Ready, and
//! the node's pods keep running and serving throughout, adopted by the new kubelet.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use niwa_cluster::Phase;
use niwa_e2e::{Cluster, eventually, http, run_all, scenario, served_by};

const MIN: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_failure() {
    let c = Cluster::up(2).expect("cluster up");
    run_all(vec![scenario(
        "kubelet and proxy killed",
        daemons_killed(&c),
    )])
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
