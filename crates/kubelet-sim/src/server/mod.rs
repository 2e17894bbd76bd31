//! What the kubelet serves: the kubelet API over gRPC ([`api`]: logs, exec; [`portforward`]) on
//! every node address,
//! and /healthz, /readyz, /livez and Prometheus /metrics over HTTP ([`health`]).

pub mod api;
pub mod health;
pub mod portforward;

use std::net::{Ipv4Addr, SocketAddr};

use tokio::net::TcpListener;

/// Binds `port` on every address (the same port on each; 0 lets the first bind pick it).
pub async fn bind_all(ips: &[Ipv4Addr], port: u16) -> std::io::Result<(Vec<TcpListener>, u16)> {
    let mut listeners = Vec::with_capacity(ips.len());
    let mut port = port;
    for ip in ips {
        let listener = TcpListener::bind(SocketAddr::from((*ip, port)))
            .await
            .map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot listen on {ip}:{port}: {e}"))
            })?;
        port = listener.local_addr()?.port();
        listeners.push(listener);
    }
    Ok((listeners, port))
}
