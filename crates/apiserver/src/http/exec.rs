//! `pods/{name}/exec` over WebSocket (the `v5.channel.k8s.io` / `v4.channel.k8s.io` protocols
//! kubectl ≥ 1.30 speaks), bridged to the kubelet's `Exec` stream (proto/niwa/kubelet/v1).
//!
//! Channel bytes lead each binary message: 0 stdin, 1 stdout, 2 stderr, 3 the final `Status`
//! (Success, or `NonZeroExitCode` with the code as a cause — kubectl exits with it), 4 terminal
//! resize (`{"Width":…,"Height":…}`), 255 close (v5: `[255, 0]` closes stdin). The kubelet call
//! is made before the upgrade, so a bad pod/container/command is an ordinary HTTP error.
//! SPDY (the pre-1.30 protocol) is not served; kubectl 1.33 uses WebSocket first.
//! [`super::attach`] shares all of this but the query's `command` and the kubelet call.

use axum::extract::FromRequestParts;
use axum::extract::Request;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use niwa_api::ApiError;
use niwa_api::proto::kubelet::kubelet_client::KubeletClient;
use niwa_api::proto::kubelet::{ExecInput, ExecStart, TerminalSize, exec_input, exec_output};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::resource::Ctx;

/// Stdin messages buffered towards the kubelet.
const STDIN_BUFFER: usize = 64;

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// The exec (or attach: no `command`) options of the query (`command` repeats).
pub(super) struct ExecQuery {
    command: Vec<String>,
    container: String,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
}

pub(super) fn exec_query(query: Option<&str>) -> Result<ExecQuery, ApiError> {
    let uri: axum::http::Uri = format!("/?{}", query.unwrap_or_default())
        .parse()
        .map_err(|_| ApiError::bad_request("malformed query string"))?;
    let pairs = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))?
        .0;
    let flag = |v: &str| matches!(v, "" | "1" | "true" | "True");
    let mut q = ExecQuery {
        command: Vec::new(),
        container: String::new(),
        stdin: false,
        stdout: false,
        stderr: false,
        tty: false,
    };
    for (k, v) in pairs {
        match k.as_str() {
            "command" => q.command.push(v),
            "container" => q.container = v,
            "stdin" => q.stdin = flag(&v),
            "stdout" => q.stdout = flag(&v),
            "stderr" => q.stderr = flag(&v),
            "tty" => q.tty = flag(&v),
            _ => {}
        }
    }
    Ok(q)
}

