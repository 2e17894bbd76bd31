//! Test group "workloads" (one 2-node cluster): the README walkthrough's pods, namespaces, labels
//! and selectors, ReplicaSet self-healing, Deployment rollout and rollback, ConfigMap and Secret,
//! Job and CronJob — each scenario in its own namespace, all at once.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use futures::StreamExt;
use niwa_client::k8s::api::core::v1::Pod;
use niwa_client::{DeleteParams, ListParams, ResourceExt, WatchEvent, WatchParams};
use niwa_e2e::{Cluster, eventually, http, run_all, scenario};

#[path = "workloads/batch.rs"]
mod batch;
#[path = "workloads/pods.rs"]
mod pods;

use batch::{cronjob, job};
use pods::pods;

const MIN: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workloads() {
    let c = Cluster::up(2).expect("cluster up");
    run_all(vec![
        scenario("pods", pods(&c)),
        scenario("namespaces and labels", namespaces_and_labels(&c)),
        scenario("replicaset self-healing", replicaset_self_healing(&c)),
        scenario("deployment rollout and rollback", deployment_rollout(&c)),
        scenario("configmap and secret", config_and_secret(&c)),
        scenario("job", job(&c)),
        scenario("cronjob", cronjob(&c)),
    ])
    .await;
}

/// Namespaces isolate names; equality- and set-based selectors; `kubectl label`.
async fn namespaces_and_labels(c: &Cluster) -> Result<()> {
    for ns in ["team-a", "team-b"] {
        c.namespace(ns).await?;
    }
    for (ns, name, labels) in [
        ("team-a", "front", "app=shop,tier=frontend"),
        ("team-a", "back", "app=shop,tier=backend"),
        ("team-a", "cache", "app=cache"),
        ("team-b", "front", "app=shop,tier=frontend"),
    ] {
        c.kubectl(&[
            "run",
            name,
            "--image=pause",
            "-n",
            ns,
            &format!("--labels={labels}"),
        ])
        .await?;
    }
    // Same name in two namespaces; each namespace sees its own.
    let a = c.pod_names("team-a", "app").await?;
    ensure!(a == ["back", "cache", "front"], "team-a: {a:?}");
    let b = c.pod_names("team-b", "app").await?;
    ensure!(b == ["front"], "team-b: {b:?}");
    for (selector, want) in [
        ("tier=frontend", vec!["front"]),
        ("app=shop,tier!=frontend", vec!["back"]),
        ("tier in (frontend,backend)", vec!["back", "front"]),
        ("!tier", vec!["cache"]),
        ("app notin (shop)", vec!["cache"]),
    ] {
        let got = c.pod_names("team-a", selector).await?;
        ensure!(got == want, "-l '{selector}': {got:?}, want {want:?}");
    }
    let all = c
        .kubectl(&[
            "get",
            "pods",
            "-A",
            "-l",
            "app=shop",
            "-o",
            "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name} {end}",
        ])
        .await?;
    let all: BTreeSet<&str> = all.split_whitespace().collect();
    let want: BTreeSet<&str> = ["team-a/back", "team-a/front", "team-b/front"].into();
    ensure!(all == want, "-A -l app=shop: {all:?}");

    // Field selectors: every pod is on one of the two nodes.
    let mut on_nodes = 0;
    for node in ["node-1", "node-2"] {
        let sel = format!("--field-selector=spec.nodeName={node}");
        let out = c
            .kubectl(&["get", "pods", "-n", "team-a", &sel, "-o", "name"])
            .await?;
        on_nodes += out.lines().count();
    }
    ensure!(on_nodes == 3, "team-a pods by node add up to {on_nodes}");
    c.kubectl(&["label", "pod", "cache", "-n", "team-a", "env=prod"])
        .await?;
    let prod = c.pod_names("team-a", "env=prod").await?;
    ensure!(prod == ["cache"], "after label: {prod:?}");
    c.kubectl(&["label", "pod", "cache", "-n", "team-a", "env-"])
        .await?;
    ensure!(
        c.pod_names("team-a", "env").await?.is_empty(),
        "label removed"
    );

    // The gRPC client's label selector agrees.
    let client = c.client().await?;
    let pods = client
        .namespaced::<Pod>("team-a")
        .list(&ListParams::default().labels("tier in (frontend,backend)"))
        .await?;
    ensure!(
        pods.items.len() == 2,
        "gRPC set-based list: {}",
        pods.items.len()
    );

    // Deleting a namespace deletes what is in it, then the namespace itself.
    c.kubectl(&["delete", "namespace", "team-b", "--wait=false"])
        .await?;
    eventually("namespace team-b gone", MIN, || async {
        let left = c.kubectl(&["get", "namespaces", "-o", "name"]).await?;
        ensure!(!left.contains("namespace/team-b"), "namespaces: {left}");
        Ok(())
    })
    .await?;
    ensure!(
        c.pod_names("team-b", "app").await?.is_empty(),
        "team-b's pods outlived it"
    );
    let a = c.pod_names("team-a", "app").await?;
    ensure!(a.len() == 3, "team-a untouched: {a:?}");
    Ok(())
}

