//! DaemonSet controller: one pod per eligible node (nodeSelector, affinity, taints), following nodes
//! as they come and go; RollingUpdate (maxUnavailable, maxSurge) and OnDelete; ControllerRevisions.
//! Decisions in [`core`].

pub mod core;
