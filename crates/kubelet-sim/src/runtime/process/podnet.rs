//! Pod addresses on a real interface (`--pod-ip-interface eth0`), for nodes that are separate
//! hosts on one L2 network (the docker-compose cluster, deploy/docker-compose.yml).
//!
//! On one machine every pod address is in 127.0.0.0/8 and already local. When nodes are
//! containers on a bridge, each pod address is added as a /32 to the node's interface at sandbox
//! creation and deleted at sandbox teardown: Linux answers ARP for any local address, so every
//! other host on the bridge reaches the pod directly (the Kubernetes network model: no NAT
//! between pods) without routes. A /32 adds no subnet route, so the node's own traffic keeps its
//! primary address as source.
//!
//! The work is done by `ip addr add|del` (iproute2 or busybox): two short commands per pod, no
//! netlink dependency. Both are idempotent, which is what a restarted kubelet adopting its pods
//! needs.

use std::net::Ipv4Addr;
use std::process::Command;

/// One address operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Add,
    Del,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PodNetError {
    #[error(
        "cannot run `{command}`: {message} (the pod IP interface needs `ip` and CAP_NET_ADMIN)"
    )]
    Failed { command: String, message: String },
}

/// Where pod addresses go; `None`: nowhere (loopback addresses need nothing).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodNet {
    pub interface: Option<String>,
}

/// The `ip` command line of one operation (pure, for the golden test).
pub fn argv(op: Op, interface: &str, ip: Ipv4Addr) -> Vec<String> {
    let verb = match op {
        Op::Add => "add",
        Op::Del => "del",
    };
    ["addr", verb, &format!("{ip}/32"), "dev", interface]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Whether a failure means the address was already as wanted: adding an address that is there
/// ("File exists", EEXIST) or deleting one that is gone (EADDRNOTAVAIL).
pub fn already_done(op: Op, stderr: &str) -> bool {
    match op {
        Op::Add => stderr.contains("File exists"),
        Op::Del => stderr.contains("Cannot assign requested address"),
    }
}

impl PodNet {
    pub fn new(interface: Option<String>) -> PodNet {
        PodNet { interface }
    }

    /// Applies `op` for `ip` (blocking: a few milliseconds; call it from `spawn_blocking`).
    pub fn apply(&self, op: Op, ip: Ipv4Addr) -> Result<(), PodNetError> {
        let Some(interface) = &self.interface else {
            return Ok(());
        };
        let args = argv(op, interface, ip);
        let command = format!("ip {}", args.join(" "));
        let out = Command::new("ip")
            .args(&args)
            .output()
            .map_err(|e| PodNetError::Failed {
                command: command.clone(),
                message: e.to_string(),
            })?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || already_done(op, &stderr) {
            return Ok(());
        }
        Err(PodNetError::Failed {
            command,
            message: stderr.trim().to_string(),
        })
    }

    /// [`PodNet::apply`] off the async threads.
    pub async fn apply_async(&self, op: Op, ip: Ipv4Addr) -> Result<(), PodNetError> {
        if self.interface.is_none() {
            return Ok(());
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.apply(op, ip))
            .await
            .unwrap_or_else(|e| {
                Err(PodNetError::Failed {
                    command: "ip addr".into(),
                    message: e.to_string(),
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines() {
        let ip = Ipv4Addr::new(172, 31, 101, 7);
        assert_eq!(
            argv(Op::Add, "eth0", ip).join(" "),
            "addr add 172.31.101.7/32 dev eth0"
        );
        assert_eq!(
            argv(Op::Del, "eth0", ip).join(" "),
            "addr del 172.31.101.7/32 dev eth0"
        );
    }

    #[test]
    fn repeated_operations_are_not_errors() {
        assert!(already_done(Op::Add, "RTNETLINK answers: File exists"));
        assert!(already_done(
            Op::Del,
            "ip: RTNETLINK answers: Cannot assign requested address"
        ));
        assert!(!already_done(
            Op::Add,
            "RTNETLINK answers: Operation not permitted"
        ));
        assert!(!already_done(Op::Del, "RTNETLINK answers: File exists"));
    }

    #[test]
    fn without_an_interface_nothing_runs() {
        assert_eq!(
            PodNet::default().apply(Op::Add, Ipv4Addr::new(10, 0, 0, 1)),
            Ok(())
        );
    }
}
