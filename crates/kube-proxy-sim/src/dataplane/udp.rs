//! UDP: one socket per Service address; each client address is a flow with its own connected
//! socket to one backend, replies are sent back from the Service address. A flow ends when idle,
//! when its backend is removed from the Service (as kube-proxy clears conntrack entries of
//! removed UDP endpoints, so that e.g. DNS fails over at once), or when the listener closes.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tokio::net::UdpSocket;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug};

use super::Shared;
use super::splice::Activity;
use crate::metrics::ServiceLabels;
use crate::model::balancer::Balancer;

/// Largest datagram forwarded.
const MAX_DATAGRAM: usize = 65_536;

struct Flow {
    upstream: Arc<UdpSocket>,
    backend: SocketAddr,
    activity: Arc<Activity>,
    stop: CancellationToken,
}

type Flows = Arc<Mutex<HashMap<SocketAddr, Arc<Flow>>>>;

pub async fn serve(
    socket: UdpSocket,
    balancer: Arc<Balancer>,
    labels: Arc<ServiceLabels>,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let socket = Arc::new(socket);
    let flows: Flows = Arc::default();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    // Looked up on the first datagram forwarded, not on every one.
    let mut to_backend = None;
    loop {
        let received = tokio::select! {
            _ = stop.cancelled() => break,
            r = socket.recv_from(&mut buf) => r,
        };
        let (len, client) = match received {
            Ok(pair) => pair,
            Err(e) => {
                // ICMP errors surface here on some kernels; they concern one peer, not the socket.
                debug!(error = %e, "recv failed");
                continue;
            }
        };
        let datagram = &buf[..len];
        for _attempt in 0..2 {
            let Some(flow) = flow_for(client, &socket, &balancer, &labels, &shared, &flows, &stop)
            else {
                shared.metrics.error(&labels, "no_backend");
                break;
            };
            match flow.upstream.send(datagram).await {
                Ok(_) => {
                    to_backend
                        .get_or_insert_with(|| shared.metrics.bytes_counter(&labels, "to_backend"))
                        .inc_by(len as u64);
                    flow.activity.touch();
                    break;
                }
                Err(e) => {
                    // A previous ICMP "port unreachable" from a dead backend: choose again.
                    debug!(backend = %flow.backend, error = %e, "send to backend failed");
                    shared.metrics.error(&labels, "io");
                    end_flow(&flows, client, &flow);
                }
            }
        }
    }
    for (_, flow) in flows.lock().drain() {
        flow.stop.cancel();
    }
}

fn end_flow(flows: &Flows, client: SocketAddr, flow: &Arc<Flow>) {
    flow.stop.cancel();
    let mut table = flows.lock();
    if table.get(&client).is_some_and(|f| Arc::ptr_eq(f, flow)) {
        table.remove(&client);
    }
}

/// The client's flow, created (or re-created when its backend left the Service) as needed.
fn flow_for(
    client: SocketAddr,
    socket: &Arc<UdpSocket>,
    balancer: &Arc<Balancer>,
    labels: &Arc<ServiceLabels>,
    shared: &Arc<Shared>,
    flows: &Flows,
    stop: &CancellationToken,
) -> Option<Arc<Flow>> {
    let existing = flows.lock().get(&client).cloned();
    if let Some(flow) = existing {
        if balancer.backends().contains(&flow.backend) && !flow.stop.is_cancelled() {
            return Some(flow);
        }
        end_flow(flows, client, &flow);
    }
    let Ok(permit) = shared.connections.clone().try_acquire_owned() else {
        shared.metrics.error(labels, "limit");
        return None;
    };
    let mut refused = Vec::new();
    let (backend, upstream) = loop {
        let backend = balancer.pick(client.ip(), Instant::now(), &refused)?;
        match connected_socket(backend) {
            Ok(upstream) => break (backend, upstream),
            Err(e) => {
                debug!(%backend, error = %e, "cannot open a socket to the backend");
                shared.metrics.error(labels, "connect");
                refused.push(backend);
            }
        }
    };
    let flow = Arc::new(Flow {
        upstream: Arc::new(upstream),
        backend,
        activity: Activity::new(),
        stop: stop.child_token(),
    });
    flows.lock().insert(client, flow.clone());
    shared.metrics.connections.get_or_create(labels).inc();
    let span = tracing::debug_span!("udp_flow", service = %labels.service, %client, %backend);
    let task = replies(
        client,
        flow.clone(),
        socket.clone(),
        labels.clone(),
        shared.clone(),
        flows.clone(),
        permit,
    );
    shared.tasks.spawn(task.instrument(span));
    Some(flow)
}

fn connected_socket(backend: SocketAddr) -> std::io::Result<UdpSocket> {
    let local: IpAddr = if backend.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let socket = std::net::UdpSocket::bind(SocketAddr::new(local, 0))?;
    socket.connect(backend)?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket)
}

/// Backend → client, until the flow idles out or is stopped.
async fn replies(
    client: SocketAddr,
    flow: Arc<Flow>,
    socket: Arc<UdpSocket>,
    labels: Arc<ServiceLabels>,
    shared: Arc<Shared>,
    flows: Flows,
    _permit: OwnedSemaphorePermit,
) {
    let active = shared.metrics.active.get_or_create(&labels).clone();
    active.inc();
    let to_client = shared.metrics.bytes_counter(&labels, "to_client");
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let received = tokio::select! {
            _ = flow.stop.cancelled() => break,
            _ = shared.shutdown.cancelled() => break,
            _ = flow.activity.idle(shared.limits.udp_idle_timeout) => break,
            r = flow.upstream.recv(&mut buf) => r,
        };
        match received {
            Ok(len) => {
                if socket.send_to(&buf[..len], client).await.is_ok() {
                    to_client.inc_by(len as u64);
                }
                flow.activity.touch();
            }
            Err(e) => {
                debug!(error = %e, "backend unreachable");
                shared.metrics.error(&labels, "io");
                break;
            }
        }
    }
    end_flow(&flows, client, &flow);
    active.dec();
}
