//! The real kubectl on the commands that patch: client-side apply (created / unchanged /
//! configured, last-applied-configuration round trip), server-side apply, set image, edit through
//! KUBE_EDITOR, rollout restart/pause/resume; and deletions that cascade or wait.

mod kubectl_common;

use kubectl_common::Cluster;

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        ports: [{containerPort: 80}]
      - name: sidecar
        image: busybox:1.36
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_side_apply_created_unchanged_configured() {
    let c = Cluster::start().await;
    let out = c.with_manifest(&["apply"], DEPLOYMENT).await.ok();
    assert_eq!(out.stdout.trim(), "deployment.apps/web created");
    let out = c.with_manifest(&["apply"], DEPLOYMENT).await.ok();
    assert_eq!(out.stdout.trim(), "deployment.apps/web unchanged");

    let changed = DEPLOYMENT
        .replace("replicas: 2", "replicas: 4")
        .replace("nginx:1.27", "nginx:1.28");
    let out = c.with_manifest(&["apply"], &changed).await.ok();
    assert_eq!(out.stdout.trim(), "deployment.apps/web configured");
    let d = c
        .kubectl(&["get", "deploy", "web", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(d["spec"]["replicas"], 4);
    let containers = &d["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers[0]["image"], "nginx:1.28");
    assert_eq!(
        containers[1]["image"], "busybox:1.36",
        "the merge keeps the other container"
    );
    assert_eq!(containers[0]["ports"][0]["containerPort"], 80);

    // The last applied configuration round-trips.
    let out = c
        .kubectl(&["apply", "view-last-applied", "deployment/web", "-o", "json"])
        .await
        .ok();
    let last = out.json();
    assert_eq!(last["spec"]["replicas"], 4);
    assert_eq!(
        last["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.28"
    );

    // Removing a container from the manifest removes it from the object.
    let one = changed.replace("      - name: sidecar\n        image: busybox:1.36\n", "");
    c.with_manifest(&["apply"], &one).await.ok();
    let d = c
        .kubectl(&["get", "deploy", "web", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_and_dry_run() {
    let c = Cluster::start().await;
    let out = c
        .with_manifest(&["apply", "--server-side"], DEPLOYMENT)
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "deployment.apps/web serverside-applied");
    let changed = DEPLOYMENT.replace("nginx:1.27", "nginx:1.29");
    let out = c
        .with_manifest(&["apply", "--server-side", "--dry-run=server"], &changed)
        .await
        .ok();
    assert_eq!(
        out.stdout.trim(),
        "deployment.apps/web serverside-applied (server dry run)"
    );
    let image = c
        .kubectl(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ])
        .await
        .ok()
        .stdout;
    assert_eq!(image, "nginx:1.27", "a dry run changes nothing");
    c.with_manifest(&["apply", "--server-side"], &changed)
        .await
        .ok();
    let d = c
        .kubectl(&[
            "get",
            "deploy",
            "web",
            "-o",
            "json",
            "--show-managed-fields",
        ])
        .await
        .ok()
        .json();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.29"
    );
    let managers: Vec<&str> = d["metadata"]["managedFields"]
        .as_array()
        .map(|m| m.iter().filter_map(|e| e["manager"].as_str()).collect())
        .unwrap_or_default();
    assert!(managers.contains(&"kubectl"), "{managers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_image_edit_and_rollout_restart_pause_resume() {
    let c = Cluster::start().await;
    c.with_manifest(&["create"], DEPLOYMENT).await.ok();
    let out = c
        .kubectl(&["set", "image", "deployment/web", "nginx=nginx:1.30"])
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "deployment.apps/web image updated");
    let image = |d: &serde_json::Value, i: usize| {
        d["spec"]["template"]["spec"]["containers"][i]["image"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let d = c
        .kubectl(&["get", "deploy", "web", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(
        (image(&d, 0), image(&d, 1)),
        ("nginx:1.30".into(), "busybox:1.36".into())
    );

    // `kubectl edit` with an editor that changes the replicas.
    let out = c
        .kubectl_env(
            &["edit", "deployment/web"],
            "",
            &[("KUBE_EDITOR", "sed -i s/replicas:\\ 2/replicas:\\ 7/")],
        )
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "deployment.apps/web edited");
    let d = c
        .kubectl(&["get", "deploy", "web", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(d["spec"]["replicas"], 7);

    let out = c
        .kubectl(&["rollout", "restart", "deployment/web"])
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "deployment.apps/web restarted");
    let d = c
        .kubectl(&["get", "deploy", "web", "-o", "json"])
        .await
        .ok()
        .json();
    assert!(
        d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_string(),
        "{d}"
    );
    let out = c
        .kubectl(&["rollout", "pause", "deployment/web"])
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "deployment.apps/web paused");
    let d = c
        .kubectl(&["get", "deploy", "web", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(d["spec"]["paused"], true);
    let out = c
        .kubectl(&["rollout", "resume", "deployment/web"])
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "deployment.apps/web resumed");
    let d = c
        .kubectl(&["get", "deploy", "web", "-o", "json"])
        .await
        .ok()
        .json();
    assert!(
        d["spec"]["paused"].is_null() || d["spec"]["paused"] == false,
        "{d}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_that_wait_or_cascade() {
    let c = Cluster::start().await;
    c.kubectl(&["create", "namespace", "team"]).await.ok();
    let pod = "apiVersion: v1
kind: Pod
metadata: {name: bound, namespace: team}
spec:
  nodeName: node-1
  containers: [{name: c, image: busybox}]
";
    c.with_manifest(&["create"], pod).await.ok();
    // A pod on a node is deleted gracefully: it stays Terminating until its kubelet lets go.
    let out = c
        .kubectl(&["-n", "team", "delete", "pod", "bound", "--wait=false"])
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "pod \"bound\" deleted");
    let rows = c.kubectl(&["-n", "team", "get", "pods"]).await.ok().rows();
    assert_eq!(rows[1][..3], ["bound", "0/1", "Terminating"]);
    let out = c
        .kubectl(&[
            "-n",
            "team",
            "delete",
            "pod",
            "bound",
            "--grace-period=0",
            "--force",
        ])
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "pod \"bound\" force deleted");

    // A namespace being deleted is Terminating and refuses new content.
    c.with_manifest(&["create"], pod).await.ok();
    let out = c
        .kubectl(&["delete", "namespace", "team", "--wait=false"])
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "namespace \"team\" deleted");
    let rows = c.kubectl(&["get", "namespace", "team"]).await.ok().rows();
    assert_eq!(rows[1][..2], ["team", "Terminating"]);
    let out = c
        .kubectl(&["-n", "team", "create", "configmap", "x"])
        .await
        .failed();
    assert!(
        out.stderr.contains(
            "unable to create new content in namespace team because it is being terminated"
        ),
        "{}",
        out.stderr
    );
}
