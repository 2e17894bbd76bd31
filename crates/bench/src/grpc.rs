//! A minimal gRPC client for the two calls the closed-loop workloads time (KV Put and Range), on
//! the `h2` crate directly.
//!
//! Why not `etcd_client`: its requests go through a tower balancer and buffer task and a
//! streaming request body that hyper pipes from a task of its own, so each put reached the socket
//! in its own `writev` (1.14 per put at c=16, 39 % of the client's CPU). The client then cost
//! ~42 µs of CPU per put — as much as niwa-store's whole server side — and on a 2-core machine the
//! put figures of both servers measured the client as much as the server. Here a request is a
//! HEADERS frame plus one DATA frame queued straight into the connection, so the workers woken by
//! one read of responses queue their next requests before the connection task runs again, and
//! those leave together.
//!
//! It speaks plain gRPC (RFC-free but standard: `application/grpc`, 5-byte message prefix,
//! `grpc-status` in the trailers or in a trailers-only response), identically to both servers.

use anyhow::{Context, Result, anyhow, bail};
use bytes::{BufMut, Bytes, BytesMut};
use h2::client::SendRequest;
use http::{HeaderMap, Request, Uri};
use prost::Message;
use tokio::net::TcpStream;

/// One HTTP/2 connection; clone [`Grpc`] for every worker that shares it.
#[derive(Clone)]
pub(crate) struct Grpc {
    send: SendRequest<Bytes>,
    authority: String,
}

impl Grpc {
    /// Connects to `endpoint` (`http://host:port`) and drives the connection on the current
    /// runtime.
    pub(crate) async fn connect(endpoint: &str) -> Result<Grpc> {
        let authority = endpoint
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("{endpoint}: only http:// endpoints are supported"))?
            .to_string();
        let tcp = TcpStream::connect(&authority)
            .await
            .with_context(|| format!("connecting to {authority}"))?;
        tcp.set_nodelay(true)?;
        let (send, connection) = h2::client::Builder::new()
            .initial_window_size(1 << 20)
            .initial_connection_window_size(1 << 24)
            .handshake(tcp)
            .await
            .with_context(|| format!("HTTP/2 handshake with {authority}"))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Grpc { send, authority })
    }

    /// One unary call: `path` is the gRPC method (`/etcdserverpb.KV/Put`).
    pub(crate) async fn unary<Req: Message, Resp: Message + Default>(
        &mut self,
        path: &str,
        request: &Req,
    ) -> Result<Resp> {
        let len = request.encoded_len();
        let mut body = BytesMut::with_capacity(5 + len);
        body.put_u8(0);
        body.put_u32(len as u32);
        request.encode(&mut body)?;
        let uri: Uri = format!("http://{}{path}", self.authority).parse()?;
        let head = Request::post(uri)
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())?;
        let mut send = self.send.clone().ready().await?;
        let (response, mut stream) = send.send_request(head, false)?;
        stream.send_data(body.freeze(), true)?;
        let response = response.await?;
        let (parts, mut body) = response.into_parts();
        if !parts.status.is_success() {
            bail!("{path}: HTTP status {}", parts.status);
        }
        // A trailers-only response carries grpc-status in its headers.
        if let Some(status) = parts.headers.get("grpc-status") {
            check_status(path, status.as_bytes(), &parts.headers)?;
        }
        let mut message = BytesMut::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk?;
            let _ = body.flow_control().release_capacity(chunk.len());
            message.extend_from_slice(&chunk);
        }
        let trailers = body.trailers().await?.unwrap_or_default();
        if let Some(status) = trailers.get("grpc-status") {
            check_status(path, status.as_bytes(), &trailers)?;
        } else if parts.headers.get("grpc-status").is_none() {
            bail!("{path}: response without grpc-status");
        }
        if message.len() < 5 || message[0] != 0 {
            bail!("{path}: malformed gRPC message ({} bytes)", message.len());
        }
        Ok(Resp::decode(&message[5..])?)
    }
}

fn check_status(path: &str, status: &[u8], headers: &HeaderMap) -> Result<()> {
    if status == b"0" {
        return Ok(());
    }
    let message = headers
        .get("grpc-message")
        .map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned())
        .unwrap_or_default();
    bail!(
        "{path}: grpc-status {} {message}",
        String::from_utf8_lossy(status)
    )
}
