//! Picking a backend for a new connection or UDP flow: round robin, or `sessionAffinity:
//! ClientIP` (a client keeps its backend while it keeps connecting within the timeout, as
//! kube-proxy's `recent` match does: every new connection refreshes the entry).
//!
//! The clock is injected (`now`), so the policy is tested without sleeping.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Most clients remembered per Service port for session affinity. Past it, expired entries are
/// swept; if the table is still full, new clients are balanced round robin without an entry.
pub const MAX_AFFINITY_ENTRIES: usize = 65_536;

#[derive(Debug)]
struct Affinity {
    timeout: Duration,
    clients: Mutex<HashMap<IpAddr, (SocketAddr, Instant)>>,
}

/// The backends of one listener and its balancing state. Backends are swapped in place when
/// EndpointSlices change, so established connections and affinity entries to backends that
/// remain are kept.
#[derive(Debug)]
pub struct Balancer {
    backends: Mutex<Arc<[SocketAddr]>>,
    next: AtomicUsize,
    affinity: Mutex<Option<Affinity>>,
}

impl Balancer {
    pub fn new(backends: Arc<[SocketAddr]>, affinity: Option<Duration>) -> Balancer {
        let balancer = Balancer {
            backends: Mutex::new(backends),
            next: AtomicUsize::new(0),
            affinity: Mutex::new(None),
        };
        balancer.set_affinity(affinity);
        balancer
    }

    /// The current backends.
    pub fn backends(&self) -> Arc<[SocketAddr]> {
        self.backends.lock().clone()
    }

    /// Replaces the backends (sorted, deduplicated). Affinity entries to removed backends are
    /// dropped on their next use.
    pub fn set_backends(&self, backends: Arc<[SocketAddr]>) {
        *self.backends.lock() = backends;
    }

    /// Turns session affinity on (with its timeout), off, or changes the timeout.
    pub fn set_affinity(&self, timeout: Option<Duration>) {
        let mut affinity = self.affinity.lock();
        match (timeout, affinity.as_mut()) {
            (None, _) => *affinity = None,
            (Some(t), Some(existing)) => existing.timeout = t,
            (Some(t), None) => {
                *affinity = Some(Affinity {
                    timeout: t,
                    clients: Mutex::new(HashMap::new()),
                })
            }
        }
    }

    /// The backend for a new connection from `client`, skipping `exclude` (backends that just
    /// refused this connection). `None` when no backend is left.
    pub fn pick(&self, client: IpAddr, now: Instant, exclude: &[SocketAddr]) -> Option<SocketAddr> {
        let backends = self.backends();
        let affinity = self.affinity.lock();
        if let Some(affinity) = affinity.as_ref() {
            let mut clients = affinity.clients.lock();
            if let Some((backend, last)) = clients.get(&client).copied() {
                let alive = now.saturating_duration_since(last) <= affinity.timeout
                    && backends.contains(&backend)
                    && !exclude.contains(&backend);
                if alive {
                    clients.insert(client, (backend, now));
                    return Some(backend);
                }
                clients.remove(&client);
            }
            let backend = self.round_robin(&backends, exclude)?;
            if clients.len() >= MAX_AFFINITY_ENTRIES {
                let timeout = affinity.timeout;
                clients.retain(|_, (_, last)| now.saturating_duration_since(*last) <= timeout);
            }
            if clients.len() < MAX_AFFINITY_ENTRIES {
                clients.insert(client, (backend, now));
            }
            return Some(backend);
        }
        drop(affinity);
        self.round_robin(&backends, exclude)
    }

    fn round_robin(&self, backends: &[SocketAddr], exclude: &[SocketAddr]) -> Option<SocketAddr> {
        let n = backends.len();
        for _ in 0..n {
            let i = self.next.fetch_add(1, Ordering::Relaxed) % n;
            if !exclude.contains(&backends[i]) {
                return Some(backends[i]);
            }
        }
        None
    }
}
