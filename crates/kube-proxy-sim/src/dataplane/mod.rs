//! The data plane: the sockets that serve Service addresses, reconciled against the desired
//! listeners ([`DataPlane::apply`]).
//!
//! A listener with backends has a socket; one without backends has none, so the kernel refuses
//! connections (TCP RST, UDP ICMP port unreachable) exactly as kube-proxy's REJECT rule does.
//! Endpoint changes swap the backends of a running listener in place: established connections are
//! never cut. Removing a listener stops accepting; its established TCP connections run on.

pub mod nft;
pub mod splice;
pub mod tcp;
pub mod udp;

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info};

use crate::metrics::{Metrics, ServiceLabels};
use crate::model::balancer::Balancer;
use crate::model::{ListenerKey, ListenerSpec, Protocol};

/// Bounds and timeouts of the data path.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Open TCP connections plus UDP flows, across all Services; past it new ones are refused.
    pub max_connections: usize,
    /// How long to wait for a backend to accept.
    pub connect_timeout: Duration,
    /// Backends tried for one connection before giving up (each refusing one is skipped).
    pub connect_attempts: usize,
    /// A TCP connection with no bytes either way for this long is closed.
    pub tcp_idle_timeout: Duration,
    /// A UDP flow with no datagram either way for this long is forgotten.
    pub udp_idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 16_384,
            connect_timeout: Duration::from_secs(5),
            connect_attempts: 3,
            tcp_idle_timeout: Duration::from_secs(3600),
            udp_idle_timeout: Duration::from_secs(30),
        }
    }
}

/// What every listener and connection task shares.
pub struct Shared {
    pub metrics: Metrics,
    pub limits: Limits,
    pub connections: Arc<Semaphore>,
    /// Cancelled on proxy shutdown: ends every connection.
    pub shutdown: CancellationToken,
    /// Every accept loop, connection and flow task, so that shutdown can wait for them.
    pub tasks: TaskTracker,
    /// Pipes for splicing bulk transfers, reused across connections.
    pub pipes: splice::PipePool,
}

/// Why a Service address could not be served.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error(
        "cannot listen on {key}: permission denied; ports below 1024 need root or \
         `sysctl -w net.ipv4.ip_unprivileged_port_start=0`"
    )]
    PermissionDenied { key: ListenerKey },
    #[error("cannot listen on {key}: the address is in use by another program")]
    InUse { key: ListenerKey },
    #[error(
        "cannot listen on {key}: not an address of this machine (a local niwa cluster serves \
         Services on 127.0.0.0/8)"
    )]
    NotLocal { key: ListenerKey },
    #[error("cannot listen on {key}: {source}")]
    Io { key: ListenerKey, source: io::Error },
}

impl BindError {
    fn new(key: ListenerKey, source: io::Error) -> BindError {
        match source.raw_os_error() {
            Some(libc::EACCES) | Some(libc::EPERM) => BindError::PermissionDenied { key },
            Some(libc::EADDRINUSE) => BindError::InUse { key },
            Some(libc::EADDRNOTAVAIL) => BindError::NotLocal { key },
            _ => BindError::Io { key, source },
        }
    }
}

/// A socket for a Service address. `SO_REUSEPORT` lets the proxies of several nodes of one local
/// cluster serve the same ClusterIP side by side (the kernel spreads connections between them):
/// no proxy is special, and any one may die. Why this rather than one designated proxy, and
/// what follows from it: docs/networking.md, "Several proxies on one host".
fn bind(key: ListenerKey) -> Result<Socket, BindError> {
    let addr = SocketAddr::new(key.ip, key.port);
    let ty = match key.protocol {
        Protocol::Tcp => Type::STREAM,
        Protocol::Udp => Type::DGRAM,
    };
    let err = |e| BindError::new(key, e);
    let socket = Socket::new(Domain::for_address(addr), ty, None).map_err(err)?;
    socket.set_reuse_address(true).map_err(err)?;
    socket.set_reuse_port(true).map_err(err)?;
    socket.set_nonblocking(true).map_err(err)?;
    socket.set_cloexec(true).map_err(err)?;
    socket.bind(&addr.into()).map_err(err)?;
    if key.protocol == Protocol::Tcp {
        socket.listen(1024).map_err(err)?;
    }
    Ok(socket)
}

enum SocketState {
    /// No backends: nothing listens, so connections are refused.
    Closed,
    Open(CancellationToken),
    Failed(String),
}

struct Running {
    spec: ListenerSpec,
    balancer: Arc<Balancer>,
    labels: Arc<ServiceLabels>,
    socket: SocketState,
}

/// What one [`DataPlane::apply`] did.
#[derive(Debug, Default)]
pub struct ApplyReport {
    pub opened: usize,
    pub closed: usize,
    pub updated: usize,
    /// Addresses that failed to bind in this apply (and had not failed the same way before).
    pub new_failures: Vec<BindError>,
}

/// The running listeners of one node.
pub struct DataPlane {
    shared: Arc<Shared>,
    running: HashMap<ListenerKey, Running>,
}

impl DataPlane {
    pub fn new(metrics: Metrics, limits: Limits, shutdown: CancellationToken) -> DataPlane {
        let connections = Arc::new(Semaphore::new(limits.max_connections));
        DataPlane {
            shared: Arc::new(Shared {
                metrics,
                limits,
                connections,
                shutdown,
                tasks: TaskTracker::new(),
                pipes: splice::PipePool::new(),
            }),
            running: HashMap::new(),
        }
    }

