//! The address plan of a local cluster and every component's command line, computed from a few
//! choices (how many nodes, which runtime, which address block). IO-free: the same plan always gives
//! the same command lines, which the golden tests pin.
//!
//! Linux routes all of 127.0.0.0/8 to loopback, so each node, pod, Service and load balancer gets a
//! real address of its own (ARCHITECTURE.md §5). The default plan is the one the docs describe; a
//! test cluster takes a private block 127.B.0.0/16 instead, so that clusters run side by side
//! without sharing a single address or port:
//!
//! | what                     | default             | block B              |
//! |--------------------------|---------------------|----------------------|
//! | control plane address    | 127.0.0.1           | 127.B.0.1            |
//! | node N (N ≥ 1)           | 127.1.0.N           | 127.B.1.N            |
//! | Service CIDR             | 127.96.0.0/16       | 127.B.96.0/20        |
//! | `kubernetes` / `kube-dns`| 127.96.0.1 / .0.10  | 127.B.96.1 / .96.10  |
//! | cluster pod CIDR         | 127.244.0.0/16      | 127.B.128.0/17       |
//! | LoadBalancer pool        | 127.200.0.0/24      | 127.B.200.0/24       |

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// The runtime of the process nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRuntime {
    /// Each container is a real OS process.
    Process,
    /// Simulated pods (kwok-style): no processes.
    Sim,
}

impl NodeRuntime {
    pub fn as_str(&self) -> &'static str {
        match self {
            NodeRuntime::Process => "process",
            NodeRuntime::Sim => "sim",
        }
    }
}

/// Where everything of one cluster lives on the loopback network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// Address of the control-plane daemons (store, apiserver, controller-manager, scheduler).
    pub control_plane: Ipv4Addr,
    /// The first three octets of node addresses: node N is `<prefix>.N`.
    pub node_prefix: [u8; 3],
    /// The first simulated node's address; further ones count up from it (a range of their own,
    /// so thousands fit apart from the process nodes).
    pub sim_node_start: Ipv4Addr,
    pub service_cidr: String,
    pub kubernetes_service_ip: Ipv4Addr,
    pub dns_service_ip: Ipv4Addr,
    pub cluster_cidr: String,
    pub lb_pool: String,
    pub store_port: u16,
    pub apiserver_port: u16,
}

impl Network {
    /// The documented single-cluster layout (ARCHITECTURE.md §5).
    pub fn standard() -> Network {
        Network {
            control_plane: Ipv4Addr::new(127, 0, 0, 1),
            node_prefix: [127, 1, 0],
            sim_node_start: Ipv4Addr::new(127, 2, 0, 1),
            service_cidr: "127.96.0.0/16".into(),
            kubernetes_service_ip: Ipv4Addr::new(127, 96, 0, 1),
            dns_service_ip: Ipv4Addr::new(127, 96, 0, 10),
            cluster_cidr: "127.244.0.0/16".into(),
            lb_pool: "127.200.0.0/24".into(),
            store_port: 2379,
            apiserver_port: 6443,
        }
    }

    /// A private layout inside 127.B.0.0/16, for clusters that run beside others (tests).
    /// Blocks 0, 1, 96, 200 and 244 overlap the standard layout and are refused.
    pub fn block(b: u8) -> Option<Network> {
        if matches!(b, 0 | 1 | 96 | 200 | 244 | 255) {
            return None;
        }
        Some(Network {
            control_plane: Ipv4Addr::new(127, b, 0, 1),
            node_prefix: [127, b, 1],
            sim_node_start: Ipv4Addr::new(127, b, 16, 1),
            service_cidr: format!("127.{b}.96.0/20"),
            kubernetes_service_ip: Ipv4Addr::new(127, b, 96, 1),
            dns_service_ip: Ipv4Addr::new(127, b, 96, 10),
            cluster_cidr: format!("127.{b}.128.0/17"),
            lb_pool: format!("127.{b}.200.0/24"),
            store_port: 2379,
            apiserver_port: 6443,
        })
    }

    pub fn node_ip(&self, n: u32) -> Ipv4Addr {
        let [a, b, c] = self.node_prefix;
        Ipv4Addr::new(a, b, c, n.min(254) as u8)
    }

