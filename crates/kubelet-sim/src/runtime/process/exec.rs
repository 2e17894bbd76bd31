//! `kubectl exec` sessions: the command runs in the container (`niwa-kubelet enter --join`), its
//! stdout and stderr stream back as they come, stdin flows in, and the exit code ends the session.
//! There is no terminal (`-t`): commands run with pipes.

use std::path::PathBuf;
use std::process::Stdio;

use futures::StreamExt;
use niwa_api::proto::kubelet::exec_input::Input;
use niwa_api::proto::kubelet::exec_output::Output;
use niwa_api::proto::kubelet::{ExecExit, ExecInput, ExecOutput, ExecStart};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use crate::runtime::ExecStream;

/// Output messages buffered per session before the reader waits for the client.
const OUTPUT_QUEUE: usize = 64;

async fn pump(
    mut from: impl AsyncRead + Unpin,
    tx: mpsc::Sender<Result<ExecOutput, Status>>,
    stderr: bool,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let data = buf[..n].to_vec();
        let output = if stderr {
            Output::Stderr(data)
        } else {
            Output::Stdout(data)
        };
        if tx
            .send(Ok(ExecOutput {
                output: Some(output),
            }))
            .await
            .is_err()
        {
            return;
        }
    }
}

pub fn session(
    exe: PathBuf,
    pid: u32,
    start: ExecStart,
    mut input: Streaming<ExecInput>,
) -> Result<ExecStream, Status> {
    let mut child = tokio::process::Command::new(exe)
        .arg("enter")
        .arg("--join")
        .arg(pid.to_string())
        .arg("--")
        .args(&start.command)
        .stdin(if start.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Status::internal(format!("cannot start the exec helper: {e}")))?;
    let (tx, rx) = mpsc::channel(OUTPUT_QUEUE);
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let mut stdin = child.stdin.take();
    tokio::spawn(async move {
        let out = stdout.map(|s| tokio::spawn(pump(s, tx.clone(), false)));
        let err = stderr.map(|s| tokio::spawn(pump(s, tx.clone(), true)));
        let feeder = tokio::spawn(async move {
            while let Some(Ok(msg)) = input.next().await {
                match msg.input {
                    Some(Input::Stdin(data)) => {
                        if let Some(s) = stdin.as_mut()
                            && s.write_all(&data).await.is_err()
                        {
                            stdin = None;
                        }
                    }
                    Some(Input::CloseStdin(_)) => stdin = None,
                    _ => {}
                }
            }
        });
        let status = child.wait().await;
        for t in [out, err].into_iter().flatten() {
            let _ = t.await;
        }
        feeder.abort();
        let exit = match status {
            Ok(s) => ExecExit {
                exit_code: s.code().unwrap_or(137),
                message: String::new(),
            },
            Err(e) => ExecExit {
                exit_code: 126,
                message: e.to_string(),
            },
        };
        let _ = tx
            .send(Ok(ExecOutput {
                output: Some(Output::Exit(exit)),
            }))
            .await;
    });
    Ok(Box::pin(ReceiverStream::new(rx)))
}
