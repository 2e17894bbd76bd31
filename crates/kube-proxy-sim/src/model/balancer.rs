//! Picking a backend for a new connection or UDP flow: round robin, or `sessionAffinity:
//! ClientIP` (a client keeps its backend while it keeps connecting within the timeout, as
//! kube-proxy's `recent` match does: every new connection refreshes the entry).
//!
//! A client's first backend under affinity is not the round-robin turn but the endpoint with the
//! highest rendezvous hash of (client IP, endpoint): on a local cluster several niwa-proxy
//! processes share each ClusterIP through `SO_REUSEPORT`, and the kernel hands a client's
//! connections (each from a new source port) to any of them. Since every proxy computes the same
//! hash over the same endpoints, they all pin the client to the same backend without sharing
//! state; the table then keeps kube-proxy's semantics (the pin survives endpoint additions until
//! it times out).
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
            let backend = rendezvous(client, &backends, exclude)?;
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

/// The backend with the highest hash of (client, backend) among those not excluded: the same on
/// every proxy with the same backends, and removing a backend moves only its own clients.
pub fn rendezvous(
    client: IpAddr,
    backends: &[SocketAddr],
    exclude: &[SocketAddr],
) -> Option<SocketAddr> {
    let client = mix(fold(client));
    backends
        .iter()
        .filter(|b| !exclude.contains(b))
        .max_by_key(|b| mix(client ^ mix(fold(b.ip()) ^ (u64::from(b.port()) << 48))))
        .copied()
}

/// An address in 64 bits (IPv4 as is; IPv6 halves folded).
fn fold(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v4) => u64::from(u32::from(v4)),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            bits as u64 ^ (bits >> 64) as u64
        }
    }
}

/// splitmix64's finaliser: a fixed, well-spread 64-bit mix (std's hashers are not promised to be
/// stable across builds, and every proxy must agree).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
