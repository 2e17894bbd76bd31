//! `niwa-kubelet`: flags (with `NIWA_KUBELET_*` environment fallbacks), logging and signals; the
//! work is in the library (`niwa_kubelet::run`).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use niwa_kubelet::config::{Capacity, KubeletConfig, PodCidr, RuntimeKind, parse_labels};
use niwa_kubelet::time::parse_go_duration;
use tokio_util::sync::CancellationToken;

/// mimalloc instead of glibc's malloc, as the other daemons: a process of thousands of sim nodes
/// decodes and encodes a pod or a node status per event, many small short-lived blocks.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum RuntimeFlag {
    Sim,
    Process,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn duration(s: &str) -> Result<Duration, String> {
    parse_go_duration(s).ok_or_else(|| format!("{s:?} is not a duration (like 10s, 500ms, 2m)"))
}

/// niwa's node agent: registers node(s), runs their pods (simulated or as real processes), serves
/// logs and exec to the apiserver.
#[derive(Debug, Parser)]
#[command(name = "niwa-kubelet", version)]
struct Flags {
    /// The apiserver's URL.
    #[arg(
        long,
        env = "NIWA_KUBELET_APISERVER",
        default_value = "http://127.0.0.1:6443"
    )]
    apiserver: String,
    /// The node name (with --nodes N > 1: the prefix of <name>-1 ... <name>-N).
    #[arg(long, env = "NIWA_KUBELET_NODE_NAME", default_value = "node-1")]
    node_name: String,
    /// The node's address (127.1.0.N by convention); further nodes count up from it.
    #[arg(long, env = "NIWA_KUBELET_NODE_IP", default_value = "127.1.0.1")]
    node_ip: Ipv4Addr,
    /// How many nodes this process runs (sim runtime: thousands are fine).
    #[arg(long, env = "NIWA_KUBELET_NODES", default_value_t = 1)]
    nodes: usize,
    #[arg(
        long,
        env = "NIWA_KUBELET_RUNTIME",
        value_enum,
        default_value = "process"
    )]
    runtime: RuntimeFlag,
    /// Pod addresses of the (first) node; further nodes take the following /24s.
    #[arg(long, env = "NIWA_KUBELET_POD_CIDR", default_value = "127.244.1.0/24")]
    pod_cidr: String,
    /// Where pod directories, volumes and logs are kept (process runtime).
    #[arg(long, env = "NIWA_KUBELET_ROOT_DIR", default_value = ".niwa/kubelet")]
    root_dir: PathBuf,
    /// Port of the kubelet API on each node address.
    #[arg(long, env = "NIWA_KUBELET_PORT", default_value_t = 10250)]
    port: u16,
    /// Port of /healthz and /metrics on the first node address.
    #[arg(long, env = "NIWA_KUBELET_HEALTHZ_PORT", default_value_t = 10248)]
    healthz_port: u16,
    /// Node capacity (default: the machine's for the process runtime, 4 cpu / 16Gi for sim).
    #[arg(long, env = "NIWA_KUBELET_CPU")]
    cpu: Option<String>,
    #[arg(long, env = "NIWA_KUBELET_MEMORY")]
    memory: Option<String>,
    #[arg(long, env = "NIWA_KUBELET_MAX_PODS", default_value_t = 110)]
    max_pods: u32,
    #[arg(long, env = "NIWA_KUBELET_EPHEMERAL_STORAGE")]
    ephemeral_storage: Option<String>,
    /// Extra node labels, key=value,...
    #[arg(long, env = "NIWA_KUBELET_NODE_LABELS", default_value = "")]
    node_labels: String,
    /// Give the node(s) node-role.kubernetes.io/<role> labels (repeatable).
    #[arg(
        long = "node-role",
        env = "NIWA_KUBELET_NODE_ROLES",
        value_delimiter = ','
    )]
    node_roles: Vec<String>,
    /// Nameserver of ClusterFirst pods (the kube-dns Service).
    #[arg(long, env = "NIWA_KUBELET_CLUSTER_DNS", default_value = "127.96.0.10")]
    cluster_dns: Ipv4Addr,
    #[arg(
        long,
        env = "NIWA_KUBELET_CLUSTER_DOMAIN",
        default_value = "cluster.local"
    )]
    cluster_domain: String,
    /// Node Lease renewal interval.
    #[arg(long, env = "NIWA_KUBELET_LEASE_INTERVAL", value_parser = duration, default_value = "10s")]
    lease_interval: Duration,
    /// CrashLoopBackOff: first delay and maximum (Kubernetes: 10s, 5m).
    #[arg(long, env = "NIWA_KUBELET_BACKOFF_INITIAL", value_parser = duration, default_value = "10s")]
    backoff_initial: Duration,
    #[arg(long, env = "NIWA_KUBELET_BACKOFF_MAX", value_parser = duration, default_value = "5m")]
    backoff_max: Duration,
    /// Concurrent pod-status writes to the apiserver (all nodes of this process together).
    #[arg(long, env = "NIWA_KUBELET_STATUS_WORKERS", default_value_t = 64)]
    status_workers: usize,
    /// Publish core/v1 Events (default: on for the process runtime, off for sim).
    #[arg(long, env = "NIWA_KUBELET_EVENTS")]
    events: Option<bool>,
    /// Sim runtime delays: sandbox, container start, stop after SIGTERM, and random extra.
    #[arg(long, env = "NIWA_KUBELET_SIM_SANDBOX_DELAY", value_parser = duration, default_value = "0s")]
    sim_sandbox_delay: Duration,
    #[arg(long, env = "NIWA_KUBELET_SIM_START_DELAY", value_parser = duration, default_value = "0s")]
    sim_start_delay: Duration,
    #[arg(long, env = "NIWA_KUBELET_SIM_STOP_DELAY", value_parser = duration, default_value = "0s")]
    sim_stop_delay: Duration,
    #[arg(long, env = "NIWA_KUBELET_SIM_JITTER", value_parser = duration, default_value = "0s")]
    sim_jitter: Duration,
    #[arg(
        long,
        env = "NIWA_KUBELET_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
    /// Process runtime: add each pod IP as a /32 to this interface (nodes that are containers on
    /// one bridge, deploy/docker-compose.yml); allows a private --node-ip and --pod-cidr.
    #[arg(long, env = "NIWA_KUBELET_POD_IP_INTERFACE")]
    pod_ip_interface: Option<String>,
}

