//! `niwa-net-bench`: the Service data plane measured side by side with direct access.
//!
//! Starts niwa-store, niwa-apiserver and niwa-proxy (release binaries, as child processes on free
//! ports and their own 127.x addresses), then in one run:
//! * TCP throughput with iperf3, through a ClusterIP and straight to the "pod";
//! * HTTP requests/s and latency percentiles with wrk, through a ClusterIP and direct;
//! * connection setup + first byte latency (this program, sequential connects);
//! * time for a freshly started proxy to program 10,000 Services (each with one endpoint), and
//!   for one endpoint change to take effect.
//!
//! Needs `iperf3` and `wrk` (Debian packages of those names). Prints a Markdown table.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use niwa_client::{Api, Client};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Parser)]
#[command(
    name = "niwa-net-bench",
    about = "niwa-proxy vs direct: throughput, HTTP, setup latency, programming time"
)]
struct Args {
    /// Directory holding niwa-store, niwa-apiserver and niwa-proxy.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Seconds per iperf3 / wrk measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u32,
    /// Services for the programming-time measurement.
    #[arg(long, default_value_t = 10_000)]
    services: usize,
    /// wrk connections.
    #[arg(long, default_value_t = 32)]
    connections: u32,
}

/// Children are killed (by PID) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn spawn(bin: &Path, args: &[String]) -> Result<Proc> {
    let child = Command::new(bin)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    Ok(Proc(child))
}

async fn wait_tcp(addr: SocketAddr, within: Duration) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < within {
        if TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("{addr} did not come up within {within:?}")
}

async fn http_get(addr: SocketAddr, path: &str) -> Result<String> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out)
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A tiny HTTP/1.1 keep-alive server answering every request with "ok" (the wrk target).
async fn http_backend(addr: SocketAddr) -> Result<()> {
    let listener = TcpListener::bind(addr).await?;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = s.set_nodelay(true);
                let mut buf = vec![0u8; 8192];
                let mut filled = 0;
                loop {
                    match s.read(&mut buf[filled..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => filled += n,
                    }
                    while let Some(end) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
                        let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok";
                        if s.write_all(reply).await.is_err() {
                            return;
                        }
                        buf.copy_within(end + 4..filled, 0);
                        filled -= end + 4;
                    }
                    if filled == buf.len() {
                        return;
                    }
                }
            });
        }
    });
    Ok(())
}

/// A TCP server that writes one byte per connection (connection-setup latency target).
async fn hello_backend(addr: SocketAddr) -> Result<()> {
    let listener = TcpListener::bind(addr).await?;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(b"!").await;
            });
        }
    });
    Ok(())
}

async fn service(api: &Api<Service>, name: &str, ip: IpAddr, port: u16) -> Result<()> {
    let svc: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"clusterIP": ip.to_string(), "ports": [{"name": "p", "port": port}]}
    }))?;
    api.create(&svc).await?;
    Ok(())
}

async fn slice(
    api: &Api<EndpointSlice>,
    service: &str,
    endpoints: &[IpAddr],
    port: u16,
) -> Result<()> {
    let eps: Vec<_> = endpoints
        .iter()
        .map(|ip| json!({"addresses": [ip.to_string()], "conditions": {"ready": true}}))
        .collect();
    let slice: EndpointSlice = serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{service}-1"), "namespace": "default",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4", "ports": [{"name": "p", "port": port}], "endpoints": eps
    }))?;
    match api.get_opt(&format!("{service}-1")).await? {
        Some(old) => {
            let mut s = slice;
            s.metadata.resource_version = old.metadata.resource_version;
            api.replace(&s).await?;
        }
        None => {
            api.create(&slice).await?;
        }
    }
    Ok(())
}

fn iperf3(target: SocketAddr, seconds: u32) -> Result<f64> {
    let out = Command::new("iperf3")
        .args([
            "-c",
            &target.ip().to_string(),
            "-p",
            &target.port().to_string(),
        ])
        .args(["-t", &seconds.to_string(), "-J"])
        .output()
        .context("running iperf3 (apt-get install iperf3)")?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("iperf3 JSON")?;
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .with_context(|| format!("iperf3 result: {}", String::from_utf8_lossy(&out.stdout)))
}

struct WrkResult {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn wrk_ms(value: &str) -> Option<f64> {
    let v = value.trim();
    let (num, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (v, 1.0)
    };
    num.parse::<f64>().ok().map(|n| n * scale)
}

fn wrk(target: SocketAddr, seconds: u32, connections: u32) -> Result<WrkResult> {
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
        ])
        .arg(format!("http://{target}/"))
        .output()
        .context("running wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(str::to_string)
    };
    let rps = field("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("wrk output: {text}"))?;
    let p50_ms = field("50%").and_then(|v| wrk_ms(&v)).context("wrk p50")?;
    let p99_ms = field("99%").and_then(|v| wrk_ms(&v)).context("wrk p99")?;
    Ok(WrkResult {
        rps,
        p50_ms,
        p99_ms,
    })
}

