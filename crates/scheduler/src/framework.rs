//! One scheduling cycle, IO-free: PreFilter → Filter (over a rotating window of nodes, as many as
//! kube's `percentageOfNodesToScore` asks for) → Score (weighted, normalised plugin scores) →
//! select the best node, breaking ties with a seedable random choice (reservoir sampling, as
//! kube's `selectHost`).

use std::collections::BTreeSet;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::node_info::NodeInfo;
use crate::plugins::{
    Code, FilterResult, Plugin, Rejection, default_normalize, fit, inter_pod_affinity as ipa, node,
    node_affinity, topology_spread as spread, volume_binding,
};
use crate::pod_info::PodInfo;
use crate::preemption;
use crate::snapshot::Snapshot;

/// kube's score weights of the default profile.
pub const WEIGHT_TAINT_TOLERATION: i64 = 3;
pub const WEIGHT_NODE_AFFINITY: i64 = 2;
pub const WEIGHT_FIT: i64 = 1;
pub const WEIGHT_TOPOLOGY_SPREAD: i64 = 2;
pub const WEIGHT_INTER_POD_AFFINITY: i64 = 2;
pub const WEIGHT_BALANCED_ALLOCATION: i64 = 1;

const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
const MIN_FEASIBLE_NODES_PERCENTAGE: usize = 5;

/// kube's `numFeasibleNodesToFind`: all nodes below 100; otherwise `percentage` of them (adaptive
/// 50% − nodes/125, at least 5%, when 0), and never fewer than 100.
pub fn num_feasible_nodes_to_find(percentage: u32, all: usize) -> usize {
    if all < MIN_FEASIBLE_NODES_TO_FIND {
        return all;
    }
    let mut pct = percentage as usize;
    if pct == 0 {
        pct = 50usize
            .saturating_sub(all / 125)
            .max(MIN_FEASIBLE_NODES_PERCENTAGE);
    }
    (all * pct.min(100) / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// Knobs of the algorithm.
#[derive(Debug, Clone)]
pub struct AlgorithmConfig {
    /// 0 = kube's adaptive default.
    pub percentage_of_nodes_to_score: u32,
    /// Threads used to filter large node windows (kube's `--parallelism`, default 16).
    pub parallelism: usize,
    /// Seed of the tie-breaking random choice.
    pub seed: u64,
}

impl Default for AlgorithmConfig {
    fn default() -> Self {
        AlgorithmConfig {
            percentage_of_nodes_to_score: 0,
            parallelism: 16,
            seed: 0,
        }
    }
}

/// PreFilter results for one pod.
#[derive(Debug, Default)]
pub struct CycleState {
    pub inter_pod_affinity: Option<ipa::PreFilterState>,
    pub topology_spread: Option<spread::PreFilterState>,
    pub volume_binding: Option<volume_binding::PreFilterState>,
    /// A PreFilter that rejected the pod on every node (kube's PreFilter status): its message
    /// replaces the per-node histogram in the FitError.
    pub rejected: Option<Rejection>,
}

impl CycleState {
    pub fn new(pod: &PodInfo, snap: &Snapshot) -> CycleState {
        let (volume_binding, rejected) =
            match volume_binding::pre_filter(pod, &snap.objects.volumes) {
                Ok(s) => (s, None),
                Err(r) => (None, Some(r)),
            };
        CycleState {
            inter_pod_affinity: ipa::pre_filter(pod, snap),
            topology_spread: spread::pre_filter(pod, snap),
            volume_binding,
            rejected,
        }
    }
}

/// Runs every filter plugin in kube's order; the first rejection wins.
pub fn run_filters(
    pod: &PodInfo,
    n: &NodeInfo,
    state: &CycleState,
    snap: &Snapshot,
) -> FilterResult {
    if let Some(r) = &state.rejected {
        return Err(r.clone());
    }
    node::node_unschedulable(pod, n)?;
    node::node_name(pod, n)?;
    node::taint_toleration(pod, n)?;
    node_affinity::filter(pod, n)?;
    node::node_ports(pod, n)?;
    fit::filter(pod, n)?;
    if let Some(s) = &state.volume_binding {
        volume_binding::filter(s, n)?;
    }
    if let Some(s) = &state.topology_spread {
        spread::filter(s, pod, n)?;
    }
    if let Some(s) = &state.inter_pod_affinity {
        ipa::filter(s, pod, n, snap)?;
    }
    Ok(())
}

/// Where a pod goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleResult {
    pub node: String,
    pub evaluated_nodes: usize,
    pub feasible_nodes: usize,
}

/// Why a pod could not be placed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ScheduleError {
    #[error("no nodes available to schedule pods")]
    NoNodes,
    #[error("{}", .0.message())]
    Unschedulable(Box<FitError>),
}

