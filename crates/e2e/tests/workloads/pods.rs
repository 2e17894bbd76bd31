//! Scenario "pods": a pod's life through kubectl and through niwa-client.

use super::*;

/// `kubectl run` (also `-i --rm`, attached), `create -f`, `get -o yaml/jsonpath`, the pod IP
/// answering HTTP, and the same pods through niwa-client's gRPC API.
pub(super) async fn pods(c: &Cluster) -> Result<()> {
    let ns = "pods";
    c.namespace(ns).await?;
    c.kubectl(&["run", "web", "--image=nginx", "-n", ns])
        .await?;
    c.wait_pod_ready(ns, "web", MIN).await?;
    let ip = c.jsonpath(ns, &["pod", "web"], "{.status.podIP}").await?;
    ensure!(
        c.is_pod_ip(&ip),
        "pod IP {ip} outside the cluster's pod CIDR"
    );
    let page = http::get_ok(&format!("{ip}:80"), "/").await?;
    ensure!(page.contains("Welcome to nginx!"), "nginx page: {page}");
    ensure!(
        niwa_e2e::served_by(&page) == "web",
        "page names pod: {page}"
    );
    // logs, exec and describe go through the apiserver to the pod's kubelet.
    let out = c
        .kubectl(&["exec", "web", "-n", ns, "--", "sh", "-c", "echo exec-ok"])
        .await?;
    ensure!(out.contains("exec-ok"), "exec: {out}");
    // `kubectl run -i --rm`, the tutorials' throwaway shell: it reads the script from the
    // attached stdin, its output comes back, and kubectl deletes the pod afterwards.
    let run = [
        "run",
        "-i",
        "--rm",
        "--restart=Never",
        "--image=busybox",
        "shell",
        "-n",
        ns,
        "--",
        "sh",
    ];
    let out = c
        .kubectl_stdin(&run, Some("echo attach-ok $((6*7)); exit\n"))
        .await?;
    ensure!(
        out.contains("attach-ok 42") && out.contains("pod \"shell\" deleted"),
        "run -i --rm: {out}"
    );
    c.kubectl(&["logs", "web", "-n", ns]).await?;
    let described = c.kubectl(&["describe", "pod", "web", "-n", ns]).await?;
    ensure!(
        described.contains("Status:") && described.contains("Running"),
        "describe: {described}"
    );

    let manifest = r#"
apiVersion: v1
kind: Pod
metadata:
  name: apache
  labels: {app: apache}
spec:
  containers:
  - name: httpd
    image: httpd
    ports: [{containerPort: 80}]
"#;
    c.kubectl_stdin(&["create", "-n", ns, "-f", "-"], Some(manifest))
        .await?;
    let again = c
        .kubectl_stdin(&["create", "-n", ns, "-f", "-"], Some(manifest))
        .await;
    ensure!(
        again
            .as_ref()
            .err()
            .is_some_and(|e| format!("{e}").contains("AlreadyExists")),
        "a second create -f must be AlreadyExists: {again:?}"
    );
    c.wait_pod_ready(ns, "apache", MIN).await?;
    let image = c
        .jsonpath(ns, &["pod", "apache"], "{.spec.containers[0].image}")
        .await?;
    ensure!(image == "httpd", "image {image}");
    let yaml = c
        .kubectl(&["get", "pod", "apache", "-n", ns, "-o", "yaml"])
        .await?;
    ensure!(
        yaml.contains("kind: Pod") && yaml.contains("phase: Running"),
        "get -o yaml: {yaml}"
    );
    let apache_ip = c
        .jsonpath(ns, &["pod", "apache"], "{.status.podIP}")
        .await?;
    let page = http::get_ok(&format!("{apache_ip}:80"), "/").await?;
    ensure!(page.contains("It works!"), "httpd page: {page}");

    // The same pods over gRPC, and a pod created over gRPC seen by kubectl.
    let client = c.client().await?;
    let api = client.namespaced::<Pod>(ns);
    let web = api.get("web").await?;
    let grpc_ip = web.status.and_then(|s| s.pod_ip).unwrap_or_default();
    ensure!(grpc_ip == ip, "gRPC pod IP {grpc_ip} vs kubectl {ip}");
    let listed = api
        .list(&ListParams::default().labels("app=apache"))
        .await?;
    ensure!(
        listed.items.len() == 1,
        "gRPC list -l app=apache: {}",
        listed.items.len()
    );
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "from-grpc", "labels": {"made-by": "grpc"}},
        "spec": {"containers": [{"name": "web", "image": "nginx"}]}
    }))?;
    api.create(&pod).await?;
    c.wait_pod_ready(ns, "from-grpc", MIN).await?;
    let names = c.pod_names(ns, "made-by=grpc").await?;
    ensure!(names == ["from-grpc"], "kubectl sees {names:?}");
    let ip = c
        .jsonpath(ns, &["pod", "from-grpc"], "{.status.podIP}")
        .await?;
    http::get_ok(&format!("{ip}:80"), "/").await?;

    // A gRPC watch sees a pod that kubectl creates go from Added to Running.
    let from = api.list(&ListParams::default()).await?.resource_version;
    let mut events = api
        .watch(&WatchParams::default().labels("run=watched"), &from)
        .await?;
    c.kubectl(&["run", "watched", "--image=pause", "-n", ns])
        .await?;
    let mut seen = Vec::new();
    tokio::time::timeout(MIN, async {
        while let Some(ev) = events.next().await {
            match ev? {
                WatchEvent::Added(p) => seen.push(format!("ADDED {}", p.name_any())),
                WatchEvent::Modified(p) => {
                    let phase = p.status.and_then(|s| s.phase).unwrap_or_default();
                    seen.push(format!("MODIFIED {phase}"));
                    if phase == "Running" {
                        break;
                    }
                }
                _ => {}
            }
        }
        Ok::<_, anyhow::Error>(())
    })
    .await
    .with_context(|| format!("watch saw only {seen:?}"))??;
    ensure!(
        seen.first().map(String::as_str) == Some("ADDED watched"),
        "watch events {seen:?}"
    );

    // Delete: through kubectl and through gRPC; both are gone.
    c.kubectl(&[
        "delete",
        "pod",
        "web",
        "-n",
        ns,
        "--wait=true",
        "--timeout=60s",
    ])
    .await?;
    api.delete("from-grpc", &DeleteParams::default()).await?;
    eventually("deleted pods gone", MIN, || async {
        let left = c.pod_names(ns, "run=web").await?;
        let grpc = api.get_opt("from-grpc").await?;
        ensure!(
            left.is_empty() && grpc.is_none(),
            "left {left:?}, from-grpc {}",
            grpc.is_some()
        );
        Ok(())
    })
    .await?;
    Ok(())
}
