//! `niwa-dns-bench`: niwa-dns serving N Services (through a real niwa-store and niwa-apiserver)
//! side by side with Knot serving the equivalent static zone, both measured with dnsperf in the
//! same run: queries/s at full load, latency percentiles at a fixed rate, memory. Prints medians
//! and niwa/Knot ratios (a Markdown table with --markdown, for docs/BENCHMARKS.md).
//!
//! Needs release builds of niwa-store, niwa-apiserver and niwa-dns, and `dnsperf` and `knotd`
//! (`apt-get install dnsperf knot`). Traffic stays on 127.0.0.1.

mod dnsperf;
mod procs;
mod workload;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use niwa_client::Client;

use procs::{Proc, free_port, wait_until};

#[derive(Debug, Parser)]
#[command(name = "niwa-dns-bench", about = "niwa-dns vs Knot under dnsperf")]
struct Args {
    #[arg(long, default_value = "target/release/niwa-store")]
    store_bin: PathBuf,
    #[arg(long, default_value = "target/release/niwa-apiserver")]
    apiserver_bin: PathBuf,
    #[arg(long, default_value = "target/release/niwa-dns")]
    dns_bin: PathBuf,
    #[arg(long, default_value = "/usr/sbin/knotd")]
    knotd: PathBuf,
    #[arg(long, default_value = "dnsperf")]
    dnsperf: PathBuf,
    /// Services in the cluster (and the static zone).
    #[arg(long, default_value_t = 10_000)]
    services: usize,
    /// Seconds of each full-load run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds of each fixed-rate latency run.
    #[arg(long, default_value_t = 5)]
    latency_seconds: u64,
    /// Query rate of the latency runs.
    #[arg(long, default_value_t = 10_000)]
    latency_qps: u32,
    /// Runs per server (medians are reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// dnsperf -c (client sockets).
    #[arg(long, default_value_t = 16)]
    clients: u32,
    /// dnsperf -T (threads).
    #[arg(long, default_value_t = 1)]
    threads: u32,
    /// dnsperf -q (queries in flight).
    #[arg(long, default_value_t = 200)]
    outstanding: u32,
    /// Print a Markdown table.
    #[arg(long)]
    markdown: bool,
}

fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

struct Row {
    name: &'static str,
    higher_is_better: bool,
    niwa: Vec<f64>,
    knot: Vec<f64>,
}

