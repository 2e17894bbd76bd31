//! Node lifecycle decisions, IO-free (Kubernetes' node lifecycle controller and its NoExecute
//! taint manager):
//! * a node is *unreachable* when neither its Lease renewal nor its Ready heartbeat changed for
//!   `--node-monitor-grace-period`, measured on the controller's clock from when it saw the last
//!   change ([`Health`]), so a restarted controller-manager does not condemn every node at once;
//! * an unreachable node's conditions become `Unknown` (`NodeStatusUnknown`, "Kubelet stopped
//!   posting node status.") and it gets the `node.kubernetes.io/unreachable` NoSchedule and
//!   NoExecute taints; a node whose kubelet reports Ready=False gets `node.kubernetes.io/not-ready`;
//!   the taints go when the node is Ready again;
//! * a pod on a node with NoExecute taints is evicted at once if it does not tolerate one, after
//!   the smallest matching `tolerationSeconds` otherwise (never if a toleration has none); pods
//!   without a toleration for unreachable/not-ready get Kubernetes' default one (300 s).

use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::util::scheduling::tolerates;

pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";

/// When the controller last saw each node show a sign of life.
#[derive(Debug, Default)]
pub struct Health {
    seen: HashMap<String, (String, Timestamp)>,
}

/// A fingerprint of the node's heartbeats: the Lease's renewTime and the Ready condition's
/// lastHeartbeatTime.
pub fn heartbeat(node: &Node, lease: Option<&Lease>) -> String {
    let renew = lease
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| t.0.to_string())
        .unwrap_or_default();
    let ready = ready_condition(node)
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0.to_string())
        .unwrap_or_default();
    format!("{renew}|{ready}")
}

impl Health {
    /// Record what the node shows now; returns how long it has been silent.
    pub fn observe(&mut self, name: &str, beat: String, now: Timestamp) -> SignedDuration {
        let entry = self
            .seen
            .entry(name.to_string())
            .or_insert_with(|| (beat.clone(), now));
        if entry.0 != beat {
            *entry = (beat, now);
        }
        now.duration_since(entry.1)
    }

    /// Forget nodes that no longer exist.
    pub fn retain(&mut self, exists: impl Fn(&str) -> bool) {
        self.seen.retain(|n, _| exists(n));
    }
}

pub fn ready_condition(node: &Node) -> Option<&NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// The conditions an unreachable node gets (None when they already say Unknown).
pub fn unknown_conditions(node: &Node, now: Timestamp) -> Option<Vec<NodeCondition>> {
    let current = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut out = current.clone();
    if !out.iter().any(|c| c.type_ == "Ready") {
        out.push(NodeCondition {
            type_: "Ready".into(),
            ..Default::default()
        });
    }
    for c in out.iter_mut() {
        if c.status != "Unknown" {
            c.status = "Unknown".into();
            c.reason = Some("NodeStatusUnknown".into());
            c.message = Some("Kubelet stopped posting node status.".into());
            c.last_transition_time = Some(Time(now));
        }
    }
    (out != current).then_some(out)
}

/// The node's taints with the lifecycle ones set as `unreachable` / `not_ready` say (None when
/// nothing changes).
pub fn desired_taints(
    node: &Node,
    unreachable: bool,
    not_ready: bool,
    now: Timestamp,
) -> Option<Vec<Taint>> {
    let current = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let want: Vec<(&str, &str)> = match (unreachable, not_ready) {
        (true, _) => vec![(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")],
        (false, true) => vec![(NOT_READY, "NoSchedule"), (NOT_READY, "NoExecute")],
        (false, false) => vec![],
    };
    let ours = |t: &Taint| t.key == UNREACHABLE || t.key == NOT_READY;
    let mut out: Vec<Taint> = current
        .iter()
        .filter(|t| !ours(t) || want.contains(&(t.key.as_str(), t.effect.as_str())))
        .cloned()
        .collect();
    for (key, effect) in want {
        if !out.iter().any(|t| t.key == key && t.effect == effect) {
            out.push(Taint {
                key: key.into(),
                effect: effect.into(),
                time_added: (effect == "NoExecute").then_some(Time(now)),
                value: None,
            });
        }
    }
    (out != current).then_some(out)
}

/// When a pod on a node with these taints must go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    Never,
    Now,
    At(Timestamp),
}

/// The taint manager's decision for one pod. `defaults`: tolerationSeconds of the default
/// unreachable / not-ready tolerations for pods that carry none.
pub fn eviction(pod: &Pod, taints: &[Taint], defaults: (i64, i64), now: Timestamp) -> Eviction {
    let mut tolerations: Vec<Toleration> = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    for (key, secs) in [(UNREACHABLE, defaults.0), (NOT_READY, defaults.1)] {
        let probe = Taint {
            key: key.into(),
            effect: "NoExecute".into(),
            ..Default::default()
        };
        if !tolerations.iter().any(|t| tolerates(t, &probe)) {
            tolerations.push(Toleration {
                key: Some(key.into()),
                operator: Some("Exists".into()),
                effect: Some("NoExecute".into()),
                toleration_seconds: Some(secs),
                value: None,
            });
        }
    }
    let mut at: Option<Timestamp> = None;
    let mut any = false;
    for taint in taints.iter().filter(|t| t.effect == "NoExecute") {
        any = true;
        let matching: Vec<&Toleration> =
            tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return Eviction::Now;
        }
        // The smallest tolerationSeconds wins; a toleration without one tolerates forever.
        let Some(secs) = matching
            .iter()
            .map(|t| t.toleration_seconds)
            .collect::<Option<Vec<i64>>>()
            .and_then(|v| v.into_iter().min())
        else {
            continue;
        };
        let added = taint.time_added.as_ref().map_or(now, |t| t.0);
        let when = added + SignedDuration::from_secs(secs.max(0));
        at = Some(at.map_or(when, |a| a.min(when)));
    }
    match at {
        _ if !any => Eviction::Never,
        None => Eviction::Never,
        Some(t) if t <= now => Eviction::Now,
        Some(t) => Eviction::At(t),
    }
}

#[cfg(test)]
#[path = "core/tests.rs"]
mod tests;
