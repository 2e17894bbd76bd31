//! # niwa-controller-manager
//!
//! The level-triggered controllers of a niwa cluster (Kubernetes' kube-controller-manager): each
//! watches the apiserver, compares desired with observed state, and writes the difference.
//!
//! Where to start reading:
//! * [`controllers`] — one directory per controller. Each has an IO-free `core` (the decisions,
//!   golden-tested with an injected clock) and a shell that feeds it from the watch caches and performs
//!   the writes. [`controllers::selection`] implements the `--controllers` flag.
//! * [`util`] — what the controllers share: pod readiness/availability, owner references and
//!   adoption, expectations, template hashing.

pub mod controllers;
pub mod util;
