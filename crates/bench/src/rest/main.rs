//! `niwa-rest-bench`: the Kubernetes REST API against niwa's own gRPC API, side by side, on the
//! same apiserver and the same pods — what kubectl sees, and what REST costs over gRPC.
//!
//! 1. Starts niwa-store and niwa-apiserver (release binaries) as child processes on free
//!    127.0.0.1 ports; creates `--pods` pods over gRPC.
//! 2. Measures, `--runs` times each, the list of all pods: over gRPC (unpaged, and paged by 500
//!    as client-go pages), over REST as JSON (unpaged) and as the Table kubectl asks for (paged
//!    by 500, continue tokens, as `kubectl get pods -A` does), and `kubectl get pods -A` itself.
//! 3. Watch fan-out: `--watchers` gRPC watches of all pods receive `--watch-rate` pod updates
//!    per second; delivery latency p50/p99 (send → receipt) and events/s delivered.
//! 4. Grows the cluster to `--big-pods` pods: list latency p50/max (unpaged JSON, paged Table)
//!    and one streamed unpaged REST list (JSON, then Table), recording the apiserver's peak RSS
//!    growth during it against the list's size: a streamed list should not hold a second copy.
//!
//! Prints medians and REST/gRPC ratios (`--markdown` for docs/BENCHMARKS.md).

mod cluster;
mod watchers;
mod workload;

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "niwa-rest-bench",
    about = "REST vs gRPC list benchmark of niwa-apiserver"
)]
pub struct Args {
    #[arg(long, default_value = "target/release/niwa-store")]
    pub store_bin: PathBuf,
    #[arg(long, default_value = "target/release/niwa-apiserver")]
    pub apiserver_bin: PathBuf,
    /// Pods for the latency comparison (`kubectl get pods -A`).
    #[arg(long, default_value_t = 10_000)]
    pub pods: usize,
    /// Pods for the memory measurement of one streamed list (0: skip).
    #[arg(long, default_value_t = 100_000)]
    pub big_pods: usize,
    /// Repetitions of each measurement (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Concurrent creates while loading pods.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// The kubectl to time (`kubectl get pods -A`); empty to skip.
    #[arg(long, default_value = "kubectl")]
    pub kubectl: String,
    /// Concurrent gRPC watchers of all pods for the fan-out measurement (0: skip).
    #[arg(long, default_value_t = 1_000)]
    pub watchers: usize,
    /// Pod updates per second during the fan-out measurement.
    #[arg(long, default_value_t = 100.0)]
    pub watch_rate: f64,
    /// Duration of the fan-out measurement, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub watch_seconds: f64,
    /// Print a Markdown table.
    #[arg(long)]
    pub markdown: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let report = workload::run(&args).await?;
    report.print(args.markdown);
    Ok(())
}
