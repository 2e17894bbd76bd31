//! The real kubectl on the commands that act on workloads: label, annotate, scale, expose, watch,
//! rollout status/history/undo, describe with events, logs (through a fake kubelet), wait. The
//! objects controllers and kubelets would write (status, ReplicaSets, events, nodes) are written
//! by the tests themselves.

mod kubectl_common;

use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use kubectl_common::Cluster;
use niwa_api::proto::kubelet::kubelet_server::{Kubelet, KubeletServer};
use niwa_api::proto::kubelet::{ExecInput, ExecOutput, LogChunk, LogsRequest};
use tonic::{Request, Response, Status};

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
  annotations: {deployment.kubernetes.io/revision: \"2\"}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_annotate_scale_expose_and_watch() {
    let c = Cluster::start().await;
    c.with_manifest(&["create"], DEPLOYMENT).await.ok();
    let out = c
        .kubectl(&["label", "deployment", "web", "tier=front"])
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "deployment.apps/web labeled");
    let out = c
        .kubectl(&["annotate", "deployment", "web", "note=hello"])
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "deployment.apps/web annotated");
    let out = c
        .kubectl(&["scale", "deployment", "web", "--replicas=5"])
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "deployment.apps/web scaled");
    let d = c
        .kubectl(&["get", "deploy", "web", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(d["spec"]["replicas"], 5);
    assert_eq!(d["metadata"]["labels"]["tier"], "front");
    assert_eq!(d["metadata"]["annotations"]["note"], "hello");
    let out = c
        .kubectl(&["label", "deployment", "web", "tier-"])
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "deployment.apps/web unlabeled");

    let out = c
        .kubectl(&[
            "expose",
            "deployment",
            "web",
            "--port=80",
            "--target-port=8080",
        ])
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "service/web exposed");
    let svc = c
        .kubectl(&["get", "svc", "web", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(svc["spec"]["selector"]["app"], "web");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
    let rows = c.kubectl(&["get", "svc"]).await.ok().rows();
    assert_eq!(
        rows[0],
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    // `default` also holds the `kubernetes` Service the apiserver keeps.
    let web = rows.iter().find(|r| r[0] == "web").expect("web is listed");
    assert_eq!(web[4], "80/TCP");

    // `get -w`: the listing, then every change, until the stream is closed.
    let watcher = {
        let args = ["get", "pods", "-w", "--request-timeout=8s"];
        let c = &c;
        async move { c.kubectl(&args).await }
    };
    let writer = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        c.kubectl(&["run", "w1", "--image=busybox"]).await.ok();
        c.kubectl(&["label", "pod", "w1", "x=y"]).await.ok();
        c.kubectl(&["delete", "pod", "w1"]).await.ok();
    };
    let (watched, ()) = tokio::join!(watcher, writer);
    let rows = watched.rows();
    assert!(rows.len() >= 3, "{watched:#?}");
    assert!(
        rows.iter().all(|r| r[0] == "NAME" || r[0] == "w1"),
        "{watched:#?}"
    );
    assert_eq!(rows[1][..3], ["w1", "0/1", "Pending"], "{watched:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_status_history_and_undo() {
    let c = Cluster::start().await;
    c.with_manifest(&["create"], DEPLOYMENT).await.ok();
    let d = c
        .kubectl(&["get", "deploy", "web", "-o", "json"])
        .await
        .ok()
        .json();
    let uid = d["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let generation = d["metadata"]["generation"].as_i64().unwrap_or(1);

    // What the deployment controller would write: two ReplicaSets (revisions 1 and 2) and status.
    for (rev, image) in [(1, "nginx:1.26"), (2, "nginx:1.27")] {
        let rs = format!(
            "apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web-{rev}
  labels: {{app: web, pod-template-hash: h{rev}}}
  annotations: {{deployment.kubernetes.io/revision: \"{rev}\"}}
  ownerReferences:
  - {{apiVersion: apps/v1, kind: Deployment, name: web, uid: {uid}, controller: true}}
spec:
  replicas: 0
  selector: {{matchLabels: {{app: web, pod-template-hash: h{rev}}}}}
  template:
    metadata: {{labels: {{app: web, pod-template-hash: h{rev}}}}}
    spec:
      containers: [{{name: nginx, image: \"{image}\"}}]
"
        );
        c.with_manifest(&["create"], &rs).await.ok();
    }
    let rows = c.kubectl(&["get", "rs"]).await.ok().rows();
    assert_eq!(rows[0], ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]);

    // Not rolled out yet: `rollout status` waits on a watch until the status says done.
    let status = async {
        c.kubectl(&["rollout", "status", "deployment/web", "--timeout=30s"])
            .await
    };
    let controller = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let patch = format!(
            r#"{{"status":{{"observedGeneration":{generation},"replicas":2,"updatedReplicas":2,"readyReplicas":2,"availableReplicas":2,"conditions":[{{"type":"Available","status":"True"}},{{"type":"Progressing","status":"True","reason":"NewReplicaSetAvailable"}}]}}}}"#
        );
        c.kubectl(&[
            "patch",
            "deployment",
            "web",
            "--subresource=status",
            "--type=merge",
            "-p",
            &patch,
        ])
        .await
        .ok();
    };
    let (out, ()) = tokio::join!(status, controller);
    let out = out.ok();
    assert!(
        out.stdout
            .contains("deployment \"web\" successfully rolled out"),
        "{out:#?}"
    );
    let rows = c.kubectl(&["get", "deploy", "web"]).await.ok().rows();
    assert_eq!(rows[1][..4], ["web", "2/2", "2", "2"]);

    let out = c
        .kubectl(&["rollout", "history", "deployment/web"])
        .await
        .ok();
    let rows = out.rows();
    assert_eq!(rows[0], ["deployment.apps/web"]);
    assert_eq!(rows[1], ["REVISION", "CHANGE-CAUSE"]);
    assert_eq!(rows[2], ["1", "<none>"]);
    assert_eq!(rows[3], ["2", "<none>"]);

    let out = c
        .kubectl(&["rollout", "undo", "deployment/web", "--to-revision=1"])
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "deployment.apps/web rolled back");
    let d = c
        .kubectl(&["get", "deploy", "web", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.26"
    );
    assert!(d["spec"]["template"]["metadata"]["labels"]["pod-template-hash"].is_null());
}

/// A kubelet that serves fixed log lines for any container.
struct FakeKubelet;

type Chunks = Pin<Box<dyn Stream<Item = Result<LogChunk, Status>> + Send>>;
type ExecOut = Pin<Box<dyn Stream<Item = Result<ExecOutput, Status>> + Send>>;
type PortForwardOut =
    Pin<Box<dyn Stream<Item = Result<niwa_api::proto::kubelet::PortForwardOutput, Status>> + Send>>;

#[tonic::async_trait]
impl Kubelet for FakeKubelet {
    type LogsStream = Chunks;
    type ExecStream = ExecOut;
    type AttachStream = ExecOut;
    type PortForwardStream = PortForwardOut;

    async fn logs(&self, req: Request<LogsRequest>) -> Result<Response<Chunks>, Status> {
        let req = req.into_inner();
        if req.container != "app" {
            return Err(Status::not_found("no such container"));
        }
        let mut lines: Vec<String> = (1..=5).map(|i| format!("{} line {i}\n", req.pod)).collect();
        if let Some(n) = req.tail_lines {
            lines = lines.split_off(lines.len().saturating_sub(n as usize));
        }
        let chunks = lines.into_iter().map(|l| {
            Ok(LogChunk {
                data: l.into_bytes(),
            })
        });
        Ok(Response::new(Box::pin(futures::stream::iter(chunks))))
    }

    async fn exec(
        &self,
        _req: Request<tonic::Streaming<ExecInput>>,
    ) -> Result<Response<ExecOut>, Status> {
        Err(Status::unimplemented("exec"))
    }

    async fn attach(
        &self,
        _req: Request<tonic::Streaming<ExecInput>>,
    ) -> Result<Response<ExecOut>, Status> {
        Err(Status::unimplemented("attach"))
    }

    async fn port_forward(
        &self,
        _req: Request<tonic::Streaming<niwa_api::proto::kubelet::PortForwardInput>>,
    ) -> Result<Response<PortForwardOut>, Status> {
        Err(Status::unimplemented("port-forward"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_logs_and_wait() {
    let c = Cluster::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let kubelet_port = listener.local_addr().expect("addr").port();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(KubeletServer::new(FakeKubelet))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let node = format!(
        "apiVersion: v1
kind: Node
metadata:
  name: node-1
  labels: {{node-role.kubernetes.io/worker: \"\"}}
status:
  addresses: [{{type: InternalIP, address: 127.0.0.1}}]
  daemonEndpoints: {{kubeletEndpoint: {{Port: {kubelet_port}}}}}
  nodeInfo: {{kubeletVersion: v1.33.0}}
  conditions: [{{type: Ready, status: \"True\"}}]
"
    );
    c.with_manifest(&["create"], &node).await.ok();
    c.kubectl(&["patch", "node", "node-1", "--subresource=status", "--type=merge", "-p",
        &format!(r#"{{"status":{{"addresses":[{{"type":"InternalIP","address":"127.0.0.1"}}],"daemonEndpoints":{{"kubeletEndpoint":{{"Port":{kubelet_port}}}}},"nodeInfo":{{"kubeletVersion":"v1.33.0"}},"conditions":[{{"type":"Ready","status":"True"}}]}}}}"#)])
        .await
        .ok();
    let rows = c.kubectl(&["get", "nodes"]).await.ok().rows();
    assert_eq!(rows[0], ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]);
    assert_eq!(rows[1][..3], ["node-1", "Ready", "worker"]);
    assert_eq!(rows[1][4], "v1.33.0");

    let pod = "apiVersion: v1
kind: Pod
metadata: {name: app}
spec:
  nodeName: node-1
  containers: [{name: app, image: busybox}]
";
    c.with_manifest(&["create"], pod).await.ok();

    let out = c.kubectl(&["logs", "app"]).await.ok();
    assert_eq!(out.stdout.lines().count(), 5, "{out:#?}");
    assert_eq!(out.stdout.lines().next(), Some("app line 1"));
    let out = c.kubectl(&["logs", "app", "--tail=2"]).await.ok();
    assert_eq!(out.stdout, "app line 4\napp line 5\n");
    let out = c.kubectl(&["logs", "-f", "app", "-c", "app"]).await.ok();
    assert_eq!(out.stdout.lines().count(), 5);
    // kubectl checks the container itself; the server does too, with the same words.
    let out = c.kubectl(&["logs", "app", "-c", "nope"]).await.failed();
    assert_eq!(
        out.stderr.trim(),
        "error: container nope is not valid for pod app"
    );
    let (code, body) = c
        .http(
            "GET",
            "/api/v1/namespaces/default/pods/app/log?container=nope",
            "",
            "",
        )
        .await;
    assert_eq!(code, 400);
    assert!(
        body.contains("container nope is not valid for pod app"),
        "{body}"
    );

    // An event about the pod, as the scheduler would record it: `describe` lists it.
    let uid = c
        .kubectl(&["get", "pod", "app", "-o", "jsonpath={.metadata.uid}"])
        .await
        .ok()
        .stdout;
    let event = format!(
        "apiVersion: v1
kind: Event
metadata: {{name: app.1}}
involvedObject: {{kind: Pod, namespace: default, name: app, uid: {uid}, apiVersion: v1}}
reason: Scheduled
message: Successfully assigned default/app to node-1
type: Normal
source: {{component: default-scheduler}}
firstTimestamp: \"2025-01-01T00:00:00Z\"
lastTimestamp: \"2025-01-01T00:00:00Z\"
count: 1
"
    );
    c.with_manifest(&["create"], &event).await.ok();
    let out = c.kubectl(&["describe", "pod", "app"]).await.ok();
    assert!(
        out.stdout.contains("Node:             node-1"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("Successfully assigned default/app to node-1"),
        "{}",
        out.stdout
    );
    let rows = c.kubectl(&["get", "events"]).await.ok().rows();
    assert_eq!(
        rows[0],
        ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    );
    assert_eq!(rows[1][1..4], ["Normal", "Scheduled", "pod/app"]);

    // `wait` watches until the kubelet's status says Ready.
    let wait = async {
        c.kubectl(&["wait", "--for=condition=Ready", "pod/app", "--timeout=30s"])
            .await
    };
    let kubelet = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        c.kubectl(&["patch", "pod", "app", "--subresource=status", "--type=merge", "-p",
            r#"{"status":{"phase":"Running","podIP":"127.244.1.2","conditions":[{"type":"Ready","status":"True"}],"containerStatuses":[{"name":"app","image":"busybox","imageID":"","ready":true,"restartCount":0,"state":{"running":{"startedAt":"2025-01-01T00:00:00Z"}}}]}}"#])
            .await
            .ok();
    };
    let (out, ()) = tokio::join!(wait, kubelet);
    assert_eq!(out.ok().stdout.trim(), "pod/app condition met");
    let rows = c.kubectl(&["get", "pods", "-o", "wide"]).await.ok().rows();
    assert_eq!(rows[1][..3], ["app", "1/1", "Running"]);
    assert_eq!(rows[1][5..7], ["127.244.1.2", "node-1"]);
}
