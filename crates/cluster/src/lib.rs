//! # niwa-cluster
//!
//! A whole niwa cluster on one machine, each daemon its own OS process: what `niwa up` runs and what
//! the end-to-end suite starts per test group.
//!
//! Where to start reading:
//! * [`plan`] — the address plan (ARCHITECTURE.md §5, or a private 127.B.0.0/16 block per test
//!   cluster) and, from it, every component's command line. IO-free; golden tests.
//! * [`supervisor`] — starts the components in stages (store → apiserver → the rest), waits for
//!   each to be healthy, restarts a crashed one with backoff, stops them in reverse order.
//! * [`state`] — the state file (`<data-dir>/cluster.json`) through which `niwa status` and
//!   `niwa down` find a running cluster.
//!
//! * [`leftovers`] — stopping the containers that outlive their kubelet when the cluster stops.
//! * [`bootstrap`] — objects the cluster needs once the apiserver is up (the `kube-dns` Service,
//!   the default `local-path` StorageClass).
//!
//! The kubeconfig it writes comes from `niwa_apiserver::http::kubeconfig`.

pub mod bootstrap;
pub mod leftovers;
pub mod plan;
pub mod state;
pub mod supervisor;

pub use plan::{ClusterPlan, ComponentSpec, Network, NodeRuntime, Stage};
pub use state::{ClusterState, ComponentState, Phase};
pub use supervisor::{Supervisor, SupervisorError};
