//! The kubelet's configuration (what `main.rs` fills from flags, and tests build directly), and
//! the per-node identities derived from it when one process runs many simulated nodes.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use crate::pod::MachineConfig;
use crate::runtime::sim::SimConfig;

/// Which runtime runs the pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuntimeKind {
    /// kwok-style simulation: no processes.
    Sim,
    /// Real OS processes.
    Process,
}

impl RuntimeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Sim => "sim",
            RuntimeKind::Process => "process",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error(
        "--node-ip {0}: node addresses must be in 127.0.0.0/8 (niwa never sends traffic elsewhere; with --pod-ip-interface, a private address)"
    )]
    NodeIpNotLoopback(Ipv4Addr),
    #[error("--pod-cidr {0:?}: expected an IPv4 /24 in 127.0.0.0/8, like 127.244.1.0/24")]
    PodCidr(String),
    #[error("--nodes {0}: must be between 1 and 60000")]
    NodeCount(usize),
    #[error("--node-labels {0:?}: expected key=value[,key=value...]")]
    Labels(String),
}

/// A /24 of pod addresses (node.spec.podCIDR).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PodCidr {
    pub base: Ipv4Addr,
}

impl PodCidr {
    pub fn parse(s: &str) -> Result<PodCidr, ConfigError> {
        Self::parse_where(s, |ip| ip.octets()[0] == 127)
    }

    /// Like [`PodCidr::parse`], also accepting private (RFC 1918) blocks: pod addresses on a
    /// real interface (`--pod-ip-interface`), inside a pinned bridge network.
    pub fn parse_private(s: &str) -> Result<PodCidr, ConfigError> {
        Self::parse_where(s, |ip| ip.octets()[0] == 127 || ip.is_private())
    }

    fn parse_where(s: &str, allowed: impl Fn(Ipv4Addr) -> bool) -> Result<PodCidr, ConfigError> {
        let err = || ConfigError::PodCidr(s.to_string());
        let (ip, len) = s.split_once('/').ok_or_else(err)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| err())?;
        let len: u8 = len.parse().map_err(|_| err())?;
        // A wider block is fine: the node uses its first /24.
        if len > 24 || !allowed(ip) {
            return Err(err());
        }
        let [a, b, c, _] = ip.octets();
        Ok(PodCidr {
            base: Ipv4Addr::new(a, b, c, 0),
        })
    }

    /// The `i`-th /24 after this one (node `i` of a multi-node process).
    pub fn nth(&self, i: u32) -> PodCidr {
        let base = u32::from(self.base).wrapping_add(i << 8);
        PodCidr {
            base: Ipv4Addr::from(base),
        }
    }

    /// Host addresses handed to pods: .2 to .254 (.1 is the "gateway", as on a bridge).
    pub fn host(&self, n: u8) -> Ipv4Addr {
        let [a, b, c, _] = self.base.octets();
        Ipv4Addr::new(a, b, c, n)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) >> 8 == u32::from(self.base) >> 8
    }
}

impl std::fmt::Display for PodCidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/24", self.base)
    }
}

/// What a node offers (`status.capacity`; allocatable is the same minus nothing reserved).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capacity {
    pub cpu: String,
    pub memory: String,
    pub pods: u32,
    pub ephemeral_storage: String,
}

impl Default for Capacity {
    fn default() -> Self {
        Capacity {
            cpu: "4".into(),
            memory: "16Gi".into(),
            pods: 110,
            ephemeral_storage: "100Gi".into(),
        }
    }
}

/// The whole configuration.
#[derive(Clone, Debug)]
pub struct KubeletConfig {
    /// The apiserver's gRPC URL (`http://127.0.0.1:6443`).
    pub apiserver: String,
    /// The node name; with `nodes > 1`, the prefix of `<name>-<i>`.
    pub node_name: String,
    /// The (first) node's address; further nodes count up from it.
    pub node_ip: Ipv4Addr,
    /// How many nodes this process runs.
    pub nodes: usize,
    pub runtime: RuntimeKind,
    /// Pod addresses of the (first) node when the node object has no `spec.podCIDR`; further
    /// nodes take the following /24s.
    pub pod_cidr: PodCidr,
    /// Where the process runtime keeps pod directories, logs and state.
    pub root_dir: PathBuf,
    /// Port of the kubelet API (gRPC) on each node address; 0 picks a free one.
    pub port: u16,
    /// Port of /healthz, /readyz, /livez and /metrics on each node address; 0 picks a free one.
    pub health_port: u16,
    pub capacity: Capacity,
    /// Extra node labels.
    pub labels: BTreeMap<String, String>,
    /// Give the nodes `node-role.kubernetes.io/<role>` labels.
    pub roles: Vec<String>,
    /// Nameserver for `dnsPolicy: ClusterFirst` pods (the kube-dns Service).
    pub cluster_dns: Ipv4Addr,
    pub cluster_domain: String,
    /// Lease renewal interval (Kubernetes: 10 s with a 40 s lease).
    pub lease_interval: Duration,
    pub lease_duration_seconds: i32,
    /// Full node status is re-posted this often even when nothing changed (Kubernetes: 5 min);
    /// changes are posted at once.
    pub status_report_interval: Duration,
    /// Concurrent pod-status writes to the apiserver (all nodes of the process together). 64,
    /// not 16: with 1,000 sim nodes heartbeating, writes are latency-bound and 16 in flight
    /// could not keep up with 100 pods/s (docs/BENCHMARKS.md).
    pub status_workers: usize,
    /// Publish core/v1 Events (Pulled, Started, Killing, BackOff, Unhealthy...).
    pub events: bool,
    pub machine: MachineConfig,
    pub sim: SimConfig,
    /// The niwa-kubelet binary the process runtime runs as shim, enter helper and built-in
    /// images (default: this executable).
    pub exe: Option<PathBuf>,
    /// How often ConfigMap and Secret volumes are re-read.
    pub volume_resync: Duration,
    /// Process runtime: add each pod address as a /32 to this interface (nodes that are
    /// containers on one bridge); then node and pod addresses may be private, not loopback.
    pub pod_ip_interface: Option<String>,
}

