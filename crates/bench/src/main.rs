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
//! write), and the client is the `etcd-client` crate 0.21, the same one used for the baseline
//! figures in `/work/shared/reference/etcd-v3-wire.md`.
//!
//! Workloads (closed loop, 256-byte values over 1000 keys):
//! * `put` at concurrency 1/16/64/256: ops/s, p50, p99;
//! * linearizable and serializable `get` at concurrency 1/64: ops/s, p50, p99;
//! * `watch`: 1,000 watchers on one prefix, one writer putting at a modest fixed rate; latency from
//!   just before the put is sent to the receipt of the event by each watcher, p50/p99;
//! * `mem`: VmRSS growth of the server process while loading 100k keys with 256-byte values.
//!
//! Each measurement is repeated `--runs` times and the median is reported. See docs/BENCHMARKS.md.

use std::fmt::Write as _;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use etcd_client::{Client, GetOptions, WatchOptions};
use tokio::task::JoinSet;

/// In-flight workers per client connection. One `etcd_client::Client` is one HTTP/2 connection
/// behind a tower buffer/balancer task; with hundreds of concurrent streams on it, that single
/// connection (its h2 send lock, its one buffer worker, and on the Go side its one per-connection
/// reader goroutine) becomes the bottleneck and the benchmark measures the client rather than the
/// server. Real etcd clients at scale (several kube-apiservers, each with a handful of connections)
/// spread load the same way. 16 streams per connection keeps c=1 and c=16 on one connection (the
/// common case) and gives c=64 four and c=256 sixteen connections, identically for both servers.
const WORKERS_PER_CLIENT: usize = 16;
/// Watch streams per client connection (well under any HTTP/2 max-concurrent-streams default).
const WATCHERS_PER_CLIENT: usize = 100;
/// Distinct keys the KV workloads write and read.
const KEYS: usize = 1000;
/// Value size of every put.
const VALUE_BYTES: usize = 256;
/// How long a server gets to answer its first Range.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Parser)]
#[command(
    name = "niwa-store-bench",
    about = "Runs the same workloads against niwa-store and etcd 3.4 and prints median ratios"
)]
struct Args {
    /// The niwa-store binary (build it with `cargo build --release -p niwa-store`).
    #[arg(long, default_value = "target/release/niwa-store")]
    niwa_bin: PathBuf,
    /// The etcd binary (Debian's etcd-server package ships 3.4).
    #[arg(long, default_value = "/usr/bin/etcd")]
    etcd_bin: PathBuf,
    /// Measured seconds per workload and run (a short unmeasured warm-up comes first).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Repetitions of every measurement; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Print the result table as markdown.
    #[arg(long)]
    markdown: bool,
    /// Comma-separated workloads to run (put,lget,sget,watch,mem); all by default.
    #[arg(long, value_delimiter = ',', default_value = "put,lget,sget,watch,mem")]
    workloads: Vec<String>,
    /// Put concurrencies.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
    put_concurrency: Vec<usize>,
    /// Get concurrencies (linearizable and serializable).
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    get_concurrency: Vec<usize>,
    /// Watchers in the fan-out workload.
    #[arg(long, default_value_t = 1000)]
    watchers: usize,
    /// Puts per second of the single writer in the watch workload.
    #[arg(long, default_value_t = 100)]
    watch_rate: u64,
    /// Keys loaded by the memory workload (the result is scaled to 100k keys).
    #[arg(long, default_value_t = 100_000)]
    mem_keys: usize,
    /// Parent directory of the servers' temp data dirs (must be a real disk for fsync to count).
    #[arg(long)]
    tmp_dir: Option<PathBuf>,
    /// Only run niwa-store (for quick experiments); ratios are then omitted.
    #[arg(long)]
    niwa_only: bool,
}

// ---------------------------------------------------------------------------------------------
// Server processes
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Niwa,
    Etcd,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Niwa => "niwa",
            Kind::Etcd => "etcd",
        }
    }
}

