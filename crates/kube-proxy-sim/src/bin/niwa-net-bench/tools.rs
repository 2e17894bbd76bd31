//! The bench's instruments: child processes, the load generators (iperf3, wrk, sequential
//! connects), the "pod" servers, and the API objects.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use niwa_client::Api;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A child process, killed (by PID) when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    /// SIGTERM first (niwa-proxy deletes its nftables table on the way out), SIGKILL after 5 s.
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = self.0.try_wait() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    /// CPU seconds (user + system) the process has used so far, from /proc.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.0.id()).unwrap_or(0.0)
    }
}

fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces) start at the state, field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on Linux.
    Some((utime + stime) / 100.0)
}

pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub fn spawn(bin: &Path, args: &[String]) -> Result<Proc> {
    spawn_with_env(bin, args, &[])
}

pub fn spawn_with_env(bin: &Path, args: &[String], env: &[(&str, String)]) -> Result<Proc> {
    let child = Command::new(bin)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    Ok(Proc(child))
}

pub async fn wait_tcp(addr: SocketAddr, within: Duration) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < within {
        if TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("{addr} did not come up within {within:?}")
}

pub async fn http_get(addr: SocketAddr, path: &str) -> Result<String> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out)
}

pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A tiny HTTP/1.1 keep-alive server answering every request with "ok" (the wrk target).
pub async fn http_backend(addr: SocketAddr) -> Result<()> {
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
pub async fn hello_backend(addr: SocketAddr) -> Result<()> {
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

pub async fn service(api: &Api<Service>, name: &str, ip: IpAddr, port: u16) -> Result<()> {
    let svc: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"clusterIP": ip.to_string(), "ports": [{"name": "p", "port": port}]}
    }))?;
    api.create(&svc).await?;
    Ok(())
}

pub async fn slice(
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

/// Bits per second received, one iperf3 stream. The server may still be finishing the previous
/// test ("busy") for a moment after a client ends, or the readiness probe's bare connection
/// (reset by peer): retried.
pub fn iperf3(target: SocketAddr, seconds: u32) -> Result<f64> {
    let mut tries = 0;
    loop {
        match iperf3_once(target, seconds) {
            Err(e)
                if tries < 5
                    && ["busy", "reset by peer"]
                        .iter()
                        .any(|t| format!("{e:#}").contains(t)) =>
            {
                tries += 1;
                std::thread::sleep(Duration::from_secs(1));
            }
            result => return result,
        }
    }
}

fn iperf3_once(target: SocketAddr, seconds: u32) -> Result<f64> {
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

pub struct WrkResult {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
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

/// wrk with `connections` keep-alive connections (one thread when there is one connection).
pub fn wrk(target: SocketAddr, seconds: u32, connections: u32) -> Result<WrkResult> {
    let threads = connections.clamp(1, 2);
    let out = Command::new("wrk")
        .args([
            format!("-t{threads}"),
            format!("-c{connections}"),
            format!("-d{seconds}s"),
            "--latency".to_string(),
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
    if text.contains("Non-2xx") {
        bail!("wrk got errors: {text}");
    }
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
pub async fn setup_latency(target: SocketAddr, n: usize) -> Result<f64> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let mut s = TcpStream::connect(target).await?;
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await?;
        samples.push(start.elapsed().as_secs_f64() * 1e6);
    }
    Ok(median(&mut samples))
}

pub fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN)
}
