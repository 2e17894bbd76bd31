//! TCP listeners: accept, pick a backend (trying another when one refuses), forward both ways
//! ([`super::splice::forward`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, warn};

use super::Shared;
use super::splice::{Activity, forward};
use crate::metrics::{Metrics, ServiceLabels};
use crate::model::balancer::Balancer;

/// A listener's per-connection metric handles, looked up on its first connection rather than
/// on every one (a lookup hashes the label strings under the family's lock).
struct ConnMetrics {
    connections: Counter,
    active: Gauge,
    to_backend: Counter,
    to_client: Counter,
}

impl ConnMetrics {
    fn new(metrics: &Metrics, labels: &ServiceLabels) -> ConnMetrics {
        ConnMetrics {
            connections: metrics.connections.get_or_create(labels).clone(),
            active: metrics.active.get_or_create(labels).clone(),
            to_backend: metrics.bytes_counter(labels, "to_backend"),
            to_client: metrics.bytes_counter(labels, "to_client"),
        }
    }
}

/// Accepts until `stop` (the listener is closed or the Service removed). Connections already
/// established live on until they end, idle out, or the proxy shuts down.
pub async fn serve(
    listener: TcpListener,
    balancer: Arc<Balancer>,
    labels: Arc<ServiceLabels>,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    // Registered once, not once per accepted connection.
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    let mut conn_metrics: Option<Arc<ConnMetrics>> = None;
    loop {
        let accepted = tokio::select! {
            biased;
            _ = &mut stopped => return,
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
        let metrics = conn_metrics
            .get_or_insert_with(|| Arc::new(ConnMetrics::new(&shared.metrics, &labels)))
            .clone();
        metrics.connections.inc();
        let span = tracing::debug_span!("conn", service = %labels.service, %peer);
        let (balancer, labels, task_shared) = (balancer.clone(), labels.clone(), shared.clone());
        shared.tasks.spawn(
            async move {
                handle(client, peer, &balancer, &labels, &metrics, &task_shared).await;
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
    mut client: TcpStream,
    peer: SocketAddr,
    balancer: &Balancer,
    labels: &ServiceLabels,
    metrics: &ConnMetrics,
    shared: &Shared,
) {
    let Some(mut upstream) = connect(peer, balancer, labels, shared).await else {
        shared.metrics.error(labels, "no_backend");
        reset(&client);
        return;
    };
    // Both legs: a request or reply is sent at once, not held back by Nagle for an ACK.
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    metrics.active.inc();
    let activity = Activity::starting_now();
    let ((client_in, client_out), (upstream_in, upstream_out)) = (client.split(), upstream.split());
    let forward = async {
        tokio::try_join!(
            forward(
                client_in,
                upstream_out,
                &shared.pipes,
                &activity,
                &metrics.to_backend
            ),
            forward(
                upstream_in,
                client_out,
                &shared.pipes,
                &activity,
                &metrics.to_client
            ),
        )
    };
    let failed = tokio::select! {
        result = forward => match result {
            Ok(_) => false,
            Err(e) => {
                debug!(error = %e, "connection ended with an error");
                shared.metrics.error(labels, "io");
                true
            }
        },
        _ = activity.idle(shared.limits.tcp_idle_timeout) => {
            debug!("idle timeout");
            shared.metrics.error(labels, "idle_timeout");
            false
        }
        _ = shared.shutdown.cancelled() => false,
    };
    if failed {
        reset(&client);
    }
    metrics.active.dec();
}
