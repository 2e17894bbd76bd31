//! `pods/{name}/portforward` (`kubectl port-forward`): SPDY/3.1 streams, reached either over
//! a WebSocket with the subprotocol `SPDY/3.1+portforward.k8s.io` (what kubectl ≥ 1.31 tries
//! first: client-go's `NewSPDYOverWebsocketDialer`, the SPDY frames carried in binary messages)
//! or over a plain HTTP upgrade to `SPDY/3.1` with `X-Stream-Protocol-Version:
//! portforward.k8s.io` (the fallback, and every older kubectl).
//!
//! Inside, the `portforward.k8s.io` protocol: for every local connection kubectl opens an
//! *error* stream and a *data* stream with the headers `streamType`, `port` and `requestID`.
//! Each complete pair becomes one `PortForward` call to the kubelet of the pod's node
//! (proto/niwa/kubelet/v1), which dials the pod's IP and port: data bytes flow both ways, a
//! client FIN half-closes the pod connection, the pod's EOF ends the data stream, and a dial or
//! relay failure is written as text on the error stream (kubectl prints it). Both streams are
//! then closed, which is what kubectl waits for before it forgets the connection.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::extract::Request;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures::{SinkExt, Stream, StreamExt};
use hyper_util::rt::TokioIo;
use niwa_api::ApiError;
use niwa_api::proto::kubelet::kubelet_client::KubeletClient;
use niwa_api::proto::kubelet::{PortForwardInput, PortForwardStart, port_forward_input};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use super::resource::Ctx;
use super::spdy::{self, Codec, Frame};

/// The stream protocol (the value of `X-Stream-Protocol-Version`).
pub const PROTOCOL: &str = "portforward.k8s.io";
/// The WebSocket subprotocol of SPDY tunnelled over WebSocket.
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// Frames queued towards the client (all streams of a connection share it).
const OUT_QUEUE: usize = 64;
/// Client data chunks queued towards one kubelet call.
const IN_QUEUE: usize = 16;
/// spdystream's largest DATA frame; larger kubelet chunks are split.
const MAX_DATA: usize = 32 * 1024;

/// Where the streams of one port-forward connection go.
struct Target {
    namespace: String,
    pod: String,
    uid: String,
    node: String,
    channel: Channel,
}

fn header_values<'a>(headers: &'a HeaderMap, name: &str) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

pub async fn portforward(ctx: &Ctx, req: Request) -> Result<Response, ApiError> {
    let (mut parts, _body) = req.into_parts();
    let (ns, name) = (&ctx.path.namespace, &ctx.path.name);
    let pod = ctx.api.rest().get(ctx.info, ns, name).await?;
    let node = pod["spec"]["nodeName"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if node.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let proxy = ctx.api.logs();
    let addr = proxy.kubelet_address(&node).await?;
    let target = Arc::new(Target {
        namespace: ns.clone(),
        pod: name.clone(),
        uid: pod["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        node,
        channel: proxy.channel(&addr)?,
    });
    let upgrade = header_values(&parts.headers, "upgrade")
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if upgrade == "websocket" {
        if !header_values(&parts.headers, "sec-websocket-protocol").any(|p| p == TUNNEL_PROTOCOL) {
            return Err(ApiError::bad_request(format!(
                "unable to upgrade: port-forward over WebSocket needs the subprotocol {TUNNEL_PROTOCOL}"
            )));
        }
        let ws = WebSocketUpgrade::from_request_parts(&mut parts, &())
            .await
            .map_err(|e| ApiError::bad_request(format!("unable to upgrade: {e}")))?;
        return Ok(ws
            .protocols([TUNNEL_PROTOCOL])
            .on_upgrade(move |socket| websocket(socket, target)));
    }
    if upgrade != "spdy/3.1" {
        return Err(ApiError::bad_request(
            "unable to upgrade: port-forward needs an upgrade to SPDY/3.1 or WebSocket",
        ));
    }
    let offered: Vec<&str> = header_values(&parts.headers, "x-stream-protocol-version").collect();
    if !offered.is_empty() && !offered.contains(&PROTOCOL) {
        return Err(ApiError::new(
            niwa_api::Reason::Forbidden,
            format!(
                "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server supports [{PROTOCOL}]"
            ),
        ));
    }
    let on_upgrade = parts
        .extensions
        .remove::<hyper::upgrade::OnUpgrade>()
        .ok_or_else(|| ApiError::bad_request("unable to upgrade: connection cannot be upgraded"))?;
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => over_io(TokioIo::new(upgraded), target).await,
            Err(e) => tracing::debug!(error = %e, "port-forward upgrade failed"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "SPDY/3.1")
        .header("X-Stream-Protocol-Version", PROTOCOL)
        .body(Body::empty())
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// SPDY straight on the upgraded connection.
async fn over_io<T: AsyncRead + AsyncWrite + Send + 'static>(io: T, target: Arc<Target>) {
    let (read, mut write) = tokio::io::split(io);
    let (out, mut rx) = mpsc::channel::<Vec<u8>>(OUT_QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if write.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = write.shutdown().await;
    });
    let incoming = futures::stream::unfold(read, |mut read| async move {
        let mut buf = vec![0u8; 16 * 1024];
        match read.read(&mut buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Bytes::from(buf), read))
            }
        }
    });
    session(Box::pin(incoming), out, target).await;
    let _ = writer.await;
}

