//! TCP listeners: accept, pick a backend (trying another when one refuses), splice both ways.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, warn};

use super::Shared;
use super::splice::{Activity, splice_one_way};
use crate::metrics::ServiceLabels;
use crate::model::balancer::Balancer;

/// Accepts until `stop` (the listener is closed or the Service removed). Connections already
/// established live on until they end, idle out, or the proxy shuts down.
pub async fn serve(
    listener: TcpListener,
    balancer: Arc<Balancer>,
    labels: Arc<ServiceLabels>,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (client, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                warn!(service = %labels.service, error = %e, "accept failed");
                shared.metrics.error(&labels, "accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = shared.connections.clone().try_acquire_owned() else {
            shared.metrics.error(&labels, "limit");
            reset(&client);
            continue;
        };
        shared.metrics.connections.get_or_create(&labels).inc();
        let span = tracing::debug_span!("conn", service = %labels.service, %peer);
        let (balancer, labels, task_shared) = (balancer.clone(), labels.clone(), shared.clone());
        shared.tasks.spawn(
            async move {
                handle(client, peer, &balancer, &labels, &task_shared).await;
                drop(permit);
            }
            .instrument(span),
        );
    }
}

/// Closes with a RST, as a REJECT rule answers.
fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

async fn connect(
    peer: SocketAddr,
    balancer: &Balancer,
    labels: &ServiceLabels,
    shared: &Shared,
) -> Option<TcpStream> {
    let mut refused = Vec::new();
    while refused.len() < shared.limits.connect_attempts {
        let backend = balancer.pick(peer.ip(), Instant::now(), &refused)?;
        match tokio::time::timeout(shared.limits.connect_timeout, TcpStream::connect(backend)).await
        {
            Ok(Ok(stream)) => return Some(stream),
            Ok(Err(e)) => debug!(%backend, error = %e, "backend refused"),
            Err(_) => debug!(%backend, "backend connect timed out"),
        }
        shared.metrics.error(labels, "connect");
        refused.push(backend);
    }
    None
}

async fn handle(
    client: TcpStream,
    peer: SocketAddr,
    balancer: &Balancer,
    labels: &ServiceLabels,
    shared: &Shared,
) {
    let Some(upstream) = connect(peer, balancer, labels, shared).await else {
        shared.metrics.error(labels, "no_backend");
        reset(&client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let active = shared.metrics.active.get_or_create(labels).clone();
    active.inc();
    let activity = Activity::new();
    let to_backend = shared.metrics.bytes_counter(labels, "to_backend");
    let to_client = shared.metrics.bytes_counter(labels, "to_client");
    let forward = async {
        tokio::try_join!(
            splice_one_way(&client, &upstream, &activity, &to_backend),
            splice_one_way(&upstream, &client, &activity, &to_client),
        )
    };
    tokio::select! {
        result = forward => {
            if let Err(e) = result {
                debug!(error = %e, "connection ended with an error");
                shared.metrics.error(labels, "io");
                reset(&client);
            }
        }
        _ = activity.idle(shared.limits.tcp_idle_timeout) => {
            debug!("idle timeout");
            shared.metrics.error(labels, "idle_timeout");
        }
        _ = shared.shutdown.cancelled() => {}
    }
    active.dec();
}
