//! The kernel data path: the node's listeners programmed as an nftables table of this proxy's
//! own (see [`crate::model::nft`] for the layout), so connections are DNATed by the kernel with
//! no extra hop. Each sync is one `nft -f -` transaction holding only what changed; established
//! connections keep their conntrack NAT binding through every change.
//!
//! Lifecycle: [`NftPlane::create`] removes tables of dead niwa-proxies, then creates this one
//! (which is also the probe of `--mode auto`); [`NftPlane::delete`] removes it on shutdown, and
//! `Drop` does so too if the proxy ends any other way (a panic).

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::io::AsyncWriteExt;
use tracing::{info, warn};

use crate::metrics::Metrics;
use crate::model::nft::{
    Balance, Programmed, TABLE_PREFIX, base_groups, render_base, render_delete, render_sync,
    table_name, table_pid,
};
use crate::model::{ListenerKey, ListenerSpec};

/// The `nft` program (Debian package `nftables`).
const NFT: &str = "nft";
/// The `conntrack` program (Debian package `conntrack`).
const CONNTRACK: &str = "conntrack";

/// Why nftables cannot be used or a transaction failed.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("cannot run `{NFT}`: {0} (install the nftables package, or run with --mode userspace)")]
    Spawn(std::io::Error),
    #[error("`{NFT} -f -` failed: {stderr}")]
    Rejected { stderr: String },
}

/// Runs `nft -f -` with `script` as one atomic transaction.
pub async fn run_nft(script: &str) -> Result<(), NftError> {
    let mut child = tokio::process::Command::new(NFT)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(NftError::Spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(NftError::Spawn)?;
    }
    let out = child.wait_with_output().await.map_err(NftError::Spawn)?;
    if out.status.success() {
        Ok(())
    } else {
        let mut stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        // One bad statement can echo thousands of lines of context; the first ones say why.
        if stderr.len() > 2000 {
            stderr.truncate(2000);
            stderr.push_str(" …");
        }
        Err(NftError::Rejected { stderr })
    }
}

/// Deletes the niwa-proxy tables whose process is gone (a proxy that was SIGKILLed cannot
/// clean up after itself). Returns the tables deleted.
pub async fn delete_stale_tables() -> Result<Vec<String>, NftError> {
    let out = tokio::process::Command::new(NFT)
        .args(["list", "tables", "ip"])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(NftError::Spawn)?;
    if !out.status.success() {
        return Err(NftError::Rejected {
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    let stale: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("table ip "))
        .filter(|name| name.starts_with(TABLE_PREFIX))
        .filter(|name| table_pid(name).is_some_and(|pid| !process_alive(pid)))
        .map(str::to_string)
        .collect();
    if !stale.is_empty() {
        let script: String = stale.iter().map(|t| render_delete(t)).collect();
        run_nft(&script).await?;
    }
    Ok(stale)
}

/// Whether a process with this pid exists (signal 0 delivers nothing; EPERM means it exists).
fn process_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(e) => e != nix::errno::Errno::ESRCH,
    }
}

/// This proxy's table and what it holds.
pub struct NftPlane {
    table: String,
    balance: Balance,
    metrics: Metrics,
    programmed: Programmed,
    /// The last transaction failed: the next sync rebuilds the table from scratch.
    broken: bool,
    deleted: bool,
    conntrack_missing: bool,
}

impl NftPlane {
    /// Deletes stale tables, then creates this proxy's (empty) table. Failing here means nft
    /// cannot be used (not root, no CAP_NET_ADMIN, no `nft`, no nf_tables).
    pub async fn create(node: &str, balance: Balance, metrics: Metrics) -> Result<Self, NftError> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let table = table_name(
            node,
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
        );
        match delete_stale_tables().await {
            Ok(stale) if !stale.is_empty() => {
                info!(tables = ?stale, "deleted tables of dead niwa-proxies")
            }
            Ok(_) => {}
            Err(NftError::Spawn(e)) => return Err(NftError::Spawn(e)),
            Err(e) => warn!(error = %e, "could not delete stale niwa-proxy tables"),
        }
        run_nft(&render_base(&table, false, balance)).await?;
        info!(table = %table, "nftables table created");
        Ok(NftPlane {
            table,
            balance,
            metrics,
            programmed: Programmed {
                listeners: BTreeMap::new(),
                groups: base_groups(balance),
            },
            broken: false,
            deleted: false,
            conntrack_missing: false,
        })
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Whether the last transaction failed (retried by the next sync).
    pub fn has_failures(&self) -> bool {
        self.broken
    }

