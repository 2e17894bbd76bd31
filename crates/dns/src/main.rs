//! `niwa-dns`: flag parsing, logging, signals; everything else is in the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use niwa_dns::forward::{ForwardConfig, resolv_conf};
use niwa_dns::zone::{ObjectKey, PodRecords, ZoneConfig};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    name = "niwa-dns",
    version,
    about = "Cluster DNS (Kubernetes DNS-based service discovery)"
)]
struct Args {
    /// The apiserver to watch.
    #[arg(
        long,
        env = "NIWA_DNS_APISERVER",
        default_value = "http://127.0.0.1:6443"
    )]
    apiserver: String,
    /// UDP and TCP address to answer on (the kube-dns Service IP in a local cluster).
    #[arg(long, env = "NIWA_DNS_LISTEN", default_value = "127.96.0.10:53")]
    listen: SocketAddr,
    /// Address for /healthz, /readyz, /livez and /metrics.
    #[arg(
        long,
        env = "NIWA_DNS_METRICS_LISTEN",
        default_value = "127.0.0.1:9153"
    )]
    metrics_listen: SocketAddr,
    /// The cluster domain.
    #[arg(long, env = "NIWA_DNS_DOMAIN", default_value = "cluster.local")]
    domain: String,
    /// Upstream resolvers for non-cluster names (IP or IP:port, repeatable or comma-separated);
    /// default: the nameservers of --resolv-conf.
    #[arg(long, env = "NIWA_DNS_UPSTREAM", value_delimiter = ',')]
    upstream: Vec<String>,
    /// Where the host's resolvers are listed when --upstream is not given.
    #[arg(long, env = "NIWA_DNS_RESOLV_CONF", default_value = "/etc/resolv.conf")]
    resolv_conf: PathBuf,
    /// TTL of cluster answers, in seconds (also the negative-caching TTL).
    #[arg(long, env = "NIWA_DNS_TTL", default_value_t = 5)]
    ttl: u32,
    /// Pod records `<a-b-c-d>.<ns>.pod.<domain>`: insecure, verified or disabled.
    #[arg(long, env = "NIWA_DNS_POD_RECORDS", default_value = "insecure")]
    pod_records: PodRecords,
    /// Entries of the forwarding cache.
    #[arg(long, env = "NIWA_DNS_CACHE_SIZE", default_value_t = 10_000)]
    cache_size: usize,
    /// Time allowed to each upstream for one question, in milliseconds.
    #[arg(long, env = "NIWA_DNS_UPSTREAM_TIMEOUT_MS", default_value_t = 2000)]
    upstream_timeout_ms: u64,
    /// The Service fronting this server (answers `ns.dns.<domain>`), namespace/name.
    #[arg(long, env = "NIWA_DNS_SERVICE", default_value = "kube-system/kube-dns")]
    dns_service: String,
    /// Log format: text or json.
    #[arg(long, env = "NIWA_LOG_FORMAT", default_value = "text")]
    log_format: String,
}

fn init_logging(format: &str) {
    // hickory-server logs every request at info: keep it to warnings unless asked.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,hickory_server=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn config(args: Args) -> anyhow::Result<niwa_dns::DnsConfig> {
    let mut zone = ZoneConfig::new(&args.domain)?;
    zone.ttl = args.ttl;
    zone.pod_records = args.pod_records;
    let (ns, name) = args.dns_service.split_once('/').ok_or_else(|| {
        anyhow::anyhow!(
            "--dns-service: expected namespace/name, got {:?}",
            args.dns_service
        )
    })?;
    zone.dns_service = ObjectKey::new(ns, name);
    zone.initial_serial = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u32::try_from(d.as_secs()).unwrap_or(1))
        .unwrap_or(1);

    let upstreams = if args.upstream.is_empty() {
        resolv_conf::read(&args.resolv_conf)?
    } else {
        args.upstream
            .iter()
            .filter(|u| !u.trim().is_empty())
            .map(|u| resolv_conf::parse_upstream(u))
            .collect::<Result<Vec<_>, _>>()?
    };
    let mut forward = ForwardConfig::new(upstreams);
    forward.timeout = Duration::from_millis(args.upstream_timeout_ms.max(1));
    forward.cache.capacity = args.cache_size.max(1);
    Ok(niwa_dns::DnsConfig {
        apiserver: args.apiserver,
        listen: args.listen,
        metrics_listen: Some(args.metrics_listen),
        zone,
        forward,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(&args.log_format);
    let config = config(args)?;

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
    niwa_dns::run(config, shutdown).await?;
    Ok(())
}
