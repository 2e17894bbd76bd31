//! [`Cluster`]: a real local cluster for one test group, started with the `niwa` binary
//! (`niwa up -d --block B --data-dir <tempdir>`) and stopped by `niwa down` when the guard drops —
//! also when the test panics, in which case the data dir (logs, state) is kept for a post-mortem.
//!
//! Each cluster takes a random private block 127.B.0.0/16 (B in 2–254, not 96, 200 or 244, which
//! overlap the standard layout) and retries with another block when an address of it is taken, so
//! test groups and other crates' tests run side by side without sharing an address or port.

use std::hash::{BuildHasher, Hasher};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use niwa_cluster::{ClusterState, Network};

/// The binaries a cluster runs (besides `niwa` itself).
pub const BINARIES: &[&str] = &[
    "niwa",
    "niwa-store",
    "niwa-apiserver",
    "niwa-controller-manager",
    "niwa-scheduler",
    "niwa-dns",
    "niwa-ingress",
    "niwa-kubelet",
    "niwa-proxy",
];

/// How many blocks to try before giving up (each failure is a taken address).
const BLOCK_ATTEMPTS: usize = 12;

/// A running cluster; dropping it stops the cluster.
#[derive(Debug)]
pub struct Cluster {
    dir: Option<tempfile::TempDir>,
    data_dir: PathBuf,
    bin_dir: PathBuf,
    block: u8,
    network: Network,
    nodes: u32,
    /// How long `niwa up -d` took until every component was healthy.
    pub startup: Duration,
}

/// Where the binaries are: `$NIWA_E2E_BIN_DIR`, else beside the test executable
/// (`target/<profile>/`; build them first with `cargo build --workspace --bins`, the suite runs
/// what is there). When one is missing there, `$CARGO build --workspace --bins` builds them all
/// into `target/e2e-bins/` (its own target dir: cargo holds target/<profile> while tests run).
pub fn bin_dir() -> Result<PathBuf> {
    static DIR: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| find_or_build_binaries().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow::anyhow!(e))
}

fn missing(dir: &Path) -> Vec<&'static str> {
    BINARIES
        .iter()
        .copied()
        .filter(|b| !dir.join(b).is_file())
        .collect()
}

fn find_or_build_binaries() -> Result<PathBuf> {
    if let Ok(dir) = std::env::var("NIWA_E2E_BIN_DIR") {
        let dir = PathBuf::from(dir);
        let gone = missing(&dir);
        if !gone.is_empty() {
            bail!("NIWA_E2E_BIN_DIR={}: missing {gone:?}", dir.display());
        }
        return Ok(dir);
    }
    // target/<profile>/deps/<test> → target/<profile>; a bin (the bench) sits in target/<profile>.
    let exe = std::env::current_exe().context("where is this test executable?")?;
    let mut dir = exe.parent().context("test executable has no directory")?;
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir = dir.parent().context("deps/ has no parent")?;
    }
    let dir = dir.to_path_buf();
    let gone = missing(&dir);
    if gone.is_empty() {
        return Ok(dir);
    }
    // `cargo test` holds the lock of target/<profile> while tests run, so a nested build there
    // would wait forever: build into a target dir of its own instead.
    let profile = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "debug".into());
    let target = dir
        .parent()
        .context("profile dir has no parent")?
        .join("e2e-bins");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    eprintln!(
        "e2e: {gone:?} missing in {}; building them into {}",
        dir.display(),
        target.display()
    );
    let mut cmd = Command::new(&cargo);
    cmd.args(["build", "--workspace", "--bins", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target);
    if profile == "release" {
        cmd.arg("--release");
    }
    let status = cmd.status().with_context(|| format!("running {cargo}"))?;
    if !status.success() {
        bail!("{cargo} build --workspace --bins failed ({status})");
    }
    let built = target.join(if profile == "release" {
        "release"
    } else {
        "debug"
    });
    let gone = missing(&built);
    if !gone.is_empty() {
        bail!(
            "still missing {gone:?} in {} after the build",
            built.display()
        );
    }
    Ok(built)
}

/// A random block: 2–254 except those overlapping the standard layout.
fn random_block() -> u8 {
    loop {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        h.write_u32(std::process::id());
        let b = (h.finish() % 253) as u8 + 2;
        if Network::block(b).is_some() {
            return b;
        }
    }
}

