//! The kubelet's side of attach: one connection to the instance's `attach` socket per `Attach`
//! call. gRPC input becomes [`Frame`]s to the shim, the shim's output frames become
//! `ExecOutput`s, and the end of the shim's side ends the call with exit code 0 (the kubelet
//! reports an attach that ended as Success, whatever the container's exit code).

use std::path::Path;

use futures::StreamExt;
use niwa_api::proto::kubelet::exec_input::Input;
use niwa_api::proto::kubelet::exec_output::Output;
use niwa_api::proto::kubelet::{ExecExit, ExecInput, ExecOutput, ExecStart};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use super::{Frame, read_frame_async, socket_path};
use crate::runtime::ExecStream;

/// Output messages buffered per session before the reader waits for the client.
const OUTPUT_QUEUE: usize = 64;

/// Attaches to the instance whose shim listens on `socket`.
pub fn session(
    socket: &Path,
    start: &ExecStart,
    mut input: Streaming<ExecInput>,
) -> Result<ExecStream, Status> {
    let unavailable = |e: std::io::Error| {
        niwa_api::ApiError::bad_request(format!(
            "unable to attach to container {:?}: {e} (a container started by an older niwa-kubelet cannot be attached to)",
            start.container
        ))
        .to_grpc()
    };
    // Connecting to a Unix socket does not wait for the other side: no need for async here.
    let (path, dir) = socket_path(socket).map_err(unavailable)?;
    let conn = std::os::unix::net::UnixStream::connect(&path)
        .and_then(|c| c.set_nonblocking(true).map(|_| c))
        .and_then(UnixStream::from_std)
        .map_err(unavailable)?;
    drop(dir);
    let (mut rd, mut wr) = conn.into_split();
    let hello = Frame::Hello {
        stdin: start.stdin,
        stdout: start.stdout,
        stderr: start.stderr,
    };
    let feeder = tokio::spawn(async move {
        if wr.write_all(&hello.encode()).await.is_err() {
            return;
        }
        while let Some(Ok(msg)) = input.next().await {
            let frame = match msg.input {
                Some(Input::Stdin(data)) => Frame::Stdin(data),
                Some(Input::CloseStdin(_)) => Frame::CloseStdin,
                Some(Input::Resize(size)) => Frame::Resize {
                    width: u16::try_from(size.width).unwrap_or(u16::MAX),
                    height: u16::try_from(size.height).unwrap_or(u16::MAX),
                },
                _ => continue,
            };
            if wr.write_all(&frame.encode()).await.is_err() {
                return;
            }
        }
        // The client went away: detach (the shim ends the session, which ends the reader).
        let _ = wr.shutdown().await;
    });
    let (tx, rx) = mpsc::channel(OUTPUT_QUEUE);
    tokio::spawn(async move {
        loop {
            let output = match read_frame_async(&mut rd).await {
                Ok(Some(Frame::Stdout(d))) => Output::Stdout(d),
                Ok(Some(Frame::Stderr(d))) => Output::Stderr(d),
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => break,
            };
            let message = ExecOutput {
                output: Some(output),
            };
            if tx.send(Ok(message)).await.is_err() {
                break;
            }
        }
        feeder.abort();
        let exit = ExecExit {
            exit_code: 0,
            message: String::new(),
        };
        let _ = tx
            .send(Ok(ExecOutput {
                output: Some(Output::Exit(exit)),
            }))
            .await;
    });
    Ok(Box::pin(ReceiverStream::new(rx)))
}
