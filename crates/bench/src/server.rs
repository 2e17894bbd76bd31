//! The two servers under test as child processes: started on free 127.0.0.1 ports with a temp
//! data dir, awaited until ready, killed by PID on drop.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use etcd_client::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{Args, READY_TIMEOUT};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Niwa,
    Etcd,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Niwa => "niwa",
            Kind::Etcd => "etcd",
        }
    }
}

/// A running server; killed (by PID) and reaped on drop, then its data dir is removed.
pub(crate) struct Server {
    pub(crate) kind: Kind,
    pub(crate) child: Child,
    pub(crate) endpoint: String,
    /// Where the server serves Prometheus metrics (etcd: its client URL; niwa: --metrics-listen).
    metrics_addr: String,
    pub(crate) log: PathBuf,
    // Dropped after the child is killed (fields drop after `Drop::drop` runs).
    pub(crate) _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        // `Child::kill` sends SIGKILL to exactly this PID; `wait` reaps it so no zombie is left.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free port on 127.0.0.1 (bound then released; the tiny race is acceptable for a benchmark).
pub(crate) fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

pub(crate) fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

impl Server {
    pub(crate) async fn start(kind: Kind, args: &Args) -> Result<Server> {
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
        let metrics_addr = match kind {
            Kind::Niwa => format!("127.0.0.1:{other_port}"),
            Kind::Etcd => format!("127.0.0.1:{client_port}"),
        };
        let mut server = Server {
            kind,
            child,
            endpoint,
            metrics_addr,
            log,
            _dir: dir,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls with a linearizable Range until one succeeds.
    pub(crate) async fn wait_ready(&mut self) -> Result<()> {
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
    pub(crate) fn rss_kib(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| anyhow!("no VmRSS in /proc/{}/status", self.pid()))
    }

    /// The WAL's fdatasync count and total seconds so far, from the server's own
    /// `etcd_disk_wal_fsync_duration_seconds` histogram (both servers export it).
    pub(crate) async fn wal_fsyncs(&self) -> Result<Fsyncs> {
        let mut conn = TcpStream::connect(&self.metrics_addr)
            .await
            .with_context(|| format!("connecting to {}", self.metrics_addr))?;
        conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await?;
        let mut text = String::new();
        conn.read_to_string(&mut text).await?;
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
                .ok_or_else(|| anyhow!("{} has no {name} in its /metrics", self.kind.name()))
        };
        Ok(Fsyncs {
            count: value("etcd_disk_wal_fsync_duration_seconds_count")?,
            seconds: value("etcd_disk_wal_fsync_duration_seconds_sum")?,
        })
    }

    /// The store's current revision (one more per put).
    pub(crate) async fn revision(&self) -> Result<i64> {
        let mut client = Client::connect([self.endpoint.as_str()], None).await?;
        let resp = client.get("health", None).await?;
        resp.header()
            .map(|h| h.revision())
            .ok_or_else(|| anyhow!("{} sent no response header", self.kind.name()))
    }

    pub(crate) async fn clients(&self, n: usize) -> Result<Vec<Client>> {
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

/// A reading of a server's WAL fsync counter.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fsyncs {
    pub(crate) count: f64,
    pub(crate) seconds: f64,
}
