//! # niwa-apiserver
//!
//! The only door to the cluster state: Kubernetes object semantics over an etcd v3 store
//! (niwa-store or a real etcd), served to components over niwa's gRPC resource API.
//!
//! Where to start reading:
//! * [`rest`] — the generic registry: create/get/list/update/patch/delete/watch with server-set
//!   metadata, validation, optimistic concurrency, finalizers and graceful deletion.
//! * [`storage`] — objects as JSON under `/registry/...`, compare-and-swap on mod revisions.
//! * [`cache`] — the watch cache per resource: lists (paginated too) and watches without the store.
//! * [`grpc`] — the `niwa.api.v1.Resources` service; [`http`] — the Kubernetes REST API for
//!   kubectl; [`server::run`] wires them up.

pub mod cache;
pub mod grpc;
pub mod http;
pub mod kinds;
pub mod net;
pub mod object;
pub mod rest;
pub mod server;
pub mod services;
pub mod storage;

pub use net::{Ipv4Net, PortRange};
pub use server::{ApiServerConfig, ServeError, run};
