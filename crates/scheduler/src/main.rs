//! `niwa-scheduler`: flags, logging, signals; everything else is in the library.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{ArgAction, Parser};
use niwa_scheduler::SchedulerConfig;
use niwa_scheduler::framework::AlgorithmConfig;
use tokio_util::sync::CancellationToken;

/// mimalloc instead of glibc's malloc, as niwa-store: every watch event is decoded into a Pod and
/// a PodInfo, every placement clones one. In the scheduler benchmark (apiserver, store and
/// scheduler in one process) glibc's malloc/free were ~23 % of the samples, and mimalloc cut the
/// process's CPU per pod by ~20 % (docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "niwa-scheduler",
    version,
    about = "Places pods on nodes as kube-scheduler does"
)]
struct Args {
    /// The apiserver's address.
    #[arg(long, env = "NIWA_APISERVER", default_value = "http://127.0.0.1:6443")]
    apiserver: String,
    /// Schedule the pods whose spec.schedulerName is this.
    #[arg(long, env = "NIWA_SCHEDULER_NAME", default_value = "default-scheduler")]
    scheduler_name: String,
    /// Take a Lease before scheduling, so that only one of several replicas schedules.
    #[arg(long, env = "NIWA_SCHEDULER_LEADER_ELECT", default_value_t = true, action = ArgAction::Set)]
    leader_elect: bool,
    #[arg(long, default_value = "kube-system")]
    leader_elect_resource_namespace: String,
    #[arg(long, default_value = "kube-scheduler")]
    leader_elect_resource_name: String,
    /// Lease duration, renew deadline and retry period, in seconds.
    #[arg(long, default_value_t = 15.0)]
    leader_elect_lease_duration: f64,
    #[arg(long, default_value_t = 10.0)]
    leader_elect_renew_deadline: f64,
    #[arg(long, default_value_t = 2.0)]
    leader_elect_retry_period: f64,
    /// Threads filtering large node sets.
    #[arg(long, env = "NIWA_SCHEDULER_PARALLELISM", default_value_t = 16)]
    parallelism: usize,
    /// Percentage of nodes to find feasible before scoring; 0 = Kubernetes' adaptive default.
    #[arg(long, default_value_t = 0)]
    percentage_of_nodes_to_score: u32,
    /// Seed of the random tie-breaking between equally scored nodes.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Address for /healthz, /readyz, /livez and /metrics.
    #[arg(
        long,
        env = "NIWA_SCHEDULER_HEALTH_LISTEN",
        default_value = "127.0.0.1:10259"
    )]
    health_listen: SocketAddr,
    /// Log format: text or json.
    #[arg(long, env = "NIWA_LOG_FORMAT", default_value = "text")]
    log_format: String,
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(&args.log_format);
    let mut config = SchedulerConfig::new(&args.apiserver);
    config.scheduler_name = args.scheduler_name;
    config.leader_elect = args.leader_elect;
    config.lease_namespace = args.leader_elect_resource_namespace;
    config.lease_name = args.leader_elect_resource_name;
    config.lease_duration = Duration::from_secs_f64(args.leader_elect_lease_duration);
    config.renew_deadline = Duration::from_secs_f64(args.leader_elect_renew_deadline);
    config.retry_period = Duration::from_secs_f64(args.leader_elect_retry_period);
    config.algorithm = AlgorithmConfig {
        percentage_of_nodes_to_score: args.percentage_of_nodes_to_score,
        parallelism: args.parallelism.max(1),
        seed: args.seed,
    };
    config.health_listen = Some(args.health_listen);

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
        tracing::info!("shutting down");
        signal.cancel();
    });
    niwa_scheduler::run(config, shutdown).await?;
    Ok(())
}
