//! `niwa-store`: flag parsing, logging, signals; everything else is in the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use tokio_util::sync::CancellationToken;

/// mimalloc instead of glibc's malloc: a put allocates a few dozen small blocks across the h2,
/// tonic and engine layers, on several threads, and glibc's per-thread arenas spent ~11% of the
/// store's CPU in malloc/free plus `mprotect` calls growing them (perf, docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "niwa-store",
    version,
    about = "etcd-v3-compatible MVCC key-value store"
)]
struct Args {
    /// Address for the etcd v3 gRPC API.
    #[arg(long, env = "NIWA_STORE_LISTEN", default_value = "127.0.0.1:2379")]
    listen: SocketAddr,
    /// Directory holding the snapshot and write-ahead log.
    #[arg(long, env = "NIWA_STORE_DATA_DIR", default_value = "niwa-store.data")]
    data_dir: PathBuf,
    /// Address for /healthz, /readyz, /livez, /health and /metrics.
    #[arg(
        long,
        env = "NIWA_STORE_METRICS_LISTEN",
        default_value = "127.0.0.1:2381"
    )]
    metrics_listen: SocketAddr,
    /// Member name reported by `member list`.
    #[arg(long, env = "NIWA_STORE_NAME", default_value = "default")]
    name: String,
    /// Largest request accepted, in bytes (etcd's --max-request-bytes).
    #[arg(long, env = "NIWA_STORE_MAX_REQUEST_BYTES", default_value_t = 1536 * 1024)]
    max_request_bytes: usize,
    /// Interval of watch progress notifications, in seconds.
    #[arg(long, default_value_t = 600)]
    watch_progress_notify_interval: u64,
    /// Threads serving the gRPC API, each a single-threaded runtime (0: one per core).
    #[arg(long, env = "NIWA_STORE_IO_THREADS", default_value_t = 0)]
    io_threads: usize,
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

// The gRPC API runs on the store's own server threads (`--io-threads`); this runtime only accepts
// connections, serves /metrics and expires leases.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(&args.log_format);
    let mut config = niwa_store::StoreConfig::new(args.listen, args.data_dir);
    config.metrics_listen = Some(args.metrics_listen);
    config.name = args.name;
    config.max_request_bytes = args.max_request_bytes;
    config.io_threads = args.io_threads;
    config.watch_progress_interval =
        Duration::from_secs(args.watch_progress_notify_interval.max(1));

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
    niwa_store::run(config, shutdown).await?;
    Ok(())
}