    pub fn store_addr(&self) -> SocketAddr {
        SocketAddr::from((self.control_plane, self.store_port))
    }

    pub fn apiserver_addr(&self) -> SocketAddr {
        SocketAddr::from((self.control_plane, self.apiserver_port))
    }

    pub fn apiserver_url(&self) -> String {
        format!("http://{}", self.apiserver_addr())
    }
}

/// When a component starts: every component of a stage waits until the previous stages are
/// healthy, and stops after the later stages have stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Store = 0,
    ApiServer = 1,
    ControlPlane = 2,
    Nodes = 3,
}

/// One daemon of the cluster: how to run it and how to tell it is healthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentSpec {
    /// Unique within the cluster: `store`, `apiserver`, `kubelet-node-1`, …
    pub name: String,
    /// The binary's file name, looked up in the plan's binary directory.
    pub binary: &'static str,
    pub args: Vec<String>,
    pub stage: Stage,
    /// `GET http://<addr>/healthz` answers 200 when the component is up.
    pub health: SocketAddr,
}

/// Everything `niwa up` was asked for.
#[derive(Debug, Clone)]
pub struct ClusterPlan {
    pub data_dir: PathBuf,
    /// Where the component binaries are (normally the directory of the `niwa` binary).
    pub bin_dir: PathBuf,
    pub network: Network,
    /// Nodes with a kubelet and a proxy process each.
    pub nodes: u32,
    pub runtime: NodeRuntime,
    /// Extra simulated nodes, all served by one kubelet process.
    pub sim_nodes: u32,
    pub cluster_domain: String,
}

fn s(v: impl ToString) -> String {
    v.to_string()
}

impl ClusterPlan {
    pub fn new(data_dir: impl Into<PathBuf>, bin_dir: impl Into<PathBuf>) -> ClusterPlan {
        ClusterPlan {
            data_dir: data_dir.into(),
            bin_dir: bin_dir.into(),
            network: Network::standard(),
            nodes: 1,
            runtime: NodeRuntime::Process,
            sim_nodes: 0,
            cluster_domain: "cluster.local".into(),
        }
    }

    pub fn kubeconfig_path(&self) -> PathBuf {
        self.data_dir.join("kubeconfig")
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.data_dir.join("logs")
    }

    pub fn log_path(&self, component: &str) -> PathBuf {
        self.logs_dir().join(format!("{component}.log"))
    }

    fn dir(&self, sub: &str) -> String {
        path_arg(&self.data_dir.join(sub))
    }

    /// The address niwa-dns answers on; the `kube-dns` Service (at [`Network::dns_service_ip`])
    /// forwards to it through niwa-proxy, as a ClusterIP fronts CoreDNS pods.
    pub fn dns_endpoint(&self) -> SocketAddr {
        SocketAddr::from((self.network.control_plane, 1053))
    }

