//! Child processes of the benchmark (niwa-store, niwa-apiserver, niwa-dns, knotd): started with
//! their output in a log file, killed by PID and reaped on drop; memory read from /proc.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A running child; killed (SIGKILL to exactly its PID) and reaped when dropped.
pub struct Proc {
    pub name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    pub fn spawn(name: &'static str, mut cmd: Command, log_dir: &Path) -> Result<Proc> {
        let log = log_dir.join(format!("{name}.log"));
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
        Ok(Proc { name, child, log })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails with the log's tail if the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited ({status}):\n{}", self.name, log_tail(&self.log));
        }
        Ok(())
    }

    /// Resident memory now and at its peak, in MiB (VmRSS, VmHWM).
    pub fn memory_mib(&self) -> Result<(f64, f64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .with_context(|| format!("reading the memory of {}", self.name))?;
        let field = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|kb| kb.parse::<f64>().ok())
                .map(|kb| kb / 1024.0)
                .unwrap_or(f64::NAN)
        };
        Ok((field("VmRSS:"), field("VmHWM:")))
    }
}

pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A loopback port free on both TCP and UDP (bound then released: a benign race here).
pub fn free_port() -> Result<u16> {
    for _ in 0..20 {
        let tcp = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
        let port = tcp.local_addr()?.port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no port free on both TCP and UDP")
}

/// Waits until `ready` succeeds, failing early if `proc` dies.
pub async fn wait_until<F, Fut>(proc: &mut Proc, timeout: Duration, mut ready: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        proc.check_alive()?;
        if ready().await {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{} not ready after {timeout:?}:\n{}",
                proc.name,
                log_tail(&proc.log)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `addr` as `ip@port`, Knot's spelling.
pub fn knot_addr(addr: SocketAddr) -> String {
    format!("{}@{}", addr.ip(), addr.port())
}