/// Every node's rejection, formatted as kube's `FitError`.
#[derive(Debug, Clone)]
pub struct FitError {
    pub num_all_nodes: usize,
    /// (node name, rejection) for every node.
    pub rejections: Vec<(String, Rejection)>,
    /// What preemption found (kube's PostFilter message), without the "preemption: " prefix.
    pub preemption: preemption::Outcome,
    /// Set when a PreFilter rejected the pod: kube prints its message instead of the histogram.
    pub pre_filter_msg: Option<String>,
}

impl FitError {
    /// "0/5 nodes are available: 2 node(s) had untolerated taint {k: v}, 3 Insufficient cpu.
    /// preemption: 0/5 nodes are available: 2 Preemption is not helpful for scheduling, 3 No
    /// preemption victims found for incoming pod.." — the reasons histogram sorted as strings.
    pub fn message(&self) -> String {
        let mut msg = match &self.pre_filter_msg {
            Some(m) => format!("0/{} nodes are available: {m}.", self.num_all_nodes),
            None => histogram_message(
                self.num_all_nodes,
                self.rejections
                    .iter()
                    .flat_map(|(_, r)| r.reasons.iter().map(String::as_str)),
            ),
        };
        if let Some(post) = self.preemption.message() {
            msg.push_str(&format!(" preemption: {post}."));
        }
        msg
    }

    /// The plugins that rejected some node (kube's UnschedulablePlugins), for requeueing hints.
    pub fn rejecting_plugins(&self) -> BTreeSet<Plugin> {
        self.rejections.iter().map(|(_, r)| r.plugin).collect()
    }
}

/// "0/N nodes are available: <count reason, …>."
pub fn histogram_message<'a>(all: usize, reasons: impl Iterator<Item = &'a str>) -> String {
    let mut counts: std::collections::HashMap<&str, usize> = Default::default();
    for r in reasons {
        *counts.entry(r).or_default() += 1;
    }
    let mut parts: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    let mut msg = format!("0/{all} nodes are available:");
    if !parts.is_empty() {
        msg.push_str(&format!(" {}.", parts.join(", ")));
    }
    msg
}

/// The stateful part of the algorithm: where the next filter window starts, and the RNG.
#[derive(Debug)]
pub struct Algorithm {
    pub config: AlgorithmConfig,
    next_start_node_index: usize,
    rng: StdRng,
}

impl Algorithm {
    pub fn new(config: AlgorithmConfig) -> Algorithm {
        Algorithm {
            rng: StdRng::seed_from_u64(config.seed),
            config,
            next_start_node_index: 0,
        }
    }

    /// Schedules one pod against a snapshot (kube's `schedulePod`).
    pub fn schedule(
        &mut self,
        pod: &PodInfo,
        snap: &Snapshot,
    ) -> Result<ScheduleResult, ScheduleError> {
        let all = snap.nodes.len();
        if all == 0 {
            return Err(ScheduleError::NoNodes);
        }
        let state = CycleState::new(pod, snap);
        if let Some(r) = &state.rejected {
            // kube's PreFilter rejection: every node gets the status, no node is filtered and the
            // rotating start stays where it was.
            let rejections: Vec<(usize, Rejection)> = (0..all).map(|i| (i, r.clone())).collect();
            let msg = Some(r.reasons.join(", "));
            return Err(unschedulable(pod, snap, &state, rejections, msg));
        }
        let want = num_feasible_nodes_to_find(self.config.percentage_of_nodes_to_score, all);
        let (feasible, rejections, processed) = self.find_feasible(pod, snap, &state, want);
        self.next_start_node_index = (self.next_start_node_index + processed) % all;
        if feasible.is_empty() {
            return Err(unschedulable(pod, snap, &state, rejections, None));
        }
        let evaluated_nodes = feasible.len() + rejections.len();
        if feasible.len() == 1 {
            return Ok(ScheduleResult {
                node: snap.nodes[feasible[0]].name().to_string(),
                evaluated_nodes,
                feasible_nodes: 1,
            });
        }
        let totals = prioritize(pod, snap, &feasible);
        let best = select_host(&totals, &mut self.rng);
        Ok(ScheduleResult {
            node: snap.nodes[feasible[best]].name().to_string(),
            evaluated_nodes,
            feasible_nodes: feasible.len(),
        })
    }

    /// Filters nodes from the rotating start until `want` feasible ones are found (or all were
    /// tried). Returns (feasible indices in walk order, rejections, nodes processed).
    fn find_feasible(
        &self,
        pod: &PodInfo,
        snap: &Snapshot,
        state: &CycleState,
        want: usize,
    ) -> (Vec<usize>, Vec<(usize, Rejection)>, usize) {
        let all = snap.nodes.len();
        let start = self.next_start_node_index % all;
        let order = |k: usize| (start + k) % all;
        let mut feasible = Vec::with_capacity(want);
        let mut rejections = Vec::new();
        let mut k = 0;
        // Windows of the nodes still needed, filtered in parallel when large; results are taken in
        // walk order, so the outcome does not depend on the number of threads.
        while k < all && feasible.len() < want {
            let window = (want - feasible.len()).max(64).min(all - k);
            let results =
                filter_window(pod, snap, state, k, window, &order, self.config.parallelism);
            for (offset, result) in results.into_iter().enumerate() {
                let i = order(k + offset);
                match result {
                    Ok(()) if feasible.len() < want => feasible.push(i),
                    Ok(()) => {
                        // Enough found: this node and the rest of the window count as unprocessed.
                        return (feasible, rejections, k + offset);
                    }
                    Err(r) => rejections.push((i, r)),
                }
            }
            k += window;
        }
        (feasible, rejections, k)
    }
}

