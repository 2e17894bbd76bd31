//! `niwa-ingress`: flag parsing, logging, signals; everything else is in the library.

use std::net::{IpAddr, SocketAddr};

use clap::Parser;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    name = "niwa-ingress",
    version,
    about = "niwa's Ingress controller: HTTP/1.1, h2 and TLS in front of Services"
)]
struct Args {
    /// The apiserver's gRPC address.
    #[arg(long, env = "NIWA_APISERVER", default_value = "http://127.0.0.1:6443")]
    apiserver: String,
    /// Plain HTTP listener.
    #[arg(long, env = "NIWA_INGRESS_HTTP_LISTEN", default_value = "127.0.0.1:80")]
    http_listen: SocketAddr,
    /// HTTPS listener; "none" turns it off.
    #[arg(
        long,
        env = "NIWA_INGRESS_HTTPS_LISTEN",
        default_value = "127.0.0.1:443"
    )]
    https_listen: String,
    /// /healthz, /readyz, /livez and /metrics.
    #[arg(
        long,
        env = "NIWA_INGRESS_METRICS_LISTEN",
        default_value = "127.0.0.1:10254"
    )]
    metrics_listen: SocketAddr,
    /// The IngressClass served.
    #[arg(long, env = "NIWA_INGRESS_CLASS", default_value = "niwa")]
    ingress_class: String,
    /// Create the class as the cluster default when it does not exist.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    default_class: bool,
    /// Address written to Ingress status (default: the HTTP listen IP).
    #[arg(long, env = "NIWA_INGRESS_PUBLISH_IP")]
    publish_ip: Option<IpAddr>,
    /// Most open client connections.
    #[arg(long, default_value_t = 10_000)]
    max_connections: usize,
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
    let mut config = niwa_ingress::IngressConfig::new(&args.apiserver, args.http_listen);
    config.https_listen = match args.https_listen.as_str() {
        "none" | "" => None,
        addr => Some(addr.parse()?),
    };
    config.metrics_listen = args.metrics_listen;
    config.class_name = args.ingress_class;
    config.default_class = args.default_class;
    config.publish_ip = args.publish_ip;
    config.max_connections = args.max_connections;

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
    niwa_ingress::run(config, shutdown, None).await?;
    Ok(())
}
