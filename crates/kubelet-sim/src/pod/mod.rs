//! The IO-free pod/container state machine (ARCHITECTURE.md §6): start here.
//!
//! * [`machine`] — [`PodMachine`]: events from the runtime in, [`Action`]s out, an injected clock.
//! * [`status`] — the pod status Kubernetes would report for the machine's state.
//! * [`container`], [`probe`], [`backoff`] — per-container records, probe workers with thresholds,
//!   CrashLoopBackOff / ImagePullBackOff timing.
//! * [`qos`] — the pod's QoS class.

pub mod backoff;
pub mod container;
pub mod machine;
pub mod probe;
pub mod qos;
pub mod status;

#[cfg(test)]
mod tests;

pub use backoff::BackoffPolicy;
pub use container::{ContainerKind, Running, Terminated};
pub use machine::{
    Action, Event, EventType, MachineConfig, PodIdentity, PodMachine, RestartPolicy, Signal,
    StartError, Terminal,
};
pub use probe::ProbeKind;
pub use status::pod_status;