/// A running server; killed (by PID) and reaped on drop, then its data dir is removed.
struct Server {
    kind: Kind,
    child: Child,
    endpoint: String,
    log: PathBuf,
    // Dropped after the child is killed (fields drop after `Drop::drop` runs).
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        // `Child::kill` sends SIGKILL to exactly this PID; `wait` reaps it so no zombie is left.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free port on 127.0.0.1 (bound then released; the tiny race is acceptable for a benchmark).
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

impl Server {
    async fn start(kind: Kind, args: &Args) -> Result<Server> {
        let dir = match &args.tmp_dir {
            Some(parent) => tempfile::Builder::new()
                .prefix("niwa-bench-")
                .tempdir_in(parent),
            None => tempfile::Builder::new().prefix("niwa-bench-").tempdir(),
        }
        .context("creating a temp data dir")?;
        let data = dir.path().join("data");
        let log = dir.path().join("server.log");
        let client_port = free_port()?;
        let other_port = free_port()?;
        let endpoint = format!("http://127.0.0.1:{client_port}");
        let mut cmd = match kind {
            Kind::Niwa => {
                let mut cmd = Command::new(&args.niwa_bin);
                cmd.arg("--listen")
                    .arg(format!("127.0.0.1:{client_port}"))
                    .arg("--metrics-listen")
                    .arg(format!("127.0.0.1:{other_port}"))
                    .arg("--data-dir")
                    .arg(&data)
                    .env("RUST_LOG", "warn");
                cmd
            }
            Kind::Etcd => {
                let peer = format!("http://127.0.0.1:{other_port}");
                let mut cmd = Command::new(&args.etcd_bin);
                cmd.arg("--name")
                    .arg("default")
                    .arg("--data-dir")
                    .arg(&data)
                    .arg("--listen-client-urls")
                    .arg(&endpoint)
                    .arg("--advertise-client-urls")
                    .arg(&endpoint)
                    .arg("--listen-peer-urls")
                    .arg(&peer)
                    .arg("--initial-advertise-peer-urls")
                    .arg(&peer)
                    .arg("--initial-cluster")
                    .arg(format!("default={peer}"))
                    .arg("--log-level")
                    .arg("warn")
                    .arg("--logger")
                    .arg("zap");
                cmd
            }
        };
        let out = File::create(&log).context("creating the server log")?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let binary = match kind {
            Kind::Niwa => &args.niwa_bin,
            Kind::Etcd => &args.etcd_bin,
        };
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut server = Server {
            kind,
            child,
            endpoint,
            log,
            _dir: dir,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls with a linearizable Range until one succeeds.
    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited during start-up ({status}); log tail:\n{}",
                    self.kind.name(),
                    log_tail(&self.log)
                );
            }
            let attempt = tokio::time::timeout(Duration::from_secs(2), async {
                let mut client = Client::connect([self.endpoint.as_str()], None).await?;
                client.get("health", None).await?;
                Ok::<_, etcd_client::Error>(())
            })
            .await;
            if let Ok(Ok(())) = attempt {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not answer a Range within {READY_TIMEOUT:?}; log tail:\n{}",
                    self.kind.name(),
                    log_tail(&self.log)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Resident set size of the server process in KiB (VmRSS from /proc/PID/status).
    fn rss_kib(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| anyhow!("no VmRSS in /proc/{}/status", self.pid()))
    }

    async fn clients(&self, n: usize) -> Result<Vec<Client>> {
        let mut clients = Vec::with_capacity(n);
        for _ in 0..n {
            clients.push(
                Client::connect([self.endpoint.as_str()], None)
                    .await
                    .with_context(|| format!("connecting to {}", self.endpoint))?,
            );
        }
        Ok(clients)
    }
}

// ---------------------------------------------------------------------------------------------
// Measurements
// ---------------------------------------------------------------------------------------------

/// Latencies in microseconds plus the measured window.
#[derive(Debug, Default)]
struct Samples {
    micros: Vec<u64>,
    window: Duration,
}

impl Samples {
    fn sort(&mut self) {
        self.micros.sort_unstable();
    }

