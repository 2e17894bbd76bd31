//! ReplicaSet controller: keeps `spec.replicas` pods matching the selector.
//! Decisions in [`core`]; the shell that reads the cache and writes lands with the client runtime.

pub mod core;
