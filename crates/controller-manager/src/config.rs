//! The controller-manager's configuration (flags in `main.rs` fill it; tests build it directly).

use std::net::SocketAddr;
use std::time::Duration;

use crate::clock::Clock;
use crate::controllers::Concurrency;

/// Leader election settings (`--leader-elect*`, client-go's defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderElection {
    pub enabled: bool,
    pub namespace: String,
    pub name: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl Default for LeaderElection {
    fn default() -> Self {
        LeaderElection {
            enabled: true,
            namespace: "kube-system".into(),
            name: "kube-controller-manager".into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The apiserver's URL (`http://127.0.0.1:6443`).
    pub apiserver: String,
    /// `--controllers` entries (Kubernetes' syntax; default `*`).
    pub controllers: Vec<String>,
    pub concurrency: Concurrency,
    pub leader_election: LeaderElection,
    /// Unique name of this replica (Lease holder identity, Event source host).
    pub identity: String,
    /// Where /healthz, /readyz, /livez and /metrics are served (None: not served).
    pub metrics_listen: Option<SocketAddr>,
    /// For the cluster controllers (issue 8): pod CIDR and LoadBalancer pool.
    pub cluster_cidr: String,
    pub lb_pool: String,
    /// The controllers' clock (tests move it forward).
    pub clock: Clock,
}

impl Config {
    pub fn new(apiserver: &str) -> Config {
        Config {
            apiserver: apiserver.to_string(),
            controllers: vec!["*".into()],
            concurrency: Concurrency::default(),
            leader_election: LeaderElection::default(),
            identity: default_identity(),
            metrics_listen: None,
            cluster_cidr: "127.244.0.0/16".into(),
            lb_pool: "127.200.0.0/24".into(),
            clock: Clock::system(),
        }
    }
}

/// `hostname_<random>`, as client-go builds lease identities.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{host}_{:08x}{:04x}", nanos, std::process::id() & 0xffff)
}
