//! `niwa-net-bench`: the Service data plane (and the Ingress) measured side by side with direct
//! access.
//!
//! Starts niwa-store, niwa-apiserver, niwa-proxy and, when its binary is there, niwa-ingress
//! (release binaries, as child processes on free ports and their own 127.x addresses), then for
//! each `--mode` (default both: nftables, then userspace; nftables needs root) `--runs` times,
//! each workload through niwa and direct back to back:
//! * TCP throughput with iperf3 (one stream), through a ClusterIP and straight to the "pod";
//! * HTTP requests/s and latency percentiles with wrk at `--connections` and at one connection
//!   (the added latency of one request/reply, without queueing behind the other connections);
//! * connection setup + first byte latency (this program, sequential connects);
//! * HTTP through niwa-ingress (a default backend) versus direct, at `--connections` and one;
//!
//! and once per mode: the time for one endpoint change to take effect and for a freshly started proxy to
//! program `--services` Services (each with one endpoint; `--services 0` skips it). Those Services
//! are deleted again before the next mode, so every mode programs the same number
//! ([`programming`]).
//!
//! Every process shares the machine's cores: the load generator, the "pod" servers (in this
//! program) and the proxy, so the proxied runs have one more process competing. The proxy's CPU
//! use during each workload is printed as well (share of one core).
//!
//! Needs `iperf3` and `wrk` (Debian packages of those names). Prints Markdown tables: the
//! median over runs with [min–max].

mod programming;
mod tools;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Parser;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use niwa_client::{Api, Client};
use serde_json::json;
use tools::{
    Proc, free_port, hello_backend, http_backend, http_get, iperf3, median, metric, service,
    setup_latency, slice, spawn, spawn_with_env, wait_tcp, wrk,
};

#[derive(Debug, Parser)]
#[command(
    name = "niwa-net-bench",
    about = "niwa-proxy and niwa-ingress vs direct: throughput, HTTP, setup latency, programming time"
)]
struct Args {
    /// Directory holding niwa-store, niwa-apiserver, niwa-proxy (and niwa-ingress).
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Seconds per iperf3 / wrk measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u32,
    /// Services for the programming-time measurement (0: skip it).
    #[arg(long, default_value_t = 10_000)]
    services: usize,
    /// wrk connections.
    #[arg(long, default_value_t = 32)]
    connections: u32,
    /// Rounds of the data-path workloads (medians are reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Leave niwa-ingress out even when its binary is there.
    #[arg(long)]
    no_ingress: bool,
    /// niwa-proxy data path: `both` (nftables, then userspace), `nftables` or `userspace`.
    #[arg(long, default_value = "both")]
    mode: String,
    /// Tokio worker threads of niwa-proxy (TOKIO_WORKER_THREADS; default: one per core).
    #[arg(long)]
    proxy_workers: Option<usize>,
}

/// One workload's samples over the runs: through niwa, direct, and niwa's CPU share.
struct Row {
    name: String,
    unit: &'static str,
    higher_better: bool,
    niwa: Vec<f64>,
    direct: Vec<f64>,
    cpu: Vec<f64>,
}

impl Row {
    fn new(name: String, unit: &'static str, higher_better: bool) -> Row {
        Row {
            name,
            unit,
            higher_better,
            niwa: Vec::new(),
            direct: Vec::new(),
            cpu: Vec::new(),
        }
    }
}

fn summary(samples: &[f64], digits: usize) -> String {
    let mut s = samples.to_vec();
    let med = median(&mut s);
    let (min, max) = (s.first().copied(), s.last().copied());
    match (min, max) {
        (Some(min), Some(max)) if s.len() > 1 => {
            format!("{med:.digits$} [{min:.digits$}–{max:.digits$}]")
        }
        _ => format!("{med:.digits$}"),
    }
}