    /// The tasks to wait for on shutdown (close it first).
    pub fn tasks(&self) -> TaskTracker {
        self.shared.tasks.clone()
    }

    /// Sockets currently listening.
    pub fn open_listeners(&self) -> usize {
        self.running
            .values()
            .filter(|r| matches!(r.socket, SocketState::Open(_)))
            .count()
    }

    /// Whether some Service address could not be bound (retried on the next apply).
    pub fn has_failures(&self) -> bool {
        self.running
            .values()
            .any(|r| matches!(r.socket, SocketState::Failed(_)))
    }

    /// Makes the sockets match `desired`. Failed binds are retried on every apply.
    pub fn apply(&mut self, desired: &BTreeMap<ListenerKey, ListenerSpec>) -> ApplyReport {
        let mut report = ApplyReport::default();
        self.running.retain(|key, running| {
            if desired.contains_key(key) {
                return true;
            }
            if let SocketState::Open(stop) = &running.socket {
                stop.cancel();
                report.closed += 1;
                info!(listener = %key, service = %running.spec.service, "listener removed");
            }
            false
        });
        for (key, spec) in desired {
            let running = self.running.entry(*key).or_insert_with(|| Running {
                spec: spec.clone(),
                balancer: Arc::new(Balancer::new(spec.backends.clone(), spec.affinity)),
                labels: Arc::new(ServiceLabels {
                    service: spec.service.to_string(),
                    protocol: key.protocol.as_str().to_string(),
                }),
                socket: SocketState::Closed,
            });
            if running.spec != *spec {
                if running.spec.service != spec.service {
                    running.labels = Arc::new(ServiceLabels {
                        service: spec.service.to_string(),
                        protocol: key.protocol.as_str().to_string(),
                    });
                }
                running.balancer.set_backends(spec.backends.clone());
                running.balancer.set_affinity(spec.affinity);
                running.spec = spec.clone();
                report.updated += 1;
            }
            let wanted = !spec.backends.is_empty();
            match (&running.socket, wanted) {
                (SocketState::Open(stop), false) => {
                    stop.cancel();
                    running.socket = SocketState::Closed;
                    report.closed += 1;
                }
                (SocketState::Open(_), true) => {}
                (_, false) => running.socket = SocketState::Closed,
                (state, true) => match open(&self.shared, *key, running) {
                    Ok(stop) => {
                        if matches!(state, SocketState::Failed(_)) {
                            info!(listener = %key, "listener bound after earlier failure");
                        }
                        running.socket = SocketState::Open(stop);
                        report.opened += 1;
                    }
                    Err(e) => {
                        let text = e.to_string();
                        let repeated = matches!(state, SocketState::Failed(t) if *t == text);
                        running.socket = SocketState::Failed(text);
                        if !repeated {
                            let labels = running.labels.clone();
                            self.shared.metrics.error(&labels, "bind");
                            report.new_failures.push(e);
                        }
                    }
                },
            }
        }
        let failures = self
            .running
            .values()
            .filter(|r| matches!(r.socket, SocketState::Failed(_)))
            .count();
        self.shared
            .metrics
            .listeners
            .set(self.open_listeners() as i64);
        self.shared.metrics.listener_failures.set(failures as i64);
        report
    }
}

fn open(
    shared: &Arc<Shared>,
    key: ListenerKey,
    running: &Running,
) -> Result<CancellationToken, BindError> {
    let socket = bind(key)?;
    let stop = shared.shutdown.child_token();
    let span = tracing::info_span!("listener", listener = %key, service = %running.labels.service);
    let (balancer, labels, task_shared) = (
        running.balancer.clone(),
        running.labels.clone(),
        shared.clone(),
    );
    match key.protocol {
        Protocol::Tcp => {
            let listener = tokio::net::TcpListener::from_std(socket.into())
                .map_err(|e| BindError::new(key, e))?;
            let task = tcp::serve(listener, balancer, labels, task_shared, stop.clone());
            shared.tasks.spawn(task.instrument(span));
        }
        Protocol::Udp => {
            let socket = tokio::net::UdpSocket::from_std(socket.into())
                .map_err(|e| BindError::new(key, e))?;
            let task = udp::serve(socket, balancer, labels, task_shared, stop.clone());
            shared.tasks.spawn(task.instrument(span));
        }
    }
    Ok(stop)
}

impl DataPlane {
    /// Closes every listener (connections end through the shutdown token).
    pub fn close_all(&mut self) {
        for running in self.running.values() {
            if let SocketState::Open(stop) = &running.socket {
                stop.cancel();
            }
        }
        self.running.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_errors_explain_themselves() {
        let key = ListenerKey {
            ip: "127.96.0.20".parse().expect("ip"),
            port: 80,
            protocol: Protocol::Tcp,
        };
        let denied = BindError::new(key, io::Error::from_raw_os_error(libc::EACCES));
        assert!(matches!(denied, BindError::PermissionDenied { .. }));
        let text = denied.to_string();
        assert!(text.contains("127.96.0.20:80/TCP"), "{text}");
        assert!(
            text.contains("net.ipv4.ip_unprivileged_port_start"),
            "{text}"
        );
        let foreign = BindError::new(key, io::Error::from_raw_os_error(libc::EADDRNOTAVAIL));
        assert!(foreign.to_string().contains("127.0.0.0/8"));
    }
}