/// Nodes per thread below which spawning threads costs more than it saves.
const MIN_NODES_PER_THREAD: usize = 512;

fn filter_window(
    pod: &PodInfo,
    snap: &Snapshot,
    state: &CycleState,
    from: usize,
    len: usize,
    order: &(dyn Fn(usize) -> usize + Sync),
    parallelism: usize,
) -> Vec<FilterResult> {
    let threads = parallelism.min(len / MIN_NODES_PER_THREAD).max(1);
    let run = |range: std::ops::Range<usize>| -> Vec<FilterResult> {
        range
            .map(|k| run_filters(pod, &snap.nodes[order(from + k)], state, snap))
            .collect()
    };
    if threads == 1 {
        return run(0..len);
    }
    let chunk = len.div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let range = (t * chunk).min(len)..((t + 1) * chunk).min(len);
                s.spawn(move || run(range))
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// Weighted sum of the normalised plugin scores of each feasible node (kube's `prioritizeNodes`).
pub fn prioritize(pod: &PodInfo, snap: &Snapshot, feasible: &[usize]) -> Vec<i64> {
    let nodes: Vec<&NodeInfo> = feasible.iter().map(|&i| &*snap.nodes[i]).collect();
    let mut total = vec![0i64; nodes.len()];
    let mut add = |scores: &[i64], weight: i64| {
        for (t, s) in total.iter_mut().zip(scores) {
            *t += s * weight;
        }
    };
    let mut taints: Vec<i64> = nodes
        .iter()
        .map(|n| node::taint_toleration_score(pod, n))
        .collect();
    default_normalize(&mut taints, true);
    add(&taints, WEIGHT_TAINT_TOLERATION);
    if !pod.preferred_node_terms.is_empty() {
        let mut s: Vec<i64> = nodes.iter().map(|n| node_affinity::score(pod, n)).collect();
        default_normalize(&mut s, false);
        add(&s, WEIGHT_NODE_AFFINITY);
    }
    let s: Vec<i64> = nodes
        .iter()
        .map(|n| fit::least_allocated_score(pod, n))
        .collect();
    add(&s, WEIGHT_FIT);
    if let Some(state) = spread::pre_score(pod, snap, feasible) {
        let mut s: Vec<i64> = nodes
            .iter()
            .enumerate()
            .map(|(j, n)| spread::score(&state, pod, j, n))
            .collect();
        spread::normalize(&state, &mut s);
        add(&s, WEIGHT_TOPOLOGY_SPREAD);
    }
    if let Some(state) = ipa::pre_score(pod, snap) {
        let mut s: Vec<i64> = nodes.iter().map(|n| ipa::score(&state, n)).collect();
        ipa::normalize(&mut s);
        add(&s, WEIGHT_INTER_POD_AFFINITY);
    }
    let s: Vec<i64> = nodes
        .iter()
        .map(|n| fit::balanced_allocation_score(pod, n))
        .collect();
    add(&s, WEIGHT_BALANCED_ALLOCATION);
    total
}

/// The index of a highest total; ties broken uniformly at random (reservoir sampling).
pub fn select_host(totals: &[i64], rng: &mut StdRng) -> usize {
    let mut best = 0;
    let mut ties = 0u32;
    for (i, &t) in totals.iter().enumerate() {
        if t > totals[best] {
            best = i;
            ties = 1;
        } else if t == totals[best] {
            ties += 1;
            if ties > 1 && rng.random_range(0..ties) == 0 {
                best = i;
            }
        }
    }
    best
}

/// Whether a rejection could be resolved by removing pods (preemption's candidate test).
pub fn may_be_resolved_by_preemption(r: &Rejection) -> bool {
    r.code == Code::Unschedulable
}

#[cfg(test)]
mod tests;

/// The FitError for a pod no node can take: every rejection by node name, and what preemption
/// would do about them. `pre_filter_msg` is set when a PreFilter rejected the pod for all nodes.
fn unschedulable(
    pod: &PodInfo,
    snap: &Snapshot,
    state: &CycleState,
    rejections: Vec<(usize, Rejection)>,
    pre_filter_msg: Option<String>,
) -> ScheduleError {
    let preemption = preemption::evaluate(pod, snap, state, &rejections);
    ScheduleError::Unschedulable(Box::new(FitError {
        num_all_nodes: snap.nodes.len(),
        rejections: rejections
            .into_iter()
            .map(|(i, r)| (snap.nodes[i].name().to_string(), r))
            .collect(),
        preemption,
        pre_filter_msg,
    }))
}