impl Flags {
    fn into_config(self) -> Result<KubeletConfig, String> {
        let runtime = match self.runtime {
            RuntimeFlag::Sim => RuntimeKind::Sim,
            RuntimeFlag::Process => RuntimeKind::Process,
        };
        let mut c = KubeletConfig::new(&self.apiserver, runtime);
        c.node_name = self.node_name;
        c.node_ip = self.node_ip;
        c.nodes = self.nodes;
        c.pod_cidr = if self.pod_ip_interface.is_some() {
            PodCidr::parse_private(&self.pod_cidr)
        } else {
            PodCidr::parse(&self.pod_cidr)
        }
        .map_err(|e| e.to_string())?;
        c.pod_ip_interface = self.pod_ip_interface;
        c.root_dir = self.root_dir;
        c.port = self.port;
        c.health_port = self.healthz_port;
        let defaults = Capacity::default();
        c.capacity = Capacity {
            cpu: self.cpu.unwrap_or(defaults.cpu),
            memory: self.memory.unwrap_or(defaults.memory),
            pods: self.max_pods,
            ephemeral_storage: self.ephemeral_storage.unwrap_or(defaults.ephemeral_storage),
        };
        c.labels = parse_labels(&self.node_labels).map_err(|e| e.to_string())?;
        c.roles = self
            .node_roles
            .into_iter()
            .filter(|r| !r.is_empty())
            .collect();
        c.cluster_dns = self.cluster_dns;
        c.cluster_domain = self.cluster_domain;
        c.lease_interval = self.lease_interval;
        c.status_workers = self.status_workers.max(1);
        c.machine.restart_backoff.initial = self.backoff_initial;
        c.machine.restart_backoff.max = self.backoff_max;
        if let Some(events) = self.events {
            c.events = events;
        }
        c.sim.sandbox_delay = self.sim_sandbox_delay;
        c.sim.start_delay = self.sim_start_delay;
        c.sim.stop_delay = self.sim_stop_delay;
        c.sim.jitter = self.sim_jitter;
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// The helper modes of the same binary: the process runtime's shim and enter helper, and the
/// built-in images.
fn helper(args: &[String]) -> Option<i32> {
    use niwa_kubelet::runtime::process::{enter, shim};
    match args.get(1).map(String::as_str)? {
        "shim" => {
            let launch = args.get(2)?;
            let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from(&args[0]));
            Some(shim::shim(std::path::Path::new(launch), &exe))
        }
        "enter"
            if matches!(
                args.get(2).map(String::as_str),
                Some("--join" | "--join-tty")
            ) =>
        {
            let pid: u32 = args.get(3)?.parse().ok()?;
            let argv: Vec<String> = args
                .iter()
                .skip(4)
                .skip_while(|a| *a == "--")
                .cloned()
                .collect();
            Some(enter::join(pid, &argv, args[2] == "--join-tty"))
        }
        "enter" => Some(enter::enter(std::path::Path::new(args.get(2)?))),
        "image" => Some(niwa_kubelet::images::builtin::run(args.get(2)?, &args[3..])),
        _ => None,
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let Some(code) = helper(&args) {
        return ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1));
    }
    let flags = Flags::parse();
    init_logging(flags.log_format);
    let config = match flags.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("niwa-kubelet: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("niwa-kubelet: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let shutdown = CancellationToken::new();
        let signals = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("stopping");
            signals.cancel();
        });
        match niwa_kubelet::run(config, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("niwa-kubelet: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