/// A ReplicaSet replaces a deleted pod; a container killed with SIGKILL restarts in place.
async fn replicaset_self_healing(c: &Cluster) -> Result<()> {
    let ns = "rs";
    c.namespace(ns).await?;
    c.apply(
        ns,
        r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: nginx
        image: nginx
        readinessProbe: {httpGet: {path: /, port: 80}, periodSeconds: 1}
"#,
    )
    .await?;
    let ready = || async {
        let n = c
            .jsonpath(ns, &["rs", "web"], "{.status.readyReplicas}")
            .await?;
        ensure!(n == "3", "readyReplicas {n:?}");
        c.pod_names(ns, "app=web").await
    };
    let before = eventually("3 ready replicas", MIN, ready).await?;
    ensure!(before.len() == 3, "pods {before:?}");

    let victim = &before[0];
    c.kubectl(&["delete", "pod", victim, "-n", ns, "--wait=false"])
        .await?;
    let after = eventually("a replacement pod", MIN, || async {
        let names = ready().await?;
        ensure!(
            names.len() == 3 && !names.contains(victim),
            "pods {names:?}"
        );
        Ok(names)
    })
    .await?;
    let fresh: Vec<&String> = after.iter().filter(|n| !before.contains(n)).collect();
    ensure!(
        fresh.len() == 1,
        "one new pod: before {before:?}, after {after:?}"
    );

    // kill -9 the container process: the kubelet restarts it, same pod.
    let pod = &after[0];
    let old_pid = c.kill_container(ns, pod, "nginx").await?;
    eventually("container restarted after kill -9", MIN, || async {
        let restarts = c
            .jsonpath(
                ns,
                &["pod", pod],
                "{.status.containerStatuses[0].restartCount}",
            )
            .await?;
        ensure!(restarts == "1", "restartCount {restarts:?}");
        let pid = c.container_pid(ns, pod, "nginx").await?;
        ensure!(pid != old_pid, "still pid {pid}");
        Ok(())
    })
    .await?;
    c.wait_pod_ready(ns, pod, MIN).await?;
    let ip = c.jsonpath(ns, &["pod", pod], "{.status.podIP}").await?;
    http::get_ok(&format!("{ip}:80"), "/").await?;
    let names = c.pod_names(ns, "app=web").await?;
    ensure!(
        names == after,
        "the ReplicaSet kept its pods: {names:?} vs {after:?}"
    );
    Ok(())
}

