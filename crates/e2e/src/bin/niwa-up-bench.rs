//! `niwa-up-bench`: how long `niwa up` takes until every component is healthy, and how much memory
//! an idle cluster holds (the sum of the RSS of the supervisor and every daemon), median of N runs.
//!
//! ```sh
//! cargo build --release --workspace --bins
//! target/release/niwa-up-bench --nodes 3 --runs 3 --idle-seconds 10
//! ```
//!
//! Each run starts a fresh cluster in a private 127.B block with an empty data dir (as the
//! end-to-end suite does), times `niwa up -d` (which returns once every component answers
//! `/healthz`), lets it idle, reads `VmRSS` of each process from /proc, and stops it. The binaries
//! are the ones beside this program (`target/<profile>/`), or `NIWA_E2E_BIN_DIR`.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use niwa_e2e::Cluster;

struct Args {
    nodes: u32,
    runs: usize,
    idle: Duration,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        nodes: 3,
        runs: 3,
        idle: Duration::from_secs(10),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--nodes" => args.nodes = value()?.parse()?,
            "--runs" => args.runs = value()?.parse()?,
            "--idle-seconds" => args.idle = Duration::from_secs(value()?.parse()?),
            "-h" | "--help" => {
                println!("niwa-up-bench [--nodes 3] [--runs 3] [--idle-seconds 10]");
                std::process::exit(0);
            }
            other => bail!("unknown flag {other}"),
        }
    }
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    Ok(args)
}

/// Resident set size of a process in KiB (`VmRSS` of /proc/<pid>/status).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

struct Sample {
    startup: Duration,
    /// Until `kubectl get nodes` shows every node Ready (from the start of `niwa up`).
    nodes_ready: Duration,
    total_kib: u64,
    per_component: Vec<(String, u64)>,
}

fn one_run(args: &Args) -> Result<Sample> {
    let started = std::time::Instant::now();
    let cluster = Cluster::up(args.nodes)?;
    let nodes_ready = loop {
        if ready_nodes(&cluster) >= args.nodes as usize {
            break started.elapsed();
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("nodes not Ready after 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(args.idle);
    let state = cluster.state()?;
    let mut per_component = vec![(
        "supervisor (niwa up)".to_string(),
        rss_kib(state.supervisor_pid).context("supervisor gone")?,
    )];
    for c in &state.components {
        let pid = c.pid.with_context(|| format!("{} has no pid", c.name))?;
        let kib = rss_kib(pid).with_context(|| format!("{} (pid {pid}) gone", c.name))?;
        per_component.push((c.name.clone(), kib));
    }
    let total_kib = per_component.iter().map(|(_, k)| k).sum();
    Ok(Sample {
        startup: cluster.startup,
        nodes_ready,
        total_kib,
        per_component,
    })
}

/// How many nodes `kubectl get nodes` shows Ready.
fn ready_nodes(cluster: &Cluster) -> usize {
    std::process::Command::new("kubectl")
        .args([
            "get",
            "nodes",
            "-o",
            "jsonpath={.items[*].status.conditions[?(@.type==\"Ready\")].status}",
        ])
        .env("KUBECONFIG", cluster.kubeconfig())
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter(|s| *s == "True")
                .count()
        })
        .unwrap_or(0)
}

fn median<T: Copy + Ord>(mut v: Vec<T>) -> T {
    v.sort();
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let mut samples = Vec::new();
    for run in 1..=args.runs {
        let s = one_run(&args)?;
        println!(
            "run {run}: ready in {:.2} s, nodes Ready in {:.2} s, idle RSS {:.1} MiB",
            s.startup.as_secs_f64(),
            s.nodes_ready.as_secs_f64(),
            s.total_kib as f64 / 1024.0
        );
        samples.push(s);
    }
    let startup = median(samples.iter().map(|s| s.startup).collect());
    let nodes_ready = median(samples.iter().map(|s| s.nodes_ready).collect());
    let total = median(samples.iter().map(|s| s.total_kib).collect());
    println!(
        "\n{}-node cluster, median of {}: `niwa up` ready in {:.2} s (all nodes Ready in kubectl after \
         {:.2} s); idle RSS {:.1} MiB in total\n",
        args.nodes,
        args.runs,
        startup.as_secs_f64(),
        nodes_ready.as_secs_f64(),
        total as f64 / 1024.0
    );
    // The per-component split of the median run.
    if let Some(s) = samples.iter().find(|s| s.total_kib == total) {
        println!("| process | RSS [MiB] |\n|---|---:|");
        for (name, kib) in &s.per_component {
            println!("| {name} | {:.1} |", *kib as f64 / 1024.0);
        }
    }
    Ok(())
}
