//! The kubelet API's `PortForward` (`kubectl port-forward`): one call per forwarded connection.
//! The kubelet dials the pod's IP and port from the node — pods have their own addresses on this
//! host (or on the node's bridge in the docker-compose cluster), so no network namespace needs
//! entering, unlike the kubelet's CRI path — and relays bytes both ways. The end of the
//! client's input half-closes the pod connection; the pod's EOF ends the output.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use niwa_api::ApiError;
use niwa_api::proto::kubelet::port_forward_input::Input;
use niwa_api::proto::kubelet::{PortForwardInput, PortForwardOutput, PortForwardStart};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use crate::driver::IndexedPod;

/// Chunks read from the pod queued before the reader waits for the client.
const OUTPUT_QUEUE: usize = 16;
const READ_CHUNK: usize = 32 * 1024;
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

pub type PortForwardStream = Pin<Box<dyn Stream<Item = Result<PortForwardOutput, Status>> + Send>>;

/// The first message of a call, which must be `start`.
pub async fn start(input: &mut Streaming<PortForwardInput>) -> Result<PortForwardStart, Status> {
    match input.next().await {
        Some(Ok(PortForwardInput {
            input: Some(Input::Start(start)),
        })) => Ok(start),
        Some(Err(e)) => Err(e),
        _ => Err(ApiError::bad_request("the first port-forward message must be `start`").to_grpc()),
    }
}

/// Dials the pod and relays until both sides are done.
pub async fn forward(
    pod: &IndexedPod,
    start: &PortForwardStart,
    mut input: Streaming<PortForwardInput>,
) -> Result<PortForwardStream, Status> {
    let fail = |detail: String| {
        ApiError::internal(format!(
            "error forwarding port {} to pod {}, uid {}: {detail}",
            start.port,
            pod.handle.name(),
            pod.handle.uid
        ))
        .to_grpc()
    };
    let port = u16::try_from(start.port)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| fail(format!("invalid port {}", start.port)))?;
    let ip: IpAddr = pod
        .status
        .pod_ip
        .as_deref()
        .and_then(|ip| ip.parse().ok())
        .ok_or_else(|| fail("the pod has no IP address yet".to_string()))?;
    let addr = SocketAddr::new(ip, port);
    let conn = match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err(fail(format!(
                "dial tcp {addr}: connect: connection refused"
            )));
        }
        Ok(Err(e)) => return Err(fail(format!("dial tcp {addr}: connect: {e}"))),
        Err(_) => return Err(fail(format!("dial tcp {addr}: i/o timeout"))),
    };
    let _ = conn.set_nodelay(true);
    let (mut read, mut write) = conn.into_split();
    let (tx, rx) = mpsc::channel(OUTPUT_QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(Ok(msg)) = input.next().await {
            if let Some(Input::Data(data)) = msg.input
                && write.write_all(&data).await.is_err()
            {
                break;
            }
        }
        // The client sends no more (or went away): half-close towards the pod.
        let _ = write.shutdown().await;
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let n = tokio::select! {
                r = read.read(&mut buf) => match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                },
                // The client is gone: stop even if the pod stays silent.
                _ = tx.closed() => break,
            };
            let out = PortForwardOutput {
                data: buf[..n].to_vec(),
            };
            if tx.send(Ok(out)).await.is_err() {
                break;
            }
        }
        if tx.is_closed() {
            writer.abort();
        }
    });
    Ok(Box::pin(ReceiverStream::new(rx)))
}
