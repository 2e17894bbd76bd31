//! `niwa-controller-manager`: flags, logging, signals; everything else is in the library.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use niwa_controller_manager::Config;
use tokio_util::sync::CancellationToken;

/// mimalloc instead of glibc's malloc, as the other daemons: informers decode every watch event
/// into typed objects, many small short-lived blocks across threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "niwa-controller-manager",
    version,
    about = "niwa's controller-manager (Deployments, ReplicaSets, DaemonSets, StatefulSets, Jobs, CronJobs)"
)]
struct Args {
    /// The apiserver's URL.
    #[arg(long, env = "NIWA_APISERVER", default_value = "http://127.0.0.1:6443")]
    apiserver: String,
    /// Controllers to run: `*` (all on by default), `name`, `-name` (Kubernetes' syntax).
    #[arg(
        long,
        env = "NIWA_CONTROLLERS",
        default_value = "*",
        value_delimiter = ','
    )]
    controllers: Vec<String>,
    /// Elect a leader on the `kube-system/kube-controller-manager` Lease before running.
    #[arg(long, env = "NIWA_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    #[arg(
        long,
        env = "NIWA_LEADER_ELECT_LEASE_DURATION",
        default_value = "15",
        value_name = "SECONDS"
    )]
    leader_elect_lease_duration: u64,
    #[arg(
        long,
        env = "NIWA_LEADER_ELECT_RENEW_DEADLINE",
        default_value = "10",
        value_name = "SECONDS"
    )]
    leader_elect_renew_deadline: u64,
    #[arg(
        long,
        env = "NIWA_LEADER_ELECT_RETRY_PERIOD",
        default_value = "2",
        value_name = "SECONDS"
    )]
    leader_elect_retry_period: u64,
    /// Where /healthz, /readyz, /livez and /metrics are served.
    #[arg(
        long,
        env = "NIWA_CONTROLLER_MANAGER_METRICS_LISTEN",
        default_value = "127.0.0.1:10257"
    )]
    metrics_listen: SocketAddr,
    #[arg(long, default_value_t = 5)]
    concurrent_replicaset_syncs: usize,
    #[arg(long, default_value_t = 5)]
    concurrent_deployment_syncs: usize,
    #[arg(long, default_value_t = 2)]
    concurrent_daemonset_syncs: usize,
    #[arg(long, default_value_t = 5)]
    concurrent_statefulset_syncs: usize,
    #[arg(long, default_value_t = 5)]
    concurrent_job_syncs: usize,
    #[arg(long, default_value_t = 5)]
    concurrent_cron_job_syncs: usize,
    #[arg(long, default_value_t = 5)]
    concurrent_ttl_after_finished_syncs: usize,
    #[arg(long, default_value_t = 5)]
    concurrent_endpoint_syncs: usize,
    #[arg(long, default_value_t = 5)]
    concurrent_service_endpoint_syncs: usize,
    #[arg(long, default_value_t = 5)]
    mirroring_concurrent_service_endpoint_syncs: usize,
    #[arg(long, default_value_t = 10)]
    concurrent_namespace_syncs: usize,
    #[arg(long, default_value_t = 1)]
    concurrent_serviceaccount_syncs: usize,
    #[arg(long, default_value_t = 20)]
    concurrent_gc_syncs: usize,
    /// Pod CIDR for node IPAM (cluster controllers).
    #[arg(long, env = "NIWA_CLUSTER_CIDR", default_value = "127.244.0.0/16")]
    cluster_cidr: String,
    /// LoadBalancer address pool (cluster controllers).
    #[arg(long, env = "NIWA_LB_POOL", default_value = "127.200.0.0/24")]
    lb_pool: String,
    /// Size of the podCIDR each node gets.
    #[arg(long, default_value_t = 24)]
    node_cidr_mask_size: u8,
    /// How long a node may miss Lease renewals before it is marked Unknown (`40s`, `500ms`, `2m`).
    #[arg(long, default_value = "40s", value_parser = parse_duration)]
    node_monitor_grace_period: Duration,
    /// How often the node lifecycle controller checks nodes.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    node_monitor_period: Duration,
    /// tolerationSeconds of the `node.kubernetes.io/unreachable` NoExecute toleration pods
    /// without one get.
    #[arg(long, default_value_t = 300)]
    default_unreachable_toleration_seconds: i64,
    /// Same for `node.kubernetes.io/not-ready`.
    #[arg(long, default_value_t = 300)]
    default_not_ready_toleration_seconds: i64,
    /// Where the local-path provisioner creates volumes; `{node}` is replaced by the node's name
    /// (a process cluster uses `<dir>/nodes/{node}/storage`, beside each kubelet's root dir).
    #[arg(long, env = "NIWA_LOCAL_PATH_DIR", default_value = niwa_controller_manager::config::DEFAULT_LOCAL_PATH_DIR)]
    local_path_dir: String,
    /// Log format: text or json.
    #[arg(long, env = "NIWA_LOG_FORMAT", default_value = "text")]
    log_format: String,
}

/// A Go-style duration: `40s`, `500ms`, `2m`, `1h`, or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if args.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        signal.cancel();
    });
    let mut config = Config::new(&args.apiserver);
    config.controllers = args.controllers;
    config.leader_election.enabled = args.leader_elect;
    config.leader_election.lease_duration = Duration::from_secs(args.leader_elect_lease_duration);
    config.leader_election.renew_deadline = Duration::from_secs(args.leader_elect_renew_deadline);
    config.leader_election.retry_period = Duration::from_secs(args.leader_elect_retry_period);
    config.metrics_listen = Some(args.metrics_listen);
    config.concurrency.replicaset = args.concurrent_replicaset_syncs;
    config.concurrency.deployment = args.concurrent_deployment_syncs;
    config.concurrency.daemonset = args.concurrent_daemonset_syncs;
    config.concurrency.statefulset = args.concurrent_statefulset_syncs;
    config.concurrency.job = args.concurrent_job_syncs;
    config.concurrency.cronjob = args.concurrent_cron_job_syncs;
    config.concurrency.ttl_after_finished = args.concurrent_ttl_after_finished_syncs;
    config.concurrency.endpoint = args.concurrent_endpoint_syncs;
    config.concurrency.endpointslice = args.concurrent_service_endpoint_syncs;
    config.concurrency.endpointslice_mirroring = args.mirroring_concurrent_service_endpoint_syncs;
    config.concurrency.namespace = args.concurrent_namespace_syncs;
    config.concurrency.serviceaccount = args.concurrent_serviceaccount_syncs;
    config.concurrency.garbage_collector = args.concurrent_gc_syncs;
    config.cluster_cidr = args.cluster_cidr;
    config.lb_pool = args.lb_pool;
    config.node_cidr_mask_size = args.node_cidr_mask_size;
    config.node_monitor_grace_period = args.node_monitor_grace_period;
    config.node_monitor_period = args.node_monitor_period;
    config.default_unreachable_toleration_seconds = args.default_unreachable_toleration_seconds;
    config.default_not_ready_toleration_seconds = args.default_not_ready_toleration_seconds;
    config.local_path_dir = args.local_path_dir;
    niwa_controller_manager::run(config, shutdown).await?;
    Ok(())
}
