//! Runs dnsperf and reads its report: throughput at full load, and the latency distribution at a
//! fixed query rate (dnsperf 2.10 reports only mean latency, so the fixed-rate run uses `-v` and
//! computes percentiles from every query's latency).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

#[derive(Debug, Clone)]
pub struct Throughput {
    pub qps: f64,
    pub mean_latency_ms: f64,
    pub lost_percent: f64,
    pub rcodes: String,
}

#[derive(Debug, Clone)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub answered: usize,
}

pub struct Dnsperf<'a> {
    pub binary: &'a Path,
    pub queries: &'a Path,
    pub clients: u32,
    pub threads: u32,
    pub outstanding: u32,
}

impl Dnsperf<'_> {
    fn command(&self, server: SocketAddr, seconds: u64) -> Command {
        let mut cmd = Command::new(self.binary);
        cmd.arg("-s")
            .arg(server.ip().to_string())
            .arg("-p")
            .arg(server.port().to_string())
            .arg("-d")
            .arg(self.queries)
            .arg("-l")
            .arg(seconds.to_string())
            .arg("-c")
            .arg(self.clients.to_string())
            .arg("-T")
            .arg(self.threads.to_string())
            .arg("-t")
            .arg("2");
        cmd
    }

    fn run(mut cmd: Command) -> Result<String> {
        let out = cmd
            .output()
            .context("running dnsperf (apt-get install dnsperf)")?;
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        if !out.status.success() {
            bail!(
                "dnsperf failed ({}): {}{}",
                out.status,
                stdout,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(stdout)
    }

    /// As many queries as the server answers, `outstanding` in flight.
    pub fn throughput(&self, server: SocketAddr, seconds: u64) -> Result<Throughput> {
        let mut cmd = self.command(server, seconds);
        cmd.arg("-q").arg(self.outstanding.to_string());
        parse_report(&Self::run(cmd)?)
    }

    /// Latency percentiles at a fixed `qps`.
    pub fn latency(&self, server: SocketAddr, seconds: u64, qps: u32) -> Result<Latency> {
        let mut cmd = self.command(server, seconds);
        cmd.arg("-Q").arg(qps.to_string()).arg("-v");
        parse_verbose(&Self::run(cmd)?)
    }
}

fn field<'a>(report: &'a str, label: &str) -> Option<&'a str> {
    report
        .lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .map(str::trim)
}

fn number(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

pub fn parse_report(report: &str) -> Result<Throughput> {
    let qps = field(report, "Queries per second:")
        .and_then(number)
        .with_context(|| format!("no \"Queries per second\" in dnsperf's report:\n{report}"))?;
    let mean = field(report, "Average Latency (s):")
        .and_then(number)
        .map_or(f64::NAN, |s| s * 1000.0);
    let lost = field(report, "Queries lost:")
        .and_then(|l| l.split('(').nth(1))
        .and_then(|p| p.trim_end_matches(')').trim_end_matches('%').parse().ok())
        .unwrap_or(f64::NAN);
    let rcodes = field(report, "Response codes:").unwrap_or("").to_string();
    Ok(Throughput {
        qps,
        mean_latency_ms: mean,
        lost_percent: lost,
        rcodes,
    })
}

/// `> NOERROR name type 0.000123` lines → percentiles (lost queries have no latency field).
pub fn parse_verbose(output: &str) -> Result<Latency> {
    let mut latencies: Vec<f64> = output
        .lines()
        .filter(|l| l.starts_with("> "))
        .filter_map(|l| l.split_whitespace().nth(4)?.parse::<f64>().ok())
        .collect();
    if latencies.is_empty() {
        bail!("dnsperf -v reported no answered query");
    }
    latencies.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies[i.min(latencies.len() - 1)] * 1000.0
    };
    Ok(Latency {
        p50_ms: pick(0.50),
        p99_ms: pick(0.99),
        answered: latencies.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_report() {
        let report = "Statistics:\n\n  Queries sent:         100\n  Queries completed:    99 (99.00%)\n  \
                      Queries lost:         1 (1.00%)\n\n  Response codes:       NOERROR 90 (90.91%), NXDOMAIN 9 (9.09%)\n  \
                      Queries per second:   54321.123456\n\n  Average Latency (s):  0.000250 (min 0.000010, max 0.010000)\n";
        let t = parse_report(report).expect("report");
        assert!((t.qps - 54321.123456).abs() < 1e-6);
        assert!((t.mean_latency_ms - 0.25).abs() < 1e-9);
        assert!((t.lost_percent - 1.0).abs() < 1e-9);
        assert!(t.rcodes.starts_with("NOERROR 90"));
        let v = "[Status] x\n> NOERROR a.b A 0.000100\n> NOERROR a.b A 0.000300\n> T a.b A\n> NXDOMAIN c.d A 0.000200\n";
        let l = parse_verbose(v).expect("verbose");
        assert_eq!(l.answered, 3);
        assert!((l.p50_ms - 0.2).abs() < 1e-9);
        assert!((l.p99_ms - 0.3).abs() < 1e-9);
    }
}