fn fmt(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

fn print(rows: &[Row], markdown: bool) {
    if markdown {
        println!("| metric | niwa-dns | Knot | niwa/Knot |\n|---|---:|---:|---:|");
    } else {
        println!(
            "{:<34} {:>12} {:>12} {:>10}",
            "metric", "niwa-dns", "Knot", "niwa/Knot"
        );
    }
    for row in rows {
        let (n, k) = (median(&row.niwa), median(&row.knot));
        let ratio = if n.is_finite() && k.is_finite() && k != 0.0 {
            let better = if row.higher_is_better {
                "higher"
            } else {
                "lower"
            };
            format!("{:.2}x ({better} is better)", n / k)
        } else {
            "-".into()
        };
        if markdown {
            println!("| {} | {} | {} | {ratio} |", row.name, fmt(n), fmt(k));
        } else {
            println!(
                "{:<34} {:>12} {:>12} {:>10}",
                row.name,
                fmt(n),
                fmt(k),
                ratio
            );
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let dir = tempfile::Builder::new()
        .prefix("niwa-dns-bench-")
        .tempdir()
        .context("creating a temp dir")?;
    let logs = dir.path();

    // The control plane.
    let store_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
    let mut store_cmd = Command::new(&args.store_bin);
    store_cmd
        .arg("--listen")
        .arg(store_addr.to_string())
        .arg("--metrics-listen")
        .arg(format!("127.0.0.1:{}", free_port()?))
        .arg("--data-dir")
        .arg(dir.path().join("store"))
        .env("RUST_LOG", "warn");
    let _store = Proc::spawn("niwa-store", store_cmd, logs)?;
    let api_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
    let mut api_cmd = Command::new(&args.apiserver_bin);
    api_cmd
        .arg("--listen")
        .arg(api_addr.to_string())
        .arg("--store-endpoints")
        .arg(store_addr.to_string())
        .env("RUST_LOG", "warn");
    let mut apiserver = Proc::spawn("niwa-apiserver", api_cmd, logs)?;
    let api_url = format!("http://{api_addr}");
    let client = Client::connect_lazy(&api_url)?;
    wait_until(&mut apiserver, Duration::from_secs(60), || {
        let client = client.clone();
        async move {
            client
                .cluster::<k8s_openapi::api::core::v1::Namespace>()
                .list(&Default::default())
                .await
                .is_ok()
        }
    })
    .await?;

    let began = Instant::now();
    let services = workload::create_services(&client, args.services).await?;
    workload::ensure_nonempty(&services)?;
    eprintln!(
        "created {} Services in {:.1} s",
        services.len(),
        began.elapsed().as_secs_f64()
    );

    // niwa-dns, started after the Services exist: its first list loads them all.
    let dns_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
    let mut dns_cmd = Command::new(&args.dns_bin);
    dns_cmd
        .arg("--apiserver")
        .arg(&api_url)
        .arg("--listen")
        .arg(dns_addr.to_string())
        .arg("--metrics-listen")
        .arg(format!("127.0.0.1:{}", free_port()?))
        // Nothing is forwarded in this workload; a closed local port keeps it on loopback.
        .arg("--upstream")
        .arg(format!("127.0.0.1:{}", free_port()?))
        .env("RUST_LOG", "warn");
    let began = Instant::now();
    let mut dns = Proc::spawn("niwa-dns", dns_cmd, logs)?;
    wait_until(&mut dns, Duration::from_secs(120), || {
        workload::answers_last(dns_addr, &services)
    })
    .await?;
    let sync_seconds = began.elapsed().as_secs_f64();
    eprintln!("niwa-dns answered all Services {sync_seconds:.2} s after starting");
    let (dns_rss_loaded, _) = dns.memory_mib()?;

    // Knot with the same records.
    let zones = workload::zone_files(&services, Ipv4Addr::LOCALHOST);
    for (origin, text) in &zones {
        std::fs::write(dir.path().join(format!("{origin}.zone")), text)?;
    }
    let knot_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
    let knot_conf = dir.path().join("knot.conf");
    std::fs::write(
        &knot_conf,
        workload::knot_config(dir.path(), knot_addr, &zones),
    )?;
    let mut knot_cmd = Command::new(&args.knotd);
    knot_cmd.arg("-c").arg(&knot_conf);
    let mut knot = Proc::spawn("knotd", knot_cmd, logs)?;
    wait_until(&mut knot, Duration::from_secs(60), || {
        workload::answers_last(knot_addr, &services)
    })
    .await?;
    let (knot_rss_loaded, _) = knot.memory_mib()?;

    let queries = dir.path().join("queries.txt");
    std::fs::write(&queries, workload::query_file(&services))?;
    let perf = dnsperf::Dnsperf {
        binary: &args.dnsperf,
        queries: &queries,
        clients: args.clients,
        threads: args.threads,
        outstanding: args.outstanding,
    };

    let mut rows = vec![
        Row {
            name: "queries/s (full load)",
            higher_is_better: true,
            niwa: vec![],
            knot: vec![],
        },
        Row {
            name: "mean latency at full load [ms]",
            higher_is_better: false,
            niwa: vec![],
            knot: vec![],
        },
        Row {
            name: "p50 latency at fixed rate [ms]",
            higher_is_better: false,
            niwa: vec![],
            knot: vec![],
        },
        Row {
            name: "p99 latency at fixed rate [ms]",
            higher_is_better: false,
            niwa: vec![],
            knot: vec![],
        },
        Row {
            name: "lost queries at full load [%]",
            higher_is_better: false,
            niwa: vec![],
            knot: vec![],
        },
    ];
    for run in 1..=args.runs {
        for (is_niwa, addr) in [(true, dns_addr), (false, knot_addr)] {
            let t = perf.throughput(addr, args.seconds)?;
            let l = perf.latency(addr, args.latency_seconds, args.latency_qps)?;
            let who = if is_niwa { "niwa-dns" } else { "knot" };
            eprintln!(
                "run {run} {who}: {:.0} q/s, mean {:.3} ms, lost {:.2}%, p50 {:.3} ms, p99 {:.3} ms \
                 ({} answers) [{}]",
                t.qps, t.mean_latency_ms, t.lost_percent, l.p50_ms, l.p99_ms, l.answered, t.rcodes
            );
            for (row, v) in
                rows.iter_mut()
                    .zip([t.qps, t.mean_latency_ms, l.p50_ms, l.p99_ms, t.lost_percent])
            {
                if is_niwa {
                    row.niwa.push(v)
                } else {
                    row.knot.push(v)
                }
            }
        }
        dns.check_alive()?;
        knot.check_alive()?;
    }
    let (dns_rss, dns_peak) = dns.memory_mib()?;
    let (knot_rss, knot_peak) = knot.memory_mib()?;
    rows.push(Row {
        name: "RSS with the zone loaded [MiB]",
        higher_is_better: false,
        niwa: vec![dns_rss_loaded],
        knot: vec![knot_rss_loaded],
    });
    rows.push(Row {
        name: "RSS after the runs [MiB]",
        higher_is_better: false,
        niwa: vec![dns_rss],
        knot: vec![knot_rss],
    });
    rows.push(Row {
        name: "peak RSS [MiB]",
        higher_is_better: false,
        niwa: vec![dns_peak],
        knot: vec![knot_peak],
    });

    println!(
        "{} Services; dnsperf -c {} -T {} -q {}, {} s full load, {} s at {} q/s; {} runs, medians",
        services.len(),
        args.clients,
        args.threads,
        args.outstanding,
        args.seconds,
        args.latency_seconds,
        args.latency_qps,
        args.runs
    );
    print(&rows, args.markdown);
    let budget = services.len() as f64 / 1000.0 + 54.0;
    println!(
        "niwa-dns: loaded {} Services {sync_seconds:.2} s after start; memory goal (CoreDNS: \
         (pods+services)/1000 + 54 MB) = {budget:.0} MB, peak RSS {dns_peak:.1} MiB",
        services.len()
    );
    Ok(())
}