    /// Listeners programmed (with or without endpoints).
    pub fn listeners(&self) -> usize {
        self.programmed.listeners.len()
    }

    /// Makes the table match `desired` in one transaction. On failure nothing changed (nft
    /// transactions are atomic); the next call rebuilds the whole table.
    pub async fn apply(
        &mut self,
        desired: &BTreeMap<ListenerKey, ListenerSpec>,
    ) -> Result<usize, NftError> {
        let rebuild = self.broken;
        let base = if rebuild {
            Programmed {
                listeners: BTreeMap::new(),
                groups: base_groups(self.balance),
            }
        } else {
            self.programmed.clone()
        };
        let tx = render_sync(&self.table, &base, desired, self.balance);
        if tx.skipped_v6 > 0 {
            warn!(
                listeners = tx.skipped_v6,
                "IPv6 Service addresses are not programmed in nftables mode"
            );
        }
        if tx.text.is_empty() && !rebuild {
            return Ok(0);
        }
        let script = if rebuild {
            render_base(&self.table, true, self.balance) + &tx.text
        } else {
            tx.text
        };
        match run_nft(&script).await {
            Ok(()) => {
                for (key, endpoint) in &tx.stale_udp {
                    self.clear_udp(key, endpoint).await;
                }
                self.programmed = tx.next;
                self.broken = false;
                self.metrics.nft_rules.set(self.programmed.rules() as i64);
                self.metrics
                    .nft_elements
                    .set(self.programmed.elements() as i64);
                Ok(tx.changed)
            }
            Err(e) => {
                self.broken = true;
                self.metrics.nft_sync_failures.inc();
                Err(e)
            }
        }
    }

    /// Deletes the conntrack entries of UDP flows from `key` to `endpoint`, so their next
    /// datagram is balanced again (`conntrack -D`, Debian package `conntrack`).
    async fn clear_udp(&mut self, key: &ListenerKey, endpoint: &std::net::SocketAddr) {
        let (vip, port) = (key.ip.to_string(), key.port.to_string());
        let (ep, ep_port) = (endpoint.ip().to_string(), endpoint.port().to_string());
        let result = tokio::process::Command::new(CONNTRACK)
            .args([
                "-D",
                "-p",
                "udp",
                "--orig-dst",
                &vip,
                "--orig-port-dst",
                &port,
            ])
            .args(["--reply-src", &ep, "--reply-port-src", &ep_port])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        // Exit status 1 means "nothing to delete"; only a missing tool is worth a word.
        if let Err(e) = result
            && !self.conntrack_missing
        {
            self.conntrack_missing = true;
            warn!(error = %e, "cannot run `conntrack` (Debian package conntrack): UDP flows to removed endpoints keep them until they idle out");
        }
    }

    /// Deletes the table: the proxy's last act.
    pub async fn delete(&mut self) {
        if self.deleted {
            return;
        }
        match run_nft(&render_delete(&self.table)).await {
            Ok(()) => info!(table = %self.table, "nftables table deleted"),
            Err(e) => warn!(table = %self.table, error = %e, "could not delete the nftables table"),
        }
        self.deleted = true;
    }
}

impl Drop for NftPlane {
    fn drop(&mut self) {
        if !self.deleted {
            // Only reached when the proxy did not shut down in order (a panic): best effort.
            let _ = std::process::Command::new(NFT)
                .args(["delete", "table", "ip", &self.table])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
