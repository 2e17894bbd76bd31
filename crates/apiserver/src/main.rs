//! `niwa-apiserver`: flags, logging, signals; everything else is in the library.

use std::net::SocketAddr;

use clap::Parser;
use tokio_util::sync::CancellationToken;

/// mimalloc instead of glibc's malloc, as niwa-store and niwa-scheduler: every request decodes,
/// validates and re-encodes JSON in many small blocks on several threads, the pattern where glibc's
/// malloc/free showed up as 11–23 % of those daemons' CPU (perf, docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "niwa-apiserver",
    version,
    about = "niwa's Kubernetes API server"
)]
struct Args {
    /// Address for the gRPC API.
    #[arg(long, env = "NIWA_APISERVER_LISTEN", default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// etcd v3 endpoints of the store (niwa-store or a real etcd), comma separated.
    #[arg(
        long,
        env = "NIWA_STORE_ENDPOINTS",
        default_value = "127.0.0.1:2379",
        value_delimiter = ','
    )]
    store_endpoints: Vec<String>,
    /// CIDR that Service ClusterIPs are allocated from (its first address is the `kubernetes`
    /// Service's).
    #[arg(long, env = "NIWA_SERVICE_CIDR", default_value = "127.96.0.0/16")]
    service_cidr: niwa_apiserver::Ipv4Net,
    /// Inclusive port range NodePorts are allocated from.
    #[arg(
        long,
        env = "NIWA_SERVICE_NODE_PORT_RANGE",
        default_value = "30000-32767"
    )]
    service_node_port_range: niwa_apiserver::PortRange,
    /// The address other hosts reach this apiserver on (the `kubernetes` Service's endpoint);
    /// default: the listen address.
    #[arg(long, env = "NIWA_APISERVER_ADVERTISE_ADDRESS")]
    advertise_address: Option<std::net::IpAddr>,
    /// Log format: text or json.
    #[arg(long, env = "NIWA_LOG_FORMAT", default_value = "text")]
    log_format: String,
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
    let mut config = niwa_apiserver::ApiServerConfig::new(args.listen, args.store_endpoints);
    config.service_cidr = args.service_cidr;
    config.advertise_address = args.advertise_address;
    config.service_node_port_range = args.service_node_port_range;
    niwa_apiserver::run(config, shutdown, None).await?;
    Ok(())
}