/// SPDY frames in WebSocket binary messages (any message boundaries).
async fn websocket(socket: WebSocket, target: Arc<Target>) {
    let (mut sink, stream) = socket.split();
    let (out, mut rx) = mpsc::channel::<Vec<u8>>(OUT_QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if sink
                .send(Message::Binary(Bytes::from(bytes)))
                .await
                .is_err()
            {
                return;
            }
        }
        let _ = sink
            .send(Message::Close(Some(axum::extract::ws::CloseFrame {
                code: axum::extract::ws::close_code::NORMAL,
                reason: "".into(),
            })))
            .await;
    });
    let incoming = stream
        .take_while(|m| {
            futures::future::ready(m.as_ref().is_ok_and(|m| !matches!(m, Message::Close(_))))
        })
        .filter_map(|m| async move {
            match m {
                Ok(Message::Binary(b)) => Some(b),
                _ => None,
            }
        });
    session(Box::pin(incoming), out, target).await;
    let _ = writer.await;
}

/// The streams of one request ID seen so far.
#[derive(Default)]
struct Pair {
    error: Option<u32>,
    data: Option<(u32, String)>,
}

/// The SPDY connection: pairs streams by request ID and runs one relay per pair.
async fn session(
    mut incoming: std::pin::Pin<Box<dyn Stream<Item = Bytes> + Send>>,
    out: mpsc::Sender<Vec<u8>>,
    target: Arc<Target>,
) {
    let mut codec = Codec::new();
    let mut buf = BytesMut::new();
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    // Data stream ID → the queue of its relay's kubelet call (dropped: half-close).
    let mut inputs: HashMap<u32, mpsc::Sender<Bytes>> = HashMap::new();
    let mut relays = JoinSet::new();
    let mut relay_of: HashMap<u32, tokio::task::AbortHandle> = HashMap::new();
    loop {
        let chunk = tokio::select! {
            c = incoming.next() => c,
            Some(_) = relays.join_next(), if !relays.is_empty() => continue,
        };
        let Some(chunk) = chunk else { break };
        buf.extend_from_slice(&chunk);
        loop {
            let frame = match codec.decode(&mut buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "port-forward: bad SPDY frame; closing");
                    return;
                }
            };
            match frame {
                Frame::SynStream {
                    stream_id, headers, ..
                } => {
                    if out.send(codec.syn_reply(stream_id, &[])).await.is_err() {
                        return;
                    }
                    let kind = Frame::header(&headers, "streamType").unwrap_or_default();
                    let port = Frame::header(&headers, "port")
                        .unwrap_or_default()
                        .to_string();
                    // Old clients send no request ID: their error and data streams are
                    // consecutive odd IDs (what the kubelet falls back to as well).
                    let request = match Frame::header(&headers, "requestID") {
                        Some(r) => r.to_string(),
                        None if kind == "data" => stream_id.saturating_sub(2).to_string(),
                        None => stream_id.to_string(),
                    };
                    let pair = pairs.entry(request.clone()).or_default();
                    match kind {
                        "error" => pair.error = Some(stream_id),
                        "data" => pair.data = Some((stream_id, port)),
                        _ => {
                            let _ = out
                                .send(spdy::rst_stream(stream_id, spdy::RST_INVALID_STREAM))
                                .await;
                            continue;
                        }
                    }
                    if let Some(Pair {
                        error: Some(error_id),
                        data: Some((data_id, port)),
                    }) = pairs.get(&request)
                    {
                        let (error_id, data_id, port) = (*error_id, *data_id, port.clone());
                        pairs.remove(&request);
                        let (tx, rx) = mpsc::channel(IN_QUEUE);
                        inputs.insert(data_id, tx);
                        let handle = relays.spawn(relay(
                            target.clone(),
                            port,
                            error_id,
                            data_id,
                            rx,
                            out.clone(),
                        ));
                        relay_of.insert(data_id, handle);
                    }
                }
                Frame::Data {
                    stream_id,
                    fin,
                    data,
                } => {
                    if !data.is_empty()
                        && let Some(tx) = inputs.get(&stream_id)
                        && tx.send(data).await.is_err()
                    {
                        inputs.remove(&stream_id);
                    }
                    if fin {
                        inputs.remove(&stream_id);
                    }
                }
                Frame::RstStream { stream_id, .. } => {
                    inputs.remove(&stream_id);
                    if let Some(h) = relay_of.remove(&stream_id) {
                        h.abort();
                    }
                }
                Frame::Ping(id) => {
                    if out.send(spdy::ping(id)).await.is_err() {
                        return;
                    }
                }
                Frame::GoAway => return,
                Frame::Ignored => {}
            }
        }
        relay_of.retain(|_, h| !h.is_finished());
    }
}