fn print_rows(rows: &[Row]) {
    println!(
        "\n| workload | through niwa | direct | niwa/direct | niwa − direct | niwa CPU (cores) |\n|---|---:|---:|---:|---:|---:|"
    );
    for row in rows {
        let ratios: Vec<f64> = row
            .niwa
            .iter()
            .zip(&row.direct)
            .map(|(n, d)| n / d)
            .collect();
        let added: Vec<f64> = row
            .niwa
            .iter()
            .zip(&row.direct)
            .map(|(n, d)| n - d)
            .collect();
        let digits = if row.unit == "ms" { 3 } else { 1 };
        println!(
            "| {} [{}] | {} | {} | {}x ({} is better) | {} | {} |",
            row.name,
            row.unit,
            summary(&row.niwa, digits),
            summary(&row.direct, digits),
            summary(&ratios, 2),
            if row.higher_better { "higher" } else { "lower" },
            if row.higher_better {
                "–".to_string()
            } else {
                summary(&added, digits)
            },
            summary(&row.cpu, 2),
        );
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let block = (std::process::id() % 200) as u8 + 20;
    let v4 = |a, c, d| IpAddr::V4(Ipv4Addr::new(127, a, c, d));
    let store_port = free_port()?;
    let api_port = free_port()?;
    let tmp = std::env::temp_dir().join(format!("niwa-net-bench-{}", std::process::id()));
    let _store = spawn(
        &args.bin_dir.join("niwa-store"),
        &[
            "--listen".into(),
            format!("127.0.0.1:{store_port}"),
            "--data-dir".into(),
            tmp.join("store").display().to_string(),
            "--metrics-listen".into(),
            format!("127.0.0.1:{}", free_port()?),
        ],
    )?;
    wait_tcp(
        format!("127.0.0.1:{store_port}").parse()?,
        Duration::from_secs(20),
    )
    .await?;
    let _api = spawn(
        &args.bin_dir.join("niwa-apiserver"),
        &[
            "--listen".into(),
            format!("127.0.0.1:{api_port}"),
            "--store-endpoints".into(),
            format!("127.0.0.1:{store_port}"),
            // The 10,000 Services of the programming measurement live in 127.97.0.0/16.
            "--service-cidr".into(),
            "127.96.0.0/15".into(),
        ],
    )?;
    let api_addr: SocketAddr = format!("127.0.0.1:{api_port}").parse()?;
    wait_tcp(api_addr, Duration::from_secs(20)).await?;
    let client = Client::connect(&format!("http://{api_addr}")).await?;
    let services: Api<Service> = client.namespaced("default");
    let slices: Api<EndpointSlice> = client.namespaced("default");

    // Backends: iperf3, the HTTP server and the hello server on the "pod" address.
    let pod = v4(244, block, 1);
    let (iperf_port, http_port, hello_port) = (free_port()?, free_port()?, free_port()?);
    let _iperf = spawn(
        std::path::Path::new("iperf3"),
        &[
            "-s".into(),
            "-B".into(),
            pod.to_string(),
            "-p".into(),
            iperf_port.to_string(),
        ],
    )?;
    http_backend(SocketAddr::new(pod, http_port)).await?;
    hello_backend(SocketAddr::new(pod, hello_port)).await?;
    let vip = |n| v4(96, block, n);
    service(&services, "iperf", vip(1), 5201).await?;
    slice(&slices, "iperf", &[pod], iperf_port).await?;
    service(&services, "http", vip(2), 8080).await?;
    slice(&slices, "http", &[pod], http_port).await?;
    service(&services, "hello", vip(3), 9000).await?;
    slice(&slices, "hello", &[pod], hello_port).await?;

    let modes: Vec<&str> = match args.mode.as_str() {
        "both" => vec!["nftables", "userspace"],
        "nftables" | "userspace" => vec![args.mode.as_str()],
        other => bail!("--mode {other}: both, nftables or userspace"),
    };
    for (round, mode) in modes.iter().enumerate() {
        println!("\n### niwa-proxy --mode {mode}");
        let proxy_metrics: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let proxy_args = vec![
            "--apiserver".into(),
            format!("http://{api_addr}"),
            "--node-name".into(),
            "bench".into(),
            "--node-ip".into(),
            v4(1, block, 1).to_string(),
            "--metrics-listen".into(),
            proxy_metrics.to_string(),
            "--mode".into(),
            mode.to_string(),
        ];
        let proxy_env: Vec<(&str, String)> = args
            .proxy_workers
            .map(|n| ("TOKIO_WORKER_THREADS", n.to_string()))
            .into_iter()
            .collect();
        let proxy = spawn_with_env(&args.bin_dir.join("niwa-proxy"), &proxy_args, &proxy_env)?;
        wait_tcp(SocketAddr::new(vip(3), 9000), Duration::from_secs(20)).await?;
        wait_tcp(SocketAddr::new(pod, iperf_port), Duration::from_secs(10)).await?;

        // The Ingress does not go through niwa-proxy: measured once.
        let ingress = if round > 0 || args.no_ingress || !args.bin_dir.join("niwa-ingress").exists()
        {
            None
        } else {
            Some(start_ingress(&args, &client, api_addr, v4(1, block, 2)).await?)
        };

        let (pod_http, vip_http) = (
            SocketAddr::new(pod, http_port),
            SocketAddr::new(vip(2), 8080),
        );
        let c = args.connections;
        let mut iperf_row = Row::new("TCP throughput, 1 stream".into(), "Gbit/s", true);
        let mut rps_row = Row::new(format!("HTTP requests/s, c={c}"), "req/s", true);
        let mut p50_row = Row::new(format!("HTTP p50 latency, c={c}"), "ms", false);
        let mut p99_row = Row::new(format!("HTTP p99 latency, c={c}"), "ms", false);
        let mut one_p50_row = Row::new("HTTP p50 latency, c=1".into(), "ms", false);
        let mut one_p99_row = Row::new("HTTP p99 latency, c=1".into(), "ms", false);
        let mut setup_row = Row::new("connect + first byte, median".into(), "µs", false);
        let mut ing_rps_row = Row::new(format!("Ingress HTTP requests/s, c={c}"), "req/s", true);
        let mut ing_p50_row = Row::new(format!("Ingress HTTP p50 latency, c={c}"), "ms", false);
        let mut ing_one_row = Row::new("Ingress HTTP p50 latency, c=1".into(), "ms", false);
        let secs = args.seconds;
        // CPU the proxy (or ingress) spent per unit of work: steadier than rates on a busy machine.
        let mut cost_gb = Vec::new();
        let mut cost_req = Vec::new();
        let mut cost_req1 = Vec::new();
        let mut cost_conn = Vec::new();
        let mut ing_cost_req = Vec::new();
        let mut ing_cost_req1 = Vec::new();
        for run in 1..=args.runs.max(1) {
            eprintln!("run {run}/{}: iperf3, wrk, setup latency...", args.runs);
            let (via, cpu) = measured(&proxy, || iperf3(SocketAddr::new(vip(1), 5201), secs))?;
            let direct = iperf3(SocketAddr::new(pod, iperf_port), secs)?;
            iperf_row.niwa.push(via / 1e9);
            iperf_row.direct.push(direct / 1e9);
            iperf_row.cpu.push(cpu);
            cost_gb.push(cpu / (via / 8e9) * 1e3);

            let (via, cpu) = measured(&proxy, || wrk(vip_http, secs, c))?;
            cost_req.push(cpu / via.rps * 1e6);
            let direct = wrk(pod_http, secs, c)?;
            for (row, v, d) in [
                (&mut rps_row, via.rps, direct.rps),
                (&mut p50_row, via.p50_ms, direct.p50_ms),
                (&mut p99_row, via.p99_ms, direct.p99_ms),
            ] {
                row.niwa.push(v);
                row.direct.push(d);
                row.cpu.push(cpu);
            }
            let (via, cpu) = measured(&proxy, || wrk(vip_http, secs, 1))?;
            cost_req1.push(cpu / via.rps * 1e6);
            let direct = wrk(pod_http, secs, 1)?;
            for (row, v, d) in [
                (&mut one_p50_row, via.p50_ms, direct.p50_ms),
                (&mut one_p99_row, via.p99_ms, direct.p99_ms),
            ] {
                row.niwa.push(v);
                row.direct.push(d);
                row.cpu.push(cpu);
            }

            let before = (Instant::now(), proxy.cpu_seconds());
            let via = setup_latency(SocketAddr::new(vip(3), 9000), 2000).await?;
            let cpu = (proxy.cpu_seconds() - before.1) / before.0.elapsed().as_secs_f64();
            cost_conn.push(cpu * before.0.elapsed().as_secs_f64() / 2000.0 * 1e6);
            let direct = setup_latency(SocketAddr::new(pod, hello_port), 2000).await?;
            setup_row.niwa.push(via);
            setup_row.direct.push(direct);
            setup_row.cpu.push(cpu);

            if let Some((ingress, at)) = &ingress {
                let (via, cpu) = measured(ingress, || wrk(*at, secs, c))?;
                ing_cost_req.push(cpu / via.rps * 1e6);
                let direct = wrk(pod_http, secs, c)?;
                for (row, v, d) in [
                    (&mut ing_rps_row, via.rps, direct.rps),
                    (&mut ing_p50_row, via.p50_ms, direct.p50_ms),
                ] {
                    row.niwa.push(v);
                    row.direct.push(d);
                    row.cpu.push(cpu);
                }
                let (via, cpu) = measured(ingress, || wrk(*at, secs, 1))?;
                ing_cost_req1.push(cpu / via.rps * 1e6);
                let direct = wrk(pod_http, secs, 1)?;
                ing_one_row.niwa.push(via.p50_ms);
                ing_one_row.direct.push(direct.p50_ms);
                ing_one_row.cpu.push(cpu);
            }
        }
        let mut rows = vec![
            iperf_row,
            rps_row,
            p50_row,
            p99_row,
            one_p50_row,
            one_p99_row,
            setup_row,
        ];
        if ingress.is_some() {
            rows.extend([ing_rps_row, ing_p50_row, ing_one_row]);
        }
        print_rows(&rows);
        println!("\n| CPU spent per unit of work | median [min–max] |\n|---|---:|");
        let mut costs = vec![
            ("niwa-proxy, per GB forwarded (iperf3) [core-ms]", cost_gb),
            ("niwa-proxy, per request, c={c} [µs]", cost_req),
            ("niwa-proxy, per request, c=1 [µs]", cost_req1),
            (
                "niwa-proxy, per connection (connect + first byte) [µs]",
                cost_conn,
            ),
        ];
        if ingress.is_some() {
            costs.push(("niwa-ingress, per request, c={c} [µs]", ing_cost_req));
            costs.push(("niwa-ingress, per request, c=1 [µs]", ing_cost_req1));
        }
        for (name, samples) in costs {
            println!(
                "| {} | {} |",
                name.replace("{c}", &c.to_string()),
                summary(&samples, 1)
            );
        }
        drop(ingress);

        // One endpoint change: from the API write returning to new connections reaching it.
        // Round 0 moves `hello` to a second pod, round 1 back to the first.
        let pod2 = if round == 0 { v4(244, block, 2) } else { pod };
        if round == 0 {
            hello_backend(SocketAddr::new(pod2, hello_port)).await?;
        }
        let programmed_before = metric(
            &http_get(proxy_metrics, "/metrics").await?,
            "kubeproxy_network_programming_duration_seconds_count",
        )
        .unwrap_or(0.0);
        let start = Instant::now();
        slice(&slices, "hello", &[pod2], hello_port).await?;
        let write_done = start.elapsed();
        loop {
            // The peer is the ClusterIP either way: the proxy's metrics tell when the change is live.
            let m = http_get(proxy_metrics, "/metrics").await?;
            if metric(&m, "kubeproxy_network_programming_duration_seconds_count").unwrap_or(0.0)
                > programmed_before
            {
                break;
            }
            if start.elapsed() > Duration::from_secs(10) {
                bail!("endpoint change not applied within 10 s");
            }
        }
        let endpoint_change = start.elapsed();
        println!("\n| programming | time |\n|---|---:|");
        println!(
            "| endpoint change: API write → live (write took {:.1} ms) | {:.1} ms |",
            write_done.as_secs_f64() * 1e3,
            endpoint_change.as_secs_f64() * 1e3
        );
        if args.services > 0 {
            // What the proxy serves besides the bench's Services (the `kubernetes` Service):
            // listeners (userspace) or table elements (nftables).
            let done_metric = if *mode == "nftables" {
                "niwa_proxy_nft_elements"
            } else {
                "niwa_proxy_listeners"
            };
            let baseline =
                metric(&http_get(proxy_metrics, "/metrics").await?, done_metric).unwrap_or(3.0);
            drop(proxy);
            let programmed = programming::measure(
                &args,
                mode,
                &services,
                &slices,
                pod,
                hello_port,
                &proxy_args,
                proxy_metrics,
                baseline,
                // The next mode creates them anew, measuring the same number.
                round + 1 < modes.len(),
            )
            .await?;
            println!(
                "| fresh proxy start → {} Services programmed | {:.0} ms |",
                args.services,
                programmed.0.as_secs_f64() * 1e3
            );
            println!(
                "| of which the proxy's syncs (compute + apply; the rest is start, list and watch) | {:.0} ms |",
                programmed.1 * 1e3
            );
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

/// Runs a load generator and returns its result with the CPU share `process` used meanwhile.
fn measured<T>(process: &Proc, run: impl FnOnce() -> Result<T>) -> Result<(T, f64)> {
    let (start, cpu) = (Instant::now(), process.cpu_seconds());
    let result = run()?;
    Ok((
        result,
        (process.cpu_seconds() - cpu) / start.elapsed().as_secs_f64(),
    ))
}

/// niwa-ingress on `ip` with one Ingress whose default backend is the `http` Service; returns
/// once it answers 200.
async fn start_ingress(
    args: &Args,
    client: &Client,
    api_addr: SocketAddr,
    ip: IpAddr,
) -> Result<(Proc, SocketAddr)> {
    let listen = SocketAddr::new(ip, free_port()?);
    let ingress = spawn(
        &args.bin_dir.join("niwa-ingress"),
        &[
            "--apiserver".into(),
            format!("http://{api_addr}"),
            "--http-listen".into(),
            listen.to_string(),
            "--https-listen".into(),
            "none".into(),
            "--metrics-listen".into(),
            format!("127.0.0.1:{}", free_port()?),
        ],
    )?;
    let ingresses: Api<Ingress> = client.namespaced("default");
    let object: Ingress = serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "bench", "namespace": "default"},
        "spec": {"ingressClassName": "niwa",
                 "defaultBackend": {"service": {"name": "http", "port": {"number": 8080}}}}
    }))?;
    ingresses.create(&object).await?;
    let start = Instant::now();
    loop {
        if let Ok(reply) = http_get(listen, "/").await
            && reply.starts_with("HTTP/1.1 200")
        {
            return Ok((ingress, listen));
        }
        if start.elapsed() > Duration::from_secs(20) {
            bail!("niwa-ingress did not route to the http Service within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
