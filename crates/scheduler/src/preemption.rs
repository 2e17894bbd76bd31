//! DefaultPreemption's dry run (kube's PostFilter): for every node whose rejection removing pods
//! could resolve, remove all lower-priority pods and filter again; reprieve as many victims as
//! still lets the pod fit. The outcome is either candidates (the shell then evicts the victims and
//! nominates the node) or the message kube appends after "preemption: ".

use std::sync::Arc;

use crate::framework::{CycleState, histogram_message, may_be_resolved_by_preemption, run_filters};
use crate::node_info::NodeInfo;
use crate::plugins::Rejection;
use crate::pod_info::PodInfo;
use crate::snapshot::Snapshot;

pub const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
pub const NO_VICTIMS: &str = "No preemption victims found for incoming pod";
pub const NOT_ELIGIBLE: &str = "not eligible due to preemptionPolicy=Never.";

/// A node where the pod fits once `victims` are gone.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub node: String,
    pub victims: Vec<Arc<PodInfo>>,
}

#[derive(Debug, Clone)]
pub enum Outcome {
    /// `preemptionPolicy: Never`.
    NotEligible,
    /// No node can be freed: per-node reasons, for the message.
    NoCandidates {
        num_all_nodes: usize,
        reasons: Vec<String>,
    },
    /// Best candidate first.
    Candidates(Vec<Candidate>),
}

impl Outcome {
    /// The PostFilter message (`None` when preemption found candidates).
    pub fn message(&self) -> Option<String> {
        match self {
            Outcome::NotEligible => Some(NOT_ELIGIBLE.to_string()),
            Outcome::NoCandidates {
                num_all_nodes,
                reasons,
            } => Some(histogram_message(
                *num_all_nodes,
                reasons.iter().map(String::as_str),
            )),
            Outcome::Candidates(_) => None,
        }
    }
}

fn fits(
    pod: &PodInfo,
    node: &NodeInfo,
    snap: &Snapshot,
    base: &CycleState,
) -> Result<(), Rejection> {
    if base.inter_pod_affinity.is_none() && base.topology_spread.is_none() {
        return run_filters(pod, node, base, snap);
    }
    // Pod-counting plugins must see the cluster without the victims: recompute their state.
    let mut modified = snap.clone();
    if let Some(slot) = modified.nodes.iter_mut().find(|n| n.name() == node.name()) {
        *slot = Arc::new(node.clone());
    }
    modified.reindex();
    let state = CycleState::new(pod, &modified);
    run_filters(pod, node, &state, &modified)
}

pub fn evaluate(
    pod: &PodInfo,
    snap: &Snapshot,
    state: &CycleState,
    rejections: &[(usize, Rejection)],
) -> Outcome {
    if pod.never_preempts {
        return Outcome::NotEligible;
    }
    let mut reasons = Vec::new();
    let mut candidates = Vec::new();
    for (i, r) in rejections {
        if !may_be_resolved_by_preemption(r) {
            reasons.push(NOT_HELPFUL.to_string());
            continue;
        }
        let node = &snap.nodes[*i];
        let mut victims: Vec<Arc<PodInfo>> = node
            .pods
            .iter()
            .filter(|p| p.priority < pod.priority)
            .cloned()
            .collect();
        if victims.is_empty() {
            reasons.push(NO_VICTIMS.to_string());
            continue;
        }
        let mut reduced: NodeInfo = (**node).clone();
        for v in &victims {
            reduced.remove_pod(&v.uid);
        }
        if let Err(r) = fits(pod, &reduced, snap, state) {
            reasons.extend(r.reasons);
            continue;
        }
        // Reprieve the most important victims first while the pod still fits.
        victims.sort_by_key(|v| std::cmp::Reverse(v.priority));
        let mut kept = Vec::new();
        for v in victims {
            reduced.add_pod(v.clone());
            if fits(pod, &reduced, snap, state).is_err() {
                reduced.remove_pod(&v.uid);
                kept.push(v);
            }
        }
        candidates.push(Candidate {
            node: node.name().to_string(),
            victims: kept,
        });
    }
    if candidates.is_empty() {
        return Outcome::NoCandidates {
            num_all_nodes: snap.nodes.len(),
            reasons,
        };
    }
    // kube's pickOneNodeForPreemption (without PDBs): lowest highest-victim priority, then lowest
    // priority sum, then fewest victims; stable otherwise.
    candidates.sort_by_key(|c| {
        let max = c
            .victims
            .iter()
            .map(|v| v.priority)
            .max()
            .unwrap_or(i32::MIN);
        let sum: i64 = c
            .victims
            .iter()
            .map(|v| v.priority as i64 + i32::MAX as i64 + 1)
            .sum();
        (max, sum, c.victims.len())
    });
    Outcome::Candidates(candidates)
}