/// Median microseconds of connect + first byte, over `n` sequential connections.
async fn setup_latency(target: SocketAddr, n: usize) -> Result<f64> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let mut s = TcpStream::connect(target).await?;
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await?;
        samples.push(start.elapsed().as_secs_f64() * 1e6);
    }
    samples.sort_by(f64::total_cmp);
    Ok(samples[samples.len() / 2])
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
        Path::new("iperf3"),
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
    ];
    let proxy = spawn(&args.bin_dir.join("niwa-proxy"), &proxy_args)?;
    wait_tcp(SocketAddr::new(vip(3), 9000), Duration::from_secs(20)).await?;
    wait_tcp(SocketAddr::new(pod, iperf_port), Duration::from_secs(10)).await?;

    let mut rows: Vec<(String, String, String, String)> = Vec::new();
    let mut row = |name: &str, niwa: f64, direct: f64, unit: &str, higher_better: bool| {
        let ratio = niwa / direct;
        rows.push((
            format!("{name} [{unit}]"),
            format!("{niwa:.3}"),
            format!("{direct:.3}"),
            format!(
                "{ratio:.2}x ({})",
                if higher_better {
                    "higher is better"
                } else {
                    "lower is better"
                }
            ),
        ));
    };
    eprintln!(
        "iperf3 through the ClusterIP and direct ({} s each)...",
        args.seconds
    );
    let via = iperf3(SocketAddr::new(vip(1), 5201), args.seconds)?;
    let direct = iperf3(SocketAddr::new(pod, iperf_port), args.seconds)?;
    row("TCP throughput", via / 1e9, direct / 1e9, "Gbit/s", true);

    eprintln!("wrk through the ClusterIP and direct...");
    let via = wrk(
        SocketAddr::new(vip(2), 8080),
        args.seconds,
        args.connections,
    )?;
    let direct = wrk(
        SocketAddr::new(pod, http_port),
        args.seconds,
        args.connections,
    )?;
    row(
        &format!("HTTP c={} requests/s", args.connections),
        via.rps,
        direct.rps,
        "req/s",
        true,
    );
    row("HTTP p50 latency", via.p50_ms, direct.p50_ms, "ms", false);
    row("HTTP p99 latency", via.p99_ms, direct.p99_ms, "ms", false);

    eprintln!("connection setup latency...");
    let via = setup_latency(SocketAddr::new(vip(3), 9000), 2000).await?;
    let direct = setup_latency(SocketAddr::new(pod, hello_port), 2000).await?;
    row("connect + first byte, median", via, direct, "µs", false);
    let added_setup = via - direct;

    // One endpoint change: from the API write returning to new connections reaching it.
    let pod2 = v4(244, block, 2);
    hello_backend(SocketAddr::new(pod2, hello_port)).await?;
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
    // What the proxy serves besides the bench's Services (the apiserver's `kubernetes` Service).
    let baseline = metric(
        &http_get(proxy_metrics, "/metrics").await?,
        "niwa_proxy_listeners",
    )
    .unwrap_or(3.0);
    drop(proxy);

    // Programming time: N Services with endpoints exist; a fresh proxy starts; time until all
    // of them listen.
    eprintln!("creating {} Services with EndpointSlices...", args.services);
    let created = Instant::now();
    let mut pending = futures::stream::FuturesUnordered::new();
    use futures::StreamExt;
    for i in 0..args.services {
        let (services, slices) = (services.clone(), slices.clone());
        pending.push(async move {
            let name = format!("s{i}");
            let ip = IpAddr::V4(Ipv4Addr::new(127, 97, (i / 250) as u8, (i % 250) as u8 + 1));
            service(&services, &name, ip, 80).await?;
            slice(&slices, &name, &[pod], hello_port).await
        });
        if pending.len() >= 64
            && let Some(r) = pending.next().await
        {
            r?;
        }
    }
    while let Some(r) = pending.next().await {
        r?;
    }
    eprintln!(
        "created in {:.1} s; starting a fresh proxy",
        created.elapsed().as_secs_f64()
    );
    let start = Instant::now();
    let _proxy = spawn(&args.bin_dir.join("niwa-proxy"), &proxy_args)?;
    let want = args.services as f64 + baseline;
    let programmed = loop {
        if let Ok(m) = http_get(proxy_metrics, "/metrics").await
            && metric(&m, "niwa_proxy_listeners").unwrap_or(0.0) >= want
        {
            break start.elapsed();
        }
        if start.elapsed() > Duration::from_secs(120) {
            bail!("{} Services not programmed within 120 s", args.services);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let last = IpAddr::V4(Ipv4Addr::new(
        127,
        97,
        ((args.services - 1) / 250) as u8,
        ((args.services - 1) % 250) as u8 + 1,
    ));
    wait_tcp(SocketAddr::new(last, 80), Duration::from_secs(5)).await?;

    println!("\n| workload | through niwa-proxy | direct | niwa/direct |\n|---|---:|---:|---:|");
    for (name, niwa, direct, ratio) in &rows {
        println!("| {name} | {niwa} | {direct} | {ratio} |");
    }
    println!("\n| programming | time |\n|---|---:|");
    println!("| added connect + first byte latency (median) | {added_setup:.0} µs |");
    println!(
        "| endpoint change: API write → live (write took {:.1} ms) | {:.1} ms |",
        write_done.as_secs_f64() * 1e3,
        endpoint_change.as_secs_f64() * 1e3
    );
    println!(
        "| fresh proxy start → {} Services listening | {:.0} ms |",
        args.services,
        programmed.as_secs_f64() * 1e3
    );
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}