    /// Every component, in start order.
    pub fn components(&self) -> Vec<ComponentSpec> {
        let net = &self.network;
        let cp = net.control_plane;
        let api = net.apiserver_url();
        let mut out = vec![
            ComponentSpec {
                name: "store".into(),
                binary: "niwa-store",
                args: vec![
                    s("--listen"),
                    s(net.store_addr()),
                    s("--metrics-listen"),
                    s(SocketAddr::from((cp, 2381))),
                    s("--data-dir"),
                    self.dir("store"),
                ],
                stage: Stage::Store,
                health: SocketAddr::from((cp, 2381)),
            },
            ComponentSpec {
                name: "apiserver".into(),
                binary: "niwa-apiserver",
                args: vec![
                    s("--listen"),
                    s(net.apiserver_addr()),
                    s("--store-endpoints"),
                    s(net.store_addr()),
                    s("--service-cidr"),
                    s(&net.service_cidr),
                ],
                stage: Stage::ApiServer,
                health: net.apiserver_addr(),
            },
            ComponentSpec {
                name: "controller-manager".into(),
                binary: "niwa-controller-manager",
                args: vec![
                    s("--apiserver"),
                    s(&api),
                    s("--metrics-listen"),
                    s(SocketAddr::from((cp, 10257))),
                    s("--cluster-cidr"),
                    s(&net.cluster_cidr),
                    s("--lb-pool"),
                    s(&net.lb_pool),
                    // local-path volumes live beside each kubelet's root dir.
                    s("--local-path-dir"),
                    self.dir("nodes/{node}/storage"),
                ],
                stage: Stage::ControlPlane,
                health: SocketAddr::from((cp, 10257)),
            },
            ComponentSpec {
                name: "scheduler".into(),
                binary: "niwa-scheduler",
                args: vec![
                    s("--apiserver"),
                    s(&api),
                    s("--health-listen"),
                    s(SocketAddr::from((cp, 10259))),
                ],
                stage: Stage::ControlPlane,
                health: SocketAddr::from((cp, 10259)),
            },
            ComponentSpec {
                name: "dns".into(),
                binary: "niwa-dns",
                args: vec![
                    s("--apiserver"),
                    s(&api),
                    s("--listen"),
                    s(self.dns_endpoint()),
                    s("--metrics-listen"),
                    s(SocketAddr::from((cp, 9153))),
                    s("--domain"),
                    s(&self.cluster_domain),
                ],
                stage: Stage::ControlPlane,
                health: SocketAddr::from((cp, 9153)),
            },
            ComponentSpec {
                name: "ingress".into(),
                binary: "niwa-ingress",
                args: vec![
                    s("--apiserver"),
                    s(&api),
                    s("--http-listen"),
                    s(SocketAddr::from((cp, 80))),
                    s("--https-listen"),
                    s(SocketAddr::from((cp, 443))),
                    s("--metrics-listen"),
                    s(SocketAddr::from((cp, 10254))),
                ],
                stage: Stage::ControlPlane,
                health: SocketAddr::from((cp, 10254)),
            },
        ];
        for n in 1..=self.nodes {
            let name = format!("node-{n}");
            let ip = net.node_ip(n);
            out.push(ComponentSpec {
                name: format!("kubelet-{name}"),
                binary: "niwa-kubelet",
                args: vec![
                    s("--apiserver"),
                    s(&api),
                    s("--node-name"),
                    s(&name),
                    s("--node-ip"),
                    s(ip),
                    s("--pod-cidr"),
                    s(self.pod_cidr(n)),
                    s("--runtime"),
                    s(self.runtime.as_str()),
                    s("--root-dir"),
                    self.dir(&format!("nodes/{name}")),
                    s("--cluster-dns"),
                    s(net.dns_service_ip),
                    s("--cluster-domain"),
                    s(&self.cluster_domain),
                    s("--healthz-port"),
                    s(10248),
                ],
                stage: Stage::Nodes,
                health: SocketAddr::from((ip, 10248)),
            });
            out.push(ComponentSpec {
                name: format!("proxy-{name}"),
                binary: "niwa-proxy",
                args: vec![
                    s("--apiserver"),
                    s(&api),
                    s("--node-name"),
                    s(&name),
                    s("--node-ip"),
                    s(ip),
                    s("--metrics-listen"),
                    s(SocketAddr::from((ip, 10249))),
                ],
                stage: Stage::Nodes,
                health: SocketAddr::from((ip, 10249)),
            });
        }
        if self.sim_nodes > 0 {
            // Simulated nodes share one kubelet process.
            let ip = net.sim_node_start;
            out.push(ComponentSpec {
                name: "kubelet-sim".into(),
                binary: "niwa-kubelet",
                args: vec![
                    s("--apiserver"),
                    s(&api),
                    s("--runtime"),
                    s("sim"),
                    s("--nodes"),
                    s(self.sim_nodes),
                    s("--node-name"),
                    s("sim-node"),
                    s("--node-ip"),
                    s(ip),
                    s("--pod-cidr"),
                    s(self.pod_cidr(self.nodes + 1)),
                    s("--root-dir"),
                    self.dir("nodes/sim"),
                    s("--cluster-dns"),
                    s(net.dns_service_ip),
                    s("--cluster-domain"),
                    s(&self.cluster_domain),
                    s("--healthz-port"),
                    s(10248),
                ],
                stage: Stage::Nodes,
                health: SocketAddr::from((ip, 10248)),
            });
        }
        out
    }