impl KubeletConfig {
    /// Defaults as ARCHITECTURE.md §5 gives them for node 1.
    pub fn new(apiserver: &str, runtime: RuntimeKind) -> KubeletConfig {
        KubeletConfig {
            apiserver: apiserver.to_string(),
            node_name: "node-1".into(),
            node_ip: Ipv4Addr::new(127, 1, 0, 1),
            nodes: 1,
            runtime,
            pod_cidr: PodCidr {
                base: Ipv4Addr::new(127, 244, 1, 0),
            },
            root_dir: PathBuf::from(".niwa/kubelet"),
            port: 10250,
            health_port: 10248,
            capacity: Capacity::default(),
            labels: BTreeMap::new(),
            roles: Vec::new(),
            cluster_dns: Ipv4Addr::new(127, 96, 0, 10),
            cluster_domain: "cluster.local".into(),
            lease_interval: Duration::from_secs(10),
            lease_duration_seconds: 40,
            status_report_interval: Duration::from_secs(300),
            status_workers: 64,
            events: runtime == RuntimeKind::Process,
            machine: MachineConfig::default(),
            sim: SimConfig::default(),
            exe: None,
            volume_resync: Duration::from_secs(2),
            pod_ip_interface: None,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let on_interface = self.pod_ip_interface.is_some() && self.node_ip.is_private();
        if self.node_ip.octets()[0] != 127 && !on_interface {
            return Err(ConfigError::NodeIpNotLoopback(self.node_ip));
        }
        if self.nodes == 0 || self.nodes > 60_000 {
            return Err(ConfigError::NodeCount(self.nodes));
        }
        Ok(())
    }

    /// The identities of every node of this process.
    pub fn node_identities(&self) -> Vec<NodeIdentity> {
        (0..self.nodes)
            .map(|i| {
                let name = if self.nodes == 1 {
                    self.node_name.clone()
                } else {
                    format!("{}-{}", self.node_name, i + 1)
                };
                NodeIdentity {
                    name,
                    ip: nth_host(self.node_ip, i),
                    pod_cidr: self.pod_cidr.nth(i as u32),
                }
            })
            .collect()
    }
}

/// One node's name and addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeIdentity {
    pub name: String,
    pub ip: Ipv4Addr,
    pub pod_cidr: PodCidr,
}

/// The `i`-th address counting up from `first`, skipping .0 and .255 (which some tools treat as
/// network and broadcast addresses).
pub fn nth_host(first: Ipv4Addr, i: usize) -> Ipv4Addr {
    let mut ip = u32::from(first);
    for _ in 0..i {
        ip = ip.wrapping_add(1);
        while matches!(ip & 0xff, 0 | 255) {
            ip = ip.wrapping_add(1);
        }
    }
    Ipv4Addr::from(ip)
}

/// `a=b,c=d` into a map.
pub fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| ConfigError::Labels(s.to_string()))?;
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_identities_count_up() {
        let mut c = KubeletConfig::new("http://127.0.0.1:6443", RuntimeKind::Sim);
        c.nodes = 300;
        c.node_name = "sim".into();
        let ids = c.node_identities();
        assert_eq!(ids[0].name, "sim-1");
        assert_eq!(ids[0].ip, Ipv4Addr::new(127, 1, 0, 1));
        assert_eq!(ids[253].ip, Ipv4Addr::new(127, 1, 0, 254));
        assert_eq!(ids[254].ip, Ipv4Addr::new(127, 1, 1, 1));
        assert_eq!(ids[0].pod_cidr.to_string(), "127.244.1.0/24");
        assert_eq!(ids[299].pod_cidr.to_string(), "127.245.44.0/24");
    }

    #[test]
    fn pod_cidr_parsing() {
        assert_eq!(
            PodCidr::parse("127.244.3.0/24").map(|c| c.host(2)),
            Ok(Ipv4Addr::new(127, 244, 3, 2))
        );
        assert!(PodCidr::parse("10.0.0.0/24").is_err());
        assert!(PodCidr::parse("127.244.3.0/25").is_err());
        assert!(PodCidr::parse("nonsense").is_err());
        assert!(PodCidr::parse("172.31.101.0/24").is_err());
        assert_eq!(
            PodCidr::parse_private("172.31.101.0/24").map(|c| c.host(2)),
            Ok(Ipv4Addr::new(172, 31, 101, 2))
        );
        assert!(PodCidr::parse_private("8.8.8.0/24").is_err());
    }

    #[test]
    fn labels() {
        let l = parse_labels("a=b, zone=z1").unwrap_or_default();
        assert_eq!(l.get("zone").map(String::as_str), Some("z1"));
        assert!(parse_labels("nope").is_err());
    }
}