/// One forwarded connection: a kubelet `PortForward` call between the data stream and the pod.
async fn relay(
    target: Arc<Target>,
    port: String,
    error_id: u32,
    data_id: u32,
    input: mpsc::Receiver<Bytes>,
    out: mpsc::Sender<Vec<u8>>,
) {
    let message = forward(&target, &port, data_id, input, &out).await;
    if let Err(message) = message {
        let _ = out
            .send(spdy::data(error_id, false, message.as_bytes()))
            .await;
    }
    let _ = out.send(spdy::data(data_id, true, &[])).await;
    let _ = out.send(spdy::data(error_id, true, &[])).await;
}

async fn forward(
    target: &Target,
    port: &str,
    data_id: u32,
    input: mpsc::Receiver<Bytes>,
    out: &mpsc::Sender<Vec<u8>>,
) -> Result<(), String> {
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("invalid port {port:?}: must be between 1 and 65535"))?;
    let start = PortForwardInput {
        input: Some(port_forward_input::Input::Start(PortForwardStart {
            namespace: target.namespace.clone(),
            pod: target.pod.clone(),
            port: u32::from(port),
            node_name: target.node.clone(),
            uid: target.uid.clone(),
        })),
    };
    let requests =
        futures::stream::once(async move { start }).chain(ReceiverStream::new(input).map(|d| {
            PortForwardInput {
                input: Some(port_forward_input::Input::Data(d.to_vec())),
            }
        }));
    let mut client = KubeletClient::new(target.channel.clone());
    let mut outputs = client
        .port_forward(requests)
        .await
        .map_err(|s| ApiError::from_grpc(&s).message)?
        .into_inner();
    loop {
        match outputs.message().await {
            Ok(Some(chunk)) => {
                for piece in chunk.data.chunks(MAX_DATA) {
                    if out.send(spdy::data(data_id, false, piece)).await.is_err() {
                        return Ok(());
                    }
                }
            }
            Ok(None) => return Ok(()),
            Err(s) => return Err(ApiError::from_grpc(&s).message),
        }
    }
}
