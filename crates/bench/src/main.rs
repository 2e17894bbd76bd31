//! # niwa-store-bench
//!
//! A benchmark program (not a test) that runs the same workloads against `niwa-store` and against a
//! real etcd 3.4 in one run, and prints the medians side by side with the niwa/etcd ratio.
//!
//! It builds nothing itself. Build the store and the benchmark in release mode, then run it:
//!
//! ```text
//! cargo build --release -p niwa-store -p niwa-bench
//! target/release/niwa-store-bench --niwa-bin target/release/niwa-store --etcd-bin /usr/bin/etcd \
//!     --seconds 5 --runs 3 --markdown
//! ```
//!
//! Every measurement starts a fresh server (new temp data dir, free 127.0.0.1 ports), waits until a
//! linearizable Range succeeds, runs one workload, and kills the server by PID. Servers are owned by
//! Drop guards, so they are stopped on errors, panics and Ctrl-C as well. No traffic ever leaves
//! 127.0.0.1. Both servers run with their default durability (an fsync before every acknowledged
//! write). The client is the same for both: the timed put/get loops use a minimal gRPC client on the
//! `h2` crate (`grpc.rs`, one current-thread runtime per core), everything else (preload, watch,
//! mem) the `etcd-client` crate 0.21, the one used for the baseline figures in
//! `/work/shared/reference/etcd-v3-wire.md`. Until 2026-11-30 the loops used `etcd-client` too,
//! which cost ~2x the CPU per request (see `grpc.rs` and docs/BENCHMARKS.md): figures from before
//! then are not comparable with later ones.
//!
//! After each put run the WAL's fdatasync count and mean come from each server's own
//! `etcd_disk_wal_fsync_duration_seconds`: puts per fdatasync is what group commit buys.
//!
//! Workloads (closed loop, 256-byte values over 1000 keys):
//! * `put` at concurrency 1/16/64/256: ops/s, p50, p99;
//! * linearizable and serializable `get` at concurrency 1/64: ops/s, p50, p99;
//! * `watch`: 1,000 watchers on one prefix, one writer putting at a modest fixed rate; latency from
//!   just before the put is sent to the receipt of the event by each watcher, p50/p99;
//! * `mem`: VmRSS growth of the server process while loading 100k keys with 256-byte values.
//!
//! Each measurement is repeated `--runs` times and the median is reported. See docs/BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use clap::Parser;

mod grpc;
mod report;
mod server;
mod workload;

use report::*;

/// In-flight workers per client connection (the closed-loop workloads' [`grpc::Grpc`], one HTTP/2
/// connection each). With hundreds of concurrent streams on one connection, that connection (its
/// h2 send lock, and on the Go side its one per-connection reader goroutine) becomes the
/// bottleneck and the benchmark measures the client rather than the server. Real etcd clients at scale (several kube-apiservers, each with a handful of connections)
/// spread load the same way. 16 streams per connection keeps c=1 and c=16 on one connection (the
/// common case) and gives c=64 four and c=256 sixteen connections, identically for both servers.
pub(crate) const WORKERS_PER_CLIENT: usize = 16;
/// Watch streams per client connection (well under any HTTP/2 max-concurrent-streams default).
pub(crate) const WATCHERS_PER_CLIENT: usize = 100;
/// Distinct keys the KV workloads write and read.
pub(crate) const KEYS: usize = 1000;
/// Value size of every put.
pub(crate) const VALUE_BYTES: usize = 256;
/// How long a server gets to answer its first Range.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Parser)]
#[command(
    name = "niwa-store-bench",
    about = "Runs the same workloads against niwa-store and etcd 3.4 and prints median ratios"
)]
pub(crate) struct Args {
    /// The niwa-store binary (build it with `cargo build --release -p niwa-store`).
    #[arg(long, default_value = "target/release/niwa-store")]
    pub(crate) niwa_bin: PathBuf,
    /// The etcd binary (Debian's etcd-server package ships 3.4).
    #[arg(long, default_value = "/usr/bin/etcd")]
    pub(crate) etcd_bin: PathBuf,
    /// Measured seconds per workload and run (a short unmeasured warm-up comes first).
    #[arg(long, default_value_t = 5)]
    pub(crate) seconds: u64,
    /// Repetitions of every measurement; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub(crate) runs: usize,
    /// Print the result table as markdown.
    #[arg(long)]
    pub(crate) markdown: bool,
    /// Comma-separated workloads to run (put,lget,sget,watch,mem); all by default.
    #[arg(long, value_delimiter = ',', default_value = "put,lget,sget,watch,mem")]
    pub(crate) workloads: Vec<String>,
    /// Put concurrencies.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
    pub(crate) put_concurrency: Vec<usize>,
    /// Get concurrencies (linearizable and serializable).
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    pub(crate) get_concurrency: Vec<usize>,
    /// Watchers in the fan-out workload.
    #[arg(long, default_value_t = 1000)]
    pub(crate) watchers: usize,
    /// Puts per second of the single writer in the watch workload.
    #[arg(long, default_value_t = 100)]
    pub(crate) watch_rate: u64,
    /// Keys loaded by the memory workload (the result is scaled to 100k keys).
    #[arg(long, default_value_t = 100_000)]
    pub(crate) mem_keys: usize,
    /// Parent directory of the servers' temp data dirs (must be a real disk for fsync to count).
    #[arg(long)]
    pub(crate) tmp_dir: Option<PathBuf>,
    /// Only run niwa-store (for quick experiments); ratios are then omitted.
    #[arg(long)]
    pub(crate) niwa_only: bool,
}

fn check_binary(path: &Path, hint: &str) -> Result<()> {
    if !path.is_file() {
        bail!("{} not found ({hint})", path.display());
    }
    Ok(())
}

/// mimalloc, as in niwa-store: the client's allocations are part of every request it times, and
/// glibc malloc was ~6 % of the bench process at c=16.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    check_binary(
        &args.niwa_bin,
        "build it with `cargo build --release -p niwa-store` or pass --niwa-bin",
    )?;
    if !args.niwa_only {
        check_binary(
            &args.etcd_bin,
            "install Debian's etcd-server or pass --etcd-bin",
        )?;
    }
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    eprintln!(
        "niwa-store-bench: {}s per measurement (+{:?} warm-up), {} runs, median reported; {} cores",
        args.seconds.max(1),
        Duration::from_millis((args.seconds * 1000 / 5).clamp(200, 1000)),
        args.runs,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    let mut bench = Bench {
        args,
        rows: Vec::new(),
    };
    // On Ctrl-C the run future is dropped, which drops the live `Server` guards and kills them.
    let outcome = tokio::select! {
        r = bench.run() => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    // Print whatever was measured, even after an error.
    if !bench.rows.is_empty() {
        print!("{}", bench.table());
    }
    outcome
}
