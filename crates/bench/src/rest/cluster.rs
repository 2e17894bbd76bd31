//! niwa-store and niwa-apiserver as child processes on free ports, killed by PID on drop; the
//! apiserver's memory from /proc.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::Args;

pub struct Cluster {
    store: Child,
    apiserver: Child,
    pub api: String,
    pub kubeconfig: std::path::PathBuf,
    pub dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in [&mut self.apiserver, &mut self.store] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn wait_tcp(addr: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{addr} did not accept connections within 30 s")
}

impl Cluster {
    pub async fn start(args: &Args) -> Result<Cluster> {
        let dir = tempfile::Builder::new()
            .prefix("niwa-rest-bench-")
            .tempdir()?;
        let store_addr = format!("127.0.0.1:{}", free_port()?);
        let store_metrics = format!("127.0.0.1:{}", free_port()?);
        let api = format!("127.0.0.1:{}", free_port()?);
        let store_log = std::fs::File::create(dir.path().join("store.log"))?;
        let api_log = std::fs::File::create(dir.path().join("apiserver.log"))?;
        let mut store = Command::new(&args.store_bin)
            .args(["--listen", &store_addr, "--metrics-listen", &store_metrics])
            .arg("--data-dir")
            .arg(dir.path().join("store"))
            .stdout(Stdio::null())
            .stderr(store_log)
            .spawn()
            .with_context(|| format!("starting {}", args.store_bin.display()))?;
        if let Err(e) = wait_tcp(&store_addr).await {
            let _ = store.kill();
            let _ = store.wait();
            return Err(e);
        }
        let apiserver = match Command::new(&args.apiserver_bin)
            .args(["--listen", &api, "--store-endpoints", &store_addr])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(api_log)
            .spawn()
        {
            Ok(child) => child,
            Err(e) => {
                let _ = store.kill();
                let _ = store.wait();
                return Err(e)
                    .with_context(|| format!("starting {}", args.apiserver_bin.display()));
            }
        };
        let cluster = Cluster {
            store,
            apiserver,
            api: api.clone(),
            kubeconfig: dir.path().join("kubeconfig"),
            dir,
        };
        wait_tcp(&api).await?;
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: b, cluster: {{server: \"http://{api}\"}}}}]\n\
             users: [{{name: b, user: {{}}}}]\ncontexts: [{{name: b, context: {{cluster: b, user: b}}}}]\n\
             current-context: b\n"
        );
        std::fs::write(&cluster.kubeconfig, kubeconfig)?;
        Ok(cluster)
    }

    fn status_field(&self, field: &str) -> Option<f64> {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.apiserver.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with(field))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    }

    /// The apiserver's resident memory now, MiB.
    pub fn rss_mib(&self) -> Option<f64> {
        self.status_field("VmRSS:")
    }

    /// The apiserver's peak resident memory since the last [`Cluster::reset_peak`], MiB.
    pub fn peak_mib(&self) -> Option<f64> {
        self.status_field("VmHWM:")
    }

    /// Resets the kernel's peak-RSS mark of the apiserver (`clear_refs` 5).
    pub fn reset_peak(&self) -> Result<()> {
        std::fs::write(format!("/proc/{}/clear_refs", self.apiserver.id()), "5")
            .context("resetting the apiserver's peak RSS")
    }
}
