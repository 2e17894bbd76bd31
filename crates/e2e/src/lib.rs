//! # niwa-e2e
//!
//! The end-to-end suite: each test file in `tests/` is one test group that brings up a REAL local
//! cluster — every daemon its own OS process, started by the `niwa` binary in a private address
//! block 127.B.0.0/16 with a temporary data dir — and runs the README walkthrough against it as
//! assertions, through the real `kubectl`, plain HTTP (what `curl` does), `dig`, and niwa-client's
//! gRPC API. The cluster stops when the test ends, also when it fails.
//!
//! * [`Cluster`] — the guard: `niwa up -d --block B` (random B, retried when taken), `niwa down`
//!   on drop; addresses of the block; the state file.
//! * [`Cluster::kubectl`] and friends — the real kubectl with the cluster's kubeconfig.
//! * [`http`] — GET over TCP; [`wait::eventually`] — polling for eventual state.
//! * [`scenario::run_all`] — a group's scenarios run concurrently (one namespace each) on its
//!   cluster, so the suite needs few clusters on a 2-core machine.
//!
//! The binaries come from beside the test executable (`target/<profile>/`), built with
//! `cargo build --workspace --bins` when missing; `NIWA_E2E_BIN_DIR` points elsewhere.
//! The cluster's ingress listens on port 80 of 127.B.0.1: run as root or with
//! `net.ipv4.ip_unprivileged_port_start=0`.

pub mod cluster;
pub mod http;
mod kubectl;
pub mod pods;
pub mod scenario;
pub mod wait;

pub use cluster::Cluster;
pub use pods::served_by;
pub use scenario::{Scenario, run_all, scenario};
pub use wait::eventually;