/// `kubectl create deployment`, `rollout status`, `set image`, `rollout history`, `rollout undo`.
async fn deployment_rollout(c: &Cluster) -> Result<()> {
    let ns = "deploy";
    c.namespace(ns).await?;
    c.kubectl(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=2",
        "-n",
        ns,
    ])
    .await?;
    c.rollout_status(ns, "web").await?;
    let serving = |want: &'static str| async move {
        let ips = c
            .jsonpath(
                ns,
                &[
                    "pods",
                    "-l",
                    "app=web",
                    "--field-selector=status.phase=Running",
                ],
                "{.items[*].status.podIP}",
            )
            .await?;
        let ips: Vec<&str> = ips.split_whitespace().collect();
        ensure!(ips.len() == 2, "running pod IPs {ips:?}");
        for ip in ips {
            let page = http::get_ok(&format!("{ip}:80"), "/").await?;
            ensure!(page.contains(want), "{ip} serves {page}");
        }
        Ok(())
    };
    eventually("nginx serving", MIN, || serving("Welcome to nginx!")).await?;

    c.kubectl(&["set", "image", "deployment/web", "nginx=httpd", "-n", ns])
        .await?;
    let out = c.rollout_status(ns, "web").await?;
    ensure!(
        out.contains("successfully rolled out"),
        "rollout status: {out}"
    );
    eventually("httpd serving", MIN, || serving("It works!")).await?;
    let image = c
        .jsonpath(
            ns,
            &["deployment", "web"],
            "{.spec.template.spec.containers[0].image}",
        )
        .await?;
    ensure!(image == "httpd", "image {image}");
    let history = c
        .kubectl(&["rollout", "history", "deployment/web", "-n", ns])
        .await?;
    ensure!(
        history.contains('1') && history.contains('2'),
        "history: {history}"
    );

    c.kubectl(&["rollout", "undo", "deployment/web", "-n", ns])
        .await?;
    c.rollout_status(ns, "web").await?;
    eventually("nginx serving again", MIN, || serving("Welcome to nginx!")).await?;
    let revision = c
        .jsonpath(
            ns,
            &["deployment", "web"],
            "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}",
        )
        .await?;
    ensure!(revision == "3", "revision after undo {revision:?}");
    // The undo reused the first ReplicaSet: still two ReplicaSets, the old one scaled to 0.
    let rs = c
        .jsonpath(
            ns,
            &["rs", "-l", "app=web"],
            "{range .items[*]}{.spec.replicas} {end}",
        )
        .await?;
    let mut replicas: Vec<&str> = rs.split_whitespace().collect();
    replicas.sort();
    ensure!(replicas == ["0", "2"], "ReplicaSets' replicas {replicas:?}");

    c.kubectl(&["scale", "deployment/web", "--replicas=3", "-n", ns])
        .await?;
    eventually("scaled to 3 ready", MIN, || async {
        let ready = c
            .jsonpath(ns, &["deployment", "web"], "{.status.readyReplicas}")
            .await?;
        ensure!(ready == "3", "readyReplicas {ready:?}");
        Ok(())
    })
    .await?;
    Ok(())
}

/// A ConfigMap and a Secret as environment variables and as files.
async fn config_and_secret(c: &Cluster) -> Result<()> {
    let ns = "config";
    c.namespace(ns).await?;
    c.kubectl(&[
        "create",
        "configmap",
        "app",
        "-n",
        ns,
        "--from-literal=greeting=hello-niwa",
    ])
    .await?;
    c.kubectl(&[
        "create",
        "secret",
        "generic",
        "db",
        "-n",
        ns,
        "--from-literal=password=s3cr3t",
    ])
    .await?;
    c.apply(
        ns,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: show}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox
    command: ["sh", "-c", "echo env=$GREETING/$PASSWORD; echo file=$(cat /etc/app/greeting)/$(cat /etc/db/password)"]
    env:
    - name: GREETING
      valueFrom: {configMapKeyRef: {name: app, key: greeting}}
    - name: PASSWORD
      valueFrom: {secretKeyRef: {name: db, key: password}}
    volumeMounts:
    - {name: app, mountPath: /etc/app}
    - {name: db, mountPath: /etc/db}
  volumes:
  - name: app
    configMap: {name: app}
  - name: db
    secret: {secretName: db}
"#,
    )
    .await?;
    c.wait_pod_phase(ns, "show", "Succeeded", MIN).await?;
    let logs = c.kubectl(&["logs", "show", "-n", ns]).await?;
    ensure!(
        logs.contains("env=hello-niwa/s3cr3t") && logs.contains("file=hello-niwa/s3cr3t"),
        "logs: {logs}"
    );
    Ok(())
}
