//! The two data paths behind one face: `--mode nftables` (kernel DNAT, [`NftPlane`]) and
//! `--mode userspace` (sockets, [`DataPlane`]); `auto` takes nftables when this proxy's table
//! can be created and falls back to userspace otherwise (no root / CAP_NET_ADMIN, no `nft`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use tracing::{info, warn};

use crate::dataplane::DataPlane;
use crate::dataplane::nft::{NftError, NftPlane};
use crate::metrics::{Metrics, ModeLabels};
use crate::model::nft::Balance;
use crate::model::{ListenerKey, ListenerSpec};

/// `--mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Auto,
    Nftables,
    Userspace,
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "auto" => Ok(Mode::Auto),
            "nftables" => Ok(Mode::Nftables),
            "userspace" => Ok(Mode::Userspace),
            other => Err(format!(
                "unknown mode {other:?} (auto, nftables or userspace)"
            )),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Auto => "auto",
            Mode::Nftables => "nftables",
            Mode::Userspace => "userspace",
        })
    }
}

/// The data path in use.
pub enum Plane {
    Userspace(DataPlane),
    Nftables(NftPlane),
}

/// One sync's outcome, for the log.
#[derive(Debug, Default)]
pub struct SyncReport {
    pub changed: usize,
    /// Problems to log once (bind failures, a rejected nft transaction).
    pub failures: Vec<String>,
}

impl Plane {
    /// Picks the data path for `mode`. `Mode::Nftables` fails when the table cannot be made.
    pub async fn start(
        mode: Mode,
        node: &str,
        balance: Balance,
        userspace: impl FnOnce() -> DataPlane,
        metrics: &Metrics,
    ) -> Result<Plane, NftError> {
        let plane = match mode {
            Mode::Userspace => Plane::Userspace(userspace()),
            Mode::Nftables => {
                Plane::Nftables(NftPlane::create(node, balance, metrics.clone()).await?)
            }
            Mode::Auto => match NftPlane::create(node, balance, metrics.clone()).await {
                Ok(nft) => Plane::Nftables(nft),
                Err(e) => {
                    warn!(error = %e, "nftables unavailable; using the userspace data path");
                    Plane::Userspace(userspace())
                }
            },
        };
        info!(requested = %mode, mode = plane.name(), "data path chosen");
        metrics
            .mode
            .get_or_create(&ModeLabels {
                mode: plane.name().to_string(),
                table: match &plane {
                    Plane::Nftables(nft) => nft.table().to_string(),
                    Plane::Userspace(_) => String::new(),
                },
            })
            .set(1);
        Ok(plane)
    }

    pub fn name(&self) -> &'static str {
        match self {
            Plane::Userspace(_) => "userspace",
            Plane::Nftables(_) => "nftables",
        }
    }

    /// Makes the data path serve `desired`.
    pub async fn apply(&mut self, desired: &BTreeMap<ListenerKey, ListenerSpec>) -> SyncReport {
        match self {
            Plane::Userspace(plane) => {
                let report = plane.apply(desired);
                SyncReport {
                    changed: report.opened + report.closed + report.updated,
                    failures: report.new_failures.iter().map(|f| f.to_string()).collect(),
                }
            }
            Plane::Nftables(plane) => match plane.apply(desired).await {
                Ok(changed) => SyncReport {
                    changed,
                    failures: Vec::new(),
                },
                Err(e) => SyncReport {
                    changed: 0,
                    failures: vec![format!("table {}: {e}", plane.table())],
                },
            },
        }
    }

    /// Whether something failed that a later sync should retry.
    pub fn has_failures(&self) -> bool {
        match self {
            Plane::Userspace(plane) => plane.has_failures(),
            Plane::Nftables(plane) => plane.has_failures(),
        }
    }

    /// Open sockets (userspace) or programmed Service addresses (nftables), for the log.
    pub fn serving(&self) -> usize {
        match self {
            Plane::Userspace(plane) => plane.open_listeners(),
            Plane::Nftables(plane) => plane.listeners(),
        }
    }

    /// Shutdown: closes every listener, or deletes the table.
    pub async fn close(&mut self) {
        match self {
            Plane::Userspace(plane) => plane.close_all(),
            Plane::Nftables(plane) => plane.delete().await,
        }
    }
}
