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
    /// `--node-cidr-mask-size`: the podCIDR size per node.
    pub node_cidr_mask_size: u8,
    /// Node lifecycle: how long a node's Lease may go unrenewed before it is Unknown.
    pub node_monitor_grace_period: Duration,
    /// Node lifecycle: how often nodes are checked.
    pub node_monitor_period: Duration,
    /// Tolerations for `node.kubernetes.io/unreachable` / `not-ready` NoExecute that pods
    /// without one get (Kubernetes' DefaultTolerationSeconds: 300).
    pub default_unreachable_toleration_seconds: i64,
    pub default_not_ready_toleration_seconds: i64,
    /// `--local-path-dir`: where the local-path provisioner puts a node's volumes, `{node}`
    /// standing for the node's name (see `controllers::volume::provision`).
    pub local_path_dir: String,
    /// The controllers' clock (tests move it forward).
    pub clock: Clock,
}

/// The default `--local-path-dir`.
pub const DEFAULT_LOCAL_PATH_DIR: &str = "/var/lib/niwa/storage/{node}";

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
            node_cidr_mask_size: 24,
            node_monitor_grace_period: Duration::from_secs(40),
            node_monitor_period: Duration::from_secs(5),
            default_unreachable_toleration_seconds: 300,
            default_not_ready_toleration_seconds: 300,
            local_path_dir: DEFAULT_LOCAL_PATH_DIR.into(),
            clock: Clock::system(),
        }
    }
}

/// What the cluster controllers read of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub cluster_cidr: String,
    pub node_cidr_mask_size: u8,
    pub lb_pool: String,
    pub node_monitor_grace_period: Duration,
    pub node_monitor_period: Duration,
    pub default_unreachable_toleration_seconds: i64,
    pub default_not_ready_toleration_seconds: i64,
    pub local_path_dir: String,
}

impl Settings {
    pub fn from_config(c: &Config) -> Settings {
        Settings {
            cluster_cidr: c.cluster_cidr.clone(),
            node_cidr_mask_size: c.node_cidr_mask_size,
            lb_pool: c.lb_pool.clone(),
            node_monitor_grace_period: c.node_monitor_grace_period,
            node_monitor_period: c.node_monitor_period,
            default_unreachable_toleration_seconds: c.default_unreachable_toleration_seconds,
            default_not_ready_toleration_seconds: c.default_not_ready_toleration_seconds,
            local_path_dir: c.local_path_dir.clone(),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings::from_config(&Config::new("http://127.0.0.1:6443"))
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