/// The final Status kubectl reads from channel 3.
pub fn exit_status(code: i32, message: &str, command: &[String]) -> Value {
    if !message.is_empty() {
        return json!({"metadata": {}, "status": "Failure", "message": message,
            "reason": "InternalError", "code": 500});
    }
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({"metadata": {}, "status": "Failure",
        "message": format!("command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}})
}

pub async fn exec(ctx: &Ctx, req: Request) -> Result<Response, ApiError> {
    let (parts, _body) = req.into_parts();
    let q = exec_query(parts.uri.query())?;
    if q.command.is_empty() {
        return Err(ApiError::bad_request(
            "you must specify at least one command for the container",
        ));
    }
    stream(ctx, parts, q, Call::Exec).await
}

/// Which kubelet call a session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Call {
    Exec,
    Attach,
}

/// Checks the pod, opens the kubelet call and upgrades to WebSocket, bridging the two.
pub(super) async fn stream(
    ctx: &Ctx,
    mut parts: axum::http::request::Parts,
    q: ExecQuery,
    call: Call,
) -> Result<Response, ApiError> {
    let what = match call {
        Call::Exec => "exec",
        Call::Attach => "attach",
    };
    let (ns, name) = (&ctx.path.namespace, &ctx.path.name);
    let pod = ctx.api.rest().get(ctx.info, ns, name).await?;
    let container = if q.container.is_empty() {
        pod["spec"]["containers"][0]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    } else {
        super::logs::pick_container(&pod, &q.container)?
    };
    let node = pod["spec"]["nodeName"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if node.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &())
        .await
        .map_err(|e| {
            ApiError::bad_request(format!(
                "{what} needs a WebSocket upgrade (v5.channel.k8s.io): {e}"
            ))
        })?;
    let proxy = ctx.api.logs();
    let addr = proxy.kubelet_address(&node).await?;
    let mut client = KubeletClient::new(proxy.channel(&addr)?);
    let (to_kubelet, rx) = mpsc::channel(STDIN_BUFFER);
    let start = ExecStart {
        namespace: ns.clone(),
        pod: name.clone(),
        container,
        command: q.command.clone(),
        stdin: q.stdin,
        stdout: q.stdout,
        stderr: q.stderr,
        tty: q.tty,
        node_name: node.clone(),
    };
    let _ = to_kubelet
        .send(ExecInput {
            input: Some(exec_input::Input::Start(start)),
        })
        .await;
    let input = ReceiverStream::new(rx);
    let outputs = match call {
        Call::Exec => client.exec(input).await,
        Call::Attach => client.attach(input).await,
    }
    .map_err(|s| ApiError::from_grpc(&s))?
    .into_inner();
    let command = q.command;
    let upgrade = upgrade.protocols(["v5.channel.k8s.io", "v4.channel.k8s.io"]);
    Ok(upgrade.on_upgrade(move |socket| bridge(socket, to_kubelet, outputs, command)))
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut out = Vec::with_capacity(data.len() + 1);
    out.push(channel);
    out.extend_from_slice(data);
    Message::Binary(Bytes::from(out))
}

/// Pumps client messages to the kubelet and kubelet output to the client until the command ends.
async fn bridge(
    socket: WebSocket,
    to_kubelet: mpsc::Sender<ExecInput>,
    mut outputs: tonic::Streaming<niwa_api::proto::kubelet::ExecOutput>,
    command: Vec<String>,
) {
    let (mut sink, mut stream) = socket.split();
    let reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            let data = match msg {
                Message::Binary(data) => data,
                Message::Close(_) => break,
                _ => continue,
            };
            let Some((&channel, payload)) = data.split_first() else {
                continue;
            };
            let input = match channel {
                STDIN => exec_input::Input::Stdin(payload.to_vec()),
                RESIZE => {
                    let size: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
                    exec_input::Input::Resize(TerminalSize {
                        width: size["Width"].as_u64().unwrap_or(80) as u32,
                        height: size["Height"].as_u64().unwrap_or(24) as u32,
                    })
                }
                CLOSE if payload.first() == Some(&STDIN) => exec_input::Input::CloseStdin(true),
                _ => continue,
            };
            if to_kubelet
                .send(ExecInput { input: Some(input) })
                .await
                .is_err()
            {
                break;
            }
        }
    });
    let mut status = None;
    loop {
        match outputs.message().await {
            Ok(Some(out)) => {
                let data = match out.output {
                    Some(exec_output::Output::Stdout(d)) => frame(STDOUT, &d),
                    Some(exec_output::Output::Stderr(d)) => frame(STDERR, &d),
                    Some(exec_output::Output::Exit(exit)) => {
                        status = Some(exit_status(exit.exit_code, &exit.message, &command));
                        break;
                    }
                    None => continue,
                };
                if sink.send(data).await.is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                status = Some(ApiError::from_grpc(&e).to_status());
                break;
            }
        }
    }
    let status = status.unwrap_or_else(|| {
        ApiError::internal("the kubelet ended the exec stream without an exit status").to_status()
    });
    let _ = sink
        .send(frame(
            ERROR,
            &serde_json::to_vec(&status).unwrap_or_default(),
        ))
        .await;
    // A close frame with a code: kubectl reports a code-less close (1005) as an error.
    let _ = sink
        .send(Message::Close(Some(axum::extract::ws::CloseFrame {
            code: axum::extract::ws::close_code::NORMAL,
            reason: "".into(),
        })))
        .await;
    reader.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_and_statuses() {
        let q = exec_query(Some(
            "command=sh&command=-c&command=exit%203&container=app&stdin=true&stdout=true&tty=false",
        ));
        let Ok(q) = q else {
            panic!("query");
        };
        assert_eq!(q.command, ["sh", "-c", "exit 3"]);
        assert_eq!(q.container, "app");
        assert!(q.stdin && q.stdout && !q.stderr && !q.tty);
        let attach = exec_query(Some("container=x&stdin=true&tty=1"));
        assert!(attach.is_ok_and(|q| q.command.is_empty() && q.stdin && q.tty && !q.stdout));
        assert_eq!(exit_status(0, "", &[])["status"], "Success");
        let s = exit_status(3, "", &["sh".into()]);
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
    }
}
