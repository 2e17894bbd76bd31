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
//! * [`cache`] (assumed pods, incremental snapshots) and [`queue`] (active/backoff/unschedulable).
//! * [`runtime`] — the IO shell: informers, the scheduling thread, async binding, status and
//!   Events, leader election; [`metrics`] — Prometheus metrics and health endpoints.
//! * [`volume_binding`] — PreBind for volume claims (selected node for WaitForFirstConsumer
//!   classes, wait until bound); its PreFilter/Filter half (missing claims, bound volumes' node
//!   affinity) is [`plugins::volume_binding`].

pub mod cache;
pub mod framework;
mod informers;
pub mod metrics;
pub mod node_info;
pub mod plugins;
pub mod pod_info;
pub mod preemption;
pub mod queue;
pub mod resources;
pub mod runtime;
pub mod snapshot;
pub mod volume_binding;

pub use runtime::{RunError, SchedulerConfig, run, run_with_metrics};
