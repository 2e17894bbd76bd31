//! # niwa-kubelet
//!
//! niwa's node agent. It registers its node(s) with the apiserver, keeps their Lease and status
//! fresh, watches the pods bound to them and runs those pods on a runtime:
//!
//! * `sim` — kwok-style: no processes; containers start, run and exit on configurable delays and
//!   pod annotations; thousands of nodes in one process.
//! * `process` — each container is a real OS process; each pod has its own IP from the node's
//!   podCIDR (127.244.N.x).
//!
//! Where to start reading: [`pod`] is the IO-free pod/container state machine (init containers,
//! restart policy and CrashLoopBackOff, probes, graceful termination, the pod status Kubernetes
//! reports); everything else is the shell that feeds it.

pub mod pod;
pub mod time;