    /// Nearest-rank percentile in milliseconds (samples must be sorted).
    fn percentile_ms(&self, p: f64) -> f64 {
        if self.micros.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * self.micros.len() as f64).ceil() as usize;
        let idx = rank.clamp(1, self.micros.len()) - 1;
        self.micros[idx] as f64 / 1000.0
    }

    fn ops_per_sec(&self) -> f64 {
        self.micros.len() as f64 / self.window.as_secs_f64()
    }
}

fn key(i: usize) -> String {
    format!("/bench/kv/{i:04}")
}

fn value() -> Vec<u8> {
    vec![b'v'; VALUE_BYTES]
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Put,
    GetLinearizable,
    GetSerializable,
}

/// Writes every one of the KEYS keys once, so gets always find a value.
async fn preload(server: &Server) -> Result<()> {
    let clients = server.clients(1).await?;
    let mut set = JoinSet::new();
    for w in 0..16 {
        let mut kv = clients[0].kv_client();
        set.spawn(async move {
            for i in (w..KEYS).step_by(16) {
                kv.put(key(i), value(), None).await?;
            }
            Ok::<_, etcd_client::Error>(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(())
}

/// Closed loop: `concurrency` workers, each issuing its next request as soon as the previous one
/// is answered. Requests started during the warm-up are not recorded.
async fn closed_loop(
    server: &Server,
    op: Op,
    concurrency: usize,
    warmup: Duration,
    window: Duration,
) -> Result<Samples> {
    let clients = server
        .clients(concurrency.div_ceil(WORKERS_PER_CLIENT))
        .await?;
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + window;
    let mut set = JoinSet::new();
    for w in 0..concurrency {
        let mut kv = clients[w % clients.len()].kv_client();
        set.spawn(async move {
            let mut lat = Vec::with_capacity(1 << 14);
            let serializable = GetOptions::new().with_serializable();
            // A cheap per-worker key walk that covers all keys and differs between workers.
            let mut k = (w * 7919) % KEYS;
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                k = (k + 617) % KEYS;
                match op {
                    Op::Put => {
                        kv.put(key(k), value(), None).await?;
                    }
                    Op::GetLinearizable => {
                        kv.get(key(k), None).await?;
                    }
                    Op::GetSerializable => {
                        kv.get(key(k), Some(serializable.clone())).await?;
                    }
                }
                if t0 >= measure_from {
                    lat.push(t0.elapsed().as_micros() as u64);
                }
            }
            Ok::<_, etcd_client::Error>(lat)
        });
    }
    let mut samples = Samples {
        micros: Vec::new(),
        window,
    };
    while let Some(r) = set.join_next().await {
        samples.micros.extend(r??);
    }
    samples.sort();
    Ok(samples)
}

/// Result of one watch fan-out run.
struct WatchResult {
    samples: Samples,
    expected: u64,
    received: u64,
}

/// Nanoseconds since `base`, stored in the first 8 bytes of each watched value (0 = warm-up put).
fn stamp(base: Instant, measured: bool) -> Vec<u8> {
    let mut v = vec![b'w'; VALUE_BYTES];
    let ns: u64 = if measured {
        base.elapsed().as_nanos() as u64
    } else {
        0
    };
    v[..8].copy_from_slice(&ns.to_le_bytes());
    v
}

async fn watch_fanout(
    server: &Server,
    watchers: usize,
    rate: u64,
    warmup: Duration,
    window: Duration,
) -> Result<WatchResult> {
    const PREFIX: &str = "/bench/watch/";
    let clients = server
        .clients(watchers.div_ceil(WATCHERS_PER_CLIENT))
        .await?;
    let base = Instant::now();

    // Create every watch and wait for its `created` response before any put.
    let mut created = JoinSet::new();
    for w in 0..watchers {
        let mut wc = clients[w % clients.len()].watch_client();
        created.spawn(async move {
            let mut stream = wc
                .watch(PREFIX, Some(WatchOptions::new().with_prefix()))
                .await?;
            match stream.message().await? {
                Some(r) if r.created() => Ok(stream),
                _ => Err(anyhow!("watch was not created")),
            }
        });
    }
    let mut streams = Vec::with_capacity(watchers);
    while let Some(r) = created.join_next().await {
        streams.push(r??);
    }

    let puts_total = (warmup + window).as_secs_f64() * rate as f64;
    let grace = Duration::from_secs(3);
    let stop_at = tokio::time::Instant::now() + warmup + window + grace;
    let mut set = JoinSet::new();
    for mut stream in streams {
        set.spawn(async move {
            let mut lat = Vec::new();
            let mut received = 0u64;
            while let Ok(msg) = tokio::time::timeout_at(stop_at, stream.message()).await {
                let Some(resp) = msg? else { break };
                let now = base.elapsed().as_nanos() as u64;
                for ev in resp.events() {
                    let Some(kv) = ev.kv() else { continue };
                    let Some(ts) = kv.value().get(..8) else {
                        continue;
                    };
                    let mut b = [0u8; 8];
                    b.copy_from_slice(ts);
                    let sent = u64::from_le_bytes(b);
                    if sent != 0 {
                        received += 1;
                        lat.push(now.saturating_sub(sent) / 1000);
                    }
                }
            }
            Ok::<_, anyhow::Error>((lat, received))
        });
    }

    // The single writer: open loop at a fixed rate, each put stamped just before it is sent and
    // not waiting for the previous ack, so both servers get exactly the same offered load even if
    // acks slow down under the fan-out.
    let kv = clients[0].kv_client();
    let mut puts = JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let measure_from = Instant::now() + warmup;
    let end = measure_from + window;
    let mut measured_puts = 0u64;
    for n in 0..(puts_total as usize) {
        tick.tick().await;
        let now = Instant::now();
        if now >= end {
            break;
        }
        let measured = now >= measure_from;
        measured_puts += u64::from(measured);
        let mut kv = kv.clone();
        let value = stamp(base, measured);
        puts.spawn(async move {
            kv.put(format!("{PREFIX}{:04}", n % KEYS), value, None)
                .await
        });
    }
    while let Some(r) = puts.join_next().await {
        r??;
    }

    let mut samples = Samples {
        micros: Vec::new(),
        window,
    };
    let mut received = 0;
    while let Some(r) = set.join_next().await {
        let (lat, got) = r??;
        samples.micros.extend(lat);
        received += got;
    }
    samples.sort();
    Ok(WatchResult {
        samples,
        expected: measured_puts * watchers as u64,
        received,
    })
}

/// RSS growth (KiB) of the server while loading `keys` fresh keys with 256-byte values.
async fn memory(server: &Server, keys: usize) -> Result<u64> {
    let clients = server.clients(4).await?;
    // Touch every connection once so their buffers are part of the "before" figure.
    for c in &clients {
        c.kv_client().get("warm", None).await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = server.rss_kib()?;
    let mut set = JoinSet::new();
    let workers = 64;
    for w in 0..workers {
        let mut kv = clients[w % clients.len()].kv_client();
        set.spawn(async move {
            for i in (w..keys).step_by(workers) {
                kv.put(format!("/bench/mem/{i:08}"), value(), None).await?;
            }
            Ok::<_, etcd_client::Error>(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = server.rss_kib()?;
    Ok(after.saturating_sub(before))
}

// ---------------------------------------------------------------------------------------------
// Orchestration and reporting
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Better {
    Higher,
    Lower,
    Info,
}

/// One row of the result table: a metric and the per-run values for each server.
struct Row {
    name: String,
    unit: &'static str,
    better: Better,
    niwa: Vec<f64>,
    etcd: Vec<f64>,
}

fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn fmt_value(v: Option<f64>, unit: &str) -> String {
    match v {
        None => "-".into(),
        Some(v) if unit == "ops/s" => format!("{v:.0}"),
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) if v >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

struct Bench {
    args: Args,
    rows: Vec<Row>,
}

impl Bench {
    fn row(&mut self, name: String, unit: &'static str, better: Better) -> usize {
        if let Some(i) = self.rows.iter().position(|r| r.name == name) {
            return i;
        }
        self.rows.push(Row {
            name,
            unit,
            better,
            niwa: Vec::new(),
            etcd: Vec::new(),
        });
        self.rows.len() - 1
    }

    fn record(&mut self, kind: Kind, name: String, unit: &'static str, better: Better, v: f64) {
        let i = self.row(name, unit, better);
        match kind {
            Kind::Niwa => self.rows[i].niwa.push(v),
            Kind::Etcd => self.rows[i].etcd.push(v),
        }
    }

    fn kinds(&self) -> Vec<Kind> {
        if self.args.niwa_only {
            vec![Kind::Niwa]
        } else {
            vec![Kind::Niwa, Kind::Etcd]
        }
    }

    fn wants(&self, workload: &str) -> bool {
        self.args.workloads.iter().any(|w| w == workload)
    }

    fn warmup(&self) -> Duration {
        Duration::from_millis((self.args.seconds * 1000 / 5).clamp(200, 1000))
    }

    fn window(&self) -> Duration {
        Duration::from_secs(self.args.seconds.max(1))
    }

    async fn run(&mut self) -> Result<()> {
        let kinds = self.kinds();
        let (warmup, window) = (self.warmup(), self.window());
        // Runs are interleaved (niwa, etcd, niwa, etcd, ...) so drift on the machine hits both.
        if self.wants("put") {
            for c in self.args.put_concurrency.clone() {
                for run in 0..self.args.runs {
                    for &kind in &kinds {
                        let server = Server::start(kind, &self.args).await?;
                        preload(&server).await?;
                        let s = closed_loop(&server, Op::Put, c, warmup, window).await?;
                        drop(server);
                        self.kv_rows(kind, &format!("put c={c}"), &s, run);
                    }
                }
            }
        }
        for (workload, op, label) in [
            ("lget", Op::GetLinearizable, "get linearizable"),
            ("sget", Op::GetSerializable, "get serializable"),
        ] {
            if !self.wants(workload) {
                continue;
            }
            for c in self.args.get_concurrency.clone() {
                for run in 0..self.args.runs {
                    for &kind in &kinds {
                        let server = Server::start(kind, &self.args).await?;
                        preload(&server).await?;
                        let s = closed_loop(&server, op, c, warmup, window).await?;
                        drop(server);
                        self.kv_rows(kind, &format!("{label} c={c}"), &s, run);
                    }
                }
            }
        }
        if self.wants("watch") {
            let w = self.args.watchers;
            for run in 0..self.args.runs {
                for &kind in &kinds {
                    let server = Server::start(kind, &self.args).await?;
                    let r = watch_fanout(&server, w, self.args.watch_rate, warmup, window).await?;
                    drop(server);
                    let delivered = 100.0 * r.received as f64 / r.expected.max(1) as f64;
                    eprintln!(
                        "  run {run} {:4} watch {w} watchers: p50 {:.2} ms p99 {:.2} ms, {}/{} events ({delivered:.1}%)",
                        kind.name(),
                        r.samples.percentile_ms(50.0),
                        r.samples.percentile_ms(99.0),
                        r.received,
                        r.expected,
                    );
                    let name = format!("watch {w} watchers @{}/s", self.args.watch_rate);
                    let p50 = r.samples.percentile_ms(50.0);
                    let p99 = r.samples.percentile_ms(99.0);
                    self.record(kind, format!("{name} p50"), "ms", Better::Lower, p50);
                    self.record(kind, format!("{name} p99"), "ms", Better::Lower, p99);
                    self.record(
                        kind,
                        format!("{name} delivered"),
                        "%",
                        Better::Info,
                        delivered,
                    );
                }
            }
        }
        if self.wants("mem") {
            let keys = self.args.mem_keys.max(1);
            for run in 0..self.args.runs {
                for &kind in &kinds {
                    let server = Server::start(kind, &self.args).await?;
                    let kib = memory(&server, keys).await?;
                    drop(server);
                    let mib = kib as f64 / 1024.0 * (100_000.0 / keys as f64);
                    eprintln!(
                        "  run {run} {:4} memory: +{mib:.1} MiB RSS per 100k keys",
                        kind.name()
                    );
                    self.record(
                        kind,
                        "RSS growth per 100k keys".into(),
                        "MiB",
                        Better::Lower,
                        mib,
                    );
                }
            }
        }
        Ok(())
    }

    fn kv_rows(&mut self, kind: Kind, label: &str, s: &Samples, run: usize) {
        let (ops, p50, p99) = (
            s.ops_per_sec(),
            s.percentile_ms(50.0),
            s.percentile_ms(99.0),
        );
        eprintln!(
            "  run {run} {:4} {label}: {ops:.0} ops/s, p50 {p50:.2} ms, p99 {p99:.2} ms",
            kind.name()
        );
        self.record(kind, label.to_string(), "ops/s", Better::Higher, ops);
        self.record(kind, format!("{label} p50"), "ms", Better::Lower, p50);
        self.record(kind, format!("{label} p99"), "ms", Better::Lower, p99);
    }

    fn table(&self) -> String {
        let header = [
            "workload".to_string(),
            "niwa".to_string(),
            "etcd".to_string(),
            "niwa/etcd".to_string(),
        ];
        let mut lines: Vec<[String; 4]> = vec![header];
        for row in &self.rows {
            let (n, e) = (median(&row.niwa), median(&row.etcd));
            let ratio = match (n, e) {
                (Some(n), Some(e)) if e > 0.0 && row.better != Better::Info => {
                    let hint = match row.better {
                        Better::Higher => " (higher is better)",
                        Better::Lower => " (lower is better)",
                        Better::Info => "",
                    };
                    format!("{:.2}x{hint}", n / e)
                }
                _ => "-".into(),
            };
            lines.push([
                format!("{} [{}]", row.name, row.unit),
                fmt_value(n, row.unit),
                fmt_value(e, row.unit),
                ratio,
            ]);
        }
        let mut out = String::new();
        if self.args.markdown {
            for (i, l) in lines.iter().enumerate() {
                let _ = writeln!(out, "| {} | {} | {} | {} |", l[0], l[1], l[2], l[3]);
                if i == 0 {
                    let _ = writeln!(out, "|---|---:|---:|---:|");
                }
            }
        } else {
            let mut width = [0usize; 4];
            for l in &lines {
                for (w, cell) in width.iter_mut().zip(l.iter()) {
                    *w = (*w).max(cell.len());
                }
            }
            for (i, l) in lines.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{:<w0$} | {:>w1$} | {:>w2$} | {:<w3$}",
                    l[0],
                    l[1],
                    l[2],
                    l[3],
                    w0 = width[0],
                    w1 = width[1],
                    w2 = width[2],
                    w3 = width[3]
                );
                if i == 0 {
                    let total = width.iter().sum::<usize>() + 9;
                    let _ = writeln!(out, "{}", "-".repeat(total));
                }
            }
        }
        out
    }
}

fn check_binary(path: &Path, hint: &str) -> Result<()> {
    if !path.is_file() {
        bail!("{} not found ({hint})", path.display());
    }
    Ok(())
}

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