    /// Pod addresses of process node `n`: the n-th /24 of the cluster CIDR (so the node IPAM
    /// controller, which keeps a podCIDR a node already has, agrees).
    pub fn pod_cidr(&self, n: u32) -> String {
        let base: Ipv4Addr = self
            .network
            .cluster_cidr
            .split('/')
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or(Ipv4Addr::new(127, 244, 0, 0));
        let [a, b, c, _] = base.octets();
        let third = (u32::from(c) + n).min(255) as u8;
        format!("{a}.{b}.{third}.0/24")
    }
}

fn path_arg(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args_of(plan: &ClusterPlan, name: &str) -> String {
        plan.components()
            .into_iter()
            .find(|c| c.name == name)
            .map(|c| format!("{} {}", c.binary, c.args.join(" ")))
            .unwrap_or_default()
    }

    #[test]
    fn standard_plan_uses_the_documented_addresses() {
        let plan = ClusterPlan::new("/d", "/bin");
        assert_eq!(
            args_of(&plan, "store"),
            "niwa-store --listen 127.0.0.1:2379 --metrics-listen 127.0.0.1:2381 --data-dir /d/store"
        );
        assert_eq!(
            args_of(&plan, "apiserver"),
            "niwa-apiserver --listen 127.0.0.1:6443 --store-endpoints 127.0.0.1:2379 \
             --service-cidr 127.96.0.0/16"
        );
        assert_eq!(
            args_of(&plan, "kubelet-node-1"),
            "niwa-kubelet --apiserver http://127.0.0.1:6443 --node-name node-1 --node-ip 127.1.0.1 \
             --pod-cidr 127.244.1.0/24 --runtime process --root-dir /d/nodes/node-1 \
             --cluster-dns 127.96.0.10 --cluster-domain cluster.local --healthz-port 10248"
        );
        assert!(
            args_of(&plan, "controller-manager")
                .ends_with("--local-path-dir /d/nodes/{node}/storage")
        );
        assert_eq!(
            args_of(&plan, "dns"),
            "niwa-dns --apiserver http://127.0.0.1:6443 --listen 127.0.0.1:1053 \
             --metrics-listen 127.0.0.1:9153 --domain cluster.local"
        );
    }

    #[test]
    fn a_block_keeps_every_address_inside_it() {
        let mut plan = ClusterPlan::new("/d", "/bin");
        plan.network = Network::block(37).expect("block");
        plan.nodes = 3;
        plan.sim_nodes = 100;
        for c in plan.components() {
            assert!(c.health.ip().to_string().starts_with("127.37."), "{c:?}");
            for a in &c.args {
                if a.starts_with("127.") || a.starts_with("http://127.") {
                    assert!(a.contains("127.37."), "{} {a}", c.name);
                }
            }
        }
        assert_eq!(plan.network.node_ip(3), Ipv4Addr::new(127, 37, 1, 3));
        assert!(args_of(&plan, "kubelet-sim").contains("--nodes 100 --node-name sim-node"));
        assert!(args_of(&plan, "kubelet-sim").contains("--node-ip 127.37.16.1"));
        assert!(args_of(&plan, "kubelet-node-3").contains("--pod-cidr 127.37.131.0/24"));
        assert!(args_of(&plan, "kubelet-sim").contains("--pod-cidr 127.37.132.0/24"));
    }

    #[test]
    fn blocks_overlapping_the_standard_layout_are_refused() {
        for b in [0, 1, 96, 200, 244, 255] {
            assert!(Network::block(b).is_none());
        }
    }

    #[test]
    fn components_come_in_stage_order() {
        let mut plan = ClusterPlan::new("/d", "/bin");
        plan.nodes = 2;
        let stages: Vec<Stage> = plan.components().iter().map(|c| c.stage).collect();
        let mut sorted = stages.clone();
        sorted.sort();
        assert_eq!(stages, sorted);
        let names: Vec<String> = plan.components().into_iter().map(|c| c.name).collect();
        let mut unique = names.clone();
        unique.dedup();
        assert_eq!(names.len(), unique.len());
    }
}
