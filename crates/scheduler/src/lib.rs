//! # niwa-scheduler
//!
//! Places pods on nodes the way kube-scheduler's default profile does, fast enough for thousands
//! of pods per second.
//!
//! Where to start reading:
//! * [`framework`] — one scheduling cycle: filter a rotating window of nodes, score, pick. IO-free.
//! * [`plugins`] — the filter and score plugins as plain functions over (pod, node info, snapshot),
//!   with golden tests; [`preemption`] — the dry run behind kube's "preemption: …" message.
//! * [`pod_info`], [`node_info`], [`snapshot`], [`resources`] — the parsed views the plugins read.

pub mod cache;
pub mod framework;
pub mod node_info;
pub mod plugins;
pub mod pod_info;
pub mod preemption;
pub mod queue;
pub mod resources;
pub mod snapshot;