impl Cluster {
    /// Starts a cluster of `nodes` process nodes in a random free block.
    pub fn up(nodes: u32) -> Result<Cluster> {
        let bin_dir = bin_dir()?;
        let mut last = String::new();
        for _ in 0..BLOCK_ATTEMPTS {
            let block = random_block();
            let dir = tempfile::Builder::new()
                .prefix(&format!("niwa-e2e-{block}-"))
                .tempdir()
                .context("creating the data dir")?;
            let started = Instant::now();
            let out = Command::new(bin_dir.join("niwa"))
                .args(["up", "-d", "--nodes", &nodes.to_string()])
                .args(["--block", &block.to_string()])
                .arg("--data-dir")
                .arg(dir.path())
                .output()
                .context("running niwa up")?;
            let startup = started.elapsed();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let network = Network::block(block).context("block")?;
            let data_dir = dir.path().to_path_buf();
            let cluster = Cluster {
                dir: Some(dir),
                data_dir,
                bin_dir: bin_dir.clone(),
                block,
                network,
                nodes,
                startup,
            };
            if out.status.success() {
                eprintln!(
                    "e2e: cluster in 127.{block}.0.0/16 ready in {:.1} s, data dir {}",
                    startup.as_secs_f64(),
                    cluster.data_dir.display()
                );
                return Ok(cluster);
            }
            // Dropping `cluster` runs `niwa down` for whatever did start.
            if text.contains("already in use") {
                last = text;
                continue;
            }
            bail!("niwa up --block {block} failed ({}):\n{text}", out.status);
        }
        bail!("no free block after {BLOCK_ATTEMPTS} tries; last error:\n{last}")
    }

    pub fn block(&self) -> u8 {
        self.block
    }

    pub fn network(&self) -> &Network {
        &self.network
    }

    pub fn nodes(&self) -> u32 {
        self.nodes
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir.join("kubeconfig")
    }

    /// `http://127.B.0.1:6443`: REST for kubectl and gRPC for niwa-client.
    pub fn apiserver_url(&self) -> String {
        self.network.apiserver_url()
    }

    /// Node `n`'s address (n ≥ 1).
    pub fn node_ip(&self, n: u32) -> Ipv4Addr {
        self.network.node_ip(n)
    }

    /// The `kube-dns` Service address.
    pub fn dns_ip(&self) -> Ipv4Addr {
        self.network.dns_service_ip
    }

    /// Where niwa-ingress serves HTTP.
    pub fn ingress_addr(&self) -> String {
        format!("{}:80", self.network.control_plane)
    }

    /// Whether `ip` is a pod address of this cluster (127.B.128.0/17).
    pub fn is_pod_ip(&self, ip: &str) -> bool {
        ip.parse::<Ipv4Addr>()
            .map(|a| {
                let o = a.octets();
                o[0] == 127 && o[1] == self.block && o[2] >= 128
            })
            .unwrap_or(false)
    }

    /// The state file the supervisor keeps (components, pids, restarts).
    pub fn state(&self) -> Result<ClusterState> {
        Ok(ClusterState::load(&self.data_dir)?)
    }

    /// A gRPC client of the apiserver.
    pub async fn client(&self) -> Result<niwa_client::Client> {
        Ok(niwa_client::Client::connect(&self.apiserver_url()).await?)
    }

    /// Runs the `niwa` CLI with `--data-dir` of this cluster appended (e.g. `status`).
    pub async fn niwa(&self, args: &[&str]) -> Result<String> {
        let out = tokio::process::Command::new(self.bin_dir.join("niwa"))
            .args(args)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .kill_on_drop(true)
            .output()
            .await?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "niwa {args:?} failed ({}): {stdout}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(stdout)
    }

    fn down(&mut self) {
        let Some(dir) = self.dir.take() else { return };
        let out = Command::new(self.bin_dir.join("niwa"))
            .arg("down")
            .arg("--data-dir")
            .arg(dir.path())
            .output();
        if let Err(e) = &out {
            eprintln!("e2e: niwa down failed: {e}");
        }
        if std::thread::panicking() {
            let kept = dir.keep();
            eprintln!(
                "e2e: test failed; the cluster's data dir and logs are kept in {}",
                kept.display()
            );
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.down();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_blocks_avoid_the_standard_layout() {
        for _ in 0..2000 {
            let b = random_block();
            assert!((2..=254).contains(&b));
            assert!(![96, 200, 244].contains(&b));
        }
    }
}
