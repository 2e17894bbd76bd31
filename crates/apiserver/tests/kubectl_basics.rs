//! The real kubectl against niwa: discovery, version, explain, create/get/delete with every output
//! format and selector, errors as Kubernetes words them, server-side validation and dry-run.

mod kubectl_common;

use kubectl_common::Cluster;

const POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: nginx
  labels: {app: nginx}
spec:
  containers:
  - name: nginx
    image: nginx:1.27
    ports: [{containerPort: 80}]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_discovery_and_explain() {
    let c = Cluster::start().await;
    let out = c.kubectl(&["version"]).await.ok();
    assert!(
        out.stdout.contains("Client Version: v1.33"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("Server Version: v1.33.0+niwa"),
        "{}",
        out.stdout
    );

    let out = c.kubectl(&["api-resources"]).await.ok();
    let rows = out.rows();
    assert_eq!(
        rows[0],
        ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    );
    assert!(rows.contains(&vec![
        "pods".into(),
        "po".into(),
        "v1".into(),
        "true".into(),
        "Pod".into()
    ]));
    assert!(
        rows.iter()
            .any(|r| r == &["deployments", "deploy", "apps/v1", "true", "Deployment"])
    );
    assert!(
        rows.iter()
            .any(|r| r == &["namespaces", "ns", "v1", "false", "Namespace"])
    );

    let out = c.kubectl(&["cluster-info"]).await.ok();
    assert!(
        out.stdout.contains(&format!(
            "Kubernetes control plane is running at http://{}",
            c.api
        )),
        "{}",
        out.stdout
    );

    let out = c.kubectl(&["explain", "pod.spec.containers"]).await.ok();
    assert!(
        out.stdout.contains("FIELD: containers <[]Container>"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("image\t<string>"), "{}", out.stdout);
    let out = c
        .kubectl(&["explain", "deployment.spec.replicas"])
        .await
        .ok();
    assert!(out.stdout.contains("GROUP:      apps"), "{}", out.stdout);

    let out = c.kubectl(&["get", "ns"]).await.ok();
    let rows = out.rows();
    assert_eq!(rows[0], ["NAME", "STATUS", "AGE"]);
    for ns in ["default", "kube-node-lease", "kube-public", "kube-system"] {
        assert!(
            rows.iter().any(|r| r[0] == ns && r[1] == "Active"),
            "{rows:?}"
        );
    }
    let (code, body) = c.http("GET", "/healthz?verbose", "", "").await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("[+]etcd ok"), "{body}");
    let (code, body) = c.http("GET", "/metrics", "", "").await;
    assert_eq!(code, 200);
    assert!(body.contains("apiserver_request_total"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_and_delete_pods_with_every_output() {
    let c = Cluster::start().await;
    let out = c.with_manifest(&["create"], POD).await.ok();
    assert_eq!(out.stdout.trim(), "pod/nginx created");
    let out = c.with_manifest(&["create"], POD).await.failed();
    assert_eq!(
        out.stderr.trim(),
        "Error from server (AlreadyExists): error when creating \"STDIN\": pods \"nginx\" already exists"
    );

    let rows = c.kubectl(&["get", "pods"]).await.ok().rows();
    assert_eq!(rows[0], ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert_eq!(rows[1][..4], ["nginx", "0/1", "Pending", "0"]);
    let rows = c.kubectl(&["get", "pods", "-o", "wide"]).await.ok().rows();
    assert_eq!(
        rows[0],
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED",
            "NODE",
            "READINESS",
            "GATES"
        ]
    );
    let rows = c.kubectl(&["get", "pods", "-A"]).await.ok().rows();
    assert_eq!(rows[0][..2], ["NAMESPACE", "NAME"]);
    assert_eq!(rows[1][..2], ["default", "nginx"]);
    let rows = c
        .kubectl(&["get", "pods", "--show-labels"])
        .await
        .ok()
        .rows();
    assert_eq!(rows[1].last().map(String::as_str), Some("app=nginx"));

    let pod = c
        .kubectl(&["get", "pod", "nginx", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(pod["spec"]["containers"][0]["image"], "nginx:1.27");
    assert_eq!(pod["metadata"]["namespace"], "default");
    let yaml = c
        .kubectl(&["get", "pod", "nginx", "-o", "yaml"])
        .await
        .ok()
        .stdout;
    assert!(yaml.contains("image: nginx:1.27"), "{yaml}");
    let out = c.kubectl(&["get", "pods", "-o", "name"]).await.ok();
    assert_eq!(out.stdout.trim(), "pod/nginx");
    let out = c
        .kubectl(&[
            "get",
            "pods",
            "-o",
            "jsonpath={.items[0].spec.containers[0].image}",
        ])
        .await
        .ok();
    assert_eq!(out.stdout, "nginx:1.27");
    let rows = c
        .kubectl(&[
            "get",
            "pods",
            "-o",
            "custom-columns=N:.metadata.name,IMG:.spec.containers[0].image",
        ])
        .await
        .ok()
        .rows();
    assert_eq!(rows, [["N", "IMG"], ["nginx", "nginx:1.27"]]);

    c.kubectl(&["run", "busy", "--image=busybox", "--labels=app=busy"])
        .await
        .ok();
    let rows = c
        .kubectl(&["get", "pods", "-l", "app=busy", "-o", "name"])
        .await
        .ok()
        .rows();
    assert_eq!(rows, [["pod/busy"]]);
    let rows = c
        .kubectl(&[
            "get",
            "pods",
            "--field-selector",
            "metadata.name=nginx",
            "-o",
            "name",
        ])
        .await
        .ok()
        .rows();
    assert_eq!(rows, [["pod/nginx"]]);
    let rows = c
        .kubectl(&[
            "get",
            "pods",
            "--sort-by=.metadata.name",
            "-o",
            "custom-columns=N:.metadata.name",
        ])
        .await
        .ok()
        .rows();
    assert_eq!(rows, [["N"], ["busy"], ["nginx"]]);
    let out = c.kubectl(&["get", "pods", "-l", "app=none"]).await.ok();
    assert_eq!(
        out.stderr.trim(),
        "No resources found in default namespace."
    );

    let out = c.kubectl(&["delete", "pod", "nginx"]).await.ok();
    assert_eq!(out.stdout.trim(), "pod \"nginx\" deleted");
    let out = c.kubectl(&["get", "pod", "nginx"]).await.failed();
    assert_eq!(
        out.stderr.trim(),
        "Error from server (NotFound): pods \"nginx\" not found"
    );
    let out = c.kubectl(&["delete", "pod", "nginx"]).await.failed();
    assert_eq!(
        out.stderr.trim(),
        "Error from server (NotFound): pods \"nginx\" not found"
    );
    let out = c.kubectl(&["delete", "pods", "-l", "app=busy"]).await.ok();
    assert_eq!(out.stdout.trim(), "pod \"busy\" deleted");
    c.with_manifest(&["create"], POD).await.ok();
    let out = c.with_manifest(&["delete"], POD).await.ok();
    assert_eq!(out.stdout.trim(), "pod \"nginx\" deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_validation_and_dry_run() {
    let c = Cluster::start().await;
    let bad = POD.replace(
        "    image: nginx:1.27\n",
        "    image: nginx:1.27\n    imagee: typo\n",
    );
    let out = c.with_manifest(&["create"], &bad).await.failed();
    assert_eq!(
        out.stderr.trim(),
        "Error from server (BadRequest): error when creating \"STDIN\": Pod in version \"v1\" cannot be handled as a Pod: strict decoding error: unknown field \"spec.containers[0].imagee\""
    );
    let out = c
        .with_manifest(&["create", "--validate=warn"], &bad)
        .await
        .ok();
    assert!(
        out.stderr
            .contains("Warning: unknown field \"spec.containers[0].imagee\""),
        "{}",
        out.stderr
    );
    c.kubectl(&["delete", "pod", "nginx"]).await.ok();
    let out = c
        .with_manifest(&["create", "--validate=false"], &bad)
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "pod/nginx created");
    c.kubectl(&["delete", "pod", "nginx"]).await.ok();

    let out = c
        .with_manifest(&["create", "--dry-run=server"], POD)
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "pod/nginx created (server dry run)");
    let out = c.kubectl(&["get", "pods"]).await.ok();
    assert_eq!(
        out.stderr.trim(),
        "No resources found in default namespace."
    );

    // Duplicate fields are rejected too (JSON body through the REST API).
    let (code, body) = c
        .http(
            "POST",
            "/api/v1/namespaces/default/configmaps?fieldValidation=Strict",
            "application/json",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","name":"b"}}"#,
        )
        .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("duplicate field \\\"metadata.name\\\""),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_generators_send_protobuf_and_work_in_any_namespace() {
    let c = Cluster::start().await;
    let out = c.kubectl(&["create", "namespace", "team"]).await.ok();
    assert_eq!(out.stdout.trim(), "namespace/team created");
    let n = ["-n", "team"];
    let run = |args: &'static [&'static str]| {
        let mut v: Vec<&str> = n.to_vec();
        v.extend_from_slice(args);
        v
    };
    let out = c
        .kubectl(&run(&[
            "create",
            "deployment",
            "web",
            "--image=nginx:1.27",
            "--replicas=0",
            "--port=80",
        ]))
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "deployment.apps/web created");
    c.kubectl(&run(&[
        "create",
        "configmap",
        "conf",
        "--from-literal=a=1",
        "--from-literal=b=",
    ]))
    .await
    .ok();
    c.kubectl(&run(&[
        "create",
        "secret",
        "generic",
        "creds",
        "--from-literal=user=admin",
    ]))
    .await
    .ok();
    c.kubectl(&run(&[
        "create",
        "service",
        "clusterip",
        "web",
        "--tcp=80:8080",
    ]))
    .await
    .ok();

    let d = c
        .kubectl(&run(&["get", "deploy", "web", "-o", "json"]))
        .await
        .ok()
        .json();
    assert_eq!(d["spec"]["replicas"], 0);
    assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "web");
    let container = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "nginx:1.27");
    assert_eq!(container["ports"][0]["containerPort"], 80);
    let cm = c
        .kubectl(&run(&["get", "cm", "conf", "-o", "json"]))
        .await
        .ok()
        .json();
    assert_eq!(cm["data"], serde_json::json!({"a": "1", "b": ""}));
    let s = c
        .kubectl(&run(&["get", "secret", "creds", "-o", "json"]))
        .await
        .ok()
        .json();
    assert_eq!(s["data"]["user"], "YWRtaW4=");
    let svc = c
        .kubectl(&run(&["get", "svc", "web", "-o", "json"]))
        .await
        .ok()
        .json();
    assert_eq!(svc["spec"]["ports"][0]["port"], 80);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
    assert_eq!(svc["spec"]["selector"]["app"], "web");

    let rows = c.kubectl(&run(&["get", "deploy"])).await.ok().rows();
    assert_eq!(rows[0], ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    assert_eq!(rows[1][..4], ["web", "0/0", "0", "0"]);
    let rows = c.kubectl(&run(&["get", "cm,secret"])).await.ok().rows();
    assert!(
        rows.iter()
            .any(|r| r.len() > 1 && r[..2] == ["configmap/conf", "2"]),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .any(|r| r.first().is_some_and(|n| n == "secret/creds")),
        "{rows:?}"
    );
    let out = c.kubectl(&["get", "deploy"]).await.ok();
    assert_eq!(
        out.stderr.trim(),
        "No resources found in default namespace."
    );
}
