//! `kubectl exec` and `kubectl attach` through niwa: WebSocket (v5.channel.k8s.io) from kubectl,
//! the kubelet's Exec and Attach streams behind it (a fake kubelet here: `cat` echoes stdin,
//! `sh -c 'exit N'` exits with N; an attached container echoes stdin as `cat` would).

mod kubectl_common;

use std::pin::Pin;

use futures::{Stream, StreamExt};
use kubectl_common::Cluster;
use niwa_api::proto::kubelet::kubelet_server::{Kubelet, KubeletServer};
use niwa_api::proto::kubelet::{
    ExecExit, ExecInput, ExecOutput, LogChunk, LogsRequest, exec_input, exec_output,
};
use tonic::{Request, Response, Status, Streaming};

struct FakeKubelet;

type Chunks = Pin<Box<dyn Stream<Item = Result<LogChunk, Status>> + Send>>;
type ExecOut = Pin<Box<dyn Stream<Item = Result<ExecOutput, Status>> + Send>>;
type PortForwardOut =
    Pin<Box<dyn Stream<Item = Result<niwa_api::proto::kubelet::PortForwardOutput, Status>> + Send>>;

fn out(o: exec_output::Output) -> Result<ExecOutput, Status> {
    Ok(ExecOutput { output: Some(o) })
}

#[tonic::async_trait]
impl Kubelet for FakeKubelet {
    type LogsStream = Chunks;
    type ExecStream = ExecOut;
    type AttachStream = ExecOut;
    type PortForwardStream = PortForwardOut;

    async fn logs(&self, _req: Request<LogsRequest>) -> Result<Response<Chunks>, Status> {
        Err(Status::unimplemented("logs"))
    }

    async fn exec(&self, req: Request<Streaming<ExecInput>>) -> Result<Response<ExecOut>, Status> {
        let mut input = req.into_inner();
        let Some(Ok(ExecInput {
            input: Some(exec_input::Input::Start(start)),
        })) = input.next().await
        else {
            return Err(Status::invalid_argument("start first"));
        };
        let command = start.command.clone();
        let stream = async_stream(command, input);
        Ok(Response::new(stream))
    }

    async fn attach(
        &self,
        req: Request<Streaming<ExecInput>>,
    ) -> Result<Response<ExecOut>, Status> {
        let mut input = req.into_inner();
        match input.next().await {
            Some(Ok(ExecInput {
                input: Some(exec_input::Input::Start(start)),
            })) if start.command.is_empty() && start.container == "app" => {}
            other => return Err(Status::invalid_argument(format!("start: {other:?}"))),
        }
        Ok(Response::new(async_stream(vec!["cat".into()], input)))
    }

    async fn port_forward(
        &self,
        _req: Request<tonic::Streaming<niwa_api::proto::kubelet::PortForwardInput>>,
    ) -> Result<Response<PortForwardOut>, Status> {
        Err(Status::unimplemented("port-forward"))
    }
}

/// `cat`: stdin back on stdout until stdin closes; `sh -c "exit N"`: a line on stderr, exit N.
fn async_stream(command: Vec<String>, mut input: Streaming<ExecInput>) -> ExecOut {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        if command == ["cat"] {
            while let Some(Ok(msg)) = input.next().await {
                match msg.input {
                    Some(exec_input::Input::Stdin(data)) => {
                        let _ = tx.send(out(exec_output::Output::Stdout(data))).await;
                    }
                    Some(exec_input::Input::CloseStdin(_)) => break,
                    _ => {}
                }
            }
            let _ = tx
                .send(out(exec_output::Output::Exit(ExecExit {
                    exit_code: 0,
                    message: String::new(),
                })))
                .await;
        } else {
            let code = command
                .last()
                .and_then(|c| c.strip_prefix("exit "))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let _ = tx
                .send(out(exec_output::Output::Stderr(b"failing\n".to_vec())))
                .await;
            let _ = tx
                .send(out(exec_output::Output::Exit(ExecExit {
                    exit_code: code,
                    message: String::new(),
                })))
                .await;
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_streams_stdin_and_exit_codes() {
    let c = Cluster::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(KubeletServer::new(FakeKubelet))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let node = "apiVersion: v1\nkind: Node\nmetadata: {name: node-1}\n";
    c.with_manifest(&["create"], node).await.ok();
    let status = format!(
        r#"{{"status":{{"addresses":[{{"type":"InternalIP","address":"127.0.0.1"}}],"daemonEndpoints":{{"kubeletEndpoint":{{"Port":{port}}}}}}}}}"#
    );
    c.kubectl(&[
        "patch",
        "node",
        "node-1",
        "--subresource=status",
        "--type=merge",
        "-p",
        &status,
    ])
    .await
    .ok();
    let pod = "apiVersion: v1
kind: Pod
metadata: {name: app}
spec:
  nodeName: node-1
  containers: [{name: app, image: busybox, stdin: true}]
";
    c.with_manifest(&["create"], pod).await.ok();

    let out = c
        .kubectl_in(&["exec", "-i", "app", "--", "cat"], "hello from stdin\n")
        .await
        .ok();
    assert_eq!(out.stdout, "hello from stdin\n");

    let out = c
        .kubectl(&["exec", "app", "-c", "app", "--", "sh", "-c", "exit 3"])
        .await;
    assert_eq!(out.code, 3, "{out:#?}");
    assert!(out.stderr.contains("failing"), "{out:#?}");
    assert!(
        out.stderr.contains("command terminated with exit code 3"),
        "{out:#?}"
    );

    // `kubectl attach -i`: stdin reaches the kubelet's Attach stream, its output comes back, and
    // the session's end (after kubectl closed stdin) is a success.
    let out = c
        .kubectl_in(&["attach", "-i", "app"], "hello from attach\n")
        .await;
    assert_eq!(out.code, 0, "{out:#?}");
    assert!(out.stdout.contains("hello from attach"), "{out:#?}");
}
