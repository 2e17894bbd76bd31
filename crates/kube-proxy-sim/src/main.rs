//! `niwa-proxy`: flag parsing, logging, signals; everything else is in the library.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::Parser;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    name = "niwa-proxy",
    version,
    about = "niwa's kube-proxy: serves Services on their ClusterIPs, NodePorts, LoadBalancer IPs and externalIPs"
)]
struct Args {
    /// The apiserver's gRPC address.
    #[arg(long, env = "NIWA_APISERVER", default_value = "http://127.0.0.1:6443")]
    apiserver: String,
    /// This node's name (endpoints with this nodeName are local for traffic policy Local).
    #[arg(long, env = "NIWA_NODE_NAME", default_value = "node-1")]
    node_name: String,
    /// This node's IP: NodePorts listen on it.
    #[arg(long, env = "NIWA_NODE_IP", default_value = "127.1.0.1")]
    node_ip: IpAddr,
    /// Address for /healthz, /readyz, /livez and /metrics (default: node IP, port 10249).
    #[arg(long, env = "NIWA_PROXY_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Most open TCP connections plus UDP flows; more are refused.
    #[arg(long, env = "NIWA_PROXY_MAX_CONNECTIONS", default_value_t = 16_384)]
    max_connections: usize,
    /// Seconds without traffic after which a TCP connection is closed.
    #[arg(long, default_value_t = 3600)]
    tcp_idle_timeout: u64,
    /// Seconds without traffic after which a UDP flow is forgotten.
    #[arg(long, default_value_t = 30)]
    udp_idle_timeout: u64,
    /// Milliseconds to wait for a backend to accept a connection.
    #[arg(long, default_value_t = 5000)]
    connect_timeout_ms: u64,
    /// Changes are applied at most this many milliseconds after they arrive (batching bursts).
    #[arg(long, default_value_t = 10)]
    min_sync_period_ms: u64,
    /// Data path: `nftables` (kernel DNAT; needs root or CAP_NET_ADMIN and `nft`), `userspace`
    /// (sockets), or `auto` (nftables when its table can be created, else userspace). The
    /// default is userspace: it retries another endpoint when a terminating pod refuses a
    /// connection, so rollouts of pods without a preStop delay lose no request; kernel DNAT
    /// cannot retry (as with kube-proxy, a refused connection reaches the client).
    #[arg(long, env = "NIWA_PROXY_MODE", default_value = "userspace")]
    mode: niwa_proxy::plane::Mode,
    /// nftables mode: `round-robin` (numgen inc) or `random` (numgen random, as kube-proxy).
    #[arg(long, env = "NIWA_PROXY_NFT_BALANCE", default_value = "round-robin", value_parser = parse_balance)]
    nft_balance: niwa_proxy::model::nft::Balance,
    /// Log format: text or json.
    #[arg(long, env = "NIWA_LOG_FORMAT", default_value = "text")]
    log_format: String,
}

fn parse_balance(s: &str) -> Result<niwa_proxy::model::nft::Balance, String> {
    match s {
        "round-robin" => Ok(niwa_proxy::model::nft::Balance::RoundRobin),
        "random" => Ok(niwa_proxy::model::nft::Balance::Random),
        other => Err(format!("unknown balance {other:?} (round-robin or random)")),
    }
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
    let mut config = niwa_proxy::ProxyConfig::new(&args.apiserver, &args.node_name, args.node_ip);
    config.metrics_listen = args.metrics_listen;
    config.limits.max_connections = args.max_connections.max(1);
    config.limits.tcp_idle_timeout = Duration::from_secs(args.tcp_idle_timeout.max(1));
    config.limits.udp_idle_timeout = Duration::from_secs(args.udp_idle_timeout.max(1));
    config.limits.connect_timeout = Duration::from_millis(args.connect_timeout_ms.max(1));
    config.min_sync_period = Duration::from_millis(args.min_sync_period_ms);
    config.mode = args.mode;
    config.balance = args.nft_balance;

    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
        signal.cancel();
    });
    niwa_proxy::run(config, shutdown, None).await?;
    Ok(())
}
